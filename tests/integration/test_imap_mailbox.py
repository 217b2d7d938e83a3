"""IMAP mailbox commands: SELECT/EXAMINE, CREATE (special-use), DELETE,
RENAME, SUBSCRIBE, LIST (extended, status, special-use), LSUB, STATUS,
NAMESPACE, CLOSE, UNSELECT, CHECK, NOOP, ENABLE, ID, IDLE."""

import re
import subprocess
import time

import pytest

from imap_helpers import raw_session, PASSWORD, USER, Raw, deliver, imap, imaps, make_account, message


@pytest.fixture
def srv(server):
    make_account(server)
    return server


def test_default_mailboxes_and_special_use(srv):
    m = imap(srv)
    typ, data = m.list()
    assert typ == "OK"
    assert data == [b'(\\HasNoChildren) "/" "INBOX"',
                    b'(\\HasNoChildren \\Archive) "/" "Archive"',
                    b'(\\HasNoChildren \\Drafts) "/" "Drafts"',
                    b'(\\HasNoChildren \\Junk) "/" "Junk"',
                    b'(\\HasNoChildren \\Sent) "/" "Sent"',
                    b'(\\HasNoChildren \\Trash) "/" "Trash"']
    m.logout()


def test_create_rename_delete_and_hierarchy(srv):
    r = raw_session(srv)
    assert r.cmd("a", 'CREATE "Projects/2024"') == [b"a OK CREATE completed\r\n"]
    assert r.cmd("b2", 'CREATE "Projects/2024"')[-1].startswith(b"b2 NO [ALREADYEXISTS]")
    assert r.cmd("c", 'LIST "" "Projects*"') == [
        b'* LIST (\\Noselect \\HasChildren) "/" "Projects"\r\n',
        b'* LIST (\\HasNoChildren) "/" "Projects/2024"\r\n',
        b"c OK LIST completed\r\n"]
    assert r.cmd("d", 'LIST "" "%"')[-1] == b"d OK LIST completed\r\n"
    assert r.cmd("e", 'LIST "Projects/" "%"') == [
        b'* LIST (\\HasNoChildren) "/" "Projects/2024"\r\n', b"e OK LIST completed\r\n"]
    assert r.cmd("f", 'RENAME "Nothing" "Work"')[-1].startswith(b"f NO [NONEXISTENT]")
    assert r.cmd("g", 'RENAME "Projects/2024" "Work/2025"') == [b"g OK RENAME completed\r\n"]
    assert r.cmd("h", 'LIST "" "Work/*"') == [
        b'* LIST (\\HasNoChildren) "/" "Work/2025"\r\n', b"h OK LIST completed\r\n"]
    assert r.cmd("i", 'DELETE "Work/2025"') == [b"i OK DELETE completed\r\n"]
    assert r.cmd("j", 'DELETE "Work/2025"')[-1].startswith(b"j NO [NONEXISTENT]")
    assert r.cmd("k", "DELETE INBOX")[-1].startswith(b"k NO [CANNOT]")
    assert r.cmd("l", "CREATE inbox") == [b"l NO [ALREADYEXISTS] INBOX always exists\r\n"]
    assert r.cmd("m", 'CREATE "Trailing/"') == [b"m OK CREATE completed\r\n"]
    assert r.cmd("n", 'LIST "" "Trailing"') == [
        b'* LIST (\\HasNoChildren) "/" "Trailing"\r\n', b"n OK LIST completed\r\n"]


@pytest.mark.parametrize("name", ['"a.b"', '"x*"', '"y%"', '"../up"', '"a//b"', '"&Jjo"'])
def test_names_that_cannot_be_created(srv, name):
    r = raw_session(srv)
    line = r.cmd("a", "CREATE " + name)[-1]
    assert line.startswith(b"a NO [CANNOT]"), line
    assert r.cmd("b", "NOOP") == [b"b OK NOOP completed\r\n"]


def test_modified_utf7_names(srv):
    r = raw_session(srv)
    assert r.cmd("a", 'CREATE "Entw&APw-rfe"') == [b"a OK CREATE completed\r\n"]
    assert r.cmd("b", 'LIST "" "Entw*"') == [
        b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n', b"b OK LIST completed\r\n"]
    assert r.cmd("c", 'STATUS "Entw&APw-rfe" (MESSAGES)') == [
        b'* STATUS "Entw&APw-rfe" (MESSAGES 0)\r\n', b"c OK STATUS completed\r\n"]
    m = imap(srv)
    assert m.select('"Entw&APw-rfe"')[0] == "OK"
    m.logout()


def test_create_special_use(srv):
    r = raw_session(srv)
    assert r.cmd("a", 'CREATE "Sent Items" (USE (\\Sent))') == [b"a OK CREATE completed\r\n"]
    assert r.cmd("b", 'CREATE "Odd" (USE (\\Bogus))') == \
        [b"b NO [USEATTR] Unsupported special-use attribute\r\n"]
    assert r.cmd("c", 'LIST (SPECIAL-USE) "" "*"') == [
        b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n',
        b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n',
        b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n',
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n',
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"\r\n',
        b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n',
        b"c OK LIST completed\r\n"]


def test_subscriptions_lsub_and_list_extended(srv):
    r = raw_session(srv)
    assert r.cmd("a", "CREATE Lists/one")[-1] == b"a OK CREATE completed\r\n"
    assert r.cmd("b", "UNSUBSCRIBE Junk") == [b"b OK UNSUBSCRIBE completed\r\n"]
    assert r.cmd("c", "SUBSCRIBE Lists/one") == [b"c OK SUBSCRIBE completed\r\n"]
    lsub = r.cmd("d", 'LSUB "" "*"')
    assert b'* LSUB () "/" "Lists/one"\r\n' in lsub
    assert not any(b'"Junk"' in line for line in lsub)
    lines = r.cmd("e", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)')
    assert b'* LIST (\\NonExistent \\HasChildren) "/" "Lists" ("CHILDINFO" ("SUBSCRIBED"))\r\n' \
        in lines
    assert sum(b'"Lists"' in line for line in lines) == 1
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"\r\n' in lines
    lines = r.cmd("f", 'LIST "" ("INBOX" "Drafts") RETURN (SUBSCRIBED STATUS (MESSAGES UIDNEXT))')
    assert lines == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"\r\n',
                     lines[1],
                     b'* LIST (\\HasNoChildren \\Subscribed \\Drafts) "/" "Drafts"\r\n',
                     b'* STATUS "Drafts" (MESSAGES 0 UIDNEXT 1)\r\n',
                     b"f OK LIST completed\r\n"]
    assert lines[1].startswith(b'* STATUS "INBOX" (MESSAGES 0 UIDNEXT ')
    assert r.cmd("g", 'LIST "" ""') == [b'* LIST (\\Noselect) "/" ""\r\n',
                                        b"g OK LIST completed\r\n"]
    assert r.cmd("h", 'LIST (BOGUS) "" "*"') == [b"h BAD Invalid selection options\r\n"]
    assert r.cmd("i", 'LIST "" "*" RETURN (BOGUS)') == [b"i BAD Invalid return options\r\n"]


def test_select_examine_status(srv):
    stored = [deliver(srv, USER, message("one")), deliver(srv, USER, message("two"))]
    r = raw_session(srv)
    lines = r.cmd("a", "SELECT INBOX")
    assert lines[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    assert lines[1] == (b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]"
                        b" Flags permitted\r\n")
    assert lines[2:5] == [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n", b"* OK [UNSEEN 1] First unseen\r\n"]
    assert re.match(rb"\* OK \[UIDVALIDITY \d+\] UIDs valid\r\n", lines[5])
    assert lines[6] == b"* OK [UIDNEXT 3] Predicted next UID\r\n"
    assert re.match(rb"\* OK \[HIGHESTMODSEQ \d+\] Highest\r\n", lines[7])
    assert lines[8] == b"a OK [READ-WRITE] SELECT completed\r\n"
    # \Recent went to the first read-write session
    lines = Raw(srv.port("imap")), None
    r2 = raw_session(srv)
    lines = r2.cmd("b", "EXAMINE INBOX")
    assert b"* 0 RECENT\r\n" in lines and b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n" in lines
    assert lines[-1] == b"b OK [READ-ONLY] EXAMINE completed\r\n"
    assert r2.cmd("c", "STATUS INBOX (MESSAGES RECENT UIDNEXT UNSEEN DELETED SIZE)")[0] == \
        b'* STATUS "INBOX" (MESSAGES 2 RECENT 0 UIDNEXT 3 UNSEEN 2 DELETED 0 SIZE %d)\r\n' % (
            len(stored[0]) + len(stored[1]))
    assert r2.cmd("d", "STATUS INBOX (BOGUS)") == [b"d BAD Invalid status item\r\n"]
    assert r2.cmd("e", "STATUS Nope (MESSAGES)")[-1].startswith(b"e NO [NONEXISTENT]")
    # a failed SELECT leaves no mailbox selected
    assert r2.cmd("f", "SELECT Nope")[-1].startswith(b"f NO [NONEXISTENT]")
    assert r2.cmd("g", "CHECK") == [b"g BAD No mailbox selected\r\n"]
    # SELECT while selected: [CLOSED] first
    r.send(b"h SELECT Drafts\r\n")
    lines = r.until_tagged("h")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed\r\n"
    assert lines[-1] == b"h OK [READ-WRITE] SELECT completed\r\n"
    assert r.cmd("i", "UNSELECT") == [b"i OK UNSELECT completed\r\n"]
    assert r.cmd("j", "UNSELECT") == [b"j BAD No mailbox selected\r\n"]
    assert r.cmd("k", "EXAMINE INBOX")[-1] == b"k OK [READ-ONLY] EXAMINE completed\r\n"
    assert r.cmd("l", "CLOSE") == [b"l OK CLOSE completed\r\n"]


def test_namespace_id_enable_check(srv):
    r = raw_session(srv)
    assert r.cmd("a", "NAMESPACE") == [b'* NAMESPACE (("" "/")) NIL NIL\r\n',
                                       b"a OK NAMESPACE completed\r\n"]
    assert r.cmd("b", 'ID ("name" "test" "version" "1")') == [
        b'* ID ("name" "Postern")\r\n', b"b OK ID completed\r\n"]
    assert r.cmd("c", "ID NIL")[-1] == b"c OK ID completed\r\n"
    assert r.cmd("d", "ENABLE X-NOTHING") == [b"* ENABLED\r\n", b"d OK ENABLE completed\r\n"]
    assert r.cmd("e", "SELECT INBOX")[-1].startswith(b"e OK")
    assert r.cmd("f", "CHECK") == [b"f OK CHECK completed\r\n"]


def test_noop_reports_new_mail(srv):
    r = raw_session(srv)
    r.cmd("a", "SELECT INBOX")
    deliver(srv, USER, message("late"))
    lines = r.cmd("b", "NOOP")
    # \Recent: this session is the first to learn of it (RFC 3501 2.3.2)
    assert lines == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n", b"b OK NOOP completed\r\n"]


def test_idle_sees_delivery_within_a_second(srv):
    r = raw_session(srv)
    r.cmd("a", "SELECT INBOX")
    r.send(b"i IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    time.sleep(0.2)
    start = time.time()
    deliver(srv, USER, message("while idle"))
    delivered = time.time()
    r.sock.settimeout(5)
    assert r.line() == b"* 1 EXISTS\r\n"
    assert time.time() - delivered < 1.0, (delivered - start, time.time() - delivered)
    assert r.line() == b"* 1 RECENT\r\n"
    r.send(b"DONE\r\n")
    assert r.line() == b"i OK IDLE terminated\r\n"
    r.send(b"j IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    r.send(b"NOTDONE\r\n")
    assert r.line() == b"j BAD Expected DONE\r\n"
    assert r.cmd("k", "NOOP") == [b"k OK NOOP completed\r\n"]


def test_idle_two_sessions_imaplib(srv):
    """One session IDLEs (imaplib has no helper in 3.11: raw commands),
    another one appends through delivery and creates a mailbox."""
    m = imaps(srv)
    m.login(USER, PASSWORD)
    m.select("INBOX")
    tag = m._new_tag()
    m.send(tag + b" IDLE\r\n")
    assert m.readline().startswith(b"+")
    other = imap(srv)
    other.create("FromOther")
    deliver(srv, USER, message("for idle"))
    m.sock.settimeout(5)
    assert m.readline() == b"* 1 EXISTS\r\n"
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        if line.startswith(tag):
            assert b"OK" in line
            break
    assert m.list('""', "FromOther")[1] == [b'(\\HasNoChildren) "/" "FromOther"']
    other.logout()
    m.logout()


def test_curl_imaps_lists_mailboxes(srv):
    out = subprocess.run(["curl", "-sS", "-k", "--max-time", "20", "-u", "%s:%s" % (USER, PASSWORD),
                          "imaps://127.0.0.1:%d/" % srv.port("imaps")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"/" "Sent"' in out.stdout and '"/" INBOX' in out.stdout.replace('"INBOX"', "INBOX")
