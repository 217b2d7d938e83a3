"""CATENATE (RFC 4469): TEXT parts and URL parts naming messages and
sections of this account, [BADURL] and [TOOBIG]; UTF8=ACCEPT (RFC 6855):
ENABLE, UTF-8 mailbox names in quoted strings, UTF8 (~{n}) APPEND data,
SEARCH on UTF-8 text."""

import re

import pytest

from imap_helpers import USER, deliver, drop, make_account, raw_session

MULTI = (b"From: a@example.net\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
         b"--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
         b"--b\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n--b--\r\n")


@pytest.fixture
def srv(server):
    make_account(server)
    # byte for byte, as CATENATE's results are compared with it
    drop(server, USER, MULTI)
    return server


def uidvalidity(r, box="INBOX"):
    line = r.cmd("u", "STATUS %s (UIDVALIDITY)" % box)[0]
    return int(re.search(rb"UIDVALIDITY (\d+)", line).group(1))


def body_of(r, uid):
    lines = r.cmd("x", "UID FETCH %d BODY.PEEK[]" % uid)
    return lines[0].split(b"}\r\n", 1)[1][:-3]


def test_catenate_text_and_urls(srv):
    r = raw_session(srv, "INBOX")
    caps = r.cmd("c", "CAPABILITY")[0].split()
    assert b"CATENATE" in caps
    v = uidvalidity(r)
    header = b"From: me@example.org\r\nSubject: forward\r\n\r\n"
    cmd = (b"APPEND Sent CATENATE (TEXT {%d+}\r\n%s URL \"/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=1\""
           b" TEXT {2+}\r\n-- URL \"imap://%s/INBOX/;UID=1/;SECTION=2\""
           b" URL \"/INBOX/;UID=1/;SECTION=1/;PARTIAL=0.5\")"
           % (len(header), header, v, b"mail.test.example"))
    lines = r.cmd("a", cmd)
    m = re.fullmatch(rb"a OK \[APPENDUID (\d+) (\d+)\] APPEND completed\r\n", lines[-1])
    assert m, lines
    r.cmd("s", "SELECT Sent")
    assert body_of(r, int(m.group(2))) == header + b"first part" + b"--" + b"second part" + b"first"
    # a whole message, relative to the selected mailbox, with MULTIAPPEND
    r.cmd("t", "SELECT INBOX")
    lines = r.cmd("b", b'APPEND Sent CATENATE (URL ";UID=1") (\\Seen) CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER")')
    assert lines[-1].startswith(b"b OK [APPENDUID"), lines
    uids = re.search(rb"APPENDUID \d+ (\d+):(\d+)", lines[-1]).groups()
    r.cmd("s2", "SELECT Sent")
    assert body_of(r, int(uids[0])) == MULTI
    assert body_of(r, int(uids[1])) == MULTI.split(b"\r\n\r\n")[0] + b"\r\n\r\n"


def test_catenate_errors(srv):
    r = raw_session(srv, "INBOX")
    v = uidvalidity(r)
    for url in ("/INBOX;UIDVALIDITY=%d/;UID=99" % v, "/INBOX;UIDVALIDITY=%d/;UID=1" % (v + 1),
                "/Nope/;UID=1", "imap://other.example/INBOX/;UID=1", "/INBOX/;UID=1/;SECTION=7",
                "http://x/"):
        lines = r.cmd("a", 'APPEND Sent CATENATE (TEXT {1+}\r\nx URL "%s")' % url)
        assert lines == [b"a NO [BADURL %s] CATENATE cannot use that URL\r\n" % url.encode()], lines
    assert r.cmd("b", "APPEND Sent CATENATE (TEXT)") == [b"b BAD Invalid APPEND arguments\r\n"]
    assert r.cmd("c", "APPEND Sent CATENATE ()") == [b"c BAD Invalid APPEND arguments\r\n"]
    # nothing was stored by the failures, nor by a failed MULTIAPPEND
    lines = r.cmd("d", 'APPEND Sent {1+}\r\nx CATENATE (URL "/INBOX/;UID=5")')
    assert lines[-1].startswith(b"d NO [BADURL")
    assert r.cmd("e", "STATUS Sent (MESSAGES)")[0] == b'* STATUS "Sent" (MESSAGES 0)\r\n'


def test_catenate_toobig(server_factory):
    srv = server_factory(sections={"smtp": {"max_message_size": "500"}})
    make_account(srv)
    deliver(srv, USER, MULTI)
    r = raw_session(srv, "INBOX")
    url = b'URL "/INBOX/;UID=1"'
    lines = r.cmd("a", b"APPEND Sent CATENATE (%s %s %s)" % (url, url, url))
    assert lines == [b"a NO [TOOBIG] The message would be over 500 octets\r\n"], lines


def test_utf8_accept(srv):
    r = raw_session(srv)
    assert b"UTF8=ACCEPT" in r.cmd("c", "CAPABILITY")[0].split()
    # before ENABLE: modified UTF-7 names, no UTF8 APPEND data
    assert r.cmd("a", "CREATE Entw&APw-rfe")[-1].startswith(b"a OK")
    assert r.cmd("b", b"APPEND INBOX UTF8 (~{5+}\r\nx: y\n)") == [
        b"b BAD UTF8 APPEND data needs ENABLE UTF8=ACCEPT\r\n"]
    assert r.cmd("e", "ENABLE UTF8=ACCEPT") == [b"* ENABLED UTF8=ACCEPT\r\n",
                                                b"e OK ENABLE completed\r\n"]
    assert r.cmd("e2", "ENABLE UTF8=ACCEPT") == [b"* ENABLED\r\n", b"e2 OK ENABLE completed\r\n"]
    assert r.cmd("l", 'LIST "" "Entw*"') == [
        b'* LIST (\\HasNoChildren) "/" "Entw\xc3\xbcrfe"\r\n', b"l OK LIST completed\r\n"]
    assert r.cmd("f", '''CREATE "\u65e5\u672c"'''.encode())[-1].startswith(b"f OK")
    assert r.cmd("g", b'STATUS "\xe6\x97\xa5\xe6\x9c\xac" (MESSAGES)') == [
        b'* STATUS "\xe6\x97\xa5\xe6\x9c\xac" (MESSAGES 0)\r\n', b"g OK STATUS completed\r\n"]
    # invalid UTF-8 is not a name
    assert r.cmd("h", b'CREATE "bad\xc3("')[-1] == b"h NO [CANNOT] Invalid mailbox name\r\n"
    msg = "From: J\u00f6rg <j@example.net>\r\nSubject: Gr\u00fc\u00dfe aus K\u00f6ln\r\n\r\nHall\u00f6\r\n".encode()
    lines = r.cmd("i", b'APPEND "\xe6\x97\xa5\xe6\x9c\xac" UTF8 (~{%d+}\r\n%s)' % (len(msg), msg))
    assert lines[-1].startswith(b"i OK [APPENDUID"), lines
    r.cmd("s", b'SELECT "\xe6\x97\xa5\xe6\x9c\xac"')
    assert r.cmd("j", "SEARCH SUBJECT \"K\u00f6ln\"".encode()) == [
        b"* SEARCH 1\r\n", b"j OK SEARCH completed\r\n"]
    lines = r.cmd("k", "FETCH 1 (ENVELOPE BODY.PEEK[])")
    assert "Gr\u00fc\u00dfe aus K\u00f6ln".encode() in lines[0] and msg in lines[0]
