"""IMAP changes: STORE (+/-, .SILENT, keywords), EXPUNGE, UID EXPUNGE,
COPY/MOVE with COPYUID, APPEND (flags, date, MULTIAPPEND, literals
streamed, APPENDUID, TRYCREATE, OVERQUOTA), and what a second session on
the same mailbox is told."""

import imaplib
import re
import time

import pytest

from imap_helpers import raw_session, PASSWORD, USER, Raw, deliver, imap, imaps, login_raw, make_account, message


@pytest.fixture
def srv(server):
    make_account(server)
    return server


def fill(srv, n):
    for i in range(n):
        deliver(srv, USER, message("m%d" % i))


def test_store_flags_and_keywords(srv):
    fill(srv, 3)
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", "STORE 1 +FLAGS (\\Seen \\Flagged)") == [
        b"* 1 FETCH (FLAGS (\\Seen \\Flagged \\Recent))\r\n", b"a OK STORE completed\r\n"]
    assert r.cmd("b", "STORE 1 -FLAGS \\Seen") == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n", b"b OK STORE completed\r\n"]
    assert r.cmd("c", "UID STORE 2:3 FLAGS.SILENT (\\Answered $Forwarded)") == [
        b"c OK UID STORE completed\r\n"]
    assert r.cmd("d", "UID FETCH 2:3 FLAGS") == [
        b"* 2 FETCH (UID 2 FLAGS (\\Answered $Forwarded \\Recent))\r\n",
        b"* 3 FETCH (UID 3 FLAGS (\\Answered $Forwarded \\Recent))\r\n",
        b"d OK UID FETCH completed\r\n"]
    assert r.cmd("e", "UID STORE 3 FLAGS ()") == [
        b"* 3 FETCH (UID 3 FLAGS (\\Recent))\r\n", b"e OK UID STORE completed\r\n"]
    assert r.cmd("f", "STORE 1 +FLAGS (\\Recent)") == [b"f BAD Invalid flag\r\n"]
    assert r.cmd("g", "STORE 1 +FLAGS (\\Bogus)") == [b"g BAD Invalid flag\r\n"]
    assert r.cmd("h", "STORE 1 XFLAGS (\\Seen)") == [b"h BAD Invalid STORE item\r\n"]
    assert r.cmd("i", "STORE 9 +FLAGS (\\Seen)") == [b"i BAD Invalid message sequence number\r\n"]
    lines = r.cmd("j", "SELECT INBOX")
    assert lines[1].startswith(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)")
    r2 = Raw(srv.port("imap"))
    login_raw(r2)
    r2.cmd("x", "EXAMINE INBOX")
    assert r2.cmd("k", "STORE 1 +FLAGS (\\Seen)") == [
        b"k NO [CANNOT] Mailbox is read-only\r\n"]


def test_expunge_and_uid_expunge(srv):
    fill(srv, 5)
    r = raw_session(srv, "INBOX")
    r.cmd("a", "STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    assert r.cmd("b", "EXPUNGE") == [b"* 2 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n",
                                     b"b OK EXPUNGE completed\r\n"]
    assert r.cmd("c", "FETCH 1:* UID") == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 3)\r\n",
                                           b"* 3 FETCH (UID 5)\r\n", b"c OK FETCH completed\r\n"]
    r.cmd("d", "STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    # UID EXPUNGE takes only the named UIDs
    assert r.cmd("e", "UID EXPUNGE 3:4") == [b"* 2 EXPUNGE\r\n",
                                             b"e OK UID EXPUNGE completed\r\n"]
    assert r.cmd("f", "UID FETCH 1:* UID") == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 5)\r\n",
                                               b"f OK UID FETCH completed\r\n"]
    # CLOSE expunges silently
    assert r.cmd("g", "CLOSE") == [b"g OK CLOSE completed\r\n"]
    assert r.cmd("h", "STATUS INBOX (MESSAGES)")[0] == b'* STATUS "INBOX" (MESSAGES 0)\r\n'


def test_copy_and_move_with_copyuid(srv):
    fill(srv, 4)
    r = raw_session(srv, "INBOX")
    lines = r.cmd("a", "COPY 1:2 Archive")
    m = re.match(rb"a OK \[COPYUID (\d+) 1:2 1:2\] COPY completed\r\n", lines[-1])
    assert m, lines
    assert r.cmd("b", "COPY 1 Nowhere") == [b"b NO [TRYCREATE] Mailbox does not exist\r\n"]
    lines = r.cmd("c", "UID MOVE 3:4 Archive")
    assert re.match(rb"\* OK \[COPYUID \d+ 3:4 3:4\] Moved\r\n", lines[0]), lines
    assert lines[1:] == [b"* 3 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n", b"c OK UID MOVE completed\r\n"]
    lines = r.cmd("d", "MOVE 1 Trash")
    assert lines[1:] == [b"* 1 EXPUNGE\r\n", b"d OK MOVE completed\r\n"]
    assert r.cmd("e", "STATUS Archive (MESSAGES)")[0] == b'* STATUS "Archive" (MESSAGES 4)\r\n'
    assert r.cmd("f", "COPY 5 Archive") == [b"f BAD Invalid message sequence number\r\n"]
    m = imap(srv)
    m.select("Archive")
    assert m.search(None, "ALL")[0] == "OK" if False else True
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects = [d[1] for d in data if isinstance(d, tuple)]
    assert subjects == [b"Subject: m%d\r\n\r\n" % i for i in range(4)]
    m.logout()


def test_append_literals_flags_date_and_appenduid(srv):
    r = Raw(srv.port("imap"))
    login_raw(r)
    msg = message("appended").encode()
    r.send(b'a APPEND Drafts (\\Draft \\Seen $Label) "05-Mar-2024 10:20:30 +0200" {%d}\r\n'
           % len(msg))
    assert r.line() == b"+ OK\r\n"
    r.send(msg + b"\r\n")
    line = r.line()
    m = re.match(rb"a OK \[APPENDUID (\d+) 1\] APPEND completed\r\n", line)
    assert m, line
    r.cmd("s", "SELECT Drafts")
    assert r.cmd("b", "FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)")[0] == (
        b'* 1 FETCH (FLAGS (\\Seen \\Draft $Label \\Recent) INTERNALDATE '
        b'"05-Mar-2024 08:20:30 +0000" RFC822.SIZE %d)\r\n' % len(msg))
    assert r.cmd("c", "FETCH 1 BODY.PEEK[]")[0] == b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\n" % (
        len(msg), msg)
    # non-synchronising, MULTIAPPEND, LF-only
    m1, m2 = b"Subject: one\n\nbody one\n", b"Subject: two\r\n\r\nbody two\r\n"
    lines = r.cmd("d", b"APPEND Drafts {%d+}\r\n%s (\\Flagged) {%d+}\r\n%s" % (
        len(m1), m1, len(m2), m2))
    assert lines[:1] == [b"* 3 EXISTS\r\n"]
    assert re.match(rb"d OK \[APPENDUID \d+ 2:3\] APPEND completed\r\n", lines[-1]), lines
    assert r.cmd("e", "FETCH 2 (RFC822.SIZE BODY.PEEK[])")[0] == \
        b"* 2 FETCH (RFC822.SIZE 26 BODY[] {26}\r\nSubject: one\r\n\r\nbody one\r\n)\r\n"
    assert r.cmd("f", "APPEND Nowhere {3+}\r\nabc") == \
        [b"f NO [TRYCREATE] Mailbox does not exist\r\n"]
    assert r.cmd("g", 'APPEND Drafts "bad date" {3+}\r\nabc') == \
        [b"g BAD Invalid APPEND arguments\r\n"]
    assert r.cmd("h", "APPEND Drafts (\\Recent) {3+}\r\nabc") == \
        [b"h BAD Invalid APPEND arguments\r\n"]
    assert r.cmd("i", "NOOP") == [b"i OK NOOP completed\r\n"]


def test_append_too_big_and_large_streamed(server_factory):
    srv = server_factory(sections={"smtp": {"max_message_size": "3M"}})
    make_account(srv)
    r = Raw(srv.port("imap"))
    caps = login_raw(r)[-1]
    limit = int(re.search(rb"APPENDLIMIT=(\d+)", caps).group(1))
    r.send(b"a APPEND INBOX {%d}\r\n" % (limit + 1))
    assert r.line() == b"a BAD [TOOBIG] Literal too big\r\n"
    big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 2500   # 2.5 MB, more than
    lines = r.cmd("b", b"APPEND INBOX {%d+}\r\n%s" % (len(big), big))  # the 1 MiB literal cap
    assert lines[-1].startswith(b"b OK [APPENDUID "), lines
    m = imap(srv)
    m.select("INBOX")
    assert m.fetch("1", "(BODY.PEEK[])")[1][0][1] == big
    m.logout()


def test_append_over_quota(srv):
    srv.cli("user", "quota", USER, "2K")
    m = imap(srv)
    typ, data = m.append("INBOX", None, None, message("small").encode())
    assert typ == "OK"
    typ, data = m.append("INBOX", None, None, message("large", body="z" * 5000 + "\r\n").encode())
    assert (typ, data) == ("NO", [b"[OVERQUOTA] mailbox is full"])
    assert m.status("INBOX", "(MESSAGES)")[1] == [b'"INBOX" (MESSAGES 1)']
    m.logout()


def test_imaplib_append_store_copy_expunge(srv):
    m = imaps(srv)
    m.login(USER, PASSWORD)
    assert m.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(time.time()),
                    message("x").encode())[0] == "OK"
    m.select("INBOX")
    assert m.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
    assert m.copy("1", "Archive")[0] == "OK"
    assert m.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    typ, data = m.expunge()
    assert data == [b"1"]
    assert m.select("Archive")[1] == [b"1"]
    m.logout()


def test_second_session_sees_flags_expunge_and_append(srv):
    fill(srv, 3)
    a = raw_session(srv, "INBOX")
    b = raw_session(srv, "INBOX")
    b.cmd("x", "STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert a.cmd("n1", "NOOP") == [b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent))\r\n",
                                   b"n1 OK NOOP completed\r\n"]
    b.cmd("y", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd("z", "EXPUNGE")
    # no EXPUNGE during FETCH/STORE by sequence number (RFC 3501 7.4.1)
    # (the message is gone from the index: nothing to say about it)
    assert a.cmd("f", "FETCH 1:2 UID") == [b"* 2 FETCH (UID 2)\r\n", b"f OK FETCH completed\r\n"]
    assert a.cmd("n2", "NOOP") == [b"* 1 EXPUNGE\r\n", b"n2 OK NOOP completed\r\n"]
    msg = message("from b").encode()
    b.cmd("w", b"APPEND INBOX {%d+}\r\n%s" % (len(msg), msg))
    a.send(b"i IDLE\r\n")
    assert a.line() == b"+ idling\r\n"
    b.cmd("v", "STORE 1 +FLAGS.SILENT (\\Seen)")
    a.sock.settimeout(5)
    got = [a.line(), a.line(), a.line()]
    assert b"* 3 EXISTS\r\n" in got
    assert any(line.startswith(b"* 1 FETCH (UID 2 FLAGS (\\Seen \\Flagged") for line in got), got
    a.send(b"DONE\r\n")
    assert a.until_tagged("i")[-1] == b"i OK IDLE terminated\r\n"
