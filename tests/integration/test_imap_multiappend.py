"""MULTIAPPEND (RFC 3502): all the messages or none, whatever fails (a
bad flag or date, a literal over APPENDLIMIT, the quota); APPENDUID
(RFC 4315) gives every UID as one set."""

import re

import pytest

from imap_helpers import Raw, imap, login_raw, make_account, message, USER


@pytest.fixture
def srv(server):
    make_account(server)
    return server


def msg(subject, body="Hello there.\r\n"):
    return message(subject, body=body).encode()


def literal(data):
    return b"{%d+}\r\n%s" % (len(data), data)


def count(srv, mailbox="Drafts"):
    m = imap(srv)
    typ, data = m.status(mailbox, "(MESSAGES)")
    m.logout()
    return int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))


def session(srv):
    r = Raw(srv.port("imap"))
    login_raw(r)
    return r


def test_multiappend_reports_all_uids_as_a_set(srv):
    r = session(srv)
    lines = r.cmd("a", b"APPEND Drafts (\\Seen) " + literal(msg("one")) + b" " +
                  literal(msg("two")) + b" (\\Draft) \"01-Feb-2024 10:00:00 +0100\" " +
                  literal(msg("three")))
    assert re.fullmatch(rb"a OK \[APPENDUID \d+ 1:3\] APPEND completed\r\n", lines[-1]), lines
    assert count(srv) == 3
    assert r.cmd("s", "SELECT Drafts")[-1].startswith(b"s OK")
    lines = r.cmd("f", "FETCH 1:3 (FLAGS INTERNALDATE)")
    assert lines[0].startswith(b"* 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE ")
    assert lines[1].startswith(b"* 2 FETCH (FLAGS (\\Recent) INTERNALDATE ")
    assert lines[2:] == [
        b"* 3 FETCH (FLAGS (\\Draft \\Recent) INTERNALDATE \"01-Feb-2024 09:00:00 +0000\")\r\n",
        b"f OK FETCH completed\r\n"]


@pytest.mark.parametrize("bad", [b"(\\Bogus) ", b"(\\Recent) ", b"\"31-Foo-2024 10:00:00 +0100\" ",
                                 b"\"01-Feb-2024 25:00:00 +0100\" "])
def test_a_bad_flag_or_date_appends_nothing(srv, bad):
    r = session(srv)
    lines = r.cmd("a", b"APPEND Drafts " + literal(msg("one")) + b" " + bad +
                  literal(msg("two")) + b" " + literal(msg("three")))
    assert lines == [b"a BAD Invalid APPEND arguments\r\n"]
    assert count(srv) == 0
    assert r.cmd("n", "NOOP") == [b"n OK NOOP completed\r\n"]


def test_a_literal_over_appendlimit_appends_nothing(server_factory):
    srv = server_factory(sections={"smtp": {"max_message_size": "1M"}})
    make_account(srv)
    r = session(srv)
    limit = int(re.search(rb"APPENDLIMIT=(\d+)", r.cmd("c", "CAPABILITY")[0]).group(1))
    r.send(b"a APPEND Drafts " + literal(msg("one")) + b" {%d}\r\n" % (limit + 1))
    assert r.line() == b"a BAD [TOOBIG] Literal too big\r\n"
    assert r.cmd("n", "NOOP") == [b"n OK NOOP completed\r\n"]
    assert count(srv) == 0


def test_over_quota_in_the_middle_appends_nothing(srv):
    srv.cli("user", "quota", USER, "3K")
    r = session(srv)
    small = msg("small")
    large = msg("large", body="z" * 5000 + "\r\n")
    lines = r.cmd("a", b"APPEND Drafts " + literal(small) + b" " + literal(small) + b" " +
                  literal(large))
    assert lines == [b"a NO [OVERQUOTA] mailbox is full\r\n"], lines
    assert count(srv) == 0
    # the quota usage was given back: the two small ones fit now
    lines = r.cmd("b", b"APPEND Drafts " + literal(small) + b" " + literal(small))
    assert lines[-1].startswith(b"b OK [APPENDUID "), lines
    assert count(srv) == 2


def test_missing_mailbox_appends_nothing(srv):
    r = session(srv)
    lines = r.cmd("a", b"APPEND Nowhere " + literal(msg("one")) + b" " + literal(msg("two")))
    assert lines == [b"a NO [TRYCREATE] Mailbox does not exist\r\n"]


def test_a_failed_multiappend_uses_up_no_uid(srv):
    """One store transaction for all the messages: a failure leaves not
    even a trace in UIDNEXT (an append-then-undo would have)."""
    srv.cli("user", "quota", USER, "3K")
    r = session(srv)
    before = r.cmd("s", "STATUS Drafts (UIDNEXT MESSAGES)")[0]
    lines = r.cmd("a", b"APPEND Drafts " + literal(msg("small")) + b" " + literal(msg("small")) +
                  b" " + literal(msg("large", body="z" * 5000 + "\r\n")))
    assert lines[-1].startswith(b"a NO [OVERQUOTA]"), lines
    assert r.cmd("t", "STATUS Drafts (UIDNEXT MESSAGES)")[0] == before


def test_selected_session_sees_nothing_of_a_failed_multiappend(srv):
    srv.cli("user", "quota", USER, "3K")
    r1 = session(srv)
    r1.cmd("s", "SELECT Drafts")
    r2 = session(srv)
    lines = r2.cmd("a", b"APPEND Drafts " + literal(msg("small")) + b" " +
                   literal(msg("large", body="z" * 5000 + "\r\n")))
    assert lines[-1].startswith(b"a NO [OVERQUOTA]")
    assert r1.cmd("n", "NOOP") == [b"n OK NOOP completed\r\n"]
