"""IMAP: the command reader over the wire (literals, limits, garbage,
states) and authentication (LOGIN, AUTHENTICATE with SASL-IR, SCRAM,
plaintext policy, one failure reply, throttling)."""

import base64
import imaplib
import os
import select
import subprocess
import time

import pytest

from harness import client_context
from imap_helpers import (PASSWORD, USER, Raw, imaps, login_raw, make_account, quote,
                          scram_client_final, scram_username)


@pytest.fixture
def srv(server):
    make_account(server)
    return server


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


# ---- the reader and parser on the wire ----

def test_synchronising_literals_get_continuations(srv):
    r = Raw(srv.port("imap"))
    user, pw = USER.encode(), PASSWORD.encode()
    r.send(b"a LOGIN {%d}\r\n" % len(user))
    assert r.line() == b"+ OK\r\n"
    r.send(user + b" {%d}\r\n" % len(pw))
    assert r.line() == b"+ OK\r\n"
    r.send(pw + b"\r\n")
    lines = r.until_tagged("a")
    assert lines[-1].startswith(b"a OK [CAPABILITY IMAP4rev1 ")


def test_non_synchronising_literals_need_no_continuation(srv):
    r = Raw(srv.port("imap"))
    user, pw = USER.encode(), PASSWORD.encode()
    r.send(b"a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\nb NOOP\r\n" % (len(user), user, len(pw), pw))
    assert r.line().startswith(b"a OK [CAPABILITY ")
    assert r.line() == b"b OK NOOP completed\r\n"


def test_huge_literal_refused_before_reading(srv):
    r = Raw(srv.port("imap"))
    r.send(b"a LOGIN {4000000000}\r\n")
    assert r.line() == b"a BAD [TOOBIG] Literal too big\r\n"
    assert r.cmd("b", "NOOP") == [b"b OK NOOP completed\r\n"]
    # after login the cap is larger, but not unbounded
    login_raw(r)
    r.send(b"c SELECT {99999999999}\r\n")
    assert r.line() == b"c BAD [TOOBIG] Literal too big\r\n"
    assert r.cmd("d", "NOOP") == [b"d OK NOOP completed\r\n"]


def test_huge_non_synchronising_literal_closes(srv):
    r = Raw(srv.port("imap"))
    r.send(b"a LOGIN {4000000000+}\r\nxxxx")
    assert r.line() == b"* BYE [TOOBIG] Literal too big\r\n"
    assert r.closed()


def test_over_long_command(srv):
    r = Raw(srv.port("imap"))
    r.send(b"a NOOP " + b"x" * 10000 + b"\r\n")
    assert r.line() == b"* BAD [TOOBIG] Command too long\r\n"
    assert r.cmd("b", "NOOP") == [b"b OK NOOP completed\r\n"]
    login_raw(r)
    r.send(b"c NOOP " + b"x" * 70000 + b"\r\n")
    assert r.line() == b"* BAD [TOOBIG] Command too long\r\n"
    # 60 KiB is fine after login
    assert r.cmd("d", "LIST \"\" " + "x" * 60000)[-1] == b"d OK LIST completed\r\n"


@pytest.mark.parametrize("command,reply", [
    (b"a LOGIN (x", b"a BAD Missing ')'"),
    (b"a LOGIN x)", b"a BAD Unexpected ')'"),
    (b"a LOGIN \"x", b"a BAD Unterminated quoted string"),
    (b"a LOGIN x  y", b"a BAD Unexpected space"),
    (b"a XYZZY", b"a BAD Unknown command"),
    (b"a UID XYZZY 1", b"a BAD Unknown UID command"),
    (b"+a NOOP", b"* BAD Invalid tag"),
    (b"a", b"a BAD Missing command"),
    (b"a NOOP\x00", b"a BAD Invalid characters in command"),
    (b"\xff\xfe garbage", b"* BAD Invalid tag"),
    (b"a SELECT INBOX", b"a BAD Command not valid before login"),
    (b"a FETCH 1 FLAGS", b"a BAD Command not valid before login"),
    (b"a LOGIN onlyone", b"a BAD Invalid arguments"),
])
def test_bad_commands_before_login(srv, command, reply):
    r = Raw(srv.port("imap"))
    r.send(command + b"\r\n")
    assert r.line() == reply + b"\r\n"
    assert r.cmd("z", "NOOP") == [b"z OK NOOP completed\r\n"]


def test_wrong_state_after_login(srv):
    r = Raw(srv.port("imap"))
    login_raw(r)
    assert r.cmd("a", "LOGIN x y") == [b"a BAD Command not valid in this state\r\n"]
    assert r.cmd("b", "CLOSE") == [b"b BAD No mailbox selected\r\n"]
    assert r.cmd("c", "STARTTLS") == [b"c BAD Command not valid in this state\r\n"]


def test_error_budget_before_login(srv):
    r = Raw(srv.port("imap"))
    for i in range(9):
        assert r.cmd("t%d" % i, "BOGUS")[-1] == b"t%d BAD Unknown command\r\n" % i
    r.send(b"last BOGUS\r\n")
    assert r.line() == b"last BAD Unknown command\r\n"
    assert r.line() == b"* BYE Too many invalid commands\r\n"
    assert r.closed()
    # the worker lives on
    assert Raw(srv.port("imap")).cmd("a", "NOOP") == [b"a OK NOOP completed\r\n"]


def test_garbage_never_kills_the_worker(srv):
    junk = [b"\r\n", b"*\r\n", b"a (((((((((((((((((((((((((((((((((((((((((((\r\n",
            b"a LOGIN {3}\r\n", b"a LOGIN {-1}\r\n", b"a LOGIN ~{2}\r\nab\r\n",
            b"a \"\r\n", b"a LOGIN \"\\q\" x\r\n", bytes(range(256)) + b"\r\n",
            b"a ID (\"name\" {1000000000}\r\n"]
    for j in junk:
        r = Raw(srv.port("imap"))
        r.send(j + b"zz NOOP\r\n")
        r.sock.settimeout(1)
        try:
            while True:
                line = r.line()
                # every answer is a well-formed response line
                assert line[:1] in (b"*", b"+", b"a", b"z"), line
        except (OSError, EOFError):
            pass
        r.close()
        assert Raw(srv.port("imap")).cmd("a", "NOOP") == [b"a OK NOOP completed\r\n"]


# ---- LOGIN ----

def test_login_capabilities_grow(srv):
    m = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=10)
    assert "AUTH=PLAIN" in m.capabilities and "SASL-IR" in m.capabilities
    assert "IDLE" not in m.capabilities
    typ, data = m.login(USER, PASSWORD)
    assert typ == "OK" and data[0].startswith(b"[CAPABILITY IMAP4rev1 ")
    caps = m.capability()[1][0].decode().split()
    for cap in ("IDLE", "NAMESPACE", "UNSELECT", "LIST-EXTENDED", "SPECIAL-USE", "ENABLE"):
        assert cap in caps
    assert not any(c.startswith("AUTH=") for c in caps)
    m.logout()


def test_login_case_insensitive_user_and_implicit_tls(srv):
    m = imaps(srv)
    assert m.login(USER.upper(), PASSWORD)[0] == "OK"
    m.logout()


def test_every_credential_failure_gets_the_same_reply(srv):
    srv.add_user("off@example.org", "right")
    srv.cli("user", "disable", "off@example.org")
    replies = []
    for user, pw in ((USER, "wrong"), ("nobody@example.org", "x"), ("off@example.org", "right"),
                     ("", ""), ("x" * 300, "y")):
        r = Raw(srv.port("imap"))
        replies.append(r.cmd("a", "LOGIN %s %s" % (quote(user), quote(pw)))[-1])
    assert set(replies) == {b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"}


def test_plaintext_policy_never(server_factory):
    srv = server_factory(sections={"auth": {"plaintext": "never"}})
    make_account_direct = srv.add_user
    make_account_direct(USER, PASSWORD)
    r = Raw(srv.port("imap"))
    assert b"LOGINDISABLED" in r.greeting and b"STARTTLS" in r.greeting
    assert b"AUTH=" not in r.greeting
    assert r.cmd("a", "LOGIN %s %s" % (quote(USER), quote(PASSWORD))) == \
        [b"a NO [PRIVACYREQUIRED] Use STARTTLS first\r\n"]
    assert r.cmd("b", "AUTHENTICATE PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD))) == \
        [b"b NO [PRIVACYREQUIRED] Use STARTTLS first\r\n"]
    m = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=10)
    m.starttls(ssl_context=client_context())
    caps = m.capability()[1][0].decode().split()
    assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps and "AUTH=PLAIN" in caps
    assert m.login(USER, PASSWORD)[0] == "OK"
    m.logout()
    m = imaps(srv)
    assert "LOGINDISABLED" not in m.capabilities
    assert m.login(USER, PASSWORD)[0] == "OK"
    m.logout()


# ---- AUTHENTICATE ----

def test_authenticate_plain_with_and_without_initial_response(srv):
    r = Raw(srv.port("imap"))
    lines = r.cmd("a", "AUTHENTICATE PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD)))
    assert lines[-1].startswith(b"a OK [CAPABILITY IMAP4rev1 ")
    r = Raw(srv.port("imap"))
    r.send(b"b AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ \r\n"
    r.send(b64("\0%s\0%s" % (USER, PASSWORD)).encode() + b"\r\n")
    assert r.line().startswith(b"b OK [CAPABILITY ")
    m = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=10)
    assert m.authenticate("PLAIN", lambda _: "\0%s\0%s" % (USER, PASSWORD))[0] == "OK"
    m.logout()


def test_authenticate_errors(srv):
    r = Raw(srv.port("imap"))
    r.send(b"a AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ \r\n"
    r.send(b"*\r\n")
    assert r.line() == b"a BAD Authentication cancelled\r\n"
    assert r.cmd("b", "AUTHENTICATE PLAIN !!!notbase64") == [b"b BAD Invalid base64 data\r\n"]
    assert r.cmd("c", "AUTHENTICATE X-UNKNOWN") == \
        [b"c NO [CANNOT] Unsupported authentication mechanism\r\n"]
    assert r.cmd("d", "AUTHENTICATE PLAIN " + b64("\0%s\0bad" % USER)) == \
        [b"d NO [AUTHENTICATIONFAILED] Authentication failed\r\n"]
    r.send(b"e AUTHENTICATE LOGIN\r\n")
    assert r.line().startswith(b"+ ")
    r.send(b64(USER).encode() + b"\r\n")
    assert r.line().startswith(b"+ ")
    r.send(b64(PASSWORD).encode() + b"\r\n")
    assert r.line().startswith(b"e OK [CAPABILITY ")


def test_scram_client_matches_rfc7677():
    final, verifier = scram_client_final(
        "pencil", "n=user,r=rOprNGfwEbeRWgbNEkqO",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert final == ("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert verifier == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def scram_exchange(srv, password):
    r = Raw(srv.port("imap"))
    first_bare = "n=%s,r=%s" % (scram_username(USER), b64(os.urandom(18)))
    r.send(b"s AUTHENTICATE SCRAM-SHA-256 " + b64("n,," + first_bare).encode() + b"\r\n")
    line = r.line()
    assert line.startswith(b"+ ")
    server_first = base64.b64decode(line[2:].strip()).decode()
    final, verifier = scram_client_final(password, first_bare, server_first)
    r.send(b64(final).encode() + b"\r\n")
    line = r.line()
    if not line.startswith(b"+ "):
        return line, None
    assert base64.b64decode(line[2:].strip()).decode() == verifier
    r.send(b"\r\n")
    return r.line(), r


def test_authenticate_scram_sha_256(srv):
    line, r = scram_exchange(srv, PASSWORD)
    assert line.startswith(b"s OK [CAPABILITY IMAP4rev1 ")
    assert r.cmd("n", "NOOP") == [b"n OK NOOP completed\r\n"]
    line, _ = scram_exchange(srv, "wrong")
    assert line == b"s NO [AUTHENTICATIONFAILED] Authentication failed\r\n"


def test_throttling_delays_then_blocks(server_factory):
    srv = server_factory(sections={"auth": {"delay_after": "1", "block_after": "3",
                                            "block_time": "60s"}})
    srv.add_user(USER, PASSWORD)
    r = Raw(srv.port("imap"))
    times = []
    for i in range(3):
        start = time.time()
        # a command pipelined behind the failure waits for its reply
        r.send(b"f%d LOGIN %s wrong\r\nn%d NOOP\r\n" % (i, USER.encode(), i))
        assert r.line() == b"f%d NO [AUTHENTICATIONFAILED] Authentication failed\r\n" % i
        times.append(time.time() - start)
        assert r.line() == b"n%d OK NOOP completed\r\n" % i
    assert times[1] >= 0.9 or times[2] >= 0.9, times
    # blocked now: even the right password gets the same reply
    assert r.cmd("g", "LOGIN %s %s" % (quote(USER), quote(PASSWORD))) == \
        [b"g NO [AUTHENTICATIONFAILED] Authentication failed\r\n"]


def test_disconnect_during_delay_and_sasl(server_factory):
    srv = server_factory(sections={"auth": {"delay_after": "1", "block_after": "50"}})
    srv.add_user(USER, PASSWORD)
    for _ in range(3):
        r = Raw(srv.port("imap"))
        r.send(b"a LOGIN %s wrong\r\n" % USER.encode())
        r.close()
    r = Raw(srv.port("imap"))
    r.send(b"a AUTHENTICATE SCRAM-SHA-256\r\n")
    r.close()
    time.sleep(2.5)
    assert Raw(srv.port("imap")).cmd("z", "NOOP") == [b"z OK NOOP completed\r\n"]


def test_curl_login_options(srv):
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "--login-options", "AUTH=PLAIN",
                          "-u", "%s:%s" % (USER, PASSWORD),
                          "imap://127.0.0.1:%d/" % srv.port("imap")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"INBOX"' in out.stdout or "INBOX" in out.stdout


# ---- password hashing off the event loop ----

def test_logins_do_not_stall_other_sessions(server_factory):
    """Password hashes run in worker threads: with one worker, a logged-in
    session is answered while many LOGINs are still being hashed. On a
    loop that hashed inline, every LOGIN read before the NOOP would be
    answered before it."""
    srv = server_factory(workers=1)
    make_account(srv)
    busy = Raw(srv.port("imap"))
    login_raw(busy)
    waiting = [Raw(srv.port("imap")) for _ in range(16)]
    for i, r in enumerate(waiting):
        r.send(b"w%d LOGIN %s %s\r\n" % (i, quote(USER).encode(), quote(PASSWORD).encode()))
    time.sleep(0.05)
    assert busy.cmd("n", "NOOP") == [b"n OK NOOP completed\r\n"]
    ready, _, _ = select.select([r.sock for r in waiting], [], [], 0)
    assert len(ready) < len(waiting)
    for i, r in enumerate(waiting):
        assert r.until_tagged("w%d" % i)[-1].startswith(b"w%d OK [CAPABILITY " % i)
    # a client gone while its password is hashed leaves the worker serving
    gone = Raw(srv.port("imap"))
    gone.send(b"g LOGIN %s %s\r\n" % (quote(USER).encode(), quote(PASSWORD).encode()))
    gone.close()
    assert busy.cmd("m", "NOOP") == [b"m OK NOOP completed\r\n"]
    login_raw(Raw(srv.port("imap")))


def test_commands_pipelined_after_login_wait_for_it(srv):
    r = Raw(srv.port("imap"))
    r.send(b"a LOGIN %s %s\r\nb SELECT INBOX\r\nc LOGOUT\r\n"
           % (quote(USER).encode(), quote(PASSWORD).encode()))
    assert r.until_tagged("a")[-1].startswith(b"a OK [CAPABILITY ")
    assert r.until_tagged("b")[-1] == b"b OK [READ-WRITE] SELECT completed\r\n"
    assert r.until_tagged("c")[-1] == b"c OK LOGOUT completed\r\n"
    # AUTHENTICATE PLAIN, its response line and a command behind it
    r = Raw(srv.port("imap"))
    cred = b64("\0%s\0%s" % (USER, PASSWORD))
    r.send(b"a AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ \r\n"
    r.send(cred.encode() + b"\r\nb NOOP\r\n")
    assert r.until_tagged("a")[-1].startswith(b"a OK [CAPABILITY ")
    assert r.until_tagged("b") == [b"b OK NOOP completed\r\n"]
