"""Issue 14: one door for every message (intake/). The holes an outside
attack run found, each on both submission ports, with DATA and BDAT: a
From: check skipped after a large header block, bare CR/LF accepted by
BDAT (spoofing, and smuggling towards a remote MX, checked on the wire),
and the promises of the one door: one Return-Path and one top Received
whatever the path, quota refused the same way on every path after a
change made while the server runs, the header limit to the byte, and
recipient harvesting on port 25."""

import base64
import imaplib
import os
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from harness import POSTERN, client_context, raw_connect, run_as_user
from test_relay import dns, mx_domain, free_port_on, wait_for  # noqa: F401 (fixture)

PASSWORD = "alice-password-1"
USER = "alice@example.org"
HEADER_LIMIT = 512 * 1024        # INTAKE_MAX_HEADER


@pytest.fixture
def mta(server_factory):
    srv = server_factory()
    srv.add_user(USER, PASSWORD)
    srv.add_user("bob@example.org", "bob-password-1")
    srv.add_user("carol@example.org", "carol-password-1")
    return srv


class Smtp:
    """A raw SMTP client: exact bytes out, replies in."""

    def __init__(self, srv, port):
        sock = raw_connect(srv.port(port), tls=port == "submissions")
        self.sock = sock
        self.f = sock.makefile("rb")
        assert self.reply()[0] == 220
        if port == "submission":
            self.cmd(b"EHLO client.example")
            assert self.cmd(b"STARTTLS")[0] == 220
            self.sock = client_context().wrap_socket(sock)
            self.f = self.sock.makefile("rb")
        self.cmd(b"EHLO client.example")

    def reply(self):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                return 0, b"(closed)"
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"".join(lines)

    def cmd(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def login(self, user=USER, password=PASSWORD):
        cred = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        assert self.cmd(b"AUTH PLAIN " + cred)[0] == 235

    def envelope(self, sender, rcpts, params=b""):
        assert self.cmd(b"MAIL FROM:<" + sender.encode() + b">" + params)[0] == 250
        for r in rcpts:
            assert self.cmd(b"RCPT TO:<" + r.encode() + b">")[0] == 250

    def data(self, message):
        assert self.cmd(b"DATA")[0] == 354
        stuffed = message.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        self.sock.sendall(stuffed + b".\r\n")
        return self.reply()

    def bdat(self, message):
        self.sock.sendall(b"BDAT %d LAST\r\n" % len(message) + message)
        return self.reply()

    def close(self):
        try:
            self.cmd(b"QUIT")
        except OSError:
            pass
        self.sock.close()


def stored(srv, user):
    return srv.messages(user)


# ---- found 1: the From: check after a large header block ----

@pytest.mark.parametrize("port", ["submission", "submissions"])
@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_from_after_a_huge_header_block_is_refused(mta, port, verb):
    header = b"".join(b"X-H%d: v\r\n" % i for i in range(60000))
    message = header + b"From: bob@example.org\r\nSubject: spoof\r\n\r\nbody\r\n"
    assert len(header) > 700000
    c = Smtp(mta, port)
    c.login()
    c.envelope(USER, ["carol@example.org"])
    code, text = c.data(message) if verb == "DATA" else c.bdat(message)
    assert code == 552 and b"5.3.4" in text, text
    assert c.cmd(b"NOOP")[0] == 250          # the session goes on
    c.close()
    assert stored(mta, "carol@example.org") == []


@pytest.mark.parametrize("extra", [0, 1])
def test_header_limit_to_the_byte(mta, extra):
    """A header block of exactly the limit is taken, one byte more is not
    (the blank line that ends it is not counted)."""
    head = b"From: <alice@example.org>\r\nSubject: limit\r\n"
    pad = []
    size = len(head)
    while size < HEADER_LIMIT + extra:
        room = HEADER_LIMIT + extra - size
        n = min(900, room) - len(b"X-Pad: \r\n")
        if n < 1:   # the last line cannot be shorter: lengthen the one before
            pad[-1] = pad[-1][:-2] + b"x" * room + b"\r\n"
            size += room
            break
        line = b"X-Pad: " + b"x" * n + b"\r\n"
        pad.append(line)
        size += len(line)
    header = head + b"".join(pad)
    assert len(header) == HEADER_LIMIT + extra
    c = Smtp(mta, "submission")
    c.login()
    c.envelope(USER, ["carol@example.org"])
    code, text = c.data(header + b"\r\nbody\r\n")
    c.close()
    if extra == 0:
        assert code == 250, text
        assert len(stored(mta, "carol@example.org")) == 1
    else:
        assert code == 552 and b"5.3.4" in text, text
        assert stored(mta, "carol@example.org") == []


# ---- found 2: bare CR and LF in BDAT ----

SPOOF = b"Subject: x\rFrom: bob@example.org\r\nTo: carol@example.org\r\n\r\nhello\r\n"


@pytest.mark.parametrize("port", ["submission", "submissions"])
@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_bare_cr_refused_like_data(mta, port, verb):
    c = Smtp(mta, port)
    c.login()
    c.envelope(USER, ["carol@example.org"])
    code, text = c.data(SPOOF) if verb == "DATA" else c.bdat(SPOOF)
    assert code == 550 and b"5.6.0" in text, text
    c.envelope(USER, ["carol@example.org"])
    msg = b"Subject: x\nFrom: alice@example.org\r\n\r\nlf\nthen crlf\r\n"
    code, text = c.data(msg) if verb == "DATA" else c.bdat(msg)
    assert code == 550 and b"5.6.0" in text, text
    c.close()
    assert stored(mta, "carol@example.org") == []


@pytest.mark.parametrize("verb", ["DATA", "BDAT"])
def test_normalized_bare_cr_is_a_line_end_for_the_from_check(server_factory, verb):
    """With normalize_bare_lf the bare CR becomes a line end, so the From:
    behind it is a field like any other, and checked."""
    srv = server_factory(sections={"smtp": {"normalize_bare_lf": "yes"}})
    srv.add_user(USER, PASSWORD)
    srv.add_user("carol@example.org", "carol-password-1")
    c = Smtp(srv, "submission")
    c.login()
    c.envelope(USER, ["carol@example.org"])
    code, text = c.data(SPOOF) if verb == "DATA" else c.bdat(SPOOF)
    assert code == 553 and b"5.7.1" in text, text
    c.envelope(USER, ["carol@example.org"])
    own = SPOOF.replace(b"bob@", b"alice@")
    code, text = c.data(own) if verb == "DATA" else c.bdat(own)
    assert code == 250, text
    c.close()
    got = stored(srv, "carol@example.org")
    assert len(got) == 1 and b"\r\nSubject: x\r\nFrom: alice@example.org\r\n" in got[0]
    assert all(b == b"\r\n" or True for b in got)
    body = got[0]
    assert b"\r" not in body.replace(b"\r\n", b"") and b"\n" not in body.replace(b"\r\n", b"")


class RawSink:
    """An SMTP server on 127.0.0.x that records the exact bytes after DATA
    (and every command line), so the test sees what crossed the wire."""

    def __init__(self, ip, port, caps=(b"8BITMIME", b"PIPELINING")):
        self.caps = caps
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((ip, port))
        self.lsock.listen(5)
        self.commands, self.data = [], []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 sink ESMTP\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            self.commands.append(line)
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                lines = [b"sink"] + list(self.caps)
                conn.sendall(b"".join(b"250%s%s\r\n" % (b" " if i == len(lines) - 1 else b"-", l)
                                      for i, l in enumerate(lines)))
            elif verb == b"BDAT":
                words = line.split()
                self.data.append(f.read(int(words[1])))
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                raw = b""
                while not raw.endswith(b"\r\n.\r\n"):
                    chunk = f.readline()
                    if not chunk:
                        return
                    raw += chunk
                self.data.append(raw)
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")

    def stop(self):
        self.lsock.close()


def test_smuggling_never_reaches_a_remote_mx(server_factory, dns):  # noqa: F811
    """BDAT carrying "\\r.\\rMAIL FROM:..." for a remote recipient: refused
    by default; with normalize_bare_lf taken, and what the relay puts on
    the wire has CRLF line ends only, a stuffed dot, and no second
    transaction."""
    port = mx_domain(dns, "far.example", "127.0.0.41")
    sink = RawSink("127.0.0.41", port)
    smuggle = (b"From: alice@example.org\r\nSubject: smuggle\r\n\r\nhello\r.\r"
               b"MAIL FROM:<evil@far.example>\rRCPT TO:<victim@far.example>\rDATA\r"
               b"From: ceo@far.example\r\rforged\r\n")
    try:
        for normalize in ("no", "yes"):
            srv = server_factory(name="srv-" + normalize, sections={
                "smtp": {"normalize_bare_lf": normalize},
                "relay": {"mode": "mx", "dns": "127.0.0.1:%d" % dns.port, "mx_port": str(port),
                          "retry_schedule": "1s"}})
            srv.add_user(USER, PASSWORD)
            c = Smtp(srv, "submission")
            c.login()
            c.envelope(USER, ["friend@far.example"])
            code, text = c.bdat(smuggle)
            c.close()
            if normalize == "no":
                assert code == 550 and b"5.6.0" in text, text
                continue
            assert code == 250, text
            wait_for(lambda: sink.data, what="the relayed message")
            raw = sink.data[0]
            body = raw[:-len(b"\r\n.\r\n")]
            assert b"\r" not in body.replace(b"\r\n", b"")
            assert b"\n" not in body.replace(b"\r\n", b"")
            assert b"\r\n.\r\n" not in body and b"\r\n..\r\nMAIL FROM:<evil" in body
            mails = [l for l in sink.commands if l.upper().startswith(b"MAIL")]
            assert len(mails) == 1 and b"alice@example.org" in mails[0]
            assert not any(b"victim" in l for l in sink.commands)
    finally:
        sink.stop()


def test_binarymime_leaves_only_by_bdat(server_factory, dns):  # noqa: F811
    """A BINARYMIME message forwarded by an alias to another host: sent
    with BDAT, byte for byte, to a server that announces BINARYMIME and
    CHUNKING; bounced (5.6.3) by one that does not, never turned into a
    DATA text with its bare line ends."""
    body = b"binary\rbytes\nand\x00nul\r\n.\r\nmore"
    message = b"From: alice@example.org\r\nSubject: bin\r\n\r\n" + body
    for caps, host in (((b"CHUNKING", b"BINARYMIME", b"8BITMIME"), "bin.example"),
                       ((b"8BITMIME", b"PIPELINING"), "text.example")):
        port = mx_domain(dns, host, "127.0.0.42" if host == "bin.example" else "127.0.0.43")
        sink = RawSink("127.0.0.42" if host == "bin.example" else "127.0.0.43", port, caps)
        try:
            srv = server_factory(name=host, sections={
                "relay": {"mode": "mx", "dns": "127.0.0.1:%d" % dns.port, "mx_port": str(port),
                          "retry_schedule": "1s"}})
            srv.add_user(USER, PASSWORD)
            srv.cli("alias", "add", "team@example.org", "friend@" + host)
            c = Smtp(srv, "submission")
            c.login()
            c.envelope(USER, ["team@example.org"], b" BODY=BINARYMIME")
            code, text = c.bdat(message)
            c.close()
            assert code == 250, text
            if host == "bin.example":
                wait_for(lambda: sink.data, what="the BDAT")
                assert sink.data[0].endswith(b"\r\n\r\n" + body)
                assert b"\r\nFrom: alice@example.org\r\nSubject: bin\r\n" in sink.data[0]
                assert sink.data[0].startswith(b"Received: from client.example")
                mails = [l for l in sink.commands if l.upper().startswith(b"MAIL")]
                assert b"BODY=BINARYMIME" in mails[0]
                assert not any(l.upper().startswith(b"DATA") for l in sink.commands)
            else:
                dsn = wait_for(lambda: srv.messages(USER), what="the bounce")
                assert b"Status: 5.6.3" in dsn[0]
                assert sink.data == []
        finally:
            sink.stop()


# ---- the one door: the same trace fields on every path ----

def trace_of(message):
    """(Return-Path lines, the first field, how many Received: are ours)"""
    head = message.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    fields = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return ([f for f in fields if f.lower().startswith(b"return-path:")], fields[0], fields[1],
            sum(1 for f in fields if f.startswith(b"Received:") and b"(Postern)" in f))


def test_one_return_path_and_one_received_on_every_path(server_factory, dns):  # noqa: F811
    dns.zone["nomx.example"] = {"MX": [(0, ".")]}           # null MX: bounces at once
    srv = server_factory(sections={"relay": {"mode": "mx", "dns": "127.0.0.1:%d" % dns.port,
                                             "retry_schedule": "1s"}})
    srv.add_user(USER, PASSWORD)
    srv.add_user("bob@example.org", "bob-password-1")
    forged = (b"Return-Path: <forged@elsewhere.example>\r\n"
              b"Received: from elsewhere by mx.elsewhere.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
              b"From: alice@example.org\r\nSubject: %s\r\n\r\nbody\r\n")
    # SMTP
    s = smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=30)
    s.starttls(context=client_context())
    s.login(USER, PASSWORD)
    s.sendmail(USER, ["bob@example.org"], forged % b"smtp")
    # postern deliver
    srv.deliver("bob@example.org", forged % b"deliver")
    # a relay local retry: injected into the queue, delivered by the relay
    srv.cli("queue", "inject", "--from", USER, "bob@example.org", input=(forged % b"retry").decode())
    # a bounce: to a null-MX domain, back to alice
    s.sendmail(USER, ["x@nomx.example"], forged % b"bounce")
    s.quit()
    got = wait_for(lambda: srv.messages("bob@example.org")
                   if len(srv.messages("bob@example.org")) == 3 else None, what="bob's copies")
    dsn = wait_for(lambda: srv.messages(USER), what="the bounce")
    for m in got + dsn:
        return_paths, first, second, ours = trace_of(m)
        assert len(return_paths) == 1 and first == return_paths[0], m[:300]
        assert second.startswith(b"Received:") and b"(Postern)" in second, m[:300]
        assert ours == 1, m[:400]
    by_subject = {m.split(b"\r\nSubject: ")[1].split(b"\r\n")[0]: trace_of(m)[1] for m in got}
    # deliver without -f takes the envelope sender from the message's
    # Return-Path, as an MDA does; it still writes exactly one
    assert by_subject == {b"smtp": b"Return-Path: <%s>" % USER.encode(),
                          b"retry": b"Return-Path: <%s>" % USER.encode(),
                          b"deliver": b"Return-Path: <forged@elsewhere.example>"}
    assert trace_of(dsn[0])[1] == b"Return-Path: <>"
    assert b"Undelivered Mail Returned to Sender" in dsn[0]


# ---- quota: read from the account database at that moment, every path ----

def test_quota_refused_the_same_way_on_every_path(server_factory, dns):  # noqa: F811
    dns.zone["nomx2.example"] = {"MX": [(0, ".")]}
    srv = server_factory(sections={"relay": {"mode": "mx", "dns": "127.0.0.1:%d" % dns.port,
                                             "retry_schedule": "1s"}})
    srv.add_user(USER, PASSWORD)
    srv.add_user("bob@example.org", "bob-password-1")
    srv.deliver("bob@example.org", b"Subject: first\r\n\r\n" + b"x" * 2000 + b"\r\n")
    # a message queued for bob while his quota still allows it, to be
    # retried by the relay after the change
    assert srv.stop() == 0
    srv.cli("queue", "inject", "--from", USER, "bob@example.org",
            input="Subject: retry\r\n\r\nx\r\n")
    # the admin shrinks bob's quota; the relay retries it once it runs
    srv.cli("user", "quota", "bob@example.org", "1000")
    srv.start()
    dsn = wait_for(lambda: srv.messages(USER), what="the quota bounce of the relay's retry")
    assert b"Status: 5.2.2" in dsn[0], dsn[0][:2000]
    # and while it runs: inject, SMTP, deliver, APPEND are refused alike
    out = srv.cli("queue", "inject", "--from", USER, "bob@example.org",
                  input="Subject: inject\r\n\r\nx\r\n", check=False)
    assert out.returncode == 1 and "552 5.2.2" in out.stderr, out.stderr
    s = smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=30)
    s.starttls(context=client_context())
    s.login(USER, PASSWORD)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        s.sendmail(USER, ["bob@example.org"], b"Subject: smtp\r\n\r\nx\r\n")
    code, text = err.value.recipients["bob@example.org"]
    assert code == 552 and text.startswith(b"5.2.2"), (code, text)
    # postern deliver
    out = subprocess.run([POSTERN, "deliver", "bob@example.org", "-c", srv.config_path],
                         input=b"Subject: deliver\r\n\r\nx\r\n", capture_output=True)
    assert out.returncode == 1 and b"5.2.2" in out.stderr, out.stderr
    # IMAP APPEND
    m = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    m.starttls(ssl_context=client_context())
    m.login("bob@example.org", "bob-password-1")
    typ, data = m.append("INBOX", None, None, b"Subject: append\r\n\r\nx\r\n")
    assert typ == "NO" and b"OVERQUOTA" in data[0], data
    m.logout()
    # a bounce to bob (bob's own mail to a null MX comes back): refused too
    srv.cli("queue", "inject", "--from", "bob@example.org", "y@nomx2.example",
            input="Subject: back\r\n\r\nx\r\n")
    srv.wait_log(r"event=dsn-dropped .*sender=bob@example\.org .*Mailbox full", timeout=30)
    assert len(srv.messages("bob@example.org")) == 1
    # the admin raises it again: every path takes mail at once
    srv.cli("user", "quota", "bob@example.org", "10000000")
    assert s.sendmail(USER, ["bob@example.org"], b"Subject: smtp ok\r\n\r\nx\r\n") == {}
    s.quit()
    srv.deliver("bob@example.org", b"Subject: deliver ok\r\n\r\nx\r\n")
    assert len(srv.messages("bob@example.org")) == 3


# ---- recipient harvesting on port 25 ----

def test_recipient_harvesting_ends_the_session(mta):
    """3,000 unknown recipients, one after another: after a few the answers
    slow down, and the session ends with 421 long before the end."""
    sock = raw_connect(mta.port("smtp"))
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"EHLO harvester.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    sock.sendall(b"MAIL FROM:<x@harvester.example>\r\n")
    assert f.readline().startswith(b"250")
    replies, closed = [], threading.Event()

    def reader():
        try:
            for line in f:
                replies.append(line)
        except OSError:
            pass
        closed.set()

    threading.Thread(target=reader, daemon=True).start()
    started = time.time()
    sent = 0
    while sent < 3000 and not closed.is_set():
        try:
            sock.sendall(b"RCPT TO:<nobody%d@example.org>\r\n" % sent)
        except OSError:
            break
        sent += 1
        deadline = time.time() + 10
        while len(replies) < sent and not closed.is_set() and time.time() < deadline:
            time.sleep(0.01)
    closed.wait(10)
    elapsed = time.time() - started
    sock.close()
    unknown = [r for r in replies if r.startswith(b"550 5.1.1")]
    assert replies[-1].startswith(b"421 4.7.0"), replies[-3:]
    assert len(unknown) < 20 and sent < 30, (len(unknown), sent)
    assert elapsed > 3          # the answers came slower after the first few
    assert mta.wait_log(r"event=rcpt-harvesting", timeout=5)
