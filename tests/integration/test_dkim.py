"""DKIM: `postern dkim` keys, `postern dns`, and signatures that verify
with two independent verifiers (dkimpy and OpenDKIM's opendkim-testmsg)
against the TXT records exactly as `postern dns` prints them, RSA-2048
and Ed25519 together."""

import datetime
import os
import pwd
import re
import smtplib
import subprocess
import time

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


# ---- end to end ----
#
# What leaves for a remote host is the queue record's prepended fields
# (the DKIM-Signature fields among them) followed by the spool file;
# `postern queue show` prints those fields, the spool file is read as it
# is: so what stays queued can be checked too.

from test_relay import dns  # noqa: E402,F401  (the throwaway DNS server fixture)
from harness import client_context  # noqa: E402


def queued_as_sent(srv, qid):
    """The message as the relay sends it: prepended fields + spool file."""
    show = srv.cli("queue", "show", qid).stdout
    header = show.split("\n\n", 1)[1].splitlines()
    prepended, keep = [], False
    for line in header:
        if line.startswith("DKIM-Signature:"):
            keep = True
        elif not line.startswith(("\t", " ")):
            keep = False
        if keep:
            prepended.append(line.encode())
    with open(os.path.join(srv.data_dir, "queue", qid), "rb") as f:
        spool = f.read()
    if spool.startswith(b"Return-Path:"):
        spool = spool.split(b"\r\n", 1)[1]
    return b"".join(l + b"\r\n" for l in prepended) + spool


def relay_server_for(server_factory, dns, hostname="mail.example.org"):
    # remote domains answer SERVFAIL: what is queued for them stays queued
    srv = server_factory(extra={"hostname": hostname}, sections={"relay": {
        "mode": "mx", "dns": "127.0.0.1:%d" % dns.port, "retry_schedule": "1h",
        "max_lifetime": "1d", "delay_warning": "0", "dane": "no", "mta_sts": "no"}})
    srv.wait_log(r"event=relay-running", timeout=30)
    return srv


def submit(srv, user, password, to, message):
    s = smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=30)
    s.starttls(context=client_context())
    s.login(user, password)
    s.sendmail(user, [to], message)
    s.quit()


def wait_queued(srv, count=1, sender=None):
    def ids():
        lines = srv.cli("queue", "list").stdout.splitlines()
        return [l.split("\t")[0] for l in lines if sender is None or "\t<%s>\t" % sender in l]
    deadline = time.time() + 30
    while time.time() < deadline:
        found = ids()
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError("nothing queued:\n" + srv.read_log()[-3000:])


def keys_for_running(srv, domain="example.org"):
    srv.cli("dkim", "generate", domain)
    srv.cli("dkim", "generate", domain, "--algorithm", "ed25519")


def test_submitted_from_unsigned_domain(server_factory, dns):
    dns.servfail.update({"example.net"})
    srv = relay_server_for(server_factory, dns)
    srv.add_user("carol@example.com", "secret-password-1")
    keys_for_running(srv, "example.org")    # keys, but not for carol's domain
    submit(srv, "carol@example.com", "secret-password-1", "bob@example.net",
           message().replace(b"alice@example.org", b"carol@example.com"))
    qid = wait_queued(srv)[0]
    assert signatures(queued_as_sent(srv, qid)) == []


def test_bounce_signed_by_hostname_domain(server_factory, dns):
    """A DSN (From: MAILER-DAEMON@mail.example.org) is signed with the
    keys of example.org, the hostname's closest parent that has some."""
    dns.servfail.add("remote.example")      # the DSN stays queued for it
    srv = relay_server_for(server_factory, dns)
    keys_for_running(srv)
    zone = srv.cli("dns", "example.org").stdout
    # nx.example does not exist: the message fails at once and bounces
    srv.cli("queue", "inject", "--from", "bob@remote.example", "x@nx.example",
            input="From: bob@remote.example\r\nTo: x@nx.example\r\nSubject: bounce me\r\n"
                  "\r\nhello\r\n")
    dsn = wait_queued(srv, sender="")[0]
    sent = queued_as_sent(srv, dsn)
    assert b"MAILER-DAEMON@mail.example.org" in sent
    sigs = signatures(sent)
    assert len(sigs) == 2 and {tag(s, b"d") for s in sigs} == {"example.org"}
    assert verify_dkimpy(sent, zone) == [True, True]
    assert [ok for ok, _ in verify_opendkim(sent, zone)] == [True, True]


def test_submitted_mail_verifies_at_a_remote_sink(server_factory, dns):
    """The whole path: smtplib submits, intake signs, the relay sends the
    signatures in front of the message to a remote MX (aiosmtpd), and
    what that MX received verifies with both verifiers."""
    from test_relay import Sink, free_port_on, start_smtp
    ip = "127.0.0.51"
    dns.zone["sink.example"] = {"MX": [(10, "mx.sink.example")]}
    dns.zone["mx.sink.example"] = {"A": [ip]}
    port = free_port_on([ip])
    sink = Sink()
    ctl = start_smtp(ip, port, sink)
    try:
        srv = server_factory(extra={"hostname": "mail.example.org"}, sections={"relay": {
            "mode": "mx", "dns": "127.0.0.1:%d" % dns.port, "mx_port": str(port),
            "retry_schedule": "1h", "max_lifetime": "1d", "delay_warning": "0",
            "dane": "no", "mta_sts": "no"}})
        srv.wait_log(r"event=relay-running", timeout=30)
        srv.add_user("alice@example.org", "secret-password-1")
        keys_for_running(srv)
        zone = srv.cli("dns", "example.org").stdout
        for n, case in enumerate(("plain", "5MiB", "8bit-headers", "no-final-crlf"), 1):
            body = CASES[case]
            if case == "no-final-crlf":
                body = body + b"\r\n"
            s = smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=60)
            s.starttls(context=client_context())
            s.login("alice@example.org", "secret-password-1")
            opts = ["SMTPUTF8", "BODY=8BITMIME"] if case == "8bit-headers" else []
            s.sendmail("alice@example.org", ["bob@sink.example"], body, mail_options=opts)
            s.quit()
            deadline = time.time() + 60
            while len(sink.messages) < n and time.time() < deadline:
                time.sleep(0.1)
            assert len(sink.messages) == n, srv.read_log()[-3000:]
            received = sink.messages[-1][2]
            sigs = signatures(received)
            assert sorted(tag(s, b"a") for s in sigs) == ["ed25519-sha256", "rsa-sha256"], case
            assert verify_dkimpy(received, zone) == [True, True], case
            assert [ok for ok, _ in verify_opendkim(received, zone)] == [True, True], case
        assert re.search(r"event=dkim-signed domain=example\.org selectors=p\d{6},p\d{6}b",
                         srv.read_log())
    finally:
        ctl.stop()
