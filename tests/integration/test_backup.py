"""Issue 18, item 4: `postern backup DIR` while the server runs and mail
arrives, `postern restore DIR` into a second instance. Every message
acknowledged before the backup began is in the restored server with its
UID, flags and folder, the queue too, and an IMAP client sees the same
UIDVALIDITY."""

import imaplib
import os
import re
import shutil
import smtplib
import threading
import time

from harness import Server, client_context

ALICE, BOB = "alice@example.org", "bob@example.org"
PW = "backup-pw"
FOLDERS = ("INBOX", "Projects", "Archive/2024")


def msg(mid, to=ALICE, size=0):
    body = ("x" * 76 + "\r\n") * (size // 78) if size else "short body\r\n"
    return ("From: %s\r\nTo: %s\r\nSubject: message %s\r\nMessage-ID: <%s@test>\r\n\r\n%s"
            % (BOB, to, mid, mid, body)).encode()


def imap(srv, user=ALICE):
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context(),
                          timeout=60)
    m.login(user, PW)
    return m


def mailbox_state(m, folder):
    """UIDVALIDITY and {message-id: (uid, flags)} of one folder."""
    typ, _ = m.select('"%s"' % folder, readonly=True)
    assert typ == "OK", folder
    validity = int(m.untagged_responses["UIDVALIDITY"][0])
    typ, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    state = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, header = item
        uid = int(re.search(rb"UID (\d+)", head).group(1))
        flags = tuple(sorted(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).split()))
        found = re.search(rb"<([^>]+)@test>", header)
        if found:
            state[found.group(1).decode()] = (uid, flags)
    return validity, state


def full_state(srv):
    m = imap(srv)
    try:
        return {f: mailbox_state(m, f) for f in FOLDERS}
    finally:
        m.logout()


class Load:
    """Steady submission from bob to alice; remembers when each message was
    acknowledged (the 250 after DATA)."""

    def __init__(self, srv):
        self.srv, self.acks, self.errors = srv, [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        s = smtplib.SMTP("127.0.0.1", self.srv.port("submission"), timeout=60)
        s.starttls(context=client_context())
        s.login(BOB, PW)
        n = 0
        while not self.stop.is_set():
            n += 1
            mid = "load-%d" % n
            try:
                s.sendmail(BOB, [ALICE], msg(mid, size=(n % 7) * 3000))
                self.acks.append((time.monotonic(), mid))
            except (smtplib.SMTPException, OSError) as e:
                self.errors.append(repr(e))
                break
        s.quit()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "waited too long for " + what
        time.sleep(0.05)


def restored_server(workdir, name, backup_dir):
    """A second instance whose data_dir is restored before it ever starts."""
    directory = os.path.join(workdir, name)
    os.mkdir(directory)
    srv = Server(directory)
    out = srv.cli("restore", backup_dir)
    assert "restored" in out.stdout, out.stdout
    return srv.start()


def test_backup_under_load_then_restore_into_a_second_instance(server_factory, workdir):
    srv = server_factory(sections={"relay": {"mode": "mx"}}, name="live")
    srv.add_user(ALICE, PW)
    srv.add_user(BOB, PW)
    # folders, flags and keywords before the backup
    m = imap(srv)
    for folder in FOLDERS[1:]:
        assert m.create('"%s"' % folder)[0] == "OK"
    for i in range(30):
        folder = FOLDERS[i % 3]
        flags = ["(\\Seen)", "(\\Flagged $Work)", "()"][i % 3]
        assert m.append('"%s"' % folder, flags, None, msg("pre-%d" % i))[0] == "OK"
    m.select("INBOX")
    m.store("1:3", "+FLAGS", "(\\Answered)")
    m.logout()
    # a message for the outside stays in the queue (nothing answers DNS)
    s = smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=30)
    s.starttls(context=client_context())
    s.login(BOB, PW)
    s.sendmail(BOB, ["carol@remote.example"], msg("queued", to="carol@remote.example"))
    s.quit()
    queued = sorted(l.split("\t")[0] for l in srv.cli("queue", "list").stdout.splitlines())
    assert len(queued) == 1

    backup_dir = os.path.join(workdir, "backup")
    with Load(srv) as load:
        wait_for(lambda: len(load.acks) >= 20 or load.errors, "20 messages sent")
        started = time.monotonic()
        out = srv.cli("backup", backup_dir)
        ended = time.monotonic()
        # and mail goes on arriving
        wait_for(lambda: len([a for a in load.acks if a[0] > ended]) >= 5 or load.errors,
                 "mail after the backup")
    assert load.errors == [], load.errors
    assert re.search(r"backup of .* \d+ accounts, \d+ messages", out.stdout), out.stdout
    acked_before = {mid for t, mid in load.acks if t < started}
    assert len(acked_before) >= 20
    assert os.path.isfile(os.path.join(backup_dir, "postern-backup"))

    live = full_state(srv)
    new = restored_server(workdir, "restored", backup_dir)
    try:
        restored = full_state(new)
        for folder in FOLDERS:
            assert restored[folder][0] == live[folder][0], "UIDVALIDITY of %s changed" % folder
        expected = {"pre-%d" % i for i in range(30)} | acked_before
        for mid in expected:
            where = [f for f in FOLDERS if mid in live[f][1]]
            assert len(where) == 1, mid
            folder = where[0]
            assert mid in restored[folder][1], "%s missing from %s" % (mid, folder)
            assert restored[folder][1][mid] == live[folder][1][mid], (mid, folder)
        # nothing twice, nothing in the wrong folder
        for folder in FOLDERS:
            uids = [uid for uid, _ in restored[folder][1].values()]
            assert len(uids) == len(set(uids))
            for mid in restored[folder][1]:
                assert mid in live[folder][1], (mid, folder)
        # the queue came along
        listing = new.cli("queue", "list").stdout.splitlines()
        assert sorted(l.split("\t")[0] for l in listing) == queued
        # and the restored server works: log in, deliver, read
        new.deliver(ALICE, msg("after-restore"))
        m = imap(new)
        validity, state = mailbox_state(m, "INBOX")
        assert "after-restore" in state
        assert state["after-restore"][0] > max(uid for mid, (uid, _) in state.items()
                                               if mid != "after-restore")
        m.logout()
    finally:
        code = new.stop()
        new.check_sanitizers()
        assert code == 0


def test_backup_and_restore_refuse_what_they_must(server_factory, workdir):
    srv = server_factory(name="live")
    srv.add_user(ALICE, PW)
    taken = os.path.join(workdir, "taken")
    os.mkdir(taken)
    open(os.path.join(taken, "x"), "w").close()
    out = srv.cli("backup", taken, check=False)
    assert out.returncode == 1 and "not an empty directory" in out.stderr
    inside = os.path.join(srv.data_dir, "backup-here")
    out = srv.cli("backup", inside, check=False)
    assert out.returncode == 1 and "inside data_dir" in out.stderr
    assert srv.cli("backup", check=False).returncode == 2

    good = os.path.join(workdir, "good")
    srv.cli("backup", good)
    # restore: never over a data_dir in use, never from an incomplete backup
    out = srv.cli("restore", good, check=False)
    assert out.returncode == 1 and "not empty" in out.stderr
    partial = os.path.join(workdir, "partial")
    shutil.copytree(good, partial)
    os.unlink(os.path.join(partial, "postern-backup"))
    os.mkdir(os.path.join(workdir, "other"))
    other = Server(os.path.join(workdir, "other"))
    out = other.cli("restore", partial, check=False)
    assert out.returncode == 1 and "not a complete backup" in out.stderr
    assert not os.path.exists(other.data_dir) or os.listdir(other.data_dir) == []
