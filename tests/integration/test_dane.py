"""DANE for outbound mail (RFC 7672): a DNSSEC-signed test zone served by
NSD (signed with ldnsutils), trusted through [relay] dane_trust_anchor;
libunbound validates, OpenSSL's DANE API checks the peer. A matching
TLSA record delivers (verified, tls_auth=dane), one that does not match
defers and sends nothing, an unsigned zone stays opportunistic."""

import hashlib
import os
import re
import subprocess

import pytest

from nsd_helpers import Nsd, write_zone
from test_mtasts import PolicyServer
from test_relay import Sink, free_port_on, inject, start_smtp, wait_for
from tls_helpers import issue, make_ca, server_context

SENDER = "alice@local.example"


def spki_sha256(cert):
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


@pytest.fixture
def dane(workdir, server_factory):
    """Sinks with certificates, the signed zone dane.example. and the
    unsigned zone plain.example. in NSD, and a Postern relaying to them.
    ok.dane.example also publishes an MTA-STS policy in enforce mode whose
    mx pattern its MX does not match: DANE must win (RFC 8461 2)."""
    zdir = os.path.join(workdir, "zones")
    os.mkdir(zdir)
    ca = make_ca(workdir)
    ips = {"ok": "127.0.0.41", "bad": "127.0.0.42", "plain": "127.0.0.43", "notls": "127.0.0.44"}
    port = free_port_on(list(ips.values()))
    sinks, ctls = {}, []
    certs = {}
    for name, ip in ips.items():
        host = "mx.%s.%s" % (name, "plain.example" if name == "plain" else "dane.example")
        certs[name] = issue(workdir, ca, host, name="sink-" + name)
        sinks[name] = Sink()
        tls = None if name == "notls" else server_context(*certs[name])
        ctls.append(start_smtp(ip, port, sinks[name], tls=tls))
    good = spki_sha256(certs["ok"][0])
    records = []
    for name in ("ok", "bad", "notls"):
        records += ["%s 60 IN MX 10 mx.%s" % (name, name),
                    "mx.%s 60 IN A %s" % (name, ips[name])]
    https_port = free_port_on(["127.0.0.45"])
    records += ['_mta-sts.ok 60 IN TXT "v=STSv1; id=dane1"', "mta-sts.ok 60 IN A 127.0.0.45"]
    pcert = issue(workdir, ca, "mta-sts.ok.dane.example")
    web = PolicyServer("127.0.0.45", https_port, pcert[0], pcert[1],
                       "version: STSv1\r\nmode: enforce\r\nmx: elsewhere.dane.example\r\n"
                       "max_age: 86400\r\n")
    records += ["_%d._tcp.mx.ok 60 IN TLSA 3 1 1 %s" % (port, good),
                "_%d._tcp.mx.bad 60 IN TLSA 3 1 1 %s" % (port, "00" * 32),
                "_%d._tcp.mx.notls 60 IN TLSA 3 1 1 %s" % (port, good)]
    signed, anchor = write_zone(zdir, "dane.example.", records, sign=True)
    plain, _ = write_zone(zdir, "plain.example.", ["@ 60 IN MX 10 mx", "mx 60 IN A %s" % ips["plain"]])
    nsd = Nsd(zdir, {"dane.example.": signed, "plain.example.": plain})
    anchor_file = os.path.join(workdir, "anchor.ds")
    with open(anchor_file, "w") as f:
        f.write(anchor + "\n")
    os.chmod(anchor_file, 0o644)
    try:
        srv = server_factory(sections={"relay": {
            "mode": "mx", "dns": "127.0.0.1:%d" % nsd.port, "mx_port": str(port),
            "retry_schedule": "1h", "max_lifetime": "1d", "delay_warning": "0",
            "dane": "yes", "dane_trust_anchor": anchor_file, "mta_sts": "yes",
            "mta_sts_ca_file": ca[0], "mta_sts_port": str(https_port)}})
        srv.add_user(SENDER, "secret-password-1")
        srv.wait_log(r"event=relay-running", timeout=30)
        srv.wait_log(r"event=dane-ready anchor=dane\.example\.", timeout=30)
        yield srv, sinks
    finally:
        for ctl in ctls:
            ctl.stop()
        web.stop()
        nsd.stop()


def recipient_line(srv, qid, rcpt):
    show = srv.cli("queue", "show", qid).stdout
    return [l for l in show.splitlines() if l.startswith("recipient: " + rcpt)][0]


def test_matching_tlsa_delivers(dane):
    srv, sinks = dane
    qid = inject(srv, ["bob@ok.dane.example"], "dane ok")
    srv.wait_log(r"event=relay-delivery id=%s .*status=sent" % qid, timeout=30)
    wait_for(lambda: len(sinks["ok"].messages) == 1, 10, "the sink's message")
    assert sinks["ok"].messages[0][3] is True
    log = srv.read_log()
    assert re.search(r"event=relay-delivery id=%s rcpt=bob@ok\.dane\.example host=mx\.ok\.dane\.example "
                     r"ip=127\.0\.0\.41 tls=\"TLSv1\.[23] [^\"]+\" status=sent .*verified=yes "
                     r"tls_auth=dane " % qid, log)
    # its MTA-STS policy (enforce, another mx) was fetched and did not count
    assert "event=mta-sts-policy domain=ok.dane.example id=dane1 mode=enforce" in log


def test_tlsa_mismatch_defers(dane):
    srv, sinks = dane
    qid = inject(srv, ["bob@bad.dane.example"], "dane bad")
    srv.wait_log(r"event=relay-delivery id=%s .*status=deferred" % qid, timeout=30)
    assert sinks["bad"].messages == []
    line = recipient_line(srv, qid, "bob@bad.dane.example")
    assert "state=pending" in line
    assert re.search(r"last_error=451 4\.7\.5 DANE: the certificate of mx\.bad\.dane\.example does "
                     r"not check out", line), line


def test_tlsa_without_starttls_defers(dane):
    srv, sinks = dane
    qid = inject(srv, ["bob@notls.dane.example"], "dane no tls")
    srv.wait_log(r"event=relay-delivery id=%s .*status=deferred" % qid, timeout=30)
    assert sinks["notls"].messages == []
    line = recipient_line(srv, qid, "bob@notls.dane.example")
    assert re.search(r"last_error=451 4\.7\.5 DANE: mx\.notls\.dane\.example of notls\.dane\.example "
                     r"must use TLS but does not offer STARTTLS", line), line


def test_unsigned_zone_is_opportunistic(dane):
    srv, sinks = dane
    qid = inject(srv, ["bob@plain.example"], "plain")
    srv.wait_log(r"event=relay-delivery id=%s .*status=sent" % qid, timeout=30)
    wait_for(lambda: len(sinks["plain"].messages) == 1, 10, "the sink's message")
    assert sinks["plain"].messages[0][3] is True    # STARTTLS all the same, unverified
    assert re.search(r"event=relay-delivery id=%s .*status=sent .*verified=no tls_auth=none "
                     % qid, srv.read_log())
