"""COMPRESS=DEFLATE (RFC 4978): raw DEFLATE both ways after the tagged OK,
over plain text and TLS, with a large streamed FETCH; imaplib with a zlib
layer; mbsync, which compresses whenever the server offers it."""

import imaplib
import os
import zlib

import pytest

from harness import client_context
from imap_helpers import PASSWORD, USER, Raw, deliver, login_raw, make_account, message
from test_imap_clients import mbsync_config, run_mbsync


class Deflated:
    """A Raw client that DEFLATEs what it sends and INFLATEs what it reads
    from the moment compress() is called."""

    def __init__(self, raw):
        self.raw = raw
        self.out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        orig_fill = raw._fill

        def fill():
            sock = raw.sock
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            raw.buf += self.inflate.decompress(chunk)
        self.orig_fill = orig_fill
        raw._fill = fill
        raw.send = lambda data: raw.sock.sendall(self.out.compress(data) +
                                                 self.out.flush(zlib.Z_SYNC_FLUSH))


@pytest.fixture
def srv(server):
    make_account(server)
    deliver(server, USER, message("small"))
    # a message of about 3 MB: the FETCH streams it in many turns
    body = "".join("line %06d %s\r\n" % (i, os.urandom(24).hex()) for i in range(50000))
    deliver(server, USER, message("big", body=body))
    return server


def compressed_session(srv, tls=False):
    r = Raw(srv.port("imaps" if tls else "imap"), tls=tls)
    login_raw(r)
    caps = r.cmd("c", "CAPABILITY")[0]
    assert b" COMPRESS=DEFLATE" in caps
    assert r.cmd("z", "COMPRESS DEFLATE") == [b"z OK DEFLATE active\r\n"]
    # nothing the server sent after the OK may sit in the clear buffer
    assert r.buf == b""
    Deflated(r)
    return r


@pytest.mark.parametrize("tls", [False, True])
def test_compressed_session(srv, tls):
    r = compressed_session(srv, tls)
    caps = r.cmd("c", "CAPABILITY")[0]
    assert b"COMPRESS" not in caps and b"IMAP4rev1" in caps
    assert r.cmd("d", "COMPRESS DEFLATE") == [
        b"d NO [COMPRESSIONACTIVE] DEFLATE is active already\r\n"]
    lines = r.cmd("s", "SELECT INBOX")
    assert b"* 2 EXISTS\r\n" in lines and lines[-1].startswith(b"s OK [READ-WRITE]")
    lines = r.cmd("f", "FETCH 2 (RFC822.SIZE BODY.PEEK[])")
    size = int(lines[0].split(b"RFC822.SIZE ")[1].split(b" ")[0])
    assert size > 2_000_000
    literal = lines[0].split(b"BODY[] {%d}\r\n" % size, 1)[1]
    assert len(literal) == size + 3 and literal.endswith(b")\r\n")
    assert b"line 049999 " in literal
    assert lines[-1] == b"f OK FETCH completed\r\n"
    # pipelined commands in one compressed flush
    r.send(b"p1 NOOP\r\np2 FETCH 1 (FLAGS)\r\n")
    assert r.until_tagged("p2") == [b"p1 OK NOOP completed\r\n",
                                    b"* 1 FETCH (FLAGS (\\Recent))\r\n",
                                    b"p2 OK FETCH completed\r\n"]
    assert r.cmd("o", "LOGOUT") == [b"* BYE Logging out\r\n", b"o OK LOGOUT completed\r\n"]


def test_compress_errors(srv):
    r = Raw(srv.port("imap"))
    assert r.cmd("a", "COMPRESS DEFLATE") == [b"a BAD Command not valid before login\r\n"]
    login_raw(r)
    assert r.cmd("b", "COMPRESS GZIP") == [b"b BAD Unknown compression mechanism\r\n"]
    assert r.cmd("c", "COMPRESS") == [b"c BAD Invalid arguments\r\n"]
    assert r.cmd("d", "COMPRESS DEFLATE") == [b"d OK DEFLATE active\r\n"]
    # bytes that are not a DEFLATE stream end the session, and only it
    r.send(b"\xff\xff\xff\xff garbage\r\n")
    assert r.closed()
    r2 = compressed_session(srv)
    assert r2.cmd("n", "NOOP") == [b"n OK NOOP completed\r\n"]


class IMAP4Deflate(imaplib.IMAP4):
    """imaplib with a DEFLATE layer over its socket after COMPRESS."""

    def compress(self):
        imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        assert typ == "OK", data
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        self._pending = b""

    def send(self, data):
        if getattr(self, "_deflate", None) is None:
            return super().send(data)
        self.sock.sendall(self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH))

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self._pending += self._inflate.decompress(chunk)

    def read(self, size):
        if getattr(self, "_inflate", None) is None:
            return super().read(size)
        while len(self._pending) < size:
            self._more()
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def readline(self):
        if getattr(self, "_inflate", None) is None:
            return super().readline()
        while b"\n" not in self._pending:
            self._more()
        i = self._pending.index(b"\n") + 1
        out, self._pending = self._pending[:i], self._pending[i:]
        return out


def test_imaplib_with_deflate(srv):
    m = IMAP4Deflate("127.0.0.1", srv.port("imap"), timeout=30)
    m.login(USER, PASSWORD)
    m.compress()
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    typ, data = m.fetch("1:2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    assert [d[1] for d in data if isinstance(d, tuple)] == [b"Subject: small\r\n\r\n",
                                                          b"Subject: big\r\n\r\n"]
    typ, data = m.append("INBOX", None, None, message("appended").encode())
    assert typ == "OK"
    typ, data = m.search(None, "SUBJECT", "appended")
    assert data == [b"3"]
    m.logout()


def test_mbsync_compresses(server, workdir):
    make_account(server)
    for i in range(3):
        deliver(server, USER, message("sync %d" % i))
    conf, local = mbsync_config(server, workdir)
    run_mbsync(conf)
    assert "event=imap-compress" in server.read_log()
    files = os.listdir(os.path.join(local, "INBOX", "new")) + \
        os.listdir(os.path.join(local, "INBOX", "cur"))
    assert len(files) == 3
