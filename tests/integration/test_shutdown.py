"""Draining on SIGTERM is the core's, the same for every protocol: a
command in progress finishes, then the session gets its goodbye (issue 14
item 4). Above all, `* BYE` never lands inside a streamed literal."""

import os
import re
import signal
import socket
import time

from harness import read_line
from imap_helpers import quote

USER = "erin@example.org"
PASSWORD = "erin pw"
BIG = 8 * 1024 * 1024


def big_message():
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!!!!!\r\n"   # 70
    body = line * (BIG // len(line))
    return b"From: a@example.org\r\nTo: %s\r\nSubject: big\r\n\r\n" % USER.encode() + body


def slow_reader(port):
    """A connection whose receive buffer is small, so the server's output
    waits for us while the body streams."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return sock


def recv_exact(sock, n, buf):
    while len(buf) < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    return buf


def recv_all(sock, buf):
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        buf += chunk
    return buf


def test_sigterm_during_streaming_fetch_never_writes_bye_inside_the_literal(server):
    server.add_user(USER, PASSWORD)
    message = big_message()
    message = server.deliver(USER, message)   # as stored: with its trace fields
    sock = slow_reader(server.port("imap"))
    f = sock.makefile("rb")
    assert f.readline().startswith(b"* OK")
    sock.sendall(b"a LOGIN %s %s\r\n" % (quote(USER).encode(), quote(PASSWORD).encode()))
    assert f.readline().startswith(b"a OK")
    sock.sendall(b"s SELECT INBOX\r\n")
    while not f.readline().startswith(b"s OK"):
        pass
    sock.sendall(b"f FETCH 1 BODY.PEEK[]\r\n")
    head = f.readline()
    m = re.match(rb"\* 1 FETCH \(BODY\[\] \{(\d+)\}\r\n$", head)
    assert m, head
    size = int(m.group(1))
    assert size == len(message)
    got = f.read(1024 * 1024)            # the stream is under way...
    server.proc.send_signal(signal.SIGTERM)
    server.wait_log(r"event=draining")   # ...when the worker starts draining
    time.sleep(0.5)
    rest = f.read(size - len(got))       # the whole literal, intact
    literal = got + rest
    assert len(literal) == size
    assert literal == message
    assert b"* BYE" not in literal
    tail = b""
    while True:
        line = f.readline()
        if not line:
            break
        tail += line
    # the FETCH ends, its tagged reply follows, then the goodbye
    assert tail.startswith(b")\r\nf OK"), tail[:200]
    assert tail.endswith(b"* BYE [UNAVAILABLE] Server shutting down\r\n"), tail[-200:]
    sock.close()
    assert server.proc.wait(timeout=30) == 0


def test_sigterm_during_retr_finishes_the_message_then_says_goodbye(server):
    server.add_user(USER, PASSWORD)
    message = big_message()
    message = server.deliver(USER, message)   # as stored: with its trace fields
    sock = slow_reader(server.port("pop3"))
    f = sock.makefile("rb")
    assert f.readline().startswith(b"+OK")
    sock.sendall(b"USER %s\r\nPASS %s\r\n" % (USER.encode(), PASSWORD.encode()))
    assert f.readline().startswith(b"+OK")
    assert f.readline().startswith(b"+OK")
    sock.sendall(b"RETR 1\r\n")
    m = re.match(rb"\+OK (\d+) octets\r\n$", f.readline())
    size = int(m.group(1))
    assert size == len(message)          # no line starts with a dot
    got = f.read(1024 * 1024)
    server.proc.send_signal(signal.SIGTERM)
    server.wait_log(r"event=draining")
    time.sleep(0.5)
    rest = f.read(size + 3 - len(got))
    assert len(got + rest) == size + 3, "connection closed inside the message"
    assert got + rest == message + b".\r\n"
    assert f.readline() == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    sock.close()


def test_sigterm_between_commands_says_goodbye_in_every_protocol(server):
    socks = {}
    for name, greeting in (("imap", b"* OK"), ("pop3", b"+OK"), ("submission", b"220")):
        s = socket.create_connection(("127.0.0.1", server.port(name)), timeout=10)
        assert read_line(s).startswith(greeting)
        socks[name] = s
    server.proc.send_signal(signal.SIGTERM)
    assert read_line(socks["imap"]) == b"* BYE [UNAVAILABLE] Server shutting down\r\n"
    assert read_line(socks["pop3"]) == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    assert read_line(socks["submission"]) == b"421 4.3.2 Server shutting down\r\n"
    for s in socks.values():
        assert read_line(s) == b""
        s.close()
    assert server.proc.wait(timeout=30) == 0
