"""OBJECTID (RFC 8474) and SAVEDATE (RFC 8514), byte by byte with a raw
client, and with imaplib."""

import re
import time

import pytest

from imap_helpers import USER, deliver, imap, make_account, message, raw_session

OBJECTID = rb"[A-Za-z0-9_-]{1,255}"


@pytest.fixture
def srv(server):
    make_account(server)
    deliver(server, USER, message("first"))
    deliver(server, USER, message("second"))
    return server


def ids(line, name):
    return re.search(rb"%s \((%s)\)" % (name.encode(), OBJECTID), line).group(1)


def test_capabilities(srv):
    r = raw_session(srv)
    caps = r.cmd("c", "CAPABILITY")[0].split()
    assert b"OBJECTID" in caps and b"SAVEDATE" in caps


def test_mailboxid_create_select_status_rename(srv):
    r = raw_session(srv)
    created = r.cmd("a", "CREATE Projects")
    m = re.fullmatch(rb"a OK \[MAILBOXID \((%s)\)\] CREATE completed\r\n" % OBJECTID, created[-1])
    assert m, created
    mailboxid = m.group(1)
    assert r.cmd("b", "STATUS Projects (MAILBOXID MESSAGES)") == [
        b"* STATUS \"Projects\" (MAILBOXID (" + mailboxid + b") MESSAGES 0)\r\n",
        b"b OK STATUS completed\r\n"]
    lines = r.cmd("c", "EXAMINE Projects")
    assert b"* OK [MAILBOXID (" + mailboxid + b")] Ok\r\n" in lines
    # a rename keeps it (RFC 8474 4)
    assert r.cmd("d", "RENAME Projects Work")[-1] == b"d OK RENAME completed\r\n"
    assert ids(r.cmd("e", "STATUS Work (MAILBOXID)")[0], "MAILBOXID") == mailboxid
    # other mailboxes have other ids; a recreated name gets a new one
    inbox = ids(r.cmd("f", "STATUS INBOX (MAILBOXID)")[0], "MAILBOXID")
    assert inbox != mailboxid
    assert r.cmd("g", "DELETE Work")[-1] == b"g OK DELETE completed\r\n"
    again = ids(r.cmd("h", "CREATE Work")[-1], "MAILBOXID")
    assert again not in (mailboxid, inbox)


def test_emailid_threadid_fetch_and_search(srv):
    deliver(srv, USER, "From: a@example.net\r\nSubject: Re: first\r\n"
            "Message-ID: <reply@example.net>\r\nIn-Reply-To: <first@example.net>\r\n"
            "References: <first@example.net>\r\n\r\nreply\r\n")
    r = raw_session(srv, "INBOX")
    lines = r.cmd("a", "FETCH 1:3 (EMAILID THREADID)")
    assert len(lines) == 4 and lines[-1] == b"a OK FETCH completed\r\n"
    for line in lines[:3]:
        assert re.fullmatch(rb"\* \d FETCH \(EMAILID \(M[0-9a-f]{16}\) THREADID \(T[0-9a-f]{16}\)\)\r\n",
                            line), line
    email = [ids(line, "EMAILID") for line in lines[:3]]
    thread = [ids(line, "THREADID") for line in lines[:3]]
    assert len(set(email)) == 3
    # the reply is in the first message's thread, the second is alone
    assert thread[0] == thread[2] != thread[1]
    assert r.cmd("b", b"UID SEARCH EMAILID " + email[1]) == [
        b"* SEARCH 2\r\n", b"b OK UID SEARCH completed\r\n"]
    assert r.cmd("c", b"SEARCH THREADID " + thread[0]) == [
        b"* SEARCH 1 3\r\n", b"c OK SEARCH completed\r\n"]
    assert r.cmd("d", "SEARCH EMAILID Mnothing") == [b"* SEARCH\r\n", b"d OK SEARCH completed\r\n"]
    assert r.cmd("e", "SEARCH OR EMAILID x THREADID " + thread[1].decode()) == [
        b"* SEARCH 2\r\n", b"e OK SEARCH completed\r\n"]
    assert r.cmd("f", "SEARCH EMAILID ab.c") == [b"f BAD Invalid object id\r\n"]
    # a copy and a move keep the EMAILID (RFC 8474 5.1), the UIDs change
    assert r.cmd("g", "CREATE Keep")[-1].startswith(b"g OK")
    assert r.cmd("h", "COPY 1 Keep")[-1].startswith(b"h OK [COPYUID")
    assert r.cmd("i", "MOVE 2 Keep")[-1].startswith(b"i OK")
    r.cmd("j", "SELECT Keep")
    moved = r.cmd("k", "FETCH 1:2 (UID EMAILID THREADID)")
    assert [ids(line, "EMAILID") for line in moved[:2]] == [email[0], email[1]]
    assert [ids(line, "THREADID") for line in moved[:2]] == [thread[0], thread[1]]


def test_emailid_survives_restart_and_index_rebuild(srv):
    r = raw_session(srv, "INBOX")
    before = r.cmd("a", "FETCH 1:2 (EMAILID THREADID)")[:2]
    mailboxid = ids(r.cmd("b", "STATUS INBOX (MAILBOXID)")[0], "MAILBOXID")
    r.close()
    srv.stop()
    import glob
    import os
    for path in glob.glob(os.path.join(srv.maildir(USER), "postern-index.lmdb*")):
        os.unlink(path)
    srv.start()
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", "FETCH 1:2 (EMAILID THREADID)")[:2] == before
    assert ids(r.cmd("b", "STATUS INBOX (MAILBOXID)")[0], "MAILBOXID") == mailboxid


def test_savedate(srv):
    r = raw_session(srv, "INBOX")
    today = time.strftime("%d-%b-%Y", time.gmtime())
    # APPEND with an old INTERNALDATE: saved today all the same
    lines = r.cmd("a", b'APPEND INBOX "01-Jan-2001 10:00:00 +0000" {21+}\r\nSubject: old\r\n\r\nold\r\n')
    assert lines[-1].startswith(b"a OK [APPENDUID")
    lines = r.cmd("b", "FETCH 3 (INTERNALDATE SAVEDATE)")
    m = re.fullmatch(rb'\* 3 FETCH \(INTERNALDATE "01-Jan-2001 10:00:00 \+0000" '
                     rb'SAVEDATE "(\d\d-\w\w\w-\d{4}) \d\d:\d\d:\d\d \+0000"\)\r\n', lines[0])
    assert m and m.group(1).decode().lstrip("0") == today.lstrip("0"), lines
    assert r.cmd("c", "SEARCH SAVEDON " + today) == [b"* SEARCH 1 2 3\r\n",
                                                     b"c OK SEARCH completed\r\n"]
    assert r.cmd("d", "SEARCH SAVEDBEFORE " + today) == [b"* SEARCH\r\n",
                                                         b"d OK SEARCH completed\r\n"]
    assert r.cmd("e", "SEARCH SAVEDSINCE 1-Jan-2020 BEFORE 1-Jan-2002") == [
        b"* SEARCH 3\r\n", b"e OK SEARCH completed\r\n"]
    assert r.cmd("f", "SEARCH SAVEDATESUPPORTED") == [b"* SEARCH 1 2 3\r\n",
                                                      b"f OK SEARCH completed\r\n"]
    assert r.cmd("g", "SEARCH SAVEDON 32-Jan-2020") == [b"g BAD Invalid search date\r\n"]


def test_imaplib_fetch(srv):
    m = imap(srv)
    m.select("INBOX")
    typ, data = m.fetch("1", "(SAVEDATE EMAILID)")
    assert typ == "OK" and re.search(rb"SAVEDATE \"[^\"]+\" EMAILID \(M[0-9a-f]+\)", data[0])
    m.logout()
