"""Issue 9's durability ledger (short version; POSTERN_LONG=1 runs longer):
mail is submitted from several clients while workers, and now and then
the whole server, are killed with SIGKILL and restarted. Every message a
client got a 250 for must be in the mailbox exactly once afterwards."""

import imaplib
import os
import poplib
import random
import re
import signal
import smtplib
import threading
import time

import pytest

from harness import client_context

USER = "ledger@example.org"
PASSWORD = "ledger-pw"
DURATION = 90 if os.environ.get("POSTERN_LONG") else 12


def sender(srv, index, acked, stop):
    n = 0
    while not stop.is_set():
        token = "T%d-%d" % (index, n)
        n += 1
        try:
            s = smtplib.SMTP_SSL("127.0.0.1", srv.port("submissions"),
                                 context=client_context(), timeout=10)
            s.login(USER, PASSWORD)
            msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nledger %s\r\n"
                   % (USER, USER, token, token)).encode()
            s.sendmail(USER, [USER], msg)
            acked.append(token)          # the 250 came back
            s.quit()
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)             # killed mid-way: not acknowledged


def pop3_deleter(srv, deleted, attempted, stop):
    """Deletes the oldest message now and then; a deletion counts once
    QUIT answered +OK (the UPDATE state finished). One whose +OK was lost
    to a kill may or may not have happened: it goes to attempted."""
    while not stop.is_set():
        time.sleep(0.2)
        try:
            p = poplib.POP3_SSL("127.0.0.1", srv.port("pop3s"), context=client_context(),
                                timeout=10)
            p.user(USER)
            p.pass_(PASSWORD)
            if p.stat()[0] == 0:
                p.quit()
                continue
            head = b"\r\n".join(p.top(1, 0)[1])
            m = re.search(rb"(?:^|\r\n)Subject: (T\d+-\d+)", head)
            p.dele(1)
            if m:
                attempted.append(m.group(1).decode())
            reply = p.quit()
            if reply.startswith(b"+OK") and m:
                deleted.append(m.group(1).decode())
        except (OSError, poplib.error_proto):
            pass


def imap_appender(srv, appended, flagged, stop):
    """APPENDs to the Ledger folder and flags what it appended; each counts
    once its tagged OK came back."""
    n = 0
    while not stop.is_set():
        try:
            m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context(),
                                  timeout=10)
            m.login(USER, PASSWORD)
            m.create("Ledger")
            for _ in range(5):
                token = "A%d" % n
                n += 1
                typ, data = m.append("Ledger", None, None,
                                     ("Subject: %s\r\n\r\nappended\r\n" % token).encode())
                if typ != "OK":
                    break
                appended.append(token)
                uid = re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1).decode()
                m.select("Ledger")
                if m.uid("STORE", uid, "+FLAGS", "(\\Flagged)")[0] == "OK":
                    flagged.append(token)
            m.logout()
        except (OSError, imaplib.IMAP4.error, AttributeError):
            time.sleep(0.05)


def ledger_folder(srv):
    """Subject -> flags of every message in Ledger, read over IMAP."""
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context(),
                          timeout=30)
    m.login(USER, PASSWORD)
    result = {}
    if m.select("Ledger")[0] == "OK":
        typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        for item in data:
            if isinstance(item, tuple):
                subject = re.search(rb"Subject: (A\d+)", item[1]).group(1).decode()
                assert subject not in result, "appended twice: " + subject
                result[subject] = item[0]
    m.logout()
    return result


def test_acknowledged_mail_survives_sigkill(server_factory):
    srv = server_factory(sections={"limits": {"shutdown_timeout": "1s"}})
    srv.add_user(USER, PASSWORD)
    acked, deleted, attempted, stop = [], [], [], threading.Event()
    appended, flagged = [], []
    threads = [threading.Thread(target=sender, args=(srv, i, acked, stop)) for i in range(4)]
    threads.append(threading.Thread(target=pop3_deleter, args=(srv, deleted, attempted, stop)))
    threads.append(threading.Thread(target=imap_appender, args=(srv, appended, flagged, stop)))
    for t in threads:
        t.start()
    rng = random.Random(9)
    kills = restarts = 0
    deadline = time.time() + DURATION
    action = 0
    try:
        # until the time is up, enough of both kinds of kill happened and
        # enough mail was acknowledged to check (a loaded machine is slower)
        while time.time() < deadline or kills < 8 or restarts < 2 or len(acked) < 20:
            assert time.time() < deadline + 3 * DURATION, "server too slow to test"
            time.sleep(rng.uniform(0.1, 0.5))
            action += 1
            if action % 5 == 0:
                # the whole server at once, then a restart
                srv.crash()
                srv.start()
                assert srv.proc is not None
                restarts += 1
            else:
                pids = srv.worker_pids()
                if pids:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert kills > 5 and restarts > 0 and len(acked) > 10, (kills, restarts, len(acked))
    assert deleted, "no POP3 deletion was acknowledged"
    found = {}
    for raw in srv.messages(USER):
        m = re.search(rb"\r\nSubject: (T\d+-\d+)\r\n", raw)
        assert m, raw[:300]
        found[m.group(1).decode()] = found.get(m.group(1).decode(), 0) + 1
    missing = [t for t in acked if t not in found and t not in attempted]
    doubled = [t for t, n in found.items() if n > 1]
    undeleted = [t for t in deleted if t in found]
    assert missing == [], "acknowledged but lost: %s" % missing
    assert doubled == [], "delivered twice: %s" % doubled
    assert undeleted == [], "acknowledged deletions undone: %s" % undeleted
    folder = ledger_folder(srv)
    assert appended and flagged, "no APPEND or flag change was acknowledged"
    lost = [t for t in appended if t not in folder]
    unflagged = [t for t in flagged if b"\\Flagged" not in folder.get(t, b"")]
    assert lost == [], "acknowledged APPENDs lost: %s" % lost
    assert unflagged == [], "acknowledged flag changes lost: %s" % unflagged
    # the store still opens and delivers after all that
    srv.deliver(USER, b"Subject: after\r\n\r\nafter\r\n")
    assert len(srv.messages(USER)) == len(found) + 1


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk(server_factory, workdir):
    """data_dir on a small tmpfs: when it fills up, submissions get a
    temporary 452 (never a 250 for a message that was not stored, never a
    crash), and they work again once space returns."""
    import subprocess
    mnt = os.path.join(workdir, "small")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0755", "tmpfs", mnt], check=True)
    srv = None
    try:
        srv = server_factory(extra={"data_dir": mnt + "/data"})
        srv.add_user(USER, PASSWORD)
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (3 << 20))
        body = ("x" * 78 + "\r\n") * 2600          # about 200 kB
        acked, refusal = [], None
        s = smtplib.SMTP_SSL("127.0.0.1", srv.port("submissions"), context=client_context(),
                             timeout=30)
        s.login(USER, PASSWORD)
        for i in range(200):
            msg = ("From: %s\r\nTo: %s\r\nSubject: F%d\r\n\r\n%s" % (USER, USER, i, body)).encode()
            try:
                s.sendmail(USER, [USER], msg)
                acked.append("F%d" % i)
            except smtplib.SMTPDataError as err:
                refusal = (err.smtp_code, err.smtp_error)
                break
        assert refusal is not None, "the disk never filled"
        assert refusal[0] == 452 and refusal[1].startswith(b"4.3.1"), refusal
        assert s.noop()[0] == 250                  # the session goes on
        s.quit()
        subjects = [re.search(rb"\r\nSubject: (F\d+)\r\n", m).group(1).decode()
                    for m in srv.messages(USER)]
        assert sorted(subjects) == sorted(acked)   # nothing acknowledged is missing
        os.unlink(filler)                          # space returns
        s = smtplib.SMTP_SSL("127.0.0.1", srv.port("submissions"), context=client_context(),
                             timeout=30)
        s.login(USER, PASSWORD)
        assert s.sendmail(USER, [USER], b"Subject: after\r\n\r\nok\r\n") == {}
        s.quit()
        assert len(srv.messages(USER)) == len(acked) + 1
    finally:
        if srv is not None:
            srv.stop()
        subprocess.run(["umount", "-l", mnt])
