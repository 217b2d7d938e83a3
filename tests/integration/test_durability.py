"""Issue 9's durability ledger (short version; POSTERN_LONG=1 runs longer):
mail is submitted from several clients while workers, and now and then
the whole server, are killed with SIGKILL and restarted. Every message a
client got a 250 for must be in the mailbox exactly once afterwards."""

import os
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


def test_acknowledged_mail_survives_sigkill(server_factory):
    srv = server_factory(sections={"limits": {"shutdown_timeout": "1s"}})
    srv.add_user(USER, PASSWORD)
    acked, stop = [], threading.Event()
    threads = [threading.Thread(target=sender, args=(srv, i, acked, stop)) for i in range(4)]
    for t in threads:
        t.start()
    rng = random.Random(9)
    kills = restarts = 0
    deadline = time.time() + DURATION
    action = 0
    try:
        # until the time is up and enough of both kinds of kill happened
        while time.time() < deadline or kills < 8 or restarts < 2:
            assert time.time() < deadline + 3 * DURATION, "server too slow to test"
            time.sleep(rng.uniform(0.1, 0.5))
            action += 1
            if action % 5 == 0:
                # the whole server at once, then a restart
                pids = srv.worker_pids()
                srv.proc.kill()
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                srv.proc.wait()
                srv.stop()
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
    found = {}
    for raw in srv.messages(USER):
        m = re.search(rb"\r\nSubject: (T\d+-\d+)\r\n", raw)
        assert m, raw[:300]
        found[m.group(1).decode()] = found.get(m.group(1).decode(), 0) + 1
    missing = [t for t in acked if t not in found]
    doubled = [t for t, n in found.items() if n > 1]
    assert missing == [], "acknowledged but lost: %s" % missing
    assert doubled == [], "delivered twice: %s" % doubled
    # the store still opens and delivers after all that
    srv.deliver(USER, b"Subject: after\r\n\r\nafter\r\n")
    assert len(srv.messages(USER)) == len(found) + 1
