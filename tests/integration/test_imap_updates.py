"""IMAP untagged updates: \\Recent for mail that arrives after SELECT
(RFC 3501 2.3.2: only in the first session that learns of it), and the
EXISTS/RECENT/FETCH/EXPUNGE updates sent at the end of every command in
the selected state, never EXPUNGE during FETCH, STORE or SEARCH
(RFC 3501 7.4.1, RFC 9051 7.5.1)."""

import pytest

from imap_helpers import USER, deliver, imap, make_account, message, raw_session


@pytest.fixture
def srv(server):
    make_account(server)
    return server


def fill(srv, n, start=0):
    for i in range(start, start + n):
        deliver(srv, USER, message("m%d" % i))


def untagged(lines):
    return [line for line in lines if line.startswith(b"* ")]


def test_new_arrival_is_recent_in_the_selected_session(srv):
    fill(srv, 1)
    r = raw_session(srv, "INBOX")
    fill(srv, 1, 1)
    assert r.cmd("a", "NOOP") == [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n", b"a OK NOOP completed\r\n"]
    assert r.cmd("b", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS (\\Recent))\r\n",
                                           b"b OK FETCH completed\r\n"]
    assert r.cmd("c", "SEARCH RECENT") == [b"* SEARCH 1 2\r\n", b"c OK SEARCH completed\r\n"]
    assert r.cmd("d", "SEARCH NEW") == [b"* SEARCH 1 2\r\n", b"d OK SEARCH completed\r\n"]
    # a second session selecting now finds nothing recent left
    r2 = raw_session(srv)
    assert b"* 0 RECENT\r\n" in r2.cmd("s", "SELECT INBOX")
    assert r2.cmd("e", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS ())\r\n",
                                            b"e OK FETCH completed\r\n"]


def test_recent_goes_to_the_first_session_that_learns_of_it(srv):
    fill(srv, 1)
    r1 = raw_session(srv, "INBOX")
    r2 = raw_session(srv, "INBOX")
    ex = raw_session(srv)
    ex.cmd("x", "EXAMINE INBOX")
    fill(srv, 1, 1)
    # a read-only view learns of it first but takes nothing
    assert ex.cmd("a", "NOOP") == [b"* 2 EXISTS\r\n", b"* 0 RECENT\r\n",
                                   b"a OK NOOP completed\r\n"]
    assert r2.cmd("b", "NOOP") == [b"* 2 EXISTS\r\n", b"* 1 RECENT\r\n",
                                   b"b OK NOOP completed\r\n"]
    assert r1.cmd("c", "NOOP") == [b"* 2 EXISTS\r\n", b"* 1 RECENT\r\n",
                                   b"c OK NOOP completed\r\n"]
    assert r1.cmd("d", "FETCH 1:2 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))\r\n",
                                              b"* 2 FETCH (FLAGS ())\r\n",
                                              b"d OK FETCH completed\r\n"]
    assert r2.cmd("e", "UID SEARCH RECENT") == [b"* SEARCH 2\r\n",
                                                b"e OK UID SEARCH completed\r\n"]


def test_append_by_another_session_is_recent_here(srv):
    r1 = raw_session(srv, "INBOX")
    r2 = raw_session(srv)
    msg = message("appended").encode()
    r2.send(b"p APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg), msg))
    assert r2.until_tagged("p")[-1].startswith(b"p OK [APPENDUID ")
    # 1:* meant what the session knew: nothing; the news follow the reply
    assert r1.cmd("a", "UID FETCH 1:* FLAGS") == [
        b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n", b"a OK UID FETCH completed\r\n"]
    assert r1.cmd("b", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))\r\n",
                                            b"b OK FETCH completed\r\n"]


def test_no_recent_under_imap4rev2(srv):
    r = raw_session(srv)
    r.cmd("e", "ENABLE IMAP4rev2")
    r.cmd("s", "SELECT INBOX")
    fill(srv, 1)
    assert r.cmd("a", "NOOP") == [b"* 1 EXISTS\r\n", b"a OK NOOP completed\r\n"]
    assert r.cmd("b", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())\r\n",
                                           b"b OK FETCH completed\r\n"]
    # the rev2 session, which cannot show \Recent, left it to a rev1 one
    r1 = raw_session(srv)
    assert b"* 1 RECENT\r\n" in r1.cmd("s", "SELECT INBOX")
    assert r1.cmd("c", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))\r\n",
                                            b"c OK FETCH completed\r\n"]
    # and one delivered while a rev2 session selects it too
    r2 = raw_session(srv)
    r2.cmd("e", "ENABLE IMAP4rev2")
    fill(srv, 1, 1)
    assert r2.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
    assert r1.cmd("d", "NOOP") == [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n",
                                   b"d OK NOOP completed\r\n"]


def other_changes(srv, r2):
    """Flags message 1, expunges message 3 and delivers a fourth."""
    assert r2.cmd("f", "STORE 1 +FLAGS.SILENT (\\Flagged)")[-1].startswith(b"f OK")
    assert r2.cmd("d", "STORE 3 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"d OK")
    assert r2.cmd("x", "EXPUNGE")[-1].startswith(b"x OK")
    fill(srv, 1, 10)


@pytest.mark.parametrize("command", ["FETCH 1 UID", "STORE 2 +FLAGS.SILENT (\\Seen)",
                                     "SEARCH ALL"])
def test_no_expunge_during_fetch_store_search(srv, command):
    fill(srv, 3)
    r1 = raw_session(srv, "INBOX")
    r2 = raw_session(srv, "INBOX")
    other_changes(srv, r2)
    lines = r1.cmd("a", command)
    assert lines[-1].startswith(b"a OK")
    # new mail and flags are told, the expunge is held back
    assert b"* 4 EXISTS\r\n" in lines
    assert b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n" in lines
    assert not any(b"EXPUNGE" in line for line in lines), lines
    # sequence numbers did not move: 3 is still there (gone from the index)
    assert r1.cmd("b", "FETCH 4 UID") == [b"* 4 FETCH (UID 4)\r\n", b"b OK FETCH completed\r\n"]
    assert r1.cmd("c", "SEARCH ALL")[0] == b"* SEARCH 1 2 4\r\n"
    # a UID command may tell it
    lines = r1.cmd("d", "UID FETCH 4 UID")
    assert lines == [b"* 4 FETCH (UID 4)\r\n", b"* 3 EXPUNGE\r\n",
                     b"d OK UID FETCH completed\r\n"], lines
    assert r1.cmd("e", "FETCH 3 UID") == [b"* 3 FETCH (UID 4)\r\n", b"e OK FETCH completed\r\n"]


@pytest.mark.parametrize("command", ["UID FETCH 1 UID", "UID STORE 2 +FLAGS.SILENT (\\Seen)",
                                     "UID SEARCH ALL", "STATUS Sent (MESSAGES)",
                                     "LIST \"\" Sent", "CHECK", "NOOP", "CAPABILITY",
                                     "NAMESPACE", "SUBSCRIBE Sent", "COPY 1 Sent"])
def test_updates_after_other_commands(srv, command):
    fill(srv, 3)
    r1 = raw_session(srv, "INBOX")
    r2 = raw_session(srv, "INBOX")
    other_changes(srv, r2)
    lines = r1.cmd("a", command)
    assert lines[-1].startswith(b"a OK"), lines
    tail = untagged(lines)[-4:]
    assert tail == [b"* 3 EXPUNGE\r\n", b"* 3 EXISTS\r\n", b"* 3 RECENT\r\n",
                    b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n"], lines


def test_updates_after_qresync_vanished_only_for_uid_commands(srv):
    fill(srv, 3)
    r1 = raw_session(srv)
    r1.cmd("e", "ENABLE QRESYNC")
    r1.cmd("s", "SELECT INBOX")
    r2 = raw_session(srv, "INBOX")
    other_changes(srv, r2)
    lines = r1.cmd("a", "FETCH 1 FLAGS")
    assert not any(b"VANISHED" in line for line in lines), lines
    assert b"* 4 EXISTS\r\n" in lines
    lines = r1.cmd("b", "UID SEARCH ALL")
    assert b"* VANISHED 3\r\n" in lines, lines


def test_imaplib_learns_after_uid_fetch_and_append(srv):
    fill(srv, 2)
    m1 = imap(srv)
    m2 = imap(srv)
    m1.select("INBOX")
    m2.select("INBOX")
    for what in ("EXISTS", "RECENT"):
        m1.response(what)   # drop what SELECT said
    m2.append("INBOX", None, None, message("third").encode())
    m2.store("1", "+FLAGS", "\\Answered")
    typ, data = m1.uid("FETCH", "1", "(UID)")
    assert typ == "OK"
    assert m1.response("EXISTS")[1] == [b"3"]
    # m2 learnt of its own append first: \\Recent there
    assert m1.response("RECENT")[1] == [b"2"]
    # imaplib hands the unsolicited FETCH back with the command's data
    assert b"1 (UID 1 FLAGS (\\Answered \\Recent))" in data, data
    m1.append("Sent", None, None, message("sent").encode())
    m2.append("INBOX", None, None, message("fourth").encode())
    typ, _ = m1.status("Sent", "(MESSAGES)")
    assert typ == "OK"
    assert m1.response("EXISTS")[1] == [b"4"]
    m2.store("4", "+FLAGS", "\\Deleted")
    m2.expunge()
    m1.uid("SEARCH", "ALL")
    assert m1.response("EXPUNGE")[1] == [b"4"]
    m1.logout()
    m2.logout()


def test_nothing_between_commands(srv):
    """No command in progress: nothing is sent (IDLE aside)."""
    fill(srv, 1)
    r1 = raw_session(srv, "INBOX")
    r1.sock.settimeout(1.0)
    fill(srv, 1, 1)
    try:
        data = r1.sock.recv(100)
    except OSError:
        data = b""
    assert data == b""
    r1.sock.settimeout(10)
    assert r1.cmd("a", "NOOP")[0] == b"* 2 EXISTS\r\n"


def test_login_then_select_sees_recent_of_its_own_append(srv):
    r = raw_session(srv, "INBOX")
    msg = message("mine").encode()
    lines = r.cmd("p", b"APPEND INBOX {%d+}\r\n%s" % (len(msg), msg))
    assert lines[:2] == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n"], lines
    assert r.cmd("a", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))\r\n",
                                           b"a OK FETCH completed\r\n"]
