#!/usr/bin/python3
"""POP3 load, Postern against Dovecot's pop3 (Debian's dovecot-pop3d), side
by side in one run on copies of the same Maildirs.

Each of CLIENTS processes loops over its own users for SECONDS: connect,
USER/PASS, STAT, UIDL, RETR of every message, QUIT (messages are kept, so
every session fetches the whole mailbox). Both servers check the same
yescrypt hash at login. Prints messages and bytes per second for each,
and Postern's numbers as ratios of Dovecot's. bench/run measures the same
with a generated corpus of mixed sizes; this script keeps one size.

  python3 bench/pop3-load.py [--users 8] [--messages 50] [--size 4096]
                             [--clients 4] [--seconds 10] [--rounds 2]

Run as root (the servers drop to nobody); needs dovecot-pop3d.
"""

import argparse
import os
import random
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers as S  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--messages", type=int, default=50)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the servers drop to nobody)")
    args.clients = min(args.clients, args.users)

    S.stop_on_signals()
    top = tempfile.mkdtemp(prefix="postern-bench-pop3-", dir="/var/tmp")
    os.chmod(top, 0o755)
    users = ["user%d" % u for u in range(args.users)]
    postern = dovecot = None
    try:
        postern = S.Postern(top, users)
        dovecot = S.Dovecot(top, users, os.path.join(top, "dovecot-mail"))
        uid, gid = S.nobody_ids()
        rng = random.Random(1)
        for user in users:
            msgs = [S.message(rng, i, args.size) for i in range(args.messages)]
            for server in (postern, dovecot):
                S.fill_maildir(server.maildir(user), msgs, uid, gid)
        postern.start()
        dovecot.start()
        servers = [(s.name, s.ports["pop3"]) for s in (postern, dovecot)]
        for name, port in servers:   # warm-up: index the dropped files
            S.pop3_round(port, users, args.clients, 0.01)
        print("%d users x %d messages of ~%d bytes, %d clients, %d x %gs per server"
              % (args.users, args.messages, args.size, args.clients, args.rounds,
                 args.seconds))
        best = {}
        for _ in range(args.rounds):
            for name, port in servers:
                r = S.pop3_round(port, users, args.clients, args.seconds)
                if name not in best or r[0] > best[name][0]:
                    best[name] = r
        for name, _ in servers:
            m, b = best[name]
            print("%-8s %9.1f messages/s %8.2f MB/s" % (name, m, b / 1e6))
        p, d = best["postern"], best["dovecot"]
        print("ratio postern/dovecot: messages %.2f, bytes %.2f" % (p[0] / d[0], p[1] / d[1]))
    finally:
        for server in (dovecot, postern):
            if server is not None:
                server.stop()
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
