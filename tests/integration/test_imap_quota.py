"""QUOTA (RFC 9208) with RES-STORAGE and RES-MESSAGE: limits from the
account database at the moment of the command (`postern user quota`),
usage from the store; SETQUOTA refused; STATUS DELETED-STORAGE; the
message limit enforced on APPEND and COPY; the old account records (no
message limit) still read."""

import re

import pytest

from imap_helpers import USER, deliver, imap, make_account, message, raw_session


@pytest.fixture
def srv(server):
    make_account(server)
    deliver(server, USER, message("one", body="x" * 3000 + "\r\n"))
    deliver(server, USER, message("two"))
    return server


def test_capabilities_and_no_limit(srv):
    r = raw_session(srv)
    caps = r.cmd("c", "CAPABILITY")[0].split()
    for cap in (b"QUOTA", b"QUOTA=RES-STORAGE", b"QUOTA=RES-MESSAGE"):
        assert cap in caps
    assert b"QUOTASET" not in caps
    # no limit: no quota root
    assert r.cmd("a", "GETQUOTAROOT INBOX") == [b'* QUOTAROOT "INBOX"\r\n',
                                                b"a OK GETQUOTAROOT completed\r\n"]
    assert r.cmd("b", 'GETQUOTA ""') == [b"b NO [NONEXISTENT] No such quota root\r\n"]


def test_limits_from_the_account_database_now(srv):
    r = raw_session(srv)
    # set while the session is logged in: the next command sees it
    srv.cli("user", "quota", USER, "100K", "--messages", "3")
    lines = r.cmd("a", "GETQUOTAROOT Sent")
    assert lines[0] == b'* QUOTAROOT "Sent" ""\r\n'
    m = re.fullmatch(rb'\* QUOTA "" \(STORAGE (\d+) 100 MESSAGE 2 3\)\r\n', lines[1])
    assert m and 3 <= int(m.group(1)) <= 5, lines
    assert lines[2] == b"a OK GETQUOTAROOT completed\r\n"
    assert r.cmd("b", 'GETQUOTA ""')[1] == b"b OK GETQUOTA completed\r\n"
    assert r.cmd("c", 'GETQUOTA "other"') == [b"c NO [NONEXISTENT] No such quota root\r\n"]
    assert r.cmd("d", 'SETQUOTA "" (STORAGE 512)') == [
        b"d NO [NOPERM] Quotas are set by the administrator\r\n"]
    assert r.cmd("e", "SETQUOTA") == [b"e BAD Invalid arguments\r\n"]
    assert r.cmd("f", "GETQUOTAROOT Nope") == [b"f NO [NONEXISTENT] no such mailbox\r\n"]
    # only the storage limit: only STORAGE listed
    srv.cli("user", "quota", USER, "1M", "--messages", "0")
    assert re.fullmatch(rb'\* QUOTA "" \(STORAGE \d+ 1024\)\r\n', r.cmd("g", 'GETQUOTA ""')[0])
    # the list shows both limits
    out = srv.cli("user", "list").stdout
    assert re.search(r"alice@example.org\tenabled\tquota=1048576\tmessages=0", out), out


def test_message_limit_enforced(srv):
    srv.cli("user", "quota", USER, "0", "--messages", "3")
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", b"APPEND INBOX {5+}\r\nx: y\r\n")[-1].startswith(b"a OK [APPENDUID")
    assert r.cmd("b", b"APPEND INBOX {5+}\r\nx: z\r\n")[-1].startswith(b"b NO [OVERQUOTA]")
    assert r.cmd("c", "COPY 1 Sent")[-1].startswith(b"c NO [OVERQUOTA]")
    # a move counts nothing new
    assert r.cmd("d", "MOVE 1 Sent")[-1].startswith(b"d OK")
    assert r.cmd("e", 'GETQUOTA ""')[0] == b'* QUOTA "" (MESSAGE 3 3)\r\n'


def test_status_deleted_storage(srv):
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", "STATUS INBOX (DELETED DELETED-STORAGE)") == [
        b'* STATUS "INBOX" (DELETED 0 DELETED-STORAGE 0)\r\n', b"a OK STATUS completed\r\n"]
    r.cmd("b", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    lines = r.cmd("c", "STATUS INBOX (DELETED DELETED-STORAGE)")
    m = re.fullmatch(rb'\* STATUS "INBOX" \(DELETED 1 DELETED-STORAGE (\d+)\)\r\n', lines[0])
    assert m and int(m.group(1)) in (3, 4), lines


def test_imaplib_getquotaroot(srv):
    srv.cli("user", "quota", USER, "2M")
    m = imap(srv)
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK"
    assert data[0] == [b'"INBOX" ""'] and re.match(rb'"" \(STORAGE \d+ 2048\)', data[1][0])
    typ, data = m.setquota('""', "(STORAGE 1)")
    assert typ == "NO" and data[0].startswith(b"[NOPERM]")
    m.logout()
