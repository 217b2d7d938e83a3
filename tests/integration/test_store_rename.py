"""RENAME moves subscriptions along (the mailbox and everything under it,
as Dovecot does); renaming INBOX leaves INBOX, and its subscription, in
place. Checked with imaplib through LSUB and LIST (SUBSCRIBED)."""

import re

from imap_helpers import USER, deliver, imap, make_account, message


def names(lines):
    out = []
    for line in lines:
        line = line.decode() if isinstance(line, bytes) else line
        m = re.match(r'\(([^)]*)\) "/" (.*)$', line)
        assert m, line
        name = m.group(2)
        if name.startswith('"'):
            name = name[1:-1]
        out.append((m.group(1), name))
    return out


def lsub(m, pattern="*"):
    typ, data = m.lsub('""', pattern)
    assert typ == "OK"
    return sorted(n for _, n in names(d for d in data if d is not None))


def list_subscribed(m, pattern="*"):
    typ, data = m._simple_command("LIST", "(SUBSCRIBED)", '""', pattern)
    assert typ == "OK"
    typ, data = m._untagged_response(typ, data, "LIST")
    return sorted(n for _, n in names(d for d in data if d is not None))


def test_rename_moves_subscriptions(server):
    make_account(server)
    m = imap(server)
    for name in ("Work", "Work/Sub", "Workshop"):
        assert m.create(name)[0] == "OK"
    for name in ("Work", "Work/Sub", "Work/Gone", "Workshop"):
        assert m.subscribe(name)[0] == "OK"
    assert m.rename("Work", "Old/Job")[0] == "OK"
    want = ["Old/Job", "Old/Job/Gone", "Old/Job/Sub"]
    assert lsub(m, "Old/*") == want
    assert list_subscribed(m, "Old/*") == want
    assert lsub(m, "Work*") == ["Workshop"]
    assert list_subscribed(m, "Work*") == ["Workshop"]
    # the mailboxes moved too, and the new names are the subscribed ones
    typ, data = m.list('""', "Old/*")
    assert sorted(n for _, n in names(data)) == ["Old/Job", "Old/Job/Sub"]
    m.logout()


def test_rename_inbox_keeps_its_subscription(server):
    make_account(server)
    deliver(server, USER, message())
    m = imap(server)
    assert "INBOX" in lsub(m)
    assert m.rename("INBOX", "Saved")[0] == "OK"
    assert "INBOX" in lsub(m)
    assert "INBOX" in list_subscribed(m)
    assert "Saved" not in lsub(m)
    assert m.select("Saved")[1] == [b"1"]
    m.logout()
