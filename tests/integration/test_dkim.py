"""DKIM: `postern dkim` keys, `postern dns`, and signatures that verify
with two independent verifiers (dkimpy and OpenDKIM's opendkim-testmsg)
against the TXT records exactly as `postern dns` prints them, RSA-2048
and Ed25519 together."""

import datetime
import os
import pwd
import re
import subprocess

import pytest

from dkim_helpers import signatures, tag, verify_dkimpy, verify_opendkim
from harness import POSTERN, Server, run_as_user

SIGN_TOOL = os.path.join(os.path.dirname(POSTERN), "tests", "unit", "dkim-sign")


def dkim_server(workdir, name="srv"):
    """A configured (not started) server: its config and data for the CLI."""
    directory = os.path.join(workdir, name)
    os.mkdir(directory)
    return Server(directory, {"hostname": "mail.example.org"})


def keys_for(srv, domain="example.org"):
    srv.cli("domain", "add", domain)
    rsa = srv.cli("dkim", "generate", domain).stdout
    ed = srv.cli("dkim", "generate", domain, "--algorithm", "ed25519").stdout
    return rsa, ed


def sign(srv, message, origin="submission", piece=65536):
    out = subprocess.run([SIGN_TOOL, srv.data_dir, "mail.example.org", origin, str(piece)],
                         input=message, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def message(body=b"Hello,\r\n\r\nthe body.\r\n", headers=b""):
    return (b"From: Alice Example <alice@example.org>\r\n"
            b"To: Bob <bob@example.net>\r\n"
            b"Cc: carol@example.net\r\n"
            b"Subject: DKIM test\r\n"
            b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <dkim-test@example.org>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n" + headers + b"\r\n" + body)


def test_keys_cli(workdir):
    srv = dkim_server(workdir)
    rsa, ed = keys_for(srv)
    month = datetime.datetime.now(datetime.timezone.utc).strftime("p%Y%m")
    assert rsa.startswith(month + "._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=rsa; p=")
    assert ed.startswith(month + "b._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=ed25519; p=")
    listed = srv.cli("dkim", "list").stdout.splitlines()
    assert [l.split("\t")[:4] for l in listed] == [
        ["example.org", month, "rsa", "2048"], ["example.org", month + "b", "ed25519", "256"]]
    assert srv.cli("dkim", "show", "EXAMPLE.org").stdout == rsa + ed
    # secrets: 0600, owned by run_as, in a directory of its own
    path = os.path.join(srv.data_dir, "dkim", "example.org", month + ".pem")
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o600
    assert st.st_uid == pwd.getpwnam(run_as_user()).pw_uid
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
    # a chosen selector; then the errors
    srv.cli("dkim", "generate", "example.org", "--selector", "rot2")
    again = srv.cli("dkim", "generate", "example.org", "--selector", "rot2", check=False)
    assert again.returncode == 1 and "already" in again.stderr
    assert srv.cli("dkim", "generate", "example.org", "--selector", "Bad.Sel",
                   check=False).returncode == 1
    assert srv.cli("dkim", "generate", "example.org", "--algorithm", "dsa",
                   check=False).returncode == 2
    assert srv.cli("dkim", "frob", check=False).returncode == 2
    assert srv.cli("dkim", "del", "example.org", "nope", check=False).returncode == 1
    # rotation: the old key goes, the others stay
    srv.cli("dkim", "del", "example.org", month)
    assert [l.split("\t")[1] for l in srv.cli("dkim", "list").stdout.splitlines()] == \
        [month + "b", "rot2"]
    assert srv.cli("dkim", "show", "example.net", check=False).returncode == 1


def test_dns_records(workdir):
    srv = dkim_server(workdir)
    rsa, ed = keys_for(srv)
    out = srv.cli("dns", "example.org").stdout
    lines = [l for l in out.splitlines() if l and not l.startswith(";")]
    # every line is NAME TTL IN TYPE DATA with an absolute name
    for line in lines:
        name, ttl, cls, rtype, data = line.split(None, 4)
        assert name.endswith(".") and ttl == "3600" and cls == "IN", line
    assert "example.org. 3600 IN MX 10 mail.example.org." in lines
    assert 'example.org. 3600 IN TXT "v=spf1 mx ~all"' in lines
    assert rsa.strip() in lines and ed.strip() in lines
    dmarc = [l for l in lines if l.startswith("_dmarc.example.org.")]
    assert dmarc == ['_dmarc.example.org. 3600 IN TXT '
                     '"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"']
    assert re.search(r"^; DMARC: a starting point", out, re.M)
    sts = [l for l in lines if l.startswith("_mta-sts.example.org.")]
    assert len(sts) == 1 and re.search(r'"v=STSv1; id=[0-9a-f]{16}"$', sts[0])
    assert ";   version: STSv1" in out
    assert ";   mx: mail.example.org" in out and ";   mode: testing" in out
    assert '_smtp._tls.example.org. 3600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.org"' \
        in lines
    srv_lines = {l.split()[0]: l for l in lines if " SRV " in l}
    assert set(srv_lines) == {"_submission._tcp.example.org.", "_submissions._tcp.example.org.",
                              "_imap._tcp.example.org.", "_imaps._tcp.example.org.",
                              "_pop3s._tcp.example.org."}
    port = srv.port("submission")
    assert srv_lines["_submission._tcp.example.org."].endswith(
        "SRV 0 1 %d mail.example.org." % port)
    # the policy id follows the policy
    srv.settings[1].setdefault("mta_sts", {})["mode"] = "enforce"
    srv.write_config(*srv.settings)
    out2 = srv.cli("dns", "example.org").stdout
    assert ";   mode: enforce" in out2
    assert re.search(r"id=([0-9a-f]+)", out2).group(1) != re.search(r"id=([0-9a-f]+)", out).group(1)
    assert srv.cli("dns", check=False).returncode == 2


CASES = {
    "plain": message(),
    "5MiB": message(body=b"".join(b"line %07d of a large message, 64 bytes with its end.....\r\n"
                                  % i for i in range(82000))),
    "8bit-headers": message(headers="X-Note: ünïcödé\r\n".encode(), body="Grüße\r\n".encode())
    .replace(b"Subject: DKIM test", "Subject: Grüße aus Köln".encode())
    .replace(b"From: Alice Example", "From: Älice Exämple".encode()),
    "no-final-crlf": message(body=b"no line end at the end"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_signed_message_verifies(workdir, case):
    srv = dkim_server(workdir)
    keys_for(srv)
    zone = srv.cli("dns", "example.org").stdout
    original = CASES[case]
    signed = sign(srv, original, piece=4093)
    sigs = signatures(signed)
    assert len(sigs) == 2
    assert sorted(tag(s, b"a") for s in sigs) == ["ed25519-sha256", "rsa-sha256"]
    for s in sigs:
        assert tag(s, b"c") == "relaxed/relaxed" and tag(s, b"d") == "example.org"
        assert tag(s, b"l") is None
        h = tag(s, b"h").lower().split(":")
        assert h.count("from") == 2   # oversigned
        assert {"to", "cc", "subject", "date", "message-id", "mime-version",
                "content-type"} <= set(h)
    # what a receiver gets: the data ends with a line end
    received = signed if signed.endswith(b"\r\n") else signed + b"\r\n"
    assert verify_dkimpy(received, zone) == [True, True]
    results = verify_opendkim(received, zone)
    assert [ok for ok, _ in results] == [True, True], results
    # and both verifiers notice a change
    tampered = received.replace(b"Subject: ", b"Subject: X", 1)
    assert verify_dkimpy(tampered, zone) == [False, False]
    assert [ok for ok, _ in verify_opendkim(tampered, zone)] == [False, False]


def test_unsigned_domain(workdir):
    srv = dkim_server(workdir)
    keys_for(srv, "example.com")
    signed = sign(srv, message())
    assert signatures(signed) == []
