"""METADATA and METADATA-SERVER (RFC 5464): server and mailbox entries,
private and shared, DEPTH and MAXSIZE, the size and count limits with
their response codes, RENAME and DELETE, persistence across a restart."""

import imaplib

import pytest

from imap_helpers import imap, make_account, raw_session


@pytest.fixture
def srv(server):
    make_account(server)
    return server


def test_capabilities(srv):
    caps = raw_session(srv).cmd("c", "CAPABILITY")[0].split()
    assert b"METADATA" in caps and b"METADATA-SERVER" in caps


def test_server_entries(srv):
    r = raw_session(srv)
    assert r.cmd("a", 'GETMETADATA "" /private/comment') == [
        b'* METADATA "" ("/private/comment" NIL)\r\n', b"a OK GETMETADATA completed\r\n"]
    assert r.cmd("b", 'SETMETADATA "" (/private/comment "My comment")') == [
        b"b OK SETMETADATA completed\r\n"]
    assert r.cmd("c", 'GETMETADATA "" /private/Comment') == [
        b'* METADATA "" ("/private/comment" "My comment")\r\n', b"c OK GETMETADATA completed\r\n"]
    assert r.cmd("d", 'SETMETADATA "" (/shared/admin "mailto:x@example.org")') == [
        b"d NO [NOPERM] Server entries under /shared are read-only\r\n"]
    # NIL deletes
    assert r.cmd("e", 'SETMETADATA "" (/private/comment NIL)')[-1] == b"e OK SETMETADATA completed\r\n"
    assert r.cmd("f", 'GETMETADATA "" /private/comment')[0] == \
        b'* METADATA "" ("/private/comment" NIL)\r\n'


def test_mailbox_entries_depth_maxsize(srv):
    r = raw_session(srv)
    assert r.cmd("a", b'SETMETADATA INBOX (/private/vendor/x/a "1" /private/vendor/x/b {3+}\r\n'
                      b'two /private/vendor/x/c/d "deep" /shared/comment "s")') == [
        b"a OK SETMETADATA completed\r\n"]
    assert r.cmd("b", "GETMETADATA (DEPTH 1) INBOX /private/vendor/x") == [
        b'* METADATA "INBOX" ("/private/vendor/x/a" "1" "/private/vendor/x/b" "two")\r\n',
        b"b OK GETMETADATA completed\r\n"]
    assert r.cmd("c", "GETMETADATA (DEPTH infinity) INBOX (/private/vendor /shared)") == [
        b'* METADATA "INBOX" ("/private/vendor/x/a" "1" "/private/vendor/x/b" "two" '
        b'"/private/vendor/x/c/d" "deep" "/shared/comment" "s")\r\n',
        b"c OK GETMETADATA completed\r\n"]
    assert r.cmd("d", "GETMETADATA (MAXSIZE 3 DEPTH infinity) INBOX /private/vendor") == [
        b'* METADATA "INBOX" ("/private/vendor/x/a" "1" "/private/vendor/x/b" "two")\r\n',
        b"d OK [METADATA LONGENTRIES 4] GETMETADATA completed\r\n"]
    # a value with a NUL comes back as a literal8
    assert r.cmd("e", b"SETMETADATA INBOX (/private/bin ~{3+}\r\na\x00b)")[-1] == \
        b"e OK SETMETADATA completed\r\n"
    assert r.cmd("f", "GETMETADATA INBOX /private/bin")[0] == \
        b'* METADATA "INBOX" ("/private/bin" ~{3}\r\na\x00b)\r\n'
    # RENAME keeps them, DELETE drops them with the mailbox
    r.cmd("g", "CREATE Box")
    r.cmd("h", 'SETMETADATA Box (/shared/comment "box")')
    assert r.cmd("i", "RENAME Box Box2")[-1] == b"i OK RENAME completed\r\n"
    assert r.cmd("j", "GETMETADATA Box2 /shared/comment")[0] == \
        b'* METADATA "Box2" ("/shared/comment" "box")\r\n'
    r.cmd("k", "DELETE Box2")
    r.cmd("l", "CREATE Box2")
    assert r.cmd("m", "GETMETADATA Box2 /shared/comment")[0] == \
        b'* METADATA "Box2" ("/shared/comment" NIL)\r\n'
    assert r.cmd("n", "GETMETADATA Nope /shared/comment") == [
        b"n NO [NONEXISTENT] no such mailbox\r\n"]


def test_errors_and_limits(srv):
    r = raw_session(srv)
    for bad in ("/other/x", "/private//x", "/private/x/", "/private/a*b", "private/x"):
        assert r.cmd("a", 'GETMETADATA "" "%s"' % bad) == [b"a BAD Invalid entry name\r\n"]
    assert r.cmd("b", 'SETMETADATA "" (/private "x")') == [b"b BAD Invalid entry name\r\n"]
    assert r.cmd("c", 'SETMETADATA "" (/private/x)') == [b"c BAD Invalid arguments\r\n"]
    assert r.cmd("d", 'GETMETADATA (DEPTH 2) "" /private/x') == [
        b"d BAD Invalid GETMETADATA options\r\n"]
    big = b"x" * (64 * 1024 + 1)
    assert r.cmd("e", b'SETMETADATA "" (/private/big {%d+}\r\n' % len(big) + big + b")") == [
        b"e NO [METADATA MAXSIZE 65536] Value too long\r\n"]
    # 256 entries per owner: the 257th is refused and nothing of that command kept
    for i in range(0, 256, 64):
        pairs = " ".join('/private/n%03d "v"' % j for j in range(i, i + 64))
        assert r.cmd("f", 'SETMETADATA INBOX (%s)' % pairs)[-1] == b"f OK SETMETADATA completed\r\n"
    assert r.cmd("g", 'SETMETADATA INBOX (/private/n000 "changed" /private/more "v")') == [
        b"g NO [METADATA TOOMANY] Too many entries\r\n"]
    assert r.cmd("h", "GETMETADATA INBOX /private/n000")[0] == \
        b'* METADATA "INBOX" ("/private/n000" "v")\r\n'
    # replacing and deleting within the limit is fine
    assert r.cmd("i", 'SETMETADATA INBOX (/private/n000 NIL /private/more "v")')[-1] == \
        b"i OK SETMETADATA completed\r\n"


def test_persists_and_imaplib(srv):
    r = raw_session(srv)
    r.cmd("a", 'SETMETADATA Sent (/private/comment "kept")')
    r.close()
    srv.stop()
    srv.start()
    imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))
    m = imap(srv)
    typ, data = m._simple_command("GETMETADATA", "Sent", "/private/comment")
    assert typ == "OK"
    assert m.untagged_responses.get("METADATA") == [b'"Sent" ("/private/comment" "kept")']
    m.logout()
