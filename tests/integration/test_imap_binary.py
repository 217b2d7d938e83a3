"""BINARY (RFC 3516) beyond the basics in test_imap_rev2.py: an unknown
Content-Transfer-Encoding is NO [UNKNOWN-CTE]; a part that does not exist
is empty (as BODY[n] of one, and as Dovecot answers); large parts decode
the same through the streaming decoder as Python decodes them, partials
included, whatever falls on a chunk boundary."""

import base64
import quopri
import re

import pytest

from imap_helpers import USER, deliver, make_account, raw_session


def mime(parts):
    out = [b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: parts\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"]
    for cte, ctype, body in parts:
        out.append(b"--b\r\nContent-Type: %s\r\n" % ctype)
        if cte is not None:
            out.append(b"Content-Transfer-Encoding: %s\r\n" % cte)
        out.append(b"\r\n" + body + b"\r\n")
    out.append(b"--b--\r\n")
    return b"".join(out)


BLOB = bytes(range(256)) * 12000 + b"tail"          # ~3 MB with NULs
TEXT = b"".join(b"line %06d caf\xc3\xa9 = \xe2\x82\xac %s\r\n" % (i, b"x" * (i % 90))
                for i in range(6000))               # QP with soft breaks


def b64(data):
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


@pytest.fixture
def srv(server):
    make_account(server)
    deliver(server, USER, mime([(b"x-uuencode", b"application/octet-stream", b"begin 644 x\r\nend"),
                                (b"7bit", b"text/plain", b"plain text\r\nsecond line")]))
    deliver(server, USER, mime([(b"base64", b"application/octet-stream", b64(BLOB)),
                                (b"quoted-printable", b"text/plain; charset=utf-8",
                                 quopri.encodestring(TEXT).replace(b"\n", b"\r\n")
                                 .replace(b"\r\r\n", b"\r\n")),
                                (b" Base64 (comment)", b"text/plain", b"aGk=")]))
    return server


def literal_of(line, label):
    m = re.search(re.escape(label) + rb" ~?\{(\d+)\}\r\n", line)
    assert m, line[:200]
    return line[m.end():m.end() + int(m.group(1))]


def test_unknown_cte_is_no_unknown_cte(srv):
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", "FETCH 1 BINARY.PEEK[1]") == [
        b"a NO [UNKNOWN-CTE] Cannot decode a part's Content-Transfer-Encoding\r\n"]
    assert r.cmd("b", "FETCH 1 BINARY.SIZE[1]")[-1].startswith(b"b NO [UNKNOWN-CTE]")
    # the other messages are still answered
    lines = r.cmd("c", "FETCH 1:2 BINARY.SIZE[1]")
    assert lines == [b"* 2 FETCH (BINARY.SIZE[1] %d)\r\n" % len(BLOB),
                     b"c NO [UNKNOWN-CTE] Cannot decode a part's Content-Transfer-Encoding\r\n"]
    # BODY[1] is the part as it is; the known part decodes
    assert r.cmd("d", "FETCH 1 BODY.PEEK[1]")[-1] == b"d OK FETCH completed\r\n"
    assert r.cmd("e", "FETCH 1 BINARY.PEEK[2]") == [
        b"* 1 FETCH (BINARY[2] {23}\r\nplain text\r\nsecond line)\r\n", b"e OK FETCH completed\r\n"]
    # PEEK, even failing, left \Seen alone
    assert r.cmd("f", "FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS (\\Recent))\r\n"


def test_missing_part_is_empty(srv):
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", "FETCH 1 (BINARY.SIZE[9] BINARY.PEEK[9] BINARY.PEEK[2.1] BODY.PEEK[9])") == [
        b"* 1 FETCH (BINARY.SIZE[9] 0 BINARY[9] {0}\r\n BINARY[2.1] {0}\r\n BODY[9] {0}\r\n)\r\n",
        b"a OK FETCH completed\r\n"]


def test_large_base64_part_streams_decoded(srv):
    r = raw_session(srv, "INBOX")
    lines = r.cmd("a", "FETCH 2 (BINARY.SIZE[1] BINARY.PEEK[1])")
    assert lines[0].startswith(b"* 2 FETCH (BINARY.SIZE[1] %d BINARY[1] ~{%d}\r\n"
                               % (len(BLOB), len(BLOB)))
    assert literal_of(lines[0], b"BINARY[1]") == BLOB
    # partials across the decoder's 32 KiB chunks; NUL-free windows are plain literals
    for origin, count in ((0, 10), (32760, 70000), (len(BLOB) - 3, 100), (len(BLOB) + 5, 9)):
        line = r.cmd("p", "FETCH 2 BINARY.PEEK[1]<%d.%d>" % (origin, count))[0]
        want = BLOB[origin:origin + count]
        assert literal_of(line, b"BINARY[1]<%d>" % origin) == want
        assert (b"~{" in line) == (b"\0" in want)


def test_quoted_printable_part_decodes_like_python(srv):
    r = raw_session(srv, "INBOX")
    lines = r.cmd("a", "FETCH 2 (BINARY.SIZE[2] BINARY.PEEK[2] BINARY.PEEK[3])")
    assert lines[0].startswith(b"* 2 FETCH (BINARY.SIZE[2] %d BINARY[2] {%d}\r\n"
                               % (len(TEXT), len(TEXT)))
    assert literal_of(lines[0], b"BINARY[2]") == TEXT
    assert literal_of(lines[0], b"BINARY[3]") == b"hi"
    line = r.cmd("b", "FETCH 2 BINARY.PEEK[2]<65530.20>")[0]
    assert literal_of(line, b"BINARY[2]<65530>") == TEXT[65530:65550]
