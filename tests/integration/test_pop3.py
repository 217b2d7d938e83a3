"""Issue 7 (POP3) and issue 3 items 5-7 (POP3 authentication), driven with
Python's poplib and raw commands: fetching byte-exact, maildrop
semantics (DELE/RSET/QUIT, dropped connections, [IN-USE]), every command
in the wrong state, SASL PLAIN and SCRAM-SHA-256, the plaintext policy,
one reply for every credential failure, throttling."""

import base64
import os
import poplib
import re
import time

import pytest

from harness import client_context, raw_connect, read_line
from pop3util import (DOTS, LF_ONLY, PASSWORD, PLAIN, USER, Scram, b64, crlf,
                      drop_file, fill_mailbox, fix_owner, maildir, multiline, pop3, retr_bytes,
                      send)


def files_in(server, user=USER):
    root = maildir(server, user)
    return sorted(os.listdir(os.path.join(root, "new")) + os.listdir(os.path.join(root, "cur")))


def raw_body(f):
    """A multi-line reply's lines as sent (still dot-stuffed), up to ".\r\n"."""
    body = b""
    while True:
        line = f.readline()
        if line in (b".\r\n", b""):
            return body
        body += line


# ---- fetching ----

def test_fetch_exact_with_user_pass(server):
    expected = fill_mailbox(server)
    p = pop3(server)
    count, total = p.stat()
    assert count == len(expected)
    assert total == sum(len(m) for m in expected)
    _, listing, _ = p.list()
    assert listing == [b"%d %d" % (i + 1, len(m)) for i, m in enumerate(expected)]
    for i, msg in enumerate(expected, 1):
        assert p.list(i) == b"+OK %d %d" % (i, len(msg))
        resp = p._shortcmd("RETR %d" % i)
        assert resp == b"+OK %d octets" % len(msg)
        got = b"".join(line + b"\r\n" for line in multiline(p))
        assert got == msg, (i, got, msg)
    p.quit()
    assert "pop3-size-mismatch" not in server.read_log()


def test_raw_retr_is_dot_stuffed_and_crlf(server):
    expected = fill_mailbox(server)
    sock = raw_connect(server.port("pop3"))
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(("USER %s\r\nPASS %s\r\nRETR 2\r\nRETR 3\r\nQUIT\r\n" % (USER, PASSWORD)).encode())
    assert f.readline().startswith(b"+OK")
    assert f.readline().startswith(b"+OK Logged in")
    data = b""
    for _ in range(2):
        head = f.readline()
        assert head.startswith(b"+OK")
        body = raw_body(f)
        data += body
        assert b"\n" not in body.replace(b"\r\n", b"")
    expect_dots = expected[1].replace(b"\r\n.", b"\r\n..")
    assert data.startswith(expect_dots)
    assert data[len(expect_dots):] == crlf(LF_ONLY).replace(b"\r\n.", b"\r\n..")
    assert f.readline().startswith(b"+OK")
    sock.close()


def test_uidl_dovecot_format_and_stable(server):
    fill_mailbox(server)
    p = pop3(server)
    _, first, _ = p.uidl()
    p.quit()
    assert len(first) == 3
    uids = []
    for n, line in enumerate(first, 1):
        num, uid = line.split()
        assert int(num) == n
        assert re.fullmatch(rb"[0-9A-F]{16}", uid), uid
        uids.append(uid)
    # %08Xu%08Xv: UID then UIDVALIDITY
    assert [int(u[:8], 16) for u in uids] == [1, 2, 3]
    assert len({u[8:] for u in uids}) == 1
    server.deliver(USER, PLAIN)
    fix_owner(server)
    p = pop3(server)
    _, second, _ = p.uidl()
    assert second[:3] == first
    assert int(second[3].split()[1][:8], 16) == 4
    assert p.uidl(2) == b"+OK " + first[1]
    p.quit()


def test_top(server):
    expected = fill_mailbox(server)
    p = pop3(server)
    header = expected[1].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert header[-3:] == [b"From: ann@example.net", b"To: bob@example.org", b"Subject: dots"]
    _, lines, _ = p.top(2, 0)
    assert lines == header + [b""]
    _, lines, _ = p.top(2, 3)
    assert lines[len(header) + 1:] == [b".", b"..", b".leading dot"]
    _, lines, _ = p.top(3, 100)
    assert b"".join(line + b"\r\n" for line in lines) == crlf(LF_ONLY)
    p.quit()


def test_retr_sets_seen(server):
    fill_mailbox(server)
    p = pop3(server)
    p.retr(1)
    p.top(2, 0)
    p.quit()
    cur = os.listdir(os.path.join(maildir(server), "cur"))
    seen = [f for f in cur if f.endswith(":2,S")]
    assert len(seen) == 1, cur


def test_pipelining(server):
    expected = fill_mailbox(server)
    sock = raw_connect(server.port("pop3"))
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(("CAPA\r\nUSER %s\r\nPASS %s\r\nSTAT\r\nRETR 1\r\nLIST 1\r\nNOOP\r\nQUIT\r\n"
                  % (USER, PASSWORD)).encode())
    while f.readline() != b".\r\n":
        pass
    assert f.readline() == b"+OK\r\n"
    assert f.readline().startswith(b"+OK Logged in")
    assert f.readline().startswith(b"+OK 3 ")
    assert f.readline() == b"+OK %d octets\r\n" % len(expected[0])
    assert raw_body(f) == expected[0]
    assert f.readline() == b"+OK 1 %d\r\n" % len(expected[0])
    assert f.readline() == b"+OK\r\n"
    assert f.readline().startswith(b"+OK")
    sock.close()


# ---- maildrop semantics ----

def test_dele_then_rset(server):
    fill_mailbox(server)
    p = pop3(server)
    assert p.dele(1).startswith(b"+OK")
    assert p.stat()[0] == 2
    assert send(p, "RETR 1").startswith(b"-ERR")
    assert send(p, "DELE 1").startswith(b"-ERR")
    assert send(p, "LIST 1").startswith(b"-ERR")
    _, listing, _ = p.list()
    assert [line.split()[0] for line in listing] == [b"2", b"3"]
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == 3
    p.quit()
    assert pop3(server).stat()[0] == 3


def test_dele_then_dropped_connection(server):
    fill_mailbox(server)
    before = files_in(server)
    p = pop3(server)
    p.dele(1)
    p.dele(2)
    p.sock.close()
    p.file.close()
    server.wait_log(r"user=bob@example.org event=disconnect")
    assert files_in(server) == before
    p = pop3(server)
    assert p.stat()[0] == 3
    p.quit()


def test_dele_then_quit(server):
    expected = fill_mailbox(server)
    p = pop3(server)
    _, uidls, _ = p.uidl()
    p.dele(1)
    p.dele(3)
    assert p.quit().startswith(b"+OK")
    remaining = files_in(server)
    assert len(remaining) == 1
    p = pop3(server)
    assert p.stat() == (1, len(expected[1]))
    _, after, _ = p.uidl()
    assert after == [b"1 " + uidls[1].split()[1]]
    assert retr_bytes(p, 1) == expected[1]
    p.quit()


def test_message_removed_behind_the_session(server):
    expected = fill_mailbox(server)
    p = pop3(server)
    for name in files_in(server):
        if "dropped" in name:
            sub = "new" if name in os.listdir(os.path.join(maildir(server), "new")) else "cur"
            os.unlink(os.path.join(maildir(server), sub, name))
    reply = send(p, "RETR 3")
    assert reply.startswith(b"-ERR"), reply
    assert p.stat()[0] == 3
    assert retr_bytes(p, 1) == expected[0]
    p.dele(3)
    assert p.quit().startswith(b"+OK")
    assert pop3(server).stat()[0] == 2


def test_second_login_in_use(server):
    fill_mailbox(server)
    first = pop3(server)
    second = pop3(server, login=False)
    second.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(PASSWORD)
    # still in AUTHORIZATION: the session goes on
    assert "USER" in second.capa()
    first.quit()
    second.user(USER)
    assert second.pass_(PASSWORD).startswith(b"+OK")
    second.quit()


def test_new_mail_not_seen_until_next_login(server):
    fill_mailbox(server)
    p = pop3(server)
    server.deliver(USER, PLAIN)
    assert p.stat()[0] == 3
    assert send(p, "RETR 4").startswith(b"-ERR")
    p.quit()
    fix_owner(server)
    assert pop3(server).stat()[0] == 4


# ---- wrong states and arguments ----

def test_every_command_in_the_wrong_state(server):
    fill_mailbox(server)
    # two connections: 10 bad commands before login end a session
    for cmds in (("STAT", "LIST", "LIST 1", "RETR 1", "DELE 1"),
                 ("NOOP", "RSET", "TOP 1 1", "UIDL", "UIDL 1")):
        p = pop3(server, login=False)
        for cmd in cmds:
            assert send(p, cmd) == b"-ERR Command not valid in this state", cmd
        p.quit()
    p = pop3(server)
    for cmd in ("USER x", "PASS x", "APOP x y", "AUTH PLAIN", "STLS", "AUTH"):
        assert send(p, cmd) == b"-ERR Command not valid in this state", cmd
    assert p.stat()[0] == 3
    p.quit()


def test_wrong_arguments_and_numbers(server):
    fill_mailbox(server)
    p = pop3(server)
    bad = ["RETR", "RETR x", "RETR 0", "RETR 4", "RETR -1", "RETR 1 2", "RETR 99999999999999",
           "LIST 0", "LIST 9", "LIST a", "UIDL 0", "UIDL 4", "DELE", "DELE 4", "DELE 0",
           "TOP 1", "TOP 1 x", "TOP 4 0", "TOP 0 1", "TOP 1 -1", "STAT 1", "NOOP x",
           "RSET 1", "XYZZY", "", "RETR\x011", "QUIT now"]
    for cmd in bad:
        reply = send(p, cmd)
        assert reply.startswith(b"-ERR"), (cmd, reply)
    p.dele(2)
    for cmd in ("RETR 2", "TOP 2 0", "LIST 2", "UIDL 2", "DELE 2"):
        assert send(p, cmd) == b"-ERR Message already deleted", cmd
    assert send(p, "retr 1").startswith(b"+OK")
    multiline(p)
    assert p.noop().startswith(b"+OK")
    assert p.stat()[0] == 2
    p.quit()


def test_bad_commands_before_login_close(server):
    p = pop3(server, login=False)
    for _ in range(9):
        assert send(p, "XYZZY").startswith(b"-ERR")
    assert send(p, "XYZZY").startswith(b"-ERR")
    assert p._getline()[0].startswith(b"-ERR Too many")
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        p.noop()


def test_apop_refused_and_auth_listing(server):
    fill_mailbox(server)
    p = pop3(server, login=False)
    assert send(p, "APOP %s 0123456789abcdef0123456789abcdef" % USER).startswith(b"-ERR")
    assert send(p, "PASS %s" % PASSWORD) == b"-ERR No USER given"
    assert send(p, "AUTH") == b"+OK"
    mechs = multiline(p)
    assert b"PLAIN" in mechs and b"SCRAM-SHA-256" in mechs
    capa = p.capa()
    for name in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS"):
        assert name in capa, name
    assert capa["EXPIRE"] == ["NEVER"] and capa["LOGIN-DELAY"] == ["0"]
    assert "PLAIN" in capa["SASL"] and "SCRAM-SHA-256" in capa["SASL"]
    p.user(USER)
    p.pass_(PASSWORD)
    capa = p.capa()
    assert "USER" not in capa and "SASL" not in capa and "STLS" not in capa
    assert "TOP" in capa and "UIDL" in capa
    p.quit()


# ---- SASL ----

def test_auth_plain_initial_response_and_continuation(server):
    expected = fill_mailbox(server)
    token = b64(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    p = pop3(server, login=False)
    assert send(p, "AUTH PLAIN " + token).startswith(b"+OK Logged in")
    assert p.stat()[0] == 3
    p.quit()

    p = pop3(server, tls=True, login=False)
    assert send(p, "AUTH PLAIN") == b"+ "
    assert send(p, token).startswith(b"+OK Logged in")
    assert retr_bytes(p, 1) == expected[0]
    p.quit()


def test_auth_cancel_malformed_unknown(server):
    fill_mailbox(server)
    p = pop3(server, login=False)
    assert send(p, "AUTH PLAIN") == b"+ "
    assert send(p, "*") == b"-ERR Authentication cancelled"
    assert send(p, "AUTH PLAIN") == b"+ "
    assert send(p, "!!!notbase64") == b"-ERR Invalid base64 data"
    assert send(p, "AUTH PLAIN %%%") == b"-ERR Invalid base64 data"
    assert send(p, "AUTH CRAM-MD5").startswith(b"-ERR Unsupported")
    assert send(p, "AUTH PLAIN") == b"+ "
    p._putcmd("A" * 20000)
    assert p._getline()[0] == b"-ERR Response line too long"
    assert send(p, "AUTH LOGIN") == b"+ VXNlcm5hbWU6"
    assert send(p, b64(USER.encode())) == b"+ UGFzc3dvcmQ6"
    assert send(p, b64(PASSWORD.encode())).startswith(b"+OK Logged in")
    p.quit()


def test_scram_vector_rfc7677():
    s = Scram("user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert s.client_first() == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = s.client_final("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                           "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert final == ("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert s.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


@pytest.mark.parametrize("initial", [False, True])
def test_auth_scram_sha256(server, initial):
    fill_mailbox(server)
    p = pop3(server, tls=True, login=False)
    s = Scram(USER, PASSWORD)
    if initial:
        reply = send(p, "AUTH SCRAM-SHA-256 " + b64(s.client_first().encode()))
    else:
        assert send(p, "AUTH SCRAM-SHA-256") == b"+ "
        reply = send(p, b64(s.client_first().encode()))
    assert reply.startswith(b"+ ")
    server_first = base64.b64decode(reply[2:]).decode()
    reply = send(p, b64(s.client_final(server_first).encode()))
    assert reply.startswith(b"+ ")
    assert s.verify_server_final(base64.b64decode(reply[2:]).decode())
    assert send(p, "").startswith(b"+OK Logged in")
    assert p.stat()[0] == 3
    p.quit()

    p = pop3(server, tls=True, login=False)
    s = Scram(USER, "wrong")
    reply = send(p, "AUTH SCRAM-SHA-256 " + b64(s.client_first().encode()))
    server_first = base64.b64decode(reply[2:]).decode()
    assert send(p, b64(s.client_final(server_first).encode())) == \
        b"-ERR [AUTH] Authentication failed"
    p.quit()


# ---- policy, failures, throttling ----

def test_same_reply_for_every_failure(server):
    fill_mailbox(server)
    server.add_user("dis@example.org", PASSWORD)
    server.cli("user", "disable", "dis@example.org")
    replies = set()
    for user, password in ((USER, "wrong"), ("nobody@example.org", PASSWORD),
                           ("dis@example.org", PASSWORD), ("x@unknown.example", "x")):
        p = pop3(server, login=False)
        p.user(user)
        with pytest.raises(poplib.error_proto) as exc:
            p.pass_(password)
        replies.add(exc.value.args[0])
        p.quit()
    assert replies == {b"-ERR [AUTH] Authentication failed"}
    server.wait_log(r'event=auth-fail service=pop remote=127.0.0.1 user="dis@example.org"')


def test_plaintext_never(server_factory):
    server = server_factory(sections={"auth": {"plaintext": "never"}})
    fill_mailbox(server)
    p = pop3(server, login=False)
    capa = p.capa()
    assert "STLS" in capa and "USER" not in capa and "SASL" not in capa
    for cmd in ("USER %s" % USER, "PASS x", "AUTH PLAIN",
                "AUTH PLAIN " + b64(b"\0bob@example.org\0x"), "AUTH SCRAM-SHA-256"):
        reply = send(p, cmd)
        assert reply.startswith(b"-ERR [AUTH] Plaintext authentication disallowed"), (cmd, reply)
    assert send(p, "AUTH") == b"+OK"
    assert multiline(p) == []
    p.stls(context=client_context())
    capa = p.capa()
    assert "USER" in capa and "PLAIN" in capa["SASL"]
    p.user(USER)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()
    # implicit TLS is fine from the start
    p = pop3(server, tls=True)
    assert p.stat()[0] == 3
    p.quit()


def test_plaintext_loopback_allows_127(server):
    fill_mailbox(server)
    p = pop3(server, login=False)
    assert "USER" in p.capa()
    p.user(USER)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()


def test_throttling_delays_then_refuses(server_factory):
    server = server_factory(sections={"auth": {"delay_after": "2", "block_after": "3",
                                               "block_time": "1h"}})
    fill_mailbox(server)
    p = pop3(server, login=False)
    timings = []
    for _ in range(3):
        p.user(USER)
        start = time.monotonic()
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            p.pass_("wrong")
        timings.append(time.monotonic() - start)
    assert timings[0] < 0.9, timings
    assert 0.9 <= timings[1] < 3, timings
    assert timings[2] >= 1.9, timings
    # other sessions are not held up meanwhile: the delay is a timer
    p.user(USER)
    p._putcmd("PASS " + PASSWORD)
    q = pop3(server, login=False)
    start = time.monotonic()
    assert q.noop is not None and "USER" in q.capa()
    assert time.monotonic() - start < 0.5
    # blocked now: even the right password fails, with the same reply
    assert p._getline()[0] == b"-ERR [AUTH] Authentication failed"
    p.quit()
    q.quit()
    server.wait_log(r"reason=blocked")


def test_timeout_in_transaction_keeps_messages(server_factory):
    server = server_factory(sections={"limits": {"timeout_pop3": "1s"}})
    fill_mailbox(server)
    p = pop3(server)
    p.dele(1)
    time.sleep(2)
    assert p._getline()[0].startswith(b"-ERR Autologout")
    p.close()
    p = pop3(server)
    assert p.stat()[0] == 3
    p.quit()


def test_greeting_and_quit_before_login(server):
    sock = raw_connect(server.port("pop3"))
    assert read_line(sock) == b"+OK Postern POP3 server ready\r\n"
    sock.sendall(b"QUIT\r\n")
    assert read_line(sock).startswith(b"+OK")
    assert sock.recv(10) == b""
    sock.close()


def test_odd_bytes_sizes_match(server):
    """Long lines across read chunks, a bare CR, a NUL, CRLF split from
    LF-only lines and no line end at the very end: LIST's size is what
    RETR sends."""
    server.add_user(USER, PASSWORD)
    odd = (b"Subject: odd\n\n" + b"x" * 200000 + b"\n.after long\r\n" + b"a\rb\0c\n"
           + (b"." + b"y" * 65535 + b"\n") * 3 + b"no end")
    # as another MDA would leave it: intake would make the line ends CRLF
    os.makedirs(os.path.join(maildir(server), "new"), exist_ok=True)
    drop_file(server, "1700000001.M1P1.odd", odd)
    sock = raw_connect(server.port("pop3"))
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(("USER %s\r\nPASS %s\r\nLIST 1\r\nRETR 1\r\nQUIT\r\n" % (USER, PASSWORD)).encode())
    f.readline()
    f.readline()
    size = int(f.readline().split()[2])
    assert f.readline() == b"+OK %d octets\r\n" % size
    body = raw_body(f)
    assert body.endswith(b"no end\r\n")
    unstuffed = body.replace(b"\r\n..", b"\r\n.")
    assert len(unstuffed) - 2 == size   # the CRLF after "no end" is the terminator's
    assert unstuffed[:-2] == crlf(odd)
    assert f.readline().startswith(b"+OK")
    sock.close()
    assert "pop3-size-mismatch" not in server.read_log()


def test_server_shutdown_applies_no_deletions(server):
    fill_mailbox(server)
    before = files_in(server)
    p = pop3(server)
    p.dele(1)
    assert server.stop() == 0
    assert p._getline()[0] == b"-ERR [SYS/TEMP] Server shutting down"
    p.close()
    assert files_in(server) == before
