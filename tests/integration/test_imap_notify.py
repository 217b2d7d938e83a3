"""NOTIFY (RFC 5465): two sessions of one account; what one changes (or a
delivery) reaches the other as unsolicited responses, without a command:
STATUS for other mailboxes, EXISTS/EXPUNGE/FETCH for the selected one,
LIST for mailbox names and subscriptions, METADATA for entries."""

import re

import pytest

from imap_helpers import USER, deliver, make_account, message, raw_session


@pytest.fixture
def srv(server):
    make_account(server)
    return server


def watcher(srv, notify, mailbox=None):
    r = raw_session(srv, mailbox)
    r.sock.settimeout(10)
    lines = r.cmd("n", "NOTIFY " + notify)
    assert lines[-1] == b"n OK NOTIFY completed\r\n", lines
    return r, lines[:-1]


def test_capability_and_errors(srv):
    r = raw_session(srv)
    assert b"NOTIFY" in r.cmd("c", "CAPABILITY")[0].split()
    events = (b"(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange "
              b"MailboxMetadataChange ServerMetadataChange)")
    assert r.cmd("a", "NOTIFY SET (personal (AnnotationChange))") == [
        b"a NO [BADEVENT " + events + b"] Unsupported event\r\n"]
    assert r.cmd("b", "NOTIFY SET (personal (MessageNew))") == [
        b"b BAD MessageNew and MessageExpunge go together, and FlagChange needs them\r\n"]
    assert r.cmd("c", "NOTIFY SET (selected (MailboxName))") == [
        b"c BAD Only message events for the selected mailbox\r\n"]
    assert r.cmd("d", "NOTIFY SET (nowhere (MailboxName))") == [b"d BAD Invalid filter\r\n"]
    assert r.cmd("e", "NOTIFY SET (personal (MessageNew (UID) MessageExpunge))") == [
        b"e BAD Fetch attributes only for the selected mailbox\r\n"]
    assert r.cmd("e2", "NOTIFY SET (selected (MessageNew (UID BODY[]) MessageExpunge))") == [
        b"e2 BAD Unsupported fetch attribute for MessageNew\r\n"]
    assert r.cmd("f", "NOTIFY SET (selected (MessageNew MessageExpunge)) "
                      "(selected-delayed (MessageNew MessageExpunge))") == [
        b"f BAD Only one filter for the selected mailbox\r\n"]
    assert r.cmd("g", "NOTIFY NONE") == [b"g OK NOTIFY completed\r\n"]
    assert r.cmd("h", "NOTIFY SET (subtree (Archive Sent) (MailboxName)) (personal NONE)") == [
        b"h OK NOTIFY completed\r\n"]


def test_status_of_other_mailboxes(srv):
    r, initial = watcher(srv, "SET (STATUS) (inboxes (MessageNew MessageExpunge FlagChange)) "
                              "(mailboxes Sent (MessageNew MessageExpunge))")
    # STATUS asked: one per mailbox the filters cover
    assert [re.sub(rb"UIDVALIDITY \d+", b"UIDVALIDITY v", line) for line in initial] == [
        b'* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY v UNSEEN 0)\r\n',
        b'* STATUS "Sent" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY v UNSEEN 0)\r\n']
    deliver(srv, USER, message("new one"))
    line = r.line()
    assert re.fullmatch(rb'\* STATUS "INBOX" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)\r\n',
                        line), line
    # a flag change in INBOX (FlagChange asked), then a delivery to Drafts (not covered)
    other = raw_session(srv, "INBOX")
    other.cmd("s", "STORE 1 +FLAGS (\\Seen)")
    line = r.line()
    assert re.fullmatch(rb'\* STATUS "INBOX" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 0\)\r\n',
                        line), line
    deliver(srv, USER, message("draft"), mailbox="Drafts")
    deliver(srv, USER, message("sent"), mailbox="Sent")
    line = r.line()
    assert line.startswith(b'* STATUS "Sent" (MESSAGES 1 UIDNEXT 2 '), line
    assert r.cmd("z", "NOOP") == [b"z OK NOOP completed\r\n"]


def test_selected_mailbox(srv):
    deliver(srv, USER, message("one"))
    deliver(srv, USER, message("two"))
    r, _ = watcher(srv, "SET (selected (MessageNew MessageExpunge FlagChange))", "INBOX")
    other = raw_session(srv, "INBOX")
    other.cmd("a", "STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert r.line() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n"
    deliver(srv, USER, message("three"))
    assert r.line() == b"* 3 EXISTS\r\n"
    assert r.line() == b"* 3 RECENT\r\n"
    other.cmd("b", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert r.line() == b"* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent))\r\n"
    other.cmd("c", "EXPUNGE")
    # "selected": the expunge is told at once, no command needed
    assert r.line() == b"* 2 EXPUNGE\r\n"
    assert r.cmd("d", "FETCH 2 UID") == [b"* 2 FETCH (UID 3)\r\n", b"d OK FETCH completed\r\n"]


def test_selected_delayed_keeps_expunges_for_a_command(srv):
    deliver(srv, USER, message("one"))
    deliver(srv, USER, message("two"))
    r, _ = watcher(srv, "SET (selected-delayed (MessageNew MessageExpunge))", "INBOX")
    other = raw_session(srv, "INBOX")
    other.cmd("a", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.cmd("b", "EXPUNGE")
    deliver(srv, USER, message("three"))
    # the new message is told; the expunge waits for a command that may tell it
    assert r.line() == b"* 3 EXISTS\r\n"
    assert r.line() == b"* 3 RECENT\r\n"
    assert r.cmd("c", "NOOP") == [b"* 1 EXPUNGE\r\n", b"c OK NOOP completed\r\n"]


def test_mailbox_names_and_subscriptions(srv):
    r, _ = watcher(srv, "SET (personal (MailboxName SubscriptionChange))")
    other = raw_session(srv)
    other.cmd("a", "CREATE Projects")
    assert r.line() == b'* LIST () "/" "Projects"\r\n'
    other.cmd("b", "RENAME Projects Work")
    assert r.line() == b'* LIST () "/" "Work" ("OLDNAME" ("Projects"))\r\n'
    other.cmd("c", "SUBSCRIBE Work")
    assert r.line() == b'* LIST (\\Subscribed) "/" "Work"\r\n'
    other.cmd("d", "UNSUBSCRIBE Work")
    assert r.line() == b'* LIST () "/" "Work"\r\n'
    other.cmd("e", "DELETE Work")
    assert r.line() == b'* LIST (\\NonExistent) "/" "Work"\r\n'
    # while IDLE too
    r.send(b"i IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    other.cmd("f", "CREATE Later")
    assert r.line() == b'* LIST () "/" "Later"\r\n'
    r.send(b"DONE\r\n")
    assert r.line() == b"i OK IDLE terminated\r\n"


def test_metadata_changes(srv):
    r, _ = watcher(srv, "SET (personal (MailboxMetadataChange ServerMetadataChange))")
    other = raw_session(srv)
    other.cmd("a", 'SETMETADATA INBOX (/private/comment "x" /shared/comment "y")')
    assert r.line() == b'* METADATA "INBOX" (/private/comment /shared/comment)\r\n'
    other.cmd("b", 'SETMETADATA "" (/private/vendor/x "1")')
    assert r.line() == b'* METADATA "" (/private/vendor/x)\r\n'
    other.cmd("c", 'SETMETADATA INBOX (/private/comment NIL)')
    assert r.line() == b'* METADATA "INBOX" (/private/comment)\r\n'


def test_notify_none_stops(srv):
    r, _ = watcher(srv, "SET (personal (MailboxName))")
    assert r.cmd("x", "NOTIFY NONE") == [b"x OK NOTIFY completed\r\n"]
    raw_session(srv).cmd("a", "CREATE Quiet")
    assert r.cmd("y", "NOOP") == [b"y OK NOOP completed\r\n"]


def test_message_new_fetch_attributes(srv):
    deliver(srv, USER, message("one"))
    r, _ = watcher(srv, "SET (selected (MessageNew (UID FLAGS ENVELOPE) MessageExpunge))",
                   "INBOX")
    deliver(srv, USER, message("two"))
    assert r.line() == b"* 2 EXISTS\r\n"
    assert r.line() == b"* 2 RECENT\r\n"
    line = r.line()
    assert line.startswith(b'* 2 FETCH (UID 2 FLAGS (\\Recent) ENVELOPE ("Mon, 2 Jan 2023 10:00:00 +0000" "two" '), line
    # one that arrives around a command: EXISTS, then its FETCH, whenever told
    r.send(b"a NOOP\r\n")
    deliver(srv, USER, message("three"))
    seen = []
    while not (b"a OK NOOP completed\r\n" in seen and
               any(x.startswith(b"* 3 FETCH (UID 3 ") for x in seen)):
        seen.append(r.line())
    fetch = [i for i, x in enumerate(seen) if x.startswith(b"* 3 FETCH (UID 3 ")]
    assert len(fetch) == 1 and seen.index(b"* 3 EXISTS\r\n") < fetch[0], seen
    # a newly selected mailbox starts from what SELECT told
    r.cmd("s", "SELECT Sent")
    deliver(srv, USER, message("sent"), mailbox="Sent")
    assert r.line() == b"* 1 EXISTS\r\n"
    assert r.line() == b"* 1 RECENT\r\n"
    assert r.line().startswith(b"* 1 FETCH (UID 1 FLAGS (\\Recent) ENVELOPE ")
    assert r.cmd("z", "NOOP") == [b"z OK NOOP completed\r\n"]
