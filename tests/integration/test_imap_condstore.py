"""CONDSTORE and QRESYNC (RFC 7162): HIGHESTMODSEQ, FETCH MODSEQ and
CHANGEDSINCE, STORE UNCHANGEDSINCE with [MODIFIED], SEARCH MODSEQ, STATUS,
ENABLE, SELECT (QRESYNC ...) with VANISHED (EARLIER), VANISHED instead of
EXPUNGE."""

import re

import pytest

from imap_helpers import raw_session, USER, deliver, make_account, message


@pytest.fixture
def srv(server):
    make_account(server)
    for i in range(4):
        deliver(server, USER, message("m%d" % i))
    return server


def modseqs(lines):
    return [int(m.group(1)) for line in lines for m in [re.search(rb"MODSEQ \((\d+)\)", line)] if m]


def test_condstore_fetch_store_search(srv):
    r = raw_session(srv)
    lines = r.cmd("a", "SELECT INBOX (CONDSTORE)")
    hms = [line for line in lines if line.startswith(b"* OK [HIGHESTMODSEQ ")]
    assert len(hms) == 1
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", hms[0]).group(1))
    lines = r.cmd("b", "FETCH 1:* (UID MODSEQ)")
    assert len(modseqs(lines)) == 4 and max(modseqs(lines)) == highest
    lines = r.cmd("c", "STORE 2 +FLAGS (\\Flagged)")
    assert re.match(rb"\* 2 FETCH \(FLAGS \(\\Flagged \\Recent\) MODSEQ \((\d+)\)\)\r\n", lines[0])
    new = modseqs(lines)[0]
    assert new > highest
    # only what changed since
    assert r.cmd("d", "FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % highest) == [
        b"* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n" % new,
        b"d OK FETCH completed\r\n"]
    assert r.cmd("e", "SEARCH MODSEQ %d" % new) == [
        b"* SEARCH 2 (MODSEQ %d)\r\n" % new, b"e OK SEARCH completed\r\n"]
    assert r.cmd("f", 'SEARCH MODSEQ "/flags/\\\\flagged" all %d' % new)[0] == \
        b"* SEARCH 2 (MODSEQ %d)\r\n" % new
    # UNCHANGEDSINCE: message 2 changed after `highest`, so it is left alone
    lines = r.cmd("g", "STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % highest)
    assert lines[-1] == b"g OK [MODIFIED 2] Conditional STORE failed\r\n"
    assert re.match(rb"\* 1 FETCH \(FLAGS \(\\Seen \\Recent\) MODSEQ \(\d+\)\)", lines[0])
    lines = r.cmd("h", "UID STORE 3 (UNCHANGEDSINCE 1) +FLAGS.SILENT (\\Seen)")
    assert lines == [b"h OK [MODIFIED 3] Conditional UID STORE failed\r\n"]
    assert r.cmd("i", "STATUS INBOX (HIGHESTMODSEQ)")[0].startswith(
        b'* STATUS "INBOX" (HIGHESTMODSEQ ')
    assert r.cmd("j", "STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)") == \
        [b"j BAD Invalid STORE modifier\r\n"]


def test_enable(srv):
    r = raw_session(srv)
    assert r.cmd("a", "ENABLE CONDSTORE") == [b"* ENABLED CONDSTORE\r\n",
                                              b"a OK ENABLE completed\r\n"]
    assert r.cmd("b", "ENABLE CONDSTORE QRESYNC") == [b"* ENABLED QRESYNC\r\n",
                                                      b"b OK ENABLE completed\r\n"]
    assert r.cmd("c", "ENABLE QRESYNC X-OTHER") == [b"* ENABLED\r\n", b"c OK ENABLE completed\r\n"]


def test_qresync_select_and_vanished(srv):
    r = raw_session(srv)
    lines = r.cmd("a", "SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines)).group(1))
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))
    # QRESYNC needs ENABLE first
    assert r.cmd("b", "SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, highest))[-1] == \
        b"b BAD Unsupported SELECT parameters\r\n"
    r.cmd("c", "ENABLE QRESYNC")
    r.cmd("d", "SELECT INBOX")
    r.cmd("e", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    r.cmd("f", "STORE 1 +FLAGS.SILENT (\\Answered)")
    assert r.cmd("g", "EXPUNGE") == [b"* VANISHED 3\r\n", b"g OK EXPUNGE completed\r\n"]
    # a client that knew the mailbox at `highest` resynchronises
    r2 = raw_session(srv)
    r2.cmd("x", "ENABLE QRESYNC")
    lines = r2.cmd("h", "SELECT INBOX (QRESYNC (%d %d 1:4))" % (uidvalidity, highest))
    assert b"* VANISHED (EARLIER) 3\r\n" in lines
    fetches = [line for line in lines if b" FETCH " in line]
    assert len(fetches) == 1 and fetches[0].startswith(b"* 1 FETCH (UID 1 FLAGS (\\Answered")
    assert lines[-1] == b"h OK [READ-WRITE] SELECT completed\r\n"
    # a wrong UIDVALIDITY gets a plain SELECT
    lines = r2.cmd("i", "SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity + 1, highest))
    assert not any(b"VANISHED" in line for line in lines)
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed\r\n"
    # UID FETCH ... (CHANGEDSINCE m VANISHED)
    lines = r2.cmd("j", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % highest)
    assert lines[0] == b"* VANISHED (EARLIER) 3\r\n"
    assert lines[-1] == b"j OK UID FETCH completed\r\n"
    assert r2.cmd("k", "FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)") == \
        [b"k BAD Invalid FETCH arguments\r\n"]
