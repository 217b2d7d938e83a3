#!/usr/bin/env python3
"""POP3 load, Postern against Dovecot's pop3 (Debian's dovecot-pop3d), side
by side in one run on copies of the same Maildirs.

Each of CLIENTS processes loops over its own users for SECONDS: connect,
USER/PASS, STAT, UIDL, RETR of every message, QUIT (messages are kept, so
every session fetches the whole mailbox). Both servers check the same
yescrypt hash at login. Prints sessions, messages and bytes per second
for each, and Postern's numbers as ratios of Dovecot's.

  python3 bench/pop3-load.py [--users 8] [--messages 50] [--size 4096]
                             [--clients 4] [--seconds 10] [--rounds 2]

Run as root (Dovecot drops to nobody for the mail); needs dovecot-pop3d.
"""

import argparse
import crypt
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
from harness import Server, free_port  # noqa: E402

PASSWORD = "bench password"


def message(i, size):
    head = ("From: bench@example.net\r\nTo: user@example.org\r\nSubject: message %d\r\n"
            "Message-ID: <%d@bench.example>\r\n\r\n" % (i, i)).encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def fill(server, users, count, size):
    """Accounts through the CLI; messages dropped into new/ (indexed at
    the first login, as mail from another MDA would be)."""
    for u in range(users):
        address = "user%d@example.org" % u
        server.add_user(address, PASSWORD)
        new = os.path.join(server.data_dir, "mail", "example.org", "user%d" % u, "new")
        os.makedirs(new, exist_ok=True)
        for i in range(count):
            with open(os.path.join(new, "1700000000.M%dP%d.bench" % (i, u)), "wb") as f:
                f.write(message(i, size))
    subprocess.run(["chown", "-R", "nobody:", os.path.join(server.data_dir, "mail")],
                   check=True)


class Dovecot:
    def __init__(self, directory, mail_root, users):
        self.dir = directory
        self.port = free_port()
        salt = "benchsaltbench12"
        hashed = crypt.crypt(PASSWORD, "$y$j9T$" + salt)
        with open(os.path.join(directory, "passwd"), "w") as f:
            for u in range(users):
                f.write("user%d@example.org:{CRYPT}%s\n" % (u, hashed))
        for sub in ("run", "state", "home"):
            os.makedirs(os.path.join(directory, sub), exist_ok=True)
        subprocess.run(["chown", "nobody:", os.path.join(directory, "home")], check=True)
        self.conf = os.path.join(directory, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""base_dir = %(d)s/run
state_dir = %(d)s/state
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = %(d)s/dovecot.log
mail_location = maildir:%(m)s/%%d/%%n
pop3_uidl_format = %%08Xu%%08Xv
passdb {
  driver = passwd-file
  args = %(d)s/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=%(d)s/home/%%d/%%n
}
service pop3-login {
  inet_listener pop3 {
    port = %(p)d
  }
  inet_listener pop3s {
    port = 0
  }
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
""" % {"d": directory, "m": mail_root, "p": self.port})
        self.proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("dovecot did not start")
                time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Reader:
    """Buffered reads of replies, without per-line Python work for bodies."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _until(self, marker, start=0):
        while True:
            i = self.buf.find(marker, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(marker)])
                del self.buf[:i + len(marker)]
                return out
            start = max(0, len(self.buf) - len(marker))
            chunk = self.sock.recv(262144)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk

    def line(self):
        line = self._until(b"\r\n")
        if not line.startswith(b"+"):
            raise RuntimeError("unexpected reply %r" % line)
        return line

    def multi(self):
        """The rest of a multi-line reply; returns its size without the end."""
        if self.buf.startswith(b".\r\n"):
            del self.buf[:3]
            return 0
        return len(self._until(b"\r\n.\r\n")) - 3


def session(port, user):
    """One POP3 session: returns (messages, bytes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    r = Reader(sock)
    r.line()
    sock.sendall(("USER %s\r\nPASS %s\r\n" % (user, PASSWORD)).encode())
    r.line()
    r.line()
    sock.sendall(b"STAT\r\nUIDL\r\n")
    count = int(r.line().split()[1])
    r.line()
    r.multi()
    sock.sendall(b"".join(b"RETR %d\r\n" % n for n in range(1, count + 1)))
    total = 0
    for _ in range(count):
        r.line()
        total += r.multi()
    sock.sendall(b"QUIT\r\n")
    r.line()
    sock.close()
    return count, total


def client(args):
    port, users, seconds = args
    sessions = messages = octets = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for user in users:
            m, b = session(port, user)
            sessions += 1
            messages += m
            octets += b
    return sessions, messages, octets


def load(port, users, clients, seconds):
    names = ["user%d@example.org" % u for u in range(users)]
    shares = [names[i::clients] for i in range(clients)]
    start = time.monotonic()
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(client, [(port, share, seconds) for share in shares if share])
    elapsed = time.monotonic() - start
    sessions, messages, octets = (sum(r[i] for r in results) for i in range(3))
    return sessions / elapsed, messages / elapsed, octets / elapsed


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
        sys.exit("run as root (Dovecot drops to nobody)")
    if args.clients > args.users:
        args.clients = args.users

    top = tempfile.mkdtemp(prefix="postern-bench-pop3-")
    os.chmod(top, 0o755)
    pdir = os.path.join(top, "postern")
    os.mkdir(pdir)
    postern = Server(pdir, extra={"log_level": "info"}, workers=2)
    dovecot = None
    try:
        fill(postern, args.users, args.messages, args.size)
        dmail = os.path.join(top, "dovecot-mail")
        shutil.copytree(os.path.join(postern.data_dir, "mail"), dmail, symlinks=True)
        for root, dirs, files in os.walk(dmail):
            for name in files:
                if name.startswith(("postern-", "dovecot-uidlist")):
                    os.unlink(os.path.join(root, name))
        subprocess.run(["chown", "-R", "nobody:", dmail], check=True)
        postern.start()
        ddir = os.path.join(top, "dovecot")
        os.mkdir(ddir)
        dovecot = Dovecot(ddir, dmail, args.users)
        servers = [("postern", postern.port("pop3")), ("dovecot", dovecot.port)]
        for name, port in servers:   # warm-up: index the dropped files, set \Seen
            load(port, args.users, args.clients, 0.01)
        print("%d users x %d messages of ~%d bytes, %d clients, %d x %gs per server"
              % (args.users, args.messages, args.size, args.clients, args.rounds,
                 args.seconds))
        best = {}
        for _ in range(args.rounds):
            for name, port in servers:
                r = load(port, args.users, args.clients, args.seconds)
                if name not in best or r[1] > best[name][1]:
                    best[name] = r
        for name, _ in servers:
            s, m, b = best[name]
            print("%-8s %8.1f sessions/s %9.1f messages/s %8.2f MB/s" % (name, s, m, b / 1e6))
        p, d = best["postern"], best["dovecot"]
        print("ratio postern/dovecot: sessions %.2f, messages %.2f, bytes %.2f"
              % (p[0] / d[0], p[1] / d[1], p[2] / d[2]))
    finally:
        if dovecot is not None:
            dovecot.stop()
        postern.stop()
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
