"""Abuse paths from the outside attack run (issue 19, found items 1 and 2):
strangers must not lock an account out, and pre-login time is an
absolute deadline that trickling bytes cannot stretch, as is a command
line or an SMTP DATA stream sent slower than a minimum rate."""

import socket
import time

import imaplib

from harness import client_context, read_line
from imap_helpers import quote

DAVE = "dave@example.org"
DAVE_PW = "dave's right password"


def connect_from(source, port, timeout=30):
    """A TCP connection to the server from the loopback address source."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def imap_login_from(srv, source, password):
    """LOGIN from source; returns the tagged reply line and its duration."""
    sock = connect_from(source, srv.port("imap"))
    try:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"* OK")
        start = time.time()
        sock.sendall(b"a LOGIN %s %s\r\n" % (quote(DAVE).encode(), quote(password).encode()))
        line = f.readline()
        return line, time.time() - start
    finally:
        sock.close()


def test_strangers_cannot_lock_an_account_out(server):
    """Found item 1: 13 wrong passwords for dave@, one from each of 13
    addresses, then the right one from a fresh address logs in (slowed
    down perhaps, never refused)."""
    server.add_user(DAVE, DAVE_PW)
    for i in range(13):
        line, _ = imap_login_from(server, "127.0.0.%d" % (10 + i), "wrong %d" % i)
        assert line == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    line, took = imap_login_from(server, "127.0.0.40", DAVE_PW)
    assert line.startswith(b"a OK "), line
    assert took < 12, took
    # a source that logged in before skips the account's delay
    line, took = imap_login_from(server, "127.0.0.40", DAVE_PW)
    assert line.startswith(b"a OK "), line
    assert took < 1.5, took


def test_a_failing_source_is_blocked_and_others_are_not(server_factory):
    """The source that fails is the one refused: per-source and per
    (account, source) blocks, while the owner elsewhere still logs in."""
    srv = server_factory(sections={"auth": {"delay_after": "100", "block_after": "3",
                                            "block_time": "10m"}})
    srv.add_user(DAVE, DAVE_PW)
    for i in range(3):
        line, _ = imap_login_from(srv, "127.0.0.50", "wrong %d" % i)
        assert line.startswith(b"a NO [AUTHENTICATIONFAILED]")
    # blocked now: even the right password from that address fails
    line, _ = imap_login_from(srv, "127.0.0.50", DAVE_PW)
    assert line.startswith(b"a NO [AUTHENTICATIONFAILED]"), line
    assert "reason=blocked" in srv.read_log()
    # the owner from another address is not
    line, _ = imap_login_from(srv, "127.0.0.51", DAVE_PW)
    assert line.startswith(b"a OK "), line


def test_account_delay_slows_strangers(server_factory):
    """After delay_after failures on an account, attempts on it from
    sources that never logged in to it are answered later."""
    # a failure decays every block_time / block_after = 60 s: no count
    # wears off while the test runs, however loaded the machine
    srv = server_factory(sections={"auth": {"delay_after": "2", "block_after": "100",
                                            "block_time": "100m"}})
    srv.add_user(DAVE, DAVE_PW)
    line, took = imap_login_from(srv, "127.0.0.60", DAVE_PW)   # a known source
    assert line.startswith(b"a OK ") and took < 1.5
    for i in range(4):
        imap_login_from(srv, "127.0.0.%d" % (61 + i), "wrong")
    line, took = imap_login_from(srv, "127.0.0.70", "wrong again")
    assert line.startswith(b"a NO ") and took >= 1.0, took
    line, took = imap_login_from(srv, "127.0.0.60", DAVE_PW)
    assert line.startswith(b"a OK ") and took < 1.5, took


# ---- found item 2: deadlines and minimum rates ----

def trickle(socks, seconds, byte=b"x"):
    """One byte a second on every socket still open; returns those open."""
    deadline = time.time() + seconds
    while time.time() < deadline and socks:
        for s in list(socks):
            try:
                s.sendall(byte)
            except OSError:
                socks.remove(s)
        time.sleep(1)
    return socks


def is_closed(sock):
    sock.settimeout(0.5)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def test_preauth_is_an_absolute_deadline(server_factory):
    """Found item 2: connections that send a byte a second and never
    finish a line are closed at timeout_preauth, whatever they send."""
    srv = server_factory(sections={"limits": {"timeout_preauth": "4s",
                                              "max_connections_per_ip": "1000"}})
    socks = []
    for i in range(30):
        name = ("imap", "pop3", "submission")[i % 3]
        s = socket.create_connection(("127.0.0.1", srv.port(name)), timeout=10)
        read_line(s)
        socks.append(s)
    start = time.time()
    trickle(socks, 7)
    # every one of them was cut within the deadline (and a bit of slack)
    assert all(is_closed(s) for s in socks)
    assert time.time() - start < 12
    for s in socks:
        s.close()
    assert srv.read_log().count("event=timeout") >= 30


def test_preauth_deadline_is_not_reset_by_complete_commands(server_factory):
    """Full NOOP lines before login do not stretch it either."""
    srv = server_factory(sections={"limits": {"timeout_preauth": "3s"}})
    s = socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=10)
    read_line(s)
    start = time.time()
    closed_at = None
    for i in range(8):
        try:
            s.sendall(b"n%d NOOP\r\n" % i)
        except OSError:
            break
        if is_closed(s):
            closed_at = time.time() - start
            break
        time.sleep(0.5)
    assert closed_at is not None and closed_at < 5, closed_at


def test_login_lifts_the_preauth_deadline(server_factory):
    srv = server_factory(sections={"limits": {"timeout_preauth": "3s"}})
    srv.add_user(DAVE, DAVE_PW)
    c = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context())
    c.login(DAVE, DAVE_PW)
    for _ in range(5):
        time.sleep(1)
        assert c.noop()[0] == "OK"
    c.logout()


def test_command_line_slower_than_minimum_rate(server_factory):
    """After login, a command line trickled slower than the minimum rate
    is cut even though every byte arrives well within the idle timeout."""
    srv = server_factory(sections={"limits": {"min_rate": "100",
                                              "min_rate_grace": "2s"}})
    srv.add_user(DAVE, DAVE_PW)
    s = socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a LOGIN %s %s\r\n" % (quote(DAVE).encode(), quote(DAVE_PW).encode()))
    assert f.readline().startswith(b"a OK")
    start = time.time()
    socks = trickle([s], 10)
    assert not socks or is_closed(s)
    assert time.time() - start < 9
    assert "event=too-slow" in srv.read_log()


def test_smtp_data_slower_than_minimum_rate(server_factory):
    srv = server_factory(sections={"limits": {"min_rate": "100",
                                              "min_rate_grace": "2s"}})
    s = socket.create_connection(("127.0.0.1", srv.port("smtp")), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO client.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    srv.add_user(DAVE, DAVE_PW)
    s.sendall(b"MAIL FROM:<x@remote.example>\r\n")
    assert f.readline().startswith(b"250")
    s.sendall(b"RCPT TO:<%s>\r\n" % DAVE.encode())
    assert f.readline().startswith(b"250")
    s.sendall(b"DATA\r\n")
    assert f.readline().startswith(b"354")
    start = time.time()
    socks = trickle([s], 10, b"Subject: slow\r\n")
    assert time.time() - start < 9
    assert not socks or is_closed(s)
    assert "event=too-slow" in srv.read_log()
    assert srv.messages(DAVE) == []
