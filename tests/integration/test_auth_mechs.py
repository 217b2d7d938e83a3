"""The SASL mechanisms every protocol lists (each name once: issue 17
item 11), and SCRAM-SHA-256-PLUS with RFC 9266 tls-exporter channel
binding on TLS connections (issue 19), driven through openssl s_client,
which exports the keying material a real client binds to."""

import base64
import fcntl
import os
import re
import select
import subprocess
import time

from harness import client_context, raw_connect, read_line, read_until
from scram import ScramClient

USER = "frank@example.org"
PASSWORD = "frank's pw"


def names(line, prefix):
    return [w[len(prefix):] if prefix else w for w in line.split() if w.startswith(prefix)]


def assert_once(mechs):
    assert mechs, "no mechanism listed"
    assert len(mechs) == len(set(mechs)), mechs
    assert "SCRAM-SHA-1" in mechs and "SCRAM-SHA-256" in mechs and "PLAIN" in mechs


def test_each_mechanism_listed_once_in_all_three_protocols(server):
    # IMAP: the greeting's CAPABILITY and CAPABILITY itself
    s = raw_connect(server.port("imaps"), tls=True)
    greeting = read_line(s).decode()
    assert_once(names(greeting.rstrip("]\r\nPostern ready"), "AUTH="))
    s.sendall(b"c CAPABILITY\r\n")
    cap = read_line(s).decode()
    imap_mechs = names(cap, "AUTH=")
    assert_once(imap_mechs)
    s.close()
    # SMTP: EHLO's AUTH line
    s = raw_connect(server.port("submissions"), tls=True)
    read_line(s)
    s.sendall(b"EHLO client.example\r\n")
    lines = read_until(s, lambda l: l.startswith(b"250 "))
    auth = [l.decode() for l in lines if l.startswith(b"250-AUTH ")]
    assert len(auth) == 1
    smtp_mechs = auth[0].split()[1:]
    assert_once(smtp_mechs)
    s.close()
    # POP3: CAPA's SASL line
    s = raw_connect(server.port("pop3s"), tls=True)
    read_line(s)
    s.sendall(b"CAPA\r\n")
    lines = read_until(s, lambda l: l == b".\r\n")
    sasl = [l.decode() for l in lines if l.startswith(b"SASL ")]
    assert len(sasl) == 1
    pop_mechs = sasl[0].split()[1:]
    assert_once(pop_mechs)
    s.close()
    # the same list everywhere, channel binding included on TLS
    assert imap_mechs == smtp_mechs == pop_mechs
    assert "SCRAM-SHA-256-PLUS" in imap_mechs


def test_plus_not_offered_without_tls(server):
    s = raw_connect(server.port("imap"))
    greeting = read_line(s).decode()
    mechs = names(greeting, "AUTH=")
    assert all(not m.endswith("-PLUS") for m in mechs), mechs
    s.close()


class SClient:
    """openssl s_client on an implicit-TLS port, with the RFC 9266
    exporter value it computed for this connection."""

    def __init__(self, port):
        self.proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-ign_eof",
             "-keymatexport", "EXPORTER-Channel-Binding", "-keymatexportlen", "32"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        fd = self.proc.stdout.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.buf = b""
        self.exporter = bytes.fromhex(self.wait(rb"Keying material: ([0-9A-Fa-f]{64})").group(1)
                                      .decode())

    def wait(self, pattern, timeout=15):
        deadline = time.time() + timeout
        while True:
            m = re.search(pattern, self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.time()
            assert left > 0, "never saw %r in %r" % (pattern, self.buf[-500:])
            select.select([self.proc.stdout], [], [], left)
            chunk = self.proc.stdout.read()
            if chunk:
                self.buf += chunk

    def send(self, line):
        self.proc.stdin.write(line + b"\r\n")
        self.proc.stdin.flush()

    def close(self):
        self.proc.kill()
        self.proc.wait()


def scram_plus(srv, cbind_data):
    c = SClient(srv.port("imaps"))
    try:
        c.wait(rb"\* OK \[CAPABILITY [^\r\n]*AUTH=SCRAM-SHA-256-PLUS")
        client = ScramClient(USER, PASSWORD)
        gs2 = b"p=tls-exporter,,"
        first = gs2 + client.first()[3:]
        c.send(b"a AUTHENTICATE SCRAM-SHA-256-PLUS " + base64.b64encode(first))
        server_first = base64.b64decode(c.wait(rb"\+ ([A-Za-z0-9+/=]+)\r\n").group(1))
        data = c.exporter if cbind_data is None else cbind_data
        client.channel_binding = base64.b64encode(gs2 + data).decode()
        c.send(base64.b64encode(client.final(server_first)))
        m = c.wait(rb"(\+ ([A-Za-z0-9+/=]+)|a NO [^\r\n]*)\r\n")
        if m.group(2) is None:
            return m.group(1)
        assert client.verify(base64.b64decode(m.group(2)))
        c.send(b"")
        return c.wait(rb"(a (OK|NO)[^\r\n]*)\r\n").group(1)
    finally:
        c.close()


def exporter_of_s_client(srv):
    c = SClient(srv.port("imaps"))
    try:
        return c.exporter
    finally:
        c.close()


def test_scram_sha_256_plus_with_tls_exporter(server):
    server.add_user(USER, PASSWORD)
    reply = scram_plus(server, None)
    assert reply.startswith(b"a OK"), reply


def test_scram_plus_with_another_connections_binding_fails(server):
    """A man in the middle has two TLS connections, so two exporter
    values: the client's binding does not match the server's."""
    server.add_user(USER, PASSWORD)
    other = exporter_of_s_client(server)
    reply = scram_plus(server, other)
    assert reply.startswith(b"a NO [AUTHENTICATIONFAILED]"), reply
