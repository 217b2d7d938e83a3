"""Throwaway servers for the benchmarks: Postern, Dovecot and Postfix, each
on 127.0.0.1 with free ports and a config made for the run, plus the
pieces the benchmark scripts share (free ports, certificates, the message
corpus, Maildir helpers, process memory, the fsync probe).

Every class has start() and stop(); stop() is safe to call twice and on a
server that never started, so scripts can stop everything in `finally`.
Run as root: Postfix needs it, and the servers drop to `nobody`.
"""

import crypt
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSTERN = os.environ.get("POSTERN_BIN", os.path.join(REPO, "build", "postern"))
DOMAIN = "example.org"
PASSWORD = "bench password"
# one yescrypt hash for both servers: logins cost the same on each side
PASSWORD_HASH = crypt.crypt(PASSWORD, "$y$j9T$benchsaltbench12")


def stop_on_signals():
    """SIGTERM and SIGHUP end the script through its `finally` blocks, so
    the servers it started are stopped (timeout(1) sends SIGTERM)."""
    def handler(signum, frame):
        raise SystemExit("stopped by signal %d" % signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited while starting (port %d)" % port)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


def terminate(proc):
    """SIGTERM, up to 30 s to exit, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_cert(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
        os.chmod(key, 0o644)   # both servers read it before or after dropping privileges
    return cert, key


def nobody_ids():
    out = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True, check=True)
    gid = subprocess.run(["id", "-g", "nobody"], capture_output=True, text=True, check=True)
    return int(out.stdout), int(gid.stdout)


# ---- messages ----

WORDS = ("the quick brown fox jumps over lazy dog meeting agenda budget report "
         "quarterly review please find attached draft comments project schedule "
         "invoice customer server update thanks regards tomorrow morning").split()


def message(rng, i, size, subject=None, to="user@example.org"):
    """A plausible message of about SIZE bytes: headers, text, and for large
    sizes a base64 attachment in a multipart/mixed body."""
    subject = subject or " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))
    head = ("Return-Path: <sender%d@example.net>\r\n"
            "From: Sender %d <sender%d@example.net>\r\nTo: <%s>\r\n"
            "Subject: %s\r\nDate: Sun, 29 Nov 2026 %02d:%02d:00 +0000\r\n"
            "Message-ID: <%d.%d@bench.example>\r\nMIME-Version: 1.0\r\n"
            % (i % 97, i % 97, i % 97, to, subject, i % 24, i % 60, i, rng.randint(0, 1 << 30)))
    text_size = min(size, 3000 + size // 10)
    words, n = [], 0
    while n < text_size:
        line = " ".join(rng.choice(WORDS) for _ in range(11))
        words.append(line)
        n += len(line) + 2
    text = "\r\n".join(words) + "\r\n"
    if size <= text_size + 200:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text).encode()
    b64 = []
    left = size - len(head) - len(text) - 300
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    line = "".join(rng.choice(chars) for _ in range(76))
    for k in range(max(1, left // 78)):
        b64.append(line[k % 76:] + line[:k % 76])
    return (head + "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n%s--b%d\r\n"
            "Content-Type: application/pdf; name=\"doc%d.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b%d--\r\n"
            % (i, i, text, i, i, "\r\n".join(b64), i)).encode()


def corpus_sizes(rng, count):
    """1 KiB to 5 MiB, log-normal: mostly a few KiB, a few large ones."""
    return [int(min(5 << 20, max(1024, 1024 * rng.lognormvariate(2.0, 1.4))))
            for _ in range(count)]


def fill_maildir(maildir, messages, uid, gid, tag="bench"):
    """Drops MESSAGES (bytes) into MAILDIR/new as another MDA would; both
    servers index them at the first open."""
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    for i, data in enumerate(messages):
        path = os.path.join(maildir, "new", "1764000000.M%dP%d.%s" % (i, os.getpid(), tag))
        with open(path, "wb") as f:
            f.write(data)
    chown_tree(os.path.dirname(os.path.dirname(maildir)), uid, gid)


def chown_tree(top, uid, gid):
    for root, dirs, files in os.walk(top):
        os.chown(root, uid, gid)
        for name in files:
            os.chown(os.path.join(root, name), uid, gid)


def count_files(maildir):
    n = 0
    for sub in ("new", "cur"):
        try:
            n += len(os.listdir(os.path.join(maildir, sub)))
        except FileNotFoundError:
            pass
    return n


def clear_maildir(maildir):
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        if os.path.isdir(d):
            for name in os.listdir(d):
                os.unlink(os.path.join(d, name))


# ---- processes and memory ----

def process_tree(pid):
    """PID and every descendant."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_kib(pid):
    """(sum of PSS, sum of RSS) in KiB over PID's process tree."""
    pss = rss = 0
    for p in process_tree(pid):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    return pss, rss


def fsync_rate(directory, n=300):
    """Create, write 4 KiB, fsync, close: per second; the ceiling for
    durable delivery (every server fsyncs at least once per message)."""
    path = os.path.join(directory, "fsync-probe")
    start = time.monotonic()
    for _ in range(n):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"x" * 4096)
        os.fsync(fd)
        os.close(fd)
    os.unlink(path)
    return n / (time.monotonic() - start)


# ---- POP3 load (bench/run, bench/pop3-load.py) ----

def pop3_session(port, user):
    """USER/PASS, STAT, UIDL, RETR of every message, QUIT; checks each
    reply and that RETR sizes add up; returns (messages, octets)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    buf = bytearray()

    def until(marker):
        nonlocal buf
        start = 0
        while True:
            i = buf.find(marker, start)
            if i >= 0:
                out = bytes(buf[:i + len(marker)])
                del buf[:i + len(marker)]
                return out
            start = max(0, len(buf) - len(marker))
            chunk = sock.recv(262144)
            if not chunk:
                raise RuntimeError("POP3 connection closed")
            buf += chunk

    def ok():
        line = until(b"\r\n")
        if not line.startswith(b"+OK"):
            raise RuntimeError("POP3: %r" % line[:200])
        return line

    def multi():
        if buf.startswith(b".\r\n"):
            del buf[:3]
            return 0
        return len(until(b"\r\n.\r\n")) - 3

    ok()
    sock.sendall(("USER %s@%s\r\nPASS %s\r\n" % (user, DOMAIN, PASSWORD)).encode())
    ok()
    ok()
    sock.sendall(b"STAT\r\nUIDL\r\n")
    count = int(ok().split()[1])
    ok()
    uidl = multi()
    if uidl == 0 and count:
        raise RuntimeError("POP3: empty UIDL")
    sock.sendall(b"".join(b"RETR %d\r\n" % n for n in range(1, count + 1)))
    total = 0
    for _ in range(count):
        ok()
        total += multi()
    sock.sendall(b"QUIT\r\n")
    ok()
    sock.close()
    return count, total


def pop3_client(args):
    port, users, seconds = args
    messages = octets = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for user in users:
            m, b = pop3_session(port, user)
            messages += m
            octets += b
    return messages, octets


def pop3_round(port, users, clients, seconds):
    shares = [users[i::clients] for i in range(clients)]
    start = time.monotonic()
    # the workers keep the default SIGTERM: Pool.terminate() sends it, and a
    # worker that turned it into an exception could hang the pool
    with multiprocessing.Pool(clients, initializer=signal.signal,
                              initargs=(signal.SIGTERM, signal.SIG_DFL)) as pool:
        results = pool.map(pop3_client, [(port, share, seconds) for share in shares if share])
    elapsed = time.monotonic() - start
    return sum(r[0] for r in results) / elapsed, sum(r[1] for r in results) / elapsed


# ---- the servers ----

class Postern:
    name = "postern"

    def __init__(self, base, users, binary=POSTERN, workers=0):
        self.bin = binary
        self.dir = os.path.join(base, "postern")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.cert, self.key = make_cert(base)
        self.ports = {n: free_port() for n in ("smtp", "pop3", "imap", "imaps")}
        self.conf = os.path.join(self.dir, "postern.conf")
        listen = "".join("%s = 127.0.0.1:%d\n" % kv for kv in self.ports.items())
        with open(self.conf, "w") as f:
            f.write("hostname = bench-postern.example\ndata_dir = %s/data\nrun_as = nobody\n"
                    "workers = %d\nlog_level = warn\n[tls]\ncert = %s\nkey = %s\n"
                    "[listen]\n%s[auth]\nplaintext = loopback\n[limits]\n"
                    "max_connections = 20000\nmax_connections_per_ip = 20000\n"
                    "[relay]\nmode = none\n"
                    % (self.dir, workers, self.cert, self.key, listen))
        self.cli("domain", "add", DOMAIN)
        for user in users:
            self.cli("user", "add", "%s@%s" % (user, DOMAIN), input=PASSWORD + "\n")
        self.proc = None

    def cli(self, *args, input=None):
        subprocess.run([self.bin, *args, "-c", self.conf], input=input, text=True,
                       check=True, capture_output=True)

    def maildir(self, user):
        return os.path.join(self.dir, "data", "mail", DOMAIN, user)

    def start(self):
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen([self.bin, "serve", "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for port in self.ports.values():
            wait_port(port, self.proc)

    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None
        self.log.close()


class Dovecot:
    """Debian's Dovecot 2.3 (imap, pop3, lmtp) with a passwd-file and the
    default process model. mail_fsync = optimized (Dovecot's default): a
    delivered or appended message file is fsynced before the OK, as
    Postern does; index files are not fsynced (Dovecot rebuilds them)."""

    name = "dovecot"

    def __init__(self, base, users, mail_root, fsync="optimized"):
        self.dir = os.path.join(base, "dovecot")
        for sub in ("run", "state", "home"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.mail_root = mail_root
        os.makedirs(mail_root, exist_ok=True)
        uid, gid = nobody_ids()
        os.chown(os.path.join(self.dir, "home"), uid, gid)
        os.chown(mail_root, uid, gid)
        self.cert, self.key = make_cert(base)
        self.ports = {n: free_port() for n in ("pop3", "imap", "imaps", "lmtp")}
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            for user in users:
                f.write("%s@%s:{CRYPT}%s\n" % (user, DOMAIN, PASSWORD_HASH))
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""base_dir = %(d)s/run
state_dir = %(d)s/state
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <%(cert)s
ssl_key = <%(key)s
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = %(d)s/dovecot.log
mail_location = maildir:%(m)s/%%d/%%n
mail_fsync = %(fsync)s
pop3_uidl_format = %%08Xu%%08Xv
default_process_limit = 2000
default_client_limit = 4000
default_vsz_limit = 1G
passdb {
  driver = passwd-file
  args = %(d)s/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=%(d)s/home/%%d/%%n
}
protocol imap {
  mail_max_userip_connections = 5000
}
protocol lmtp {
  auth_username_format = %%Lu
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %(imap)d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %(imaps)d
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %(pop3)d
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %(lmtp)d
  }
  unix_listener lmtp {
    mode = 0600
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
""" % dict(d=self.dir, m=mail_root, fsync=fsync, cert=self.cert, key=self.key,
                **self.ports))
        self.proc = None

    def maildir(self, user):
        return os.path.join(self.mail_root, DOMAIN, user)

    def start(self):
        self.proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for port in self.ports.values():
            wait_port(port, self.proc)

    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None


class Postfix:
    """Debian's Postfix on a loopback port, accepting mail for example.org
    from 127.0.0.0/8. TRANSPORT: "lmtp:inet:127.0.0.1:PORT" hands mail to
    Dovecot's LMTP (what a Postfix + Dovecot install does); "virtual" has
    Postfix's virtual(8) write MAIL_ROOT/example.org/USER/ itself. Either
    way the queue file is fsynced before the 250."""

    name = "postfix"

    def __init__(self, base, users, mail_root=None, transport="virtual", extra=None):
        self.dir = os.path.join(base, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        os.makedirs(self.etc, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        shutil.copy("/etc/postfix/master.cf", self.etc)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("compatibility_level = 3.6\n")
        uid, gid = nobody_ids()
        self.mail_root = mail_root or os.path.join(self.dir, "mail")
        os.makedirs(self.mail_root, exist_ok=True)
        os.chown(self.mail_root, uid, gid)
        settings = {
            "queue_directory": os.path.join(self.dir, "spool"),
            "data_directory": os.path.join(self.dir, "data"),
            "myhostname": "bench-postfix.example",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "virtual_mailbox_domains": DOMAIN,
            "virtual_transport": transport,
            "virtual_mailbox_base": self.mail_root,
            "virtual_mailbox_maps": "texthash:" + os.path.join(self.etc, "mailboxes"),
            "virtual_uid_maps": "static:%d" % uid,
            "virtual_gid_maps": "static:%d" % gid,
            "smtpd_recipient_restrictions": "permit_mynetworks, reject",
            "maillog_file": os.path.join(self.dir, "maillog"),
            "smtpd_client_connection_count_limit": "0",
            "default_process_limit": "200",
            "lmtp_destination_concurrency_limit": "20",
            "alias_maps": "", "alias_database": "",
        }
        settings.update(extra or {})
        self.maillog = settings["maillog_file"]
        with open(os.path.join(self.etc, "mailboxes"), "w") as f:
            for user in users:
                f.write("%s@%s %s/%s/\n" % (user, DOMAIN, DOMAIN, user))
        subprocess.run(["postconf", "-c", self.etc, "-e"] +
                       ["%s=%s" % kv for kv in settings.items()], check=True)
        subprocess.run(["postconf", "-c", self.etc, "-M#", "smtp/inet"], check=True)
        subprocess.run(["postconf", "-c", self.etc, "-M",
                        "127.0.0.1:%d/inet=127.0.0.1:%d inet n - y - - smtpd"
                        % (self.port, self.port)], check=True)
        os.makedirs(os.path.join(self.dir, "spool"), exist_ok=True)
        subprocess.run(["postfix", "-c", self.etc, "post-install", "create-missing"],
                       capture_output=True)
        self.started = False

    def maildir(self, user):
        """Where virtual(8) delivers (TRANSPORT "virtual")."""
        return os.path.join(self.mail_root, DOMAIN, user)

    def start(self):
        # postfix reports start-up errors on a terminal only: give it one
        out = subprocess.run(["script", "-qec", "postfix -c %s start" % self.etc, "/dev/null"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("postfix start failed: " + out.stdout + out.stderr)
        self.started = True
        wait_port(self.port)

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.started:
            subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)
            self.started = False
