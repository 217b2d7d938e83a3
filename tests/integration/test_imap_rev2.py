"""BINARY (RFC 3516) and IMAP4rev2 behaviour after ENABLE IMAP4rev2
(RFC 9051): no \\Recent, ESEARCH answers, UTF-8 mailbox names, LIST in the
SELECT response."""

import os
import re

import pytest

from harness import REPO
from imap_helpers import created, USER, deliver, make_account, message, raw_session

OCTETS = (b"Subject: binary\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\nAAECA2hlbGxv\r\n")


@pytest.fixture
def srv(server):
    make_account(server)
    with open(os.path.join(REPO, "tests", "data", "mime", "multipart-alternative.eml"), "rb") as f:
        deliver(server, USER, f.read())
    deliver(server, USER, OCTETS)
    return server


def test_binary_fetch(srv):
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", "FETCH 2 (BINARY.SIZE[1] BINARY.PEEK[1])") == [
        b"* 2 FETCH (BINARY.SIZE[1] 9 BINARY[1] ~{9}\r\n\x00\x01\x02\x03hello)\r\n",
        b"a OK FETCH completed\r\n"]
    assert r.cmd("b", "FETCH 2 BINARY.PEEK[1]<4.3>") == [
        b"* 2 FETCH (BINARY[1]<4> {3}\r\nhel)\r\n", b"b OK FETCH completed\r\n"]
    lines = r.cmd("c", "FETCH 1 (BINARY.PEEK[1] BODY.PEEK[1])")
    decoded = re.search(rb"BINARY\[1\] \{(\d+)\}\r\n", lines[0])
    text = lines[0][decoded.end():decoded.end() + int(decoded.group(1))]
    assert b"20% off" in text and b"=" not in text.replace(b"==", b"")[:10]
    # BINARY (not PEEK) sets \Seen
    assert r.cmd("d", "FETCH 2 BINARY[1]")[0].startswith(b"* 2 FETCH (FLAGS (\\Seen")
    assert r.cmd("e", "FETCH 2 BINARY[1.MIME]") == [b"e BAD Invalid FETCH arguments\r\n"]
    assert r.cmd("f", "FETCH 2 BINARY.SIZE[1]<0.1>") == [b"f BAD Invalid FETCH arguments\r\n"]


def test_imap4rev2_after_enable(srv):
    r = raw_session(srv)
    caps = r.cmd("c", "CAPABILITY")[0]
    assert b" IMAP4rev2 " in caps and b" BINARY" in caps
    assert r.cmd("a", "ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2\r\n",
                                              b"a OK ENABLE completed\r\n"]
    lines = r.cmd("b", "SELECT INBOX")
    assert b'* LIST () "/" "INBOX"\r\n' in lines
    assert not any(b"RECENT" in line or b"UNSEEN" in line for line in lines)
    assert r.cmd("c", "FETCH 1:2 FLAGS") == [b"* 1 FETCH (FLAGS ())\r\n",
                                             b"* 2 FETCH (FLAGS ())\r\n",
                                             b"c OK FETCH completed\r\n"]
    assert r.cmd("d", "SEARCH ALL") == [b'* ESEARCH (TAG "d") ALL 1:2\r\n',
                                        b"d OK SEARCH completed\r\n"]
    assert r.cmd("e", "UID SEARCH SUBJECT binary") == [b'* ESEARCH (TAG "e") UID ALL 2\r\n',
                                                       b"e OK UID SEARCH completed\r\n"]
    # mailbox names are UTF-8 now
    assert created(r.cmd("f", 'CREATE "Entw\u00fcrfe"'.encode()), "f")
    lines = r.cmd("g", 'LIST "" "Entw*"')
    assert lines[0].startswith(b'* LIST (\\HasNoChildren) "/" {9}\r\nEntw\xc3\xbcrfe')
    # a rev1 session sees the same mailbox in modified UTF-7
    r1 = raw_session(srv)
    assert r1.cmd("h", 'LIST "" "Entw*"')[0] == b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n'
    # literal8 APPEND
    msg = message("eight").encode()
    lines = r.cmd("i", b"APPEND INBOX ~{%d+}\r\n%s" % (len(msg), msg))
    assert lines[-1].startswith(b"i OK [APPENDUID ")
