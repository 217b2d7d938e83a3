"""SELECT (QRESYNC (uidvalidity modseq [known-uids] [(seq-match-data)]))
of RFC 7162 3.2.5.2: both optional parts, alone or together, narrow
VANISHED (EARLIER); "*", unequal match sets and bad shapes are BAD."""

import re

import pytest

from imap_helpers import USER, deliver, make_account, message, raw_session


@pytest.fixture
def state(server):
    """Ten messages (UIDs 1..10), the state a client saved, then 2, 4 and 9
    expunged by another session: the mailbox is now 1,3,5,6,7,8,10."""
    make_account(server)
    for i in range(10):
        deliver(server, USER, message("m%d" % i))
    r = raw_session(server)
    r.cmd("e", "ENABLE QRESYNC")
    lines = r.cmd("s", "SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines)).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))
    r.cmd("d", "UID STORE 2,4,9 +FLAGS.SILENT (\\Deleted)")
    r.cmd("x", "EXPUNGE")
    r.close()
    return server, uidvalidity, modseq


def select(state, params):
    server, uidvalidity, modseq = state
    r = raw_session(server)
    r.cmd("e", "ENABLE QRESYNC")
    lines = r.cmd("s", "SELECT INBOX (QRESYNC (%d %d%s))" % (uidvalidity, modseq, params))
    return r, lines


def vanished(lines):
    found = [line for line in lines if line.startswith(b"* VANISHED")]
    assert len(found) <= 1, lines
    return found[0] if found else None


@pytest.mark.parametrize("params, want", [
    ("", b"* VANISHED (EARLIER) 2,4,9\r\n"),
    (" 1:5", b"* VANISHED (EARLIER) 2,4\r\n"),
    # the client's view was 1,3,5,6,7,8,9,10: seq 1->1, 3->5, 6->8 all still
    # match, so it knows every expunge up to UID 8
    (" (1,3,6 1,5,8)", b"* VANISHED (EARLIER) 9\r\n"),
    # 3->5 matches, 7->9 does not (seq 7 is UID 10 now): known up to 5
    (" (3,7 5,9)", b"* VANISHED (EARLIER) 9\r\n"),
    # nothing matches: no narrowing
    (" (2 2)", b"* VANISHED (EARLIER) 2,4,9\r\n"),
    (" 1:10 (1:2 1,3)", b"* VANISHED (EARLIER) 4,9\r\n"),
    (" 1:8 (3 5)", None),
    (" 1:8 (1,3,6 1,5,8)", None),
])
def test_known_uids_and_sequence_match_data_narrow_vanished(state, params, want):
    r, lines = select(state, params)
    assert lines[-1] == b"s OK [READ-WRITE] SELECT completed\r\n", lines
    assert vanished(lines) == want
    # the session goes on normally
    assert r.cmd("f", "UID FETCH 10 UID")[0] == b"* 7 FETCH (UID 10)\r\n"


@pytest.mark.parametrize("params", [" 1:*", " 1:5 (1:* 1:3)", " (1,2 1)", " (1 2 3)",
                                    " 1:5 7:8", " (1 1) 1:5", " x", " (1 1) (1 1)"])
def test_bad_qresync_parameters(state, params):
    r, lines = select(state, params)
    assert lines == [b"s BAD Invalid QRESYNC parameters\r\n"]
    assert r.cmd("n", "NOOP") == [b"n OK NOOP completed\r\n"]


def test_other_uidvalidity_ignores_the_rest(state):
    server, uidvalidity, modseq = state
    r = raw_session(server)
    r.cmd("e", "ENABLE QRESYNC")
    lines = r.cmd("s", "SELECT INBOX (QRESYNC (%d %d 1:5 (1 1)))" % (uidvalidity + 1, modseq))
    assert lines[-1].startswith(b"s OK") and vanished(lines) is None


def test_known_uids_narrow_the_flag_changes_too(state):
    """Flags changed on 1, 5 and 8 since the saved modseq: with known-uids
    1:5 only 1 and 5 are reported; without, all three."""
    server, uidvalidity, modseq = state
    r = raw_session(server)
    r.cmd("s", "SELECT INBOX")
    assert r.cmd("f", "UID STORE 1,5,8 +FLAGS.SILENT (\\Flagged)")[-1].startswith(b"f OK")
    r.close()

    def flagged(params):
        r, lines = select(state, params)
        assert lines[-1] == b"s OK [READ-WRITE] SELECT completed\r\n", lines
        return sorted(int(re.search(rb"UID (\d+)", line).group(1)) for line in lines
                      if re.match(rb"\* \d+ FETCH ", line))

    assert flagged(" 1:5") == [1, 5]
    assert flagged("") == [1, 5, 8]
