"""Issue 7's checks that need both fetch protocols at once: a POP3
deletion reaches an IMAP session as EXPUNGE, IMAP works while a POP3
session holds the maildrop, and an IMAP expunge during a POP3 session is
answered -ERR on RETR without being counted twice."""

import imaplib
import poplib
import time

import pytest

from harness import client_context

USER = "mixed@example.org"
PASSWORD = "mixed-pw"


@pytest.fixture
def srv(server_factory):
    s = server_factory()
    s.add_user(USER, PASSWORD)
    for i in range(3):
        s.deliver(USER, ("Subject: m%d\r\n\r\nbody %d\r\n" % (i, i)).encode())
    return s


def pop(srv):
    p = poplib.POP3_SSL("127.0.0.1", srv.port("pop3s"), context=client_context(), timeout=30)
    p.user(USER)
    p.pass_(PASSWORD)
    return p


def imap(srv):
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context(),
                          timeout=30)
    m.login(USER, PASSWORD)
    return m


def test_pop3_delete_seen_by_imap_as_expunge(srv):
    m = imap(srv)
    assert m.select("INBOX")[1] == [b"3"]
    p = pop(srv)
    p.dele(1)
    assert p.quit().startswith(b"+OK")
    deadline = time.time() + 5
    expunged = []
    while not expunged and time.time() < deadline:
        typ, _ = m.noop()
        assert typ == "OK"
        expunged = m.untagged_responses.pop("EXPUNGE", [])
        time.sleep(0.1)
    assert expunged == [b"1"]
    assert m.search(None, "ALL")[1] == [b"1 2"]
    m.logout()


def test_imap_works_while_pop3_holds_the_maildrop(srv):
    p = pop(srv)
    with pytest.raises(poplib.error_proto) as err:
        pop(srv)
    assert b"[IN-USE]" in err.value.args[0]
    m = imap(srv)
    m.select("INBOX")
    assert m.store("1", "+FLAGS", "\\Flagged")[0] == "OK"
    assert m.append("INBOX", None, None, b"Subject: new\r\n\r\nnew\r\n")[0] == "OK"
    m.logout()
    assert p.stat()[0] == 3          # the POP3 snapshot is as at login
    p.quit()


def test_imap_expunge_during_pop3_session(srv):
    p = pop(srv)
    count, size = p.stat()
    m = imap(srv)
    m.select("INBOX")
    m.store("2", "+FLAGS", "\\Deleted")
    m.expunge()
    m.logout()
    with pytest.raises(poplib.error_proto):
        p.retr(2)
    assert p.retr(1)[0].startswith(b"+OK")
    assert p.retr(3)[0].startswith(b"+OK")
    p.dele(1)
    p.dele(3)
    assert p.quit().startswith(b"+OK")
    m = imap(srv)
    assert m.select("INBOX")[1] == [b"0"]
    m.logout()
