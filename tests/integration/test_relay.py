"""The relay: the outbound queue runner, direct MX delivery through a
throwaway DNS server, SMTP to throwaway servers on 127.0.0.x, DSNs into
the sender's INBOX, smarthost with AUTH, `postern queue`, restarts.

Queue entries are made with `postern queue inject` (the test and admin
path that enqueues a message like submission does)."""

import glob
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from dnslib import AAAA, A, MX, QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from harness import client_context, make_cert

LOCAL = "local.example"
SENDER = "alice@" + LOCAL


# ---- a throwaway DNS server ----

class ZoneResolver(BaseResolver):
    """names -> {"MX": [(pref, host)], "A": [ip], "AAAA": [ip], "TXT": [text]};
    names in servfail answer SERVFAIL, unknown names NXDOMAIN."""

    def __init__(self):
        self.zone = {}
        self.servfail = set()

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if name not in self.zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in self.zone[name].get(qtype, []):
            if qtype == "MX":
                rdata = MX(value[1] + "." if value[1] != "." else ".", value[0])
            elif qtype == "A":
                rdata = A(value)
            elif qtype == "TXT":
                rdata = TXT(value)
            else:
                rdata = AAAA(value)
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=1))
        return reply


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dns():
    resolver = ZoneResolver()
    port = free_udp_port()
    server = DNSServer(resolver, port=port, address="127.0.0.1",
                       logger=DNSLogger(logf=lambda s: None))
    server.start_thread()
    resolver.port = port
    yield resolver
    server.stop()


# ---- throwaway SMTP servers ----

class Sink:
    """An aiosmtpd handler that records messages and answers per recipient:
    rules maps a recipient to a list of replies used in turn (the last
    repeats); anything else gets 250."""

    def __init__(self, rules=None):
        self.rules = {k.lower(): list(v) for k, v in (rules or {}).items()}
        self.messages = []
        self.rcpt_log = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_log.append(address)
            replies = self.rules.get(address.lower())
            if replies:
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if not reply.startswith("250"):
                    return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content or envelope.content,
                                  session.ssl is not None))
        return "250 2.0.0 accepted"


class SlowSink(Sink):
    """A Sink that takes its time before answering the final dot."""

    def __init__(self, delay):
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        import asyncio
        await asyncio.sleep(self.delay)
        return await Sink.handle_DATA(self, server, session, envelope)


def subjects_received(sink, prefix):
    """Sorted subjects "PREFIX N" of every message the sink took."""
    return sorted(re.search(rb"Subject: (%s \d+)" % prefix.encode(), m[2]).group(1).decode()
                  for m in sink.messages)


def start_smtp(ip, port, handler, tls=None, implicit=False, auth=None):
    kwargs = {}
    if tls is not None and not implicit:
        kwargs["tls_context"] = tls
    if tls is not None and implicit:
        kwargs["ssl_context"] = tls
    if auth is not None:
        kwargs["authenticator"] = auth
        # aiosmtpd only counts STARTTLS as TLS; with implicit TLS the
        # authenticator checks session.ssl itself
        kwargs["auth_require_tls"] = not implicit
    ctl = Controller(handler, hostname=ip, port=port, enable_SMTPUTF8=True, **kwargs)
    if implicit:
        ctl.server_hostname = "localhost"
    ctl.start()
    return ctl


def server_tls(directory):
    cert, key = make_cert(directory, name="peer")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def ip_cert(directory, ip, name):
    """A self-signed certificate for the IP address ip: (cert, key, context)."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + "-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + ip, "-addext", "subjectAltName=IP:" + ip],
                   check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return cert, key, ctx


def free_port_on(ips):
    """A TCP port free on every address in ips."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ok = True
        for ip in ips:
            try:
                with socket.socket() as t:
                    t.bind((ip, port))
            except OSError:
                ok = False
        if ok:
            return port
    raise RuntimeError("no free port")


# ---- helpers ----

MESSAGE = ("From: Alice <alice@local.example>\r\nTo: someone\r\nSubject: %s\r\n"
           "Message-ID: <%s@local.example>\r\n\r\nHello.\r\n.leading dot\r\n")


def mx_domain(dns, domain, ip):
    """domain's one MX, mx.DOMAIN, at ip; returns a port free there."""
    dns.zone[domain] = {"MX": [(10, "mx." + domain)]}
    dns.zone["mx." + domain] = {"A": [ip]}
    return free_port_on([ip])


def relay_server(server_factory, dns, port, **relay):
    section = {"mode": "mx", "dns": "127.0.0.1:%d" % dns.port, "mx_port": str(port),
               "retry_schedule": "1s", "max_lifetime": "1h", "delay_warning": "0"}
    section.update({k: str(v) for k, v in relay.items()})
    srv = server_factory(sections={"relay": section})
    srv.add_user(SENDER, "secret-password-1")
    srv.wait_log(r"event=relay-running", timeout=30)
    return srv


def inject(srv, rcpts, subject="test", sender=SENDER, extra=()):
    msg = MESSAGE % (subject, subject.replace(" ", "-"))
    out = srv.cli("queue", "inject", "--from", sender, *extra, *rcpts, input=msg)
    return out.stdout.strip()


def inbox(srv, address=SENDER):
    local, domain = address.split("@")
    files = sorted(glob.glob(os.path.join(srv.data_dir, "mail", domain, local, "new", "*")) +
                   glob.glob(os.path.join(srv.data_dir, "mail", domain, local, "cur", "*")))
    out = []
    for f in files:
        with open(f, "rb") as fh:
            out.append(fh.read().decode("utf-8", "replace"))
    return out


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + (what() if callable(what) else what))


def queue_ids(srv):
    return [line.split("\t")[0] for line in srv.cli("queue", "list").stdout.splitlines()]


def wait_queue_empty(srv, timeout=30):
    wait_for(lambda: queue_ids(srv) == [], timeout,
             lambda: "an empty queue:\n" + srv.read_log()[-5000:])


# ---- tests ----

def test_preferred_mx_down_second_used_with_starttls(server_factory, dns, workdir):
    port = free_port_on(["127.0.0.2", "127.0.0.3"])
    dns.zone["fallback.example"] = {"MX": [(10, "mx1.fallback.example"),
                                           (20, "mx2.fallback.example")]}
    dns.zone["mx1.fallback.example"] = {"A": ["127.0.0.2"]}
    # IPv6 first (nothing listens on ::1 at that port), then IPv4
    dns.zone["mx2.fallback.example"] = {"A": ["127.0.0.3"], "AAAA": ["::1"]}
    sink = Sink()
    ctl = start_smtp("127.0.0.3", port, sink, tls=server_tls(workdir))
    try:
        srv = relay_server(server_factory, dns, port)
        inject(srv, ["bob@fallback.example"], "fallback")
        wait_queue_empty(srv)
        assert len(sink.messages) == 1
        sender, rcpts, body, used_tls = sink.messages[0]
        assert sender == SENDER and rcpts == ["bob@fallback.example"] and used_tls
        assert b"\r\n.leading dot\r\n" in body          # dot-stuffing undone by the peer
        log = srv.read_log()
        assert re.search(r"event=relay-host-down ip=127\.0\.0\.2", log)
        assert re.search(r"event=relay-host-failed id=\w+ host=mx2\.fallback\.example ip=::1 ", log)
        line = re.search(r"event=relay-delivery id=\w+ rcpt=bob@fallback\.example "
                         r"host=mx2\.fallback\.example ip=127\.0\.0\.3 tls=\"(TLSv1\.[23])[^\"]*\" "
                         r"status=sent code=250 delay=\d+s", log)
        assert line, log[-3000:]
    finally:
        ctl.stop()


def test_451_then_250_is_retried_and_delivered_once(server_factory, dns):
    port = mx_domain(dns, "retry.example", "127.0.0.4")
    sink = Sink({"carol@retry.example": ["451 4.3.0 try later", "250 OK"]})
    ctl = start_smtp("127.0.0.4", port, sink)
    try:
        srv = relay_server(server_factory, dns, port)
        qid = inject(srv, ["carol@retry.example"], "retry")
        srv.wait_log(r"id=%s rcpt=carol@retry\.example .* status=deferred code=451" % qid, timeout=30)
        wait_queue_empty(srv)
        assert len(sink.messages) == 1
        assert sink.rcpt_log.count("carol@retry.example") == 2
        assert "relay-message-done id=%s attempts=2" % qid in srv.read_log()
    finally:
        ctl.stop()


def dsn_for(srv, action, count=1, timeout=30):
    return wait_for(lambda: [m for m in inbox(srv) if "Action: %s" % action in m]
                    if len([m for m in inbox(srv) if "Action: %s" % action in m]) >= count
                    else None, timeout, lambda: "a DSN (%s):\n%s" % (action, srv.read_log()[-5000:]))


def test_one_rcpt_550_one_250_gives_one_dsn_naming_the_failed(server_factory, dns):
    port = mx_domain(dns, "mixed.example", "127.0.0.5")
    sink = Sink({"bad@mixed.example": ["550 5.1.1 no such user"]})
    ctl = start_smtp("127.0.0.5", port, sink)
    try:
        srv = relay_server(server_factory, dns, port)
        qid = inject(srv, ["good@mixed.example", "bad@mixed.example"], "mixed",
                     extra=("--envid", "ENV-42"))
        wait_queue_empty(srv)
        dsns = dsn_for(srv, "failed")
        time.sleep(0.5)
        assert len(inbox(srv)) == 1
        dsn = dsns[0]
        assert sink.messages[0][1] == ["good@mixed.example"]
        assert "Content-Type: multipart/report; report-type=delivery-status" in dsn
        assert "Final-Recipient: rfc822; bad@mixed.example" in dsn
        assert "good@mixed.example" not in dsn.split("Content-Type: message/delivery-status")[1] \
            .split("Content-Type: message/rfc822")[0]
        assert "Status: 5.1.1" in dsn
        assert "Diagnostic-Code: smtp; 550 5.1.1 no such user" in dsn
        assert "Remote-MTA: dns; mx.mixed.example" in dsn
        assert "Reporting-MTA: dns; mail.test.example" in dsn
        assert "Original-Envelope-Id: ENV-42" in dsn
        assert "X-Postern-Queue-ID: %s" % qid in dsn
        assert "Subject: mixed" in dsn                  # the original comes back
        assert "From: Mail Delivery System <MAILER-DAEMON@mail.test.example>" in dsn
    finally:
        ctl.stop()


def test_null_mx_nxdomain_bounce_servfail_defers(server_factory, dns):
    dns.zone["nullmx.example"] = {"MX": [(0, ".")]}
    dns.servfail.add("servfail.example")
    srv = relay_server(server_factory, dns, free_port_on(["127.0.0.1"]))
    inject(srv, ["x@nullmx.example"], "nullmx")
    inject(srv, ["y@nxdomain.example"], "nxdomain")
    qid = inject(srv, ["z@servfail.example"], "servfail")
    dsns = dsn_for(srv, "failed", count=2)
    text = "\n".join(dsns)
    assert "Final-Recipient: rfc822; x@nullmx.example" in text and "Status: 5.1.10" in text
    assert "Final-Recipient: rfc822; y@nxdomain.example" in text and "Status: 5.1.2" in text
    srv.wait_log(r"id=%s rcpt=z@servfail\.example .* status=deferred code=451 .*4\.4\.3" % qid, timeout=30)
    wait_for(lambda: queue_ids(srv) == [qid], what="only the SERVFAIL message queued")
    assert "servfail" not in text


def test_expiry_with_a_delay_dsn_first(server_factory, dns):
    port = mx_domain(dns, "slow.example", "127.0.0.6")
    sink = Sink({"dave@slow.example": ["451 4.2.0 busy, come back"]})
    ctl = start_smtp("127.0.0.6", port, sink)
    try:
        # generous for a loaded machine: the delay DSN needs one attempt
        # within the lifetime
        srv = relay_server(server_factory, dns, port, max_lifetime="8s", delay_warning="2s")
        qid = inject(srv, ["dave@slow.example"], "expiry")
        delayed = dsn_for(srv, "delayed")[0]
        assert "Final-Recipient: rfc822; dave@slow.example" in delayed
        assert "Will-Retry-Until:" in delayed and "Status: 4.2.0" in delayed
        failed = dsn_for(srv, "failed")[0]
        assert "Final-Recipient: rfc822; dave@slow.example" in failed
        assert "451 4.2.0 busy, come back" in failed
        assert "event=relay-expired id=%s" % qid in srv.read_log()
        wait_queue_empty(srv)
        assert len(inbox(srv)) == 2
        assert sink.messages == []
    finally:
        ctl.stop()


def test_require_tls_without_starttls_defers(server_factory, dns):
    port = mx_domain(dns, "notls.example", "127.0.0.7")
    sink = Sink()
    ctl = start_smtp("127.0.0.7", port, sink)
    try:
        srv = relay_server(server_factory, dns, port, require_tls="yes")
        qid = inject(srv, ["erin@notls.example"], "notls")
        srv.wait_log(r"id=%s rcpt=erin@notls\.example .*status=deferred code=451 .*4\.7\.10" % qid, timeout=30)
        assert sink.messages == [] and queue_ids(srv) == [qid]
        assert "4.7.10" in srv.cli("queue", "show", qid).stdout
    finally:
        ctl.stop()


def smarthost_setup(workdir, ip, mode, server_cert_name):
    port = free_port_on([ip])
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((mechanism, auth_data.login, auth_data.password, session.ssl is not None))
        ok = auth_data.login == b"relayuser" and auth_data.password == b"relay pass"
        return AuthResult(success=ok)

    ca, _, ctx = ip_cert(workdir, ip, "smarthost-ca")
    if server_cert_name != "smarthost-ca":
        _, _, ctx = ip_cert(workdir, ip, server_cert_name)   # not the one trusted
    sink = Sink()
    ctl = start_smtp(ip, port, sink, tls=ctx, implicit=mode == "implicit", auth=authenticator)
    auth_file = os.path.join(workdir, "smarthost-auth")
    with open(auth_file, "w") as f:
        f.write("relayuser relay pass\n")
    os.chmod(auth_file, 0o644)   # the unprivileged relay must read it in tests
    relay = {"mode": "smarthost", "smarthost": "%s:%d" % (ip, port), "smarthost_tls": mode,
             "smarthost_auth_file": auth_file, "smarthost_ca_file": ca}
    return port, sink, seen, ctl, relay


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_smarthost_with_auth_over_verified_tls(server_factory, dns, workdir, mode):
    port, sink, seen, ctl, relay = smarthost_setup(workdir, "127.0.0.8", mode, "smarthost-ca")
    try:
        srv = relay_server(server_factory, dns, port, **relay)
        inject(srv, ["frank@anywhere.example", "gina@elsewhere.example"], "smarthost")
        wait_queue_empty(srv)
        assert len(sink.messages) == 1
        assert sorted(sink.messages[0][1]) == ["frank@anywhere.example", "gina@elsewhere.example"]
        # over TLS (aiosmtpd's session.ssl only tells of STARTTLS)
        assert re.search(r"rcpt=frank@anywhere\.example host=127\.0\.0\.8 ip=127\.0\.0\.8 "
                         r"tls=\"TLSv1\.[23] [^\"]+\" status=sent", srv.read_log())
        assert seen and seen[0][0] == "PLAIN" and seen[0][1] == b"relayuser"
        assert seen[0][3] or mode == "implicit"
        assert "relay pass" not in srv.read_log()
    finally:
        ctl.stop()


def test_smarthost_with_an_untrusted_certificate_gets_no_credentials(server_factory, dns,
                                                                     workdir):
    port, sink, seen, ctl, relay = smarthost_setup(workdir, "127.0.0.12", "starttls", "other")
    try:
        srv = relay_server(server_factory, dns, port, **relay)
        qid = inject(srv, ["olga@anywhere.example"], "untrusted")
        srv.wait_log(r"id=%s rcpt=olga@anywhere\.example .*status=deferred code=451" % qid, timeout=30)
        assert "certificate verify failed" in srv.read_log()
        assert seen == [] and sink.messages == []
        assert queue_ids(srv) == [qid]
    finally:
        ctl.stop()


def test_local_recipients_never_leave(server_factory, dns):
    srv = relay_server(server_factory, dns, free_port_on(["127.0.0.1"]))
    srv.add_user("henry@" + LOCAL, "secret-password-2")
    srv.cli("alias", "add", "team@" + LOCAL, "henry@" + LOCAL)
    inject(srv, ["team@" + LOCAL], "shortcut")
    inject(srv, ["--notify", "success", "--local", "henry@" + LOCAL], "retry-local")
    wait_queue_empty(srv)
    delivered = dsn_for(srv, "delivered")[0]
    assert "Final-Recipient: rfc822; henry@%s" % LOCAL in delivered
    assert "Subject: Successful Mail Delivery Report" in delivered
    got = wait_for(lambda: inbox(srv, "henry@" + LOCAL) if len(inbox(srv, "henry@" + LOCAL)) == 2
                   else None, what="local deliveries")
    assert any("Subject: shortcut" in m for m in got)
    assert all(m.startswith("Return-Path: <%s>\r\n" % SENDER) for m in got)
    assert all(m.startswith("Return-Path: <>\r\n") for m in inbox(srv))   # the DSN
    assert "connecting" not in srv.read_log()


def test_return_path_only_in_the_stored_copy(server_factory, dns):
    """Submission to a hosted and a remote recipient writes the message
    once: the stored copy starts with the Return-Path of final delivery
    (RFC 5321 4.4), the copy relayed on has none, and a Return-Path the
    client put in is dropped from both."""
    port = mx_domain(dns, "far.example", "127.0.0.34")
    sink = Sink()
    ctl = start_smtp("127.0.0.34", port, sink)
    try:
        srv = relay_server(server_factory, dns, port)
        srv.add_user("henry@" + LOCAL, "secret-password-2")
        s = smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=30)
        s.starttls(context=client_context())
        s.login(SENDER, "secret-password-1")
        s.sendmail(SENDER, ["henry@" + LOCAL, "ann@far.example"],
                   b"Return-Path: <forged@elsewhere.example>\r\nFrom: <%s>\r\n"
                   b"Subject: both\r\n\r\nbody\r\n" % SENDER.encode())
        s.quit()
        wait_for(lambda: sink.messages, what="the relayed copy")
        relayed = sink.messages[0][2]
        assert relayed.startswith(b"Received: from "), relayed[:200]
        assert b"Return-Path" not in relayed
        stored = inbox(srv, "henry@" + LOCAL)
        assert len(stored) == 1
        assert stored[0].startswith("Return-Path: <%s>\r\nReceived: from " % SENDER)
        assert stored[0].count("Return-Path") == 1
        wait_queue_empty(srv)
    finally:
        ctl.stop()


def test_queue_cli(server_factory, dns):
    srv = relay_server(server_factory, dns, free_port_on(["127.0.0.1"]), mode="none",
                       retry_schedule="1h")
    a = inject(srv, ["ivan@remote.example", "--local", SENDER], "first")
    b = inject(srv, ["judy@remote.example"], "second", extra=("--notify", "failure"))
    srv.wait_log(r"relay-attempt-done id=%s" % b, timeout=30)
    listing = srv.cli("queue", "list").stdout.splitlines()
    assert sorted(l.split("\t")[0] for l in listing) == sorted([a, b])
    first = [l for l in listing if l.startswith(a)][0].split("\t")
    assert first[2] == "<%s>" % SENDER
    assert "ivan@remote.example" in first[3] and SENDER + "(done)" in first[3]
    assert first[4] == "attempts=1" and first[5].startswith("next=in ")
    assert "relaying is disabled" in first[6]
    show = srv.cli("queue", "show", a).stdout
    assert "recipient: ivan@remote.example state=pending attempts=1" in show
    assert "recipient: %s state=done" % SENDER in show
    assert "Subject: first" in show
    assert srv.cli("queue", "show", "0000000000000000", check=False).returncode == 1
    # flush: retried now
    srv.cli("queue", "flush", a)
    srv.wait_log(r"relay-attempt-done id=%s" % a, count=2, timeout=30)
    assert "attempts=2" in [l for l in srv.cli("queue", "list").stdout.splitlines()
                            if l.startswith(a)][0]
    srv.cli("queue", "flush")
    srv.wait_log(r"relay-attempt-done id=%s" % b, count=2, timeout=30)
    # delete without and with a bounce
    before = len(inbox(srv))
    srv.cli("queue", "delete", a)
    assert queue_ids(srv) == [b]
    srv.cli("queue", "delete", b, "--bounce")
    dsn = dsn_for(srv, "failed")[0]
    assert "Final-Recipient: rfc822; judy@remote.example" in dsn
    assert "deleted from the queue" in dsn
    assert len(inbox(srv)) == before + 1
    wait_queue_empty(srv)
    assert srv.cli("queue", "delete", a, check=False).returncode == 1
    assert srv.cli("queue", "bogus", check=False).returncode == 2


def test_restart_with_a_full_queue_delivers_everything_once(server_factory, dns):
    port = mx_domain(dns, "bulk.example", "127.0.0.9")
    sink = SlowSink(0.1)
    ctl = start_smtp("127.0.0.9", port, sink)
    try:
        srv = relay_server(server_factory, dns, port)
        srv.stop()
        ids = [inject(srv, ["u%d@bulk.example" % i], "bulk %d" % i) for i in range(30)]
        srv.start()
        wait_for(lambda: len(sink.messages) >= 5, what="first deliveries")
        srv.stop()                      # drains: in-flight transactions finish
        assert "relay-abandon" not in srv.read_log()
        assert len(queue_ids(srv)) < 30
        srv.start()
        wait_queue_empty(srv, timeout=30)
        assert subjects_received(sink, "bulk") == sorted("bulk %d" % i for i in range(30))
        assert len(ids) == 30
    finally:
        ctl.stop()


# ---- a small SMTP server of our own: PIPELINING, DSN and the absence of
# extensions, which aiosmtpd does not cover ----

import socketserver  # noqa: E402


class MiniSMTP:
    def __init__(self, ip, port, extensions, rules=None, data_reply="354 go ahead"):
        self.extensions = extensions
        self.data_reply = data_reply
        self.rules = rules or {}
        self.commands = []
        self.bodies = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                outer.session(self.rfile, self.wfile)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((ip, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def session(self, rfile, wfile):
        def reply(text):
            wfile.write(text.encode() + b"\r\n")
            wfile.flush()
        reply("220 mini ESMTP")
        rcpts = []
        while True:
            line = rfile.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(cmd)
            verb = cmd.split(" ")[0].upper()
            if verb == "EHLO":
                lines = ["mini"] + self.extensions
                for i, text in enumerate(lines):
                    reply("250%s%s" % ("-" if i < len(lines) - 1 else " ", text))
            elif verb == "MAIL":
                rcpts = []
                reply("250 2.1.0 ok")
            elif verb == "RCPT":
                addr = cmd[cmd.index("<") + 1:cmd.index(">")]
                answer = self.rules.get(addr, "250 2.1.5 ok")
                if answer.startswith("250"):
                    rcpts.append(addr)
                reply(answer)
            elif verb == "DATA":
                if not rcpts:
                    reply("554 5.5.1 no valid recipients")
                    continue
                reply(self.data_reply)
                if not self.data_reply.startswith("354"):
                    continue
                body = b""
                while True:
                    data = rfile.readline()
                    if data in (b".\r\n", b""):
                        break
                    body += data[1:] if data.startswith(b".") else data
                self.bodies.append((list(rcpts), body))
                reply("250 2.0.0 queued")
            elif verb == "QUIT":
                reply("221 bye")
                return
            else:
                reply("250 ok")


def test_pipelining_dsn_parameters_and_a_large_dot_stuffed_body(server_factory, dns):
    port = mx_domain(dns, "pipe.example", "127.0.0.10")
    mini = MiniSMTP("127.0.0.10", port, ["PIPELINING", "8BITMIME", "DSN", "SIZE 50000000"],
                    rules={"no@pipe.example": "550 5.1.1 unknown"})
    try:
        srv = relay_server(server_factory, dns, port)
        lines = ["line %d %s" % (i, "x" * 60) for i in range(20000)]
        lines[100] = "."
        lines[200] = ".."
        lines[300] = ".starts with a dot"
        body = ("Subject: big\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()
        out = srv.cli("queue", "inject", "--from", SENDER, "--ret", "hdrs", "--envid", "E+1=x",
                      "--notify", "failure,delay", "--orcpt", "rfc822;Orig@pipe.example",
                      "yes@pipe.example", "--notify", "never", "no@pipe.example",
                      input=body.decode())
        qid = out.stdout.strip()
        wait_queue_empty(srv)
        assert len(mini.bodies) == 1
        assert mini.bodies[0][0] == ["yes@pipe.example"]
        # intake put its Received: on top; the rest arrives as it was
        sent = mini.bodies[0][1]
        trace = sent[:len(sent) - len(body)]
        assert sent.endswith(body) and trace.startswith(b"Received: by ")
        assert trace.count(b"Received:") == 1 and trace.endswith(b"\r\n")
        mail = [c for c in mini.commands if c.startswith("MAIL")][0]
        assert mail == "MAIL FROM:<%s> SIZE=%d RET=HDRS ENVID=E+2B1+3Dx" % (SENDER, len(sent))
        rcpt = [c for c in mini.commands if c.startswith("RCPT")]
        assert rcpt == ["RCPT TO:<yes@pipe.example> NOTIFY=FAILURE,DELAY "
                        "ORCPT=rfc822;Orig@pipe.example",
                        "RCPT TO:<no@pipe.example> NOTIFY=NEVER"]
        # NOTIFY=NEVER: no DSN for the refused one
        srv.wait_log(r"id=%s rcpt=no@pipe\.example .*status=bounced code=550" % qid, timeout=30)
        time.sleep(0.5)
        assert inbox(srv) == []
        assert "dsn-queued" not in srv.read_log()
    finally:
        mini.stop()


def test_8bit_and_smtputf8_to_a_peer_without_them_bounce(server_factory, dns):
    port = mx_domain(dns, "old.example", "127.0.0.11")
    dns.zone["bare.example"] = {"A": ["127.0.0.11"]}          # no MX: implicit MX
    mini = MiniSMTP("127.0.0.11", port, ["SIZE 1000000"])
    try:
        srv = relay_server(server_factory, dns, port)
        inject(srv, ["k@old.example"], "eightbit", extra=("--8bit",))
        inject(srv, ["l@old.example"], "utf8", extra=("--smtputf8",))
        inject(srv, ["m@old.example"], "plain")
        wait_queue_empty(srv)
        inject(srv, ["n@bare.example"], "implicit", extra=("--notify", "success,failure"))
        wait_queue_empty(srv)
        relayed = dsn_for(srv, "relayed")[0]        # the peer has no DSN to pass it on
        assert "Final-Recipient: rfc822; n@bare.example" in relayed
        assert "Status: 2.0.0" in relayed and "text/rfc822-headers" in relayed
        text = "\n".join(dsn_for(srv, "failed", count=2))
        assert "relayed" not in text
        assert "Final-Recipient: rfc822; k@old.example" in text and "Status: 5.6.3" in text
        assert "Final-Recipient: utf-8; l@old.example" in text and "Status: 5.6.7" in text
        assert [b[0] for b in mini.bodies] == [["m@old.example"], ["n@bare.example"]]
        # no PIPELINING offered: one command at a time still works
        assert [c.split(":")[0] for c in mini.commands if c[:4] in ("MAIL", "RCPT", "DATA")] \
            == ["MAIL FROM", "RCPT TO", "DATA"] * 2
    finally:
        mini.stop()


def test_reload_hands_the_queue_to_the_new_relay_once(server_factory, dns):
    port = mx_domain(dns, "reload.example", "127.0.0.13")
    sink = SlowSink(0.2)
    ctl = start_smtp("127.0.0.13", port, sink)
    try:
        srv = relay_server(server_factory, dns, port)
        for i in range(12):
            inject(srv, ["r%d@reload.example" % i], "reload %d" % i)
        wait_for(lambda: len(sink.messages) >= 2, what="first deliveries")
        old = srv.relay_pids()
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log(r"event=relay-started", count=2, timeout=30)
        wait_queue_empty(srv, timeout=30)
        srv.wait_log(r"event=relay-running", count=2, timeout=30)
        assert subjects_received(sink, "reload") == sorted("reload %d" % i for i in range(12))
        log = srv.read_log()
        assert len(old) == 1 and old[0] not in srv.relay_pids()
        # the new relay started its runner only after the old one stopped
        assert log.index("postern[%d] info event=relay-stopped" % old[0]) < \
            log.rindex("event=relay-running")
        assert len(srv.worker_pids()) == 2
        assert "relay-abandon" not in log          # drained, not cut off
    finally:
        ctl.stop()


def test_many_recipients_are_split_into_transactions_of_100(server_factory, dns):
    port = mx_domain(dns, "many.example", "127.0.0.14")
    mini = MiniSMTP("127.0.0.14", port, ["PIPELINING", "8BITMIME"])
    try:
        srv = relay_server(server_factory, dns, port)
        rcpts = ["p%d@many.example" % i for i in range(150)]
        inject(srv, rcpts, "many")
        wait_queue_empty(srv)
        assert sorted(len(b[0]) for b in mini.bodies) == [50, 100]
        assert sorted(a for b in mini.bodies for a in b[0]) == sorted(rcpts)
    finally:
        mini.stop()


def test_a_wrong_reply_to_data_is_never_taken_for_delivery(server_factory, dns):
    port = mx_domain(dns, "odd.example", "127.0.0.15")
    mini = MiniSMTP("127.0.0.15", port, ["8BITMIME"], data_reply="250 2.0.0 sure")
    try:
        srv = relay_server(server_factory, dns, port, retry_schedule="1h")
        qid = inject(srv, ["q@odd.example"], "odd")
        srv.wait_log(r"id=%s rcpt=q@odd\.example .*status=deferred code=451 .*"
                     r"unexpected reply to DATA" % qid, timeout=30)
        assert queue_ids(srv) == [qid] and mini.bodies == []
    finally:
        mini.stop()


class CountingSink(SlowSink):
    """Counts the transactions it has open at once."""

    def __init__(self):
        super().__init__(0.3)
        self.now = self.most = 0

    async def handle_DATA(self, server, session, envelope):
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await SlowSink.handle_DATA(self, server, session, envelope)
        finally:
            self.now -= 1


@pytest.mark.parametrize("limit", ["max_per_destination", "max_connections"])
def test_concurrency_is_bounded(server_factory, dns, limit):
    domains = ["busy.example"] if limit == "max_per_destination" else \
        ["busy%d.example" % i for i in range(4)]
    port = free_port_on(["127.0.0.16"])
    for d in domains:
        dns.zone[d] = {"MX": [(10, "mx.busy.example")]}
    dns.zone["mx.busy.example"] = {"A": ["127.0.0.16"]}
    sink = CountingSink()
    ctl = start_smtp("127.0.0.16", port, sink)
    try:
        srv = relay_server(server_factory, dns, port, **{limit: 2})
        srv.stop()
        for i in range(8):
            inject(srv, ["c%d@%s" % (i, domains[i % len(domains)])], "busy %d" % i)
        srv.start()
        wait_queue_empty(srv)
        assert subjects_received(sink, "busy") == sorted("busy %d" % i for i in range(8))
        assert sink.most == 2
    finally:
        ctl.stop()


def test_dns_answers_are_reused_only_within_their_ttl(server_factory, dns):
    """The relay keeps DNS answers for their TTL (1 s here): when the MX
    moves to another address, mail follows it once the TTL is over."""
    port = free_port_on(["127.0.0.31", "127.0.0.32"])
    dns.zone["moving.example"] = {"MX": [(10, "mx.moving.example")]}
    dns.zone["mx.moving.example"] = {"A": ["127.0.0.31"]}
    old, new = Sink(), Sink()
    ctl_old = start_smtp("127.0.0.31", port, old)
    ctl_new = start_smtp("127.0.0.32", port, new)
    try:
        srv = relay_server(server_factory, dns, port)
        inject(srv, ["bob@moving.example"], subject="move 1")
        wait_for(lambda: len(old.messages) == 1, what="the first message at the old MX")
        inject(srv, ["bob@moving.example"], subject="move 2")
        wait_for(lambda: len(old.messages) == 2, what="the second message at the old MX")
        dns.zone["mx.moving.example"] = {"A": ["127.0.0.32"]}
        time.sleep(2.5)
        inject(srv, ["bob@moving.example"], subject="move 3")
        wait_for(lambda: len(new.messages) == 1, what="the third message at the new MX")
        assert subjects_received(old, "move") == ["move 1", "move 2"]
        assert subjects_received(new, "move") == ["move 3"]
    finally:
        ctl_old.stop()
        ctl_new.stop()


class PeerSink(Sink):
    """A Sink that also records which connection (client port) each
    message came over."""

    def __init__(self):
        super().__init__()
        self.peers = []
        self.quits = []

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.peers.append(session.peer)
        return await Sink.handle_DATA(self, server, session, envelope)

    async def handle_QUIT(self, server, session, envelope):
        with self.lock:
            self.quits.append(session.peer)
        return "221 Bye"


def test_connection_reused_for_the_next_message(server_factory, dns):
    """A connection whose transaction ended stays open for a moment and
    carries the next message to the same host (as Postfix's connection
    cache does): fewer handshakes, every message still delivered once."""
    port = mx_domain(dns, "reuse.example", "127.0.0.33")
    sink = PeerSink()
    ctl = start_smtp("127.0.0.33", port, sink)
    try:
        srv = relay_server(server_factory, dns, port)
        for i in range(4):
            inject(srv, ["bob%d@reuse.example" % i], subject="reuse %d" % i)
            wait_for(lambda: len(sink.messages) == i + 1, what="message %d" % i)
        assert subjects_received(sink, "reuse") == ["reuse %d" % i for i in range(4)]
        assert len(set(sink.peers)) == 1, sink.peers
        # stopped while the connection is kept (2 s): the relay says QUIT
        assert srv.stop() == 0
        assert sink.quits == sink.peers[:1]
        assert "status=deferred" not in srv.read_log()
        assert queue_ids(srv) == []
    finally:
        ctl.stop()


class ClosingPeer:
    """A minimal SMTP server taking one message per connection: with
    late=False it closes right after the 250 for it; with late=True it
    keeps the connection and closes it without a word when the next MAIL
    comes (as if its idle timeout struck just then)."""

    def __init__(self, ip, port, late=False, quit_reply=b"221 bye\r\n"):
        self.late = late
        self.quit_reply = quit_reply
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.messages = []
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 closing.example ESMTP\r\n")
        taken = False
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"MAIL" and taken:
                    return   # close, no reply
                if verb == b"EHLO":
                    conn.sendall(b"250-closing.example\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    body = b""
                    while True:
                        chunk = f.readline()
                        if chunk in (b".\r\n", b""):
                            break
                        body += chunk
                    self.messages.append(body)
                    conn.sendall(b"250 2.0.0 taken\r\n")
                    taken = True
                    if not self.late:
                        time.sleep(0.05)
                        return   # and close
                elif verb == b"QUIT":
                    self.quits = getattr(self, "quits", 0) + 1
                    conn.sendall(self.quit_reply)
                    time.sleep(0.2)
                    return
                else:
                    conn.sendall(b"250 ok\r\n")
        finally:
            f.close()
            conn.close()

    def stop(self):
        self.sock.close()


@pytest.mark.parametrize("late", [False, True])
def test_peer_closing_a_kept_connection_costs_nothing(server_factory, dns, late):
    """A peer that closes the connection after each message, or when the
    next MAIL comes: the kept connection is found dead and a new one made;
    no message is deferred or lost."""
    port = mx_domain(dns, "closing.example", "127.0.0.34")
    peer = ClosingPeer("127.0.0.34", port, late)
    try:
        srv = relay_server(server_factory, dns, port)
        for i in range(3):
            inject(srv, ["carol%d@closing.example" % i], subject="closing %d" % i)
            wait_for(lambda: len(peer.messages) == i + 1, what="message %d" % i)
        wait_queue_empty(srv)
        assert len(peer.messages) == 3
        assert peer.connections == 3
        assert "status=deferred" not in srv.read_log()
    finally:
        peer.stop()


def test_garbage_reply_to_quit_is_harmless(server_factory, dns):
    """A kept connection is closed with QUIT after its 2 s; a peer that
    answers that with garbage must not disturb the relay (the job it
    served is long gone): the next message still goes."""
    port = mx_domain(dns, "rude.example", "127.0.0.35")
    peer = ClosingPeer("127.0.0.35", port, late=True, quit_reply=b"garbage\r\n")
    try:
        srv = relay_server(server_factory, dns, port)
        inject(srv, ["dave@rude.example"], subject="rude 1")
        wait_for(lambda: getattr(peer, "quits", 0) == 1, timeout=15, what="the QUIT")
        time.sleep(0.5)
        inject(srv, ["dave@rude.example"], subject="rude 2")
        wait_for(lambda: len(peer.messages) == 2, what="the second message")
        wait_queue_empty(srv)
        assert "status=deferred" not in srv.read_log()
        assert not re.search(r"event=\S+-(died|exited) ", srv.read_log())
    finally:
        peer.stop()
