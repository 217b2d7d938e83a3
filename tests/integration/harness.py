"""Shared helpers for the integration tests: start a throwaway Postern on
free loopback ports with a generated config, and talk to it with real
clients. Every server a test starts listens on 127.0.0.1 only."""

import atexit
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSTERN = os.environ.get("POSTERN_BIN", os.path.join(REPO, "build", "postern"))

LISTENERS = ("submission", "submissions", "smtp", "pop3", "pop3s", "imap", "imaps")
IMPLICIT_TLS = ("submissions", "pop3s", "imaps")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory, name="cert", cn="localhost"):
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + "-key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def run_as_user():
    """The user the server drops to: nobody when the tests run as root."""
    if os.geteuid() == 0:
        return "nobody"
    return pwd.getpwuid(os.geteuid()).pw_name


_service_copy = None


def as_service_user(argv):
    """argv to run `postern ...` as the server's user (runuser when root).
    A checkout in a private directory (say /root/src, mode 0700) is out of
    that user's reach, and so is build/postern in it: then the binary is
    copied once into a directory of its own that the user can reach."""
    global _service_copy
    if os.geteuid() != 0:
        return list(argv)
    user = run_as_user()
    program = argv[0]
    if argv[0] == POSTERN:
        if _service_copy is None:
            reachable = subprocess.run(["runuser", "-u", user, "--", "test", "-x", POSTERN],
                                       capture_output=True).returncode == 0
            if reachable:
                _service_copy = POSTERN
            else:
                directory = tempfile.mkdtemp(prefix="postern-bin-")
                os.chmod(directory, 0o755)
                _service_copy = shutil.copy2(POSTERN, os.path.join(directory, "postern"))
                atexit.register(shutil.rmtree, directory, True)
        program = _service_copy
    return ["runuser", "-u", user, "--", program] + list(argv[1:])


def holds_files(pid):
    """True while pid is a live (or dying, not yet zombie) process with open files."""
    try:
        return bool(os.listdir("/proc/%d/fd" % pid))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


class PortTaken(Exception):
    pass


class Server:
    """A running `postern serve` with its own config, data and log."""

    def __init__(self, directory, extra=None, sections=None, workers=2):
        self.settings = (extra or {}, sections or {}, workers)
        self.dir = directory
        self.data_dir = (extra or {}).get("data_dir", os.path.join(directory, "data"))
        self.cert, self.key = make_cert(directory)
        self.ports = {}
        for name in LISTENERS:
            # the kernel may hand out a just-released port again: keep them distinct
            port = free_port()
            while port in self.ports.values():
                port = free_port()
            self.ports[name] = port
        self.config_path = os.path.join(directory, "postern.conf")
        self.log_path = os.path.join(directory, "postern.log")
        self.proc = None
        self.log_mark = 0
        self.wrapper = []       # a command to run `postern serve` under (strace)
        self.env = None
        self.write_config(extra or {}, sections or {}, workers)

    def write_config(self, extra, sections, workers):
        top = {
            "hostname": "mail.test.example",
            "data_dir": self.data_dir,
            "run_as": run_as_user(),
            "workers": str(workers),
            "log_level": "debug",
        }
        top.update(extra)
        body = {
            "tls": {"cert": self.cert, "key": self.key},
            "listen": {n: "127.0.0.1:%d" % p for n, p in self.ports.items()},
            "auth": {"plaintext": "loopback"},
            # never the system's resolver: no test may send traffic off loopback
            "relay": {"mode": "none", "dns": "127.0.0.1:9"},
        }
        for sec, values in sections.items():
            body.setdefault(sec, {}).update(values)
        lines = ["%s = %s" % kv for kv in top.items()]
        for sec, values in body.items():
            lines.append("\n[%s]" % sec)
            lines.extend("%s = %s" % kv for kv in values.items())
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        # the unprivileged workers must be able to reach their files
        os.chmod(self.dir, 0o755)

    def start(self):
        # a free port can be taken by someone else before we bind it: retry
        for attempt in range(6):
            try:
                return self._start()
            except PortTaken:
                self.stop()
                if attempt % 2 == 0:
                    time.sleep(1.5)    # a killed server's last workers leaving
                else:
                    self.ports = {name: free_port() for name in LISTENERS}
                    self.write_config(*self.settings)
        raise RuntimeError("no free ports after 6 tries")

    def _start(self):
        self.log = open(self.log_path, "ab")
        log_start = self.log_mark = self.log.tell()
        self.proc = subprocess.Popen(self.wrapper + [POSTERN, "serve", "-c", self.config_path],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        try:
            self._wait_ready()
        except (RuntimeError, AssertionError):
            # did it fail to bind? (something else may answer on the port)
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            if "Address already in use" in self.read_log(log_start):
                if os.environ.get("POSTERN_DEBUG_PORTS"):
                    subprocess.run(["ss", "-ltnp"])
                raise PortTaken()
            raise
        return self

    def _wait_ready(self):
        deadline = time.time() + 15
        for probes, port in enumerate(self.ports.values(), 1):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("postern exited early:\n" + self.read_log(self.log_mark))
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError("postern did not listen:\n" + self.read_log())
                    time.sleep(0.05)
            # one probe at a time, gone from the server's counts before the next
            self.wait_log(r"event=(disconnect|connection-refused)", count=probes)

    def read_log(self, since=0):
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, count=1, timeout=10):
        deadline = time.time() + timeout
        while True:
            # what the server started last has logged
            found = re.findall(pattern, self.read_log(self.log_mark))
            if len(found) >= count:
                return found
            if time.time() > deadline:
                raise AssertionError("log never matched %r %d times:\n%s"
                                     % (pattern, count, self.read_log()[-4000:]))
            time.sleep(0.05)

    def child_pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def relay_pids(self):
        """Live children the master started as the relay (its log says
        `event=relay-started ... pid=N`)."""
        started = {int(p) for p in re.findall(r"event=relay-started slot=\d+ pid=(\d+)",
                                                 self.read_log())}
        return [p for p in self.child_pids() if p in started]

    def worker_pids(self):
        """Live worker processes (children that are not the relay)."""
        workers = {int(p) for p in re.findall(r"event=worker-started slot=\d+ pid=(\d+)",
                                                  self.read_log())}
        return [p for p in self.child_pids() if p in workers]

    def crash(self):
        """The whole server dies at once (SIGKILL to the master and every
        child), like a power cut for the processes; start() brings it back."""
        children = self.child_pids()
        self.proc.kill()
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.stop()
        # a killed process keeps its sockets until its teardown ends (slow
        # with a sanitizer's huge mappings): a probe must not reach them
        deadline = time.time() + 30
        while any(holds_files(pid) for pid in children):
            assert time.time() < deadline, "killed processes never went away"
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the server; returns its exit status (None if not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        self.log.close()
        return code

    def check_sanitizers(self):
        log = self.read_log()
        for marker in SANITIZER_MARKERS:
            assert marker not in log, "sanitizer report in server log:\n" + log[-6000:]

    def port(self, name):
        return self.ports[name]

    # ---- accounts and mail, through the admin CLI ----

    def cli(self, *args, input=None, check=True):
        out = subprocess.run([POSTERN, *args, "-c", self.config_path], input=input,
                             capture_output=True, timeout=120,
                             text=isinstance(input, str) or input is None)
        if check and out.returncode != 0:
            raise AssertionError("postern %s failed (%d): %s" % (" ".join(args), out.returncode,
                                                                 out.stderr))
        return out

    def add_domain(self, domain):
        self.cli("domain", "add", domain)

    def add_user(self, address, password):
        domain = address.rsplit("@", 1)[1]
        if self.cli("domain", "list").stdout.split().count(domain) == 0:
            self.add_domain(domain)
        self.cli("user", "add", address, input=password + "\n")

    def maildir(self, address, folder=None):
        local, domain = address.rsplit("@", 1)
        path = os.path.join(self.data_dir, "mail", domain.lower(), local)
        return os.path.join(path, "." + folder) if folder else path

    def messages(self, address, folder=None):
        """The messages of a mailbox, read straight from the Maildir, oldest first."""
        root = self.maildir(address, folder)
        found = []
        for sub in ("new", "cur"):
            directory = os.path.join(root, sub)
            if not os.path.isdir(directory):
                continue
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                found.append((os.stat(path).st_mtime_ns, name, path))
        result = []
        for _, _, path in sorted(found):
            with open(path, "rb") as f:
                result.append(f.read())
        return result

    def new_files(self, address, mailbox=None):
        directory = os.path.join(self.maildir(address, mailbox), "new")
        return set(os.listdir(directory)) if os.path.isdir(directory) else set()

    def stored_since(self, address, before, mailbox=None):
        """The one file that came into the mailbox's new/ since `before`."""
        added = self.new_files(address, mailbox) - before
        assert len(added) == 1, added
        with open(os.path.join(self.maildir(address, mailbox), "new", added.pop()), "rb") as f:
            return f.read()

    def deliver(self, address, message, mailbox=None):
        """Local delivery through intake (`postern deliver`); returns the
        stored copy: the message with intake's Return-Path and Received on
        top and its line ends made CRLF."""
        if isinstance(message, str):
            message = message.encode()
        before = self.new_files(address, mailbox)
        args = ["deliver", address] + (["--mailbox", mailbox] if mailbox else [])
        self.cli(*args, input=message)
        return self.stored_since(address, before, mailbox)


def raw_connect(port, tls=False):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        sock = client_context().wrap_socket(sock)
    return sock


def read_line(sock):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def read_until(sock, predicate, limit=100):
    lines = []
    for _ in range(limit):
        line = read_line(sock)
        if not line:
            break
        lines.append(line)
        if predicate(line):
            break
    return lines


def run_postern(*args, input=None, env=None):
    return subprocess.run([POSTERN, *args], input=input, capture_output=True, text=True,
                          env=env, timeout=60)
