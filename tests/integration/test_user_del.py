"""Issue 18, item 7: accounts that end cleanly. `postern user del` ends
the user's open IMAP, POP3 and SMTP sessions within a second and removes
the mail (or, with --keep-mail, moves it aside); an address added again
never inherits the old mail, folders or UIDVALIDITY; `user add` refuses
addresses the store cannot hold."""

import imaplib
import os
import poplib
import re
import smtplib
import socket
import time

from harness import client_context

PW = "del-pw"
OTHER_PW = "other-pw"


def message(subject, to="gone@example.org"):
    return ("From: other@example.org\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@example.org>\r\n\r\nbody of %s\r\n"
            % (to, subject, subject.replace(" ", "-"), subject)).encode()


def imap_login(srv, user, password=PW):
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context(),
                          timeout=30)
    m.login(user, password)
    return m


def select_info(m, mailbox="INBOX"):
    typ, data = m.select(mailbox)
    assert typ == "OK", data
    uidvalidity = int(m.untagged_responses["UIDVALIDITY"][0])
    return int(data[0]), uidvalidity


def folders(m):
    typ, data = m.list()
    assert typ == "OK"
    return sorted(line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in data)


def wait_closed(sock, seconds):
    """Reads until the server closes the connection; returns what it sent
    last. Fails when the connection is still open after `seconds`."""
    deadline = time.monotonic() + seconds
    got = b""
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "session still open %.1f s later (it sent %r)" % (seconds, got)
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except (ConnectionResetError, OSError):
            return got
        if not chunk:
            return got
        got += chunk


def test_readded_user_has_no_old_mail_folders_or_uidvalidity(server):
    server.add_user("gone@example.org", PW)
    server.deliver("gone@example.org", message("old one"))
    server.deliver("gone@example.org", message("old two"))
    m = imap_login(server, "gone@example.org")
    assert m.create("Old/Projects")[0] == "OK"
    assert m.append("Old/Projects", "(\\Flagged)", None, message("kept in a folder"))[0] == "OK"
    exists, old_validity = select_info(m)
    assert exists == 2
    m.logout()

    server.cli("user", "del", "gone@example.org")
    server.cli("user", "add", "gone@example.org", input=PW + "\n")

    m = imap_login(server, "gone@example.org")
    exists, new_validity = select_info(m)
    assert exists == 0, "the re-added user sees the old messages"
    assert new_validity != old_validity and new_validity > old_validity
    assert "Old/Projects" not in folders(m) and "Old" not in folders(m)
    assert m.search(None, "ALL")[1] == [b""]
    m.logout()
    # POP3 sees an empty maildrop too
    p = poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=client_context(), timeout=30)
    p.user("gone@example.org")
    p.pass_(PW)
    assert p.stat()[0] == 0
    p.quit()
    assert server.cli("user", "list").stdout.startswith("gone@example.org\t")


def test_del_ends_open_sessions_within_a_second(server):
    server.add_user("gone@example.org", PW)
    server.add_user("other@example.org", OTHER_PW)
    server.deliver("gone@example.org", message("before"))

    imap = imap_login(server, "gone@example.org")
    select_info(imap)
    idle = imap_login(server, "gone@example.org")
    select_info(idle)
    idle.send(b"I1 IDLE\r\n")
    assert idle.readline().startswith(b"+")
    pop = poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=client_context(),
                          timeout=30)
    pop.user("gone@example.org")
    pop.pass_(PW)
    smtp = smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30)
    smtp.starttls(context=client_context())
    smtp.login("gone@example.org", PW)
    # a session of someone else stays
    bystander = imap_login(server, "other@example.org", OTHER_PW)
    select_info(bystander)

    start = time.monotonic()
    server.cli("user", "del", "gone@example.org")
    took = time.monotonic() - start
    goodbyes = {
        "imap": wait_closed(imap.sock, 1.0),
        "imap idle": wait_closed(idle.sock, 1.0),
        "pop3": wait_closed(pop.sock, 1.0),
        "smtp": wait_closed(smtp.sock, 1.0),
    }
    ended = time.monotonic() - start
    assert ended < took + 1.0
    assert re.search(rb"\* BYE", goodbyes["imap"]), goodbyes
    assert re.search(rb"\* BYE", goodbyes["imap idle"]), goodbyes
    assert goodbyes["pop3"].startswith(b"-ERR"), goodbyes
    assert goodbyes["smtp"].startswith(b"421"), goodbyes
    server.wait_log(r"user=gone@example.org event=account-ended", count=4)

    # the deleted user can neither read, nor append, nor send any more
    for fn in (lambda: imap.fetch("1", "(BODY[])"),
               lambda: imap.append("INBOX", None, None, message("late"))):
        try:
            result = fn()
        except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError):
            result = None
        assert result is None, result
    try:
        smtp.sendmail("gone@example.org", ["other@example.org"], message("late"))
        sent = True
    except (smtplib.SMTPException, OSError):
        sent = False
    assert not sent
    assert bystander.noop()[0] == "OK"
    bystander.logout()
    assert server.messages("other@example.org") == []


def test_del_removes_the_mail(server):
    server.add_user("gone@example.org", PW)
    server.deliver("gone@example.org", message("to be removed"))
    assert os.path.isdir(server.maildir("gone@example.org"))
    out = server.cli("user", "del", "gone@example.org")
    assert out.stdout == ""
    assert not os.path.exists(server.maildir("gone@example.org"))
    deleted = os.path.join(server.data_dir, "mail", ".deleted")
    assert not os.path.exists(deleted) or os.listdir(deleted) == [] or \
        all(os.listdir(os.path.join(deleted, d)) == [] for d in os.listdir(deleted))


def test_keep_mail_moves_it_aside(server):
    server.add_user("kept@example.org", PW)
    server.deliver("kept@example.org", message("keep me", to="kept@example.org"))
    out = server.cli("user", "del", "kept@example.org", "--keep-mail")
    aside = out.stdout.strip().rsplit(" ", 1)[-1]
    assert os.path.isdir(aside), out.stdout
    assert aside.startswith(os.path.join(server.data_dir, "mail", ".deleted")), aside
    files = [n for sub in ("new", "cur") for n in os.listdir(os.path.join(aside, sub))]
    assert len(files) == 1
    assert not os.path.exists(server.maildir("kept@example.org"))
    # re-adding still starts empty
    server.cli("user", "add", "kept@example.org", input=PW + "\n")
    m = imap_login(server, "kept@example.org")
    assert select_info(m)[0] == 0
    m.logout()


def test_delivery_in_flight_to_a_deleted_user_is_not_kept(server):
    """A transaction that named the user before the deletion ends after it:
    the message does not recreate the mailbox for a later owner."""
    server.add_user("gone@example.org", PW)
    server.add_user("other@example.org", OTHER_PW)
    s = smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30)
    s.starttls(context=client_context())
    s.login("other@example.org", OTHER_PW)
    s.mail("other@example.org")
    assert s.rcpt("gone@example.org")[0] == 250
    server.cli("user", "del", "gone@example.org")
    code, _ = s.data(message("in flight"))
    assert 400 <= code < 500     # the store no longer takes mail for the account ...
    s.quit()
    server.cli("user", "add", "gone@example.org", input=PW + "\n")
    m = imap_login(server, "gone@example.org")
    assert select_info(m)[0] == 0     # ... but the new owner never gets it
    m.logout()


def test_user_add_refuses_addresses_the_store_cannot_hold(server):
    server.add_domain("example.org")
    for bad in ('"a/b"@example.org', '"../x"@example.org', "a/b@example.org",
                '"/"@example.org'):
        out = server.cli("user", "add", bad, input="pw\n", check=False)
        assert out.returncode == 1, (bad, out)
        assert "cannot" in out.stderr or "invalid" in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1
    listed = server.cli("user", "list").stdout
    assert listed == "", listed
    assert sorted(os.listdir(os.path.join(server.data_dir, "mail"))) == [] or \
        "example.org" not in os.listdir(os.path.join(server.data_dir, "mail"))
    # quoted local parts the store can hold are still fine
    server.cli("user", "add", '"a b"@example.org', input="pw\n")


def test_del_unknown_user_fails(server):
    server.add_domain("example.org")
    out = server.cli("user", "del", "nobody@example.org", check=False)
    assert out.returncode == 1 and "unknown user" in out.stderr


def _give_to_run_as(path):
    import pwd
    from harness import run_as_user
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(run_as_user())
    for root, dirs, files in os.walk(path):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.chown(name, pw.pw_uid, pw.pw_gid)


def test_mail_left_by_an_earlier_account_is_set_aside(server):
    """What `user del` of an older version left (the record gone, the
    Maildir with its index still there) never reaches a new account."""
    import shutil
    server.add_user("old@example.org", PW)
    server.deliver("old@example.org", message("left behind", to="old@example.org"))
    kept = os.path.join(server.dir, "kept-copy")
    shutil.copytree(server.maildir("old@example.org"), kept)
    server.cli("user", "del", "old@example.org")
    shutil.copytree(kept, server.maildir("old@example.org"))
    _give_to_run_as(server.maildir("old@example.org"))
    out = server.cli("user", "add", "old@example.org", input=PW + "\n")
    assert "moved to" in out.stdout, out.stdout
    aside = out.stdout.strip().rsplit(" ", 1)[-1]
    assert os.path.isdir(os.path.join(aside, "cur")), aside
    m = imap_login(server, "old@example.org")
    assert select_info(m)[0] == 0
    m.logout()


def test_maildir_copied_in_before_user_add_is_kept(server):
    """A Maildir without a Postern index (from Dovecot, say) copied in for
    a user about to be added is that user's mail."""
    server.add_domain("example.org")
    root = server.maildir("new@example.org")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub))
    with open(os.path.join(root, "cur", "1700000000.M1P1.host,S=80:2,S"), "wb") as f:
        f.write(message("copied in", to="new@example.org"))
    _give_to_run_as(os.path.dirname(root))
    out = server.cli("user", "add", "new@example.org", input=PW + "\n")
    assert out.stdout == ""
    m = imap_login(server, "new@example.org")
    assert select_info(m)[0] == 1
    m.logout()
