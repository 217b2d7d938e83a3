"""Running Postern as a service (issue 18): a data_dir the service user
cannot reach is refused at once with one clear line; workers that keep
failing to start make the master give up with their reason; the demo
works from a checkout in a private (0700) directory; systemd's notify
protocol (READY, RELOADING, STOPPING) against a socket of the test's own."""

import hashlib
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

import pytest

from harness import POSTERN, Server, client_context, raw_connect, read_line, run_as_user

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")


def serve(srv, env=None, timeout=30):
    """Runs `postern serve` to its end; returns (status, stderr, seconds)."""
    start = time.monotonic()
    out = subprocess.run([POSTERN, "serve", "-c", srv.config_path], capture_output=True,
                         text=True, timeout=timeout, env=env)
    return out.returncode, out.stderr, time.monotonic() - start


def server_with_garbage(workdir, name):
    """A server whose data_dir holds a file named like an LMDB environment
    that is not one (owned by the service user): every child fails to start."""
    directory = os.path.join(workdir, "srv")
    os.mkdir(directory)
    srv = Server(directory)
    os.makedirs(srv.data_dir)
    garbage = os.path.join(srv.data_dir, name)
    with open(garbage, "wb") as f:
        f.write(b"not an LMDB file " * 1000)
    if os.geteuid() == 0:
        user = pwd.getpwnam(run_as_user())
        os.chown(garbage, user.pw_uid, user.pw_gid)
    return srv


@needs_root
def test_data_dir_out_of_the_service_users_reach_is_refused_at_once(workdir):
    private = os.path.join(workdir, "private")
    os.mkdir(private, 0o700)
    os.mkdir(os.path.join(workdir, "srv"))
    srv = Server(os.path.join(workdir, "srv"), extra={"data_dir": os.path.join(private, "data")})
    status, err, took = serve(srv)
    assert status == 1, err
    assert took < 10, "took %.1f s" % took
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert "cannot reach" in lines[0] and private in lines[0], lines[0]
    assert "worker-started" not in err, "workers were started:\n" + err


def test_master_gives_up_on_workers_that_keep_failing_to_start(workdir):
    srv = server_with_garbage(workdir, "accounts.lmdb")
    status, err, took = serve(srv)
    assert status == 1, err
    assert took < 15, "took %.1f s" % took
    last = err.strip().splitlines()[-1]
    assert "event=giving-up" in last and "accounts.lmdb" in last, err
    assert "MDB_INVALID" in last or "not an LMDB file" in last.lower(), last
    # it tried a few times, then stopped restarting (the account database
    # is the auth process's alone: it is the child that cannot start)
    assert 2 <= err.count("event=auth-started slot=0 ") <= 5, err


def test_a_worker_that_started_once_is_restarted_as_before(server):
    """Giving up is only for workers that cannot start: a worker killed
    while serving is still replaced, however often."""
    for _ in range(4):
        pid = server.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 10
        while pid in server.worker_pids() or len(server.worker_pids()) < 2:
            assert time.time() < deadline, server.read_log()[-3000:]
            assert server.proc.poll() is None, server.read_log()[-3000:]
            time.sleep(0.05)
    sock = raw_connect(server.port("imap"))
    assert read_line(sock).startswith(b"* OK")
    sock.close()


# ---- the demo from a private directory ----

DEMO_PORTS = {"submission": 1587, "submissions": 1465, "smtp": 1025, "pop3": 1110,
              "pop3s": 1995, "imap": 1143, "imaps": 1993}


@needs_root
@pytest.mark.xdist_group("demo")
def test_demo_from_a_private_directory(workdir):
    private = os.path.join(workdir, "checkout")
    os.mkdir(private, 0o700)
    demo_dir = os.path.realpath(os.path.join(private, "postern-demo"))
    outside = os.path.join("/var/lib/postern-demo",
                           hashlib.sha256(demo_dir.encode()).hexdigest()[:16])
    parent_existed = os.path.isdir("/var/lib/postern-demo")
    log = open(os.path.join(workdir, "demo.log"), "w+")
    proc = subprocess.Popen([POSTERN, "serve", "--demo", demo_dir], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 30
        for name, port in DEMO_PORTS.items():
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail("demo exited:\n" + log.read())
                try:
                    sock = raw_connect(port, tls=name.endswith("s"))
                    break
                except OSError:
                    assert time.time() < deadline, "demo never listened on %d" % port
                    time.sleep(0.1)
            greeting = read_line(sock)
            sock.close()
            assert greeting.startswith((b"220 ", b"+OK", b"* OK")), (name, greeting)
        with open(os.path.join(demo_dir, "demo-password")) as f:
            password = f.read().strip()
        m = imaplib.IMAP4_SSL("127.0.0.1", 1993, ssl_context=client_context(), timeout=10)
        m.login("demo@example.org", password)
        assert m.select("INBOX")[0] == "OK"
        m.logout()
        log.seek(0)
        banner = log.read()
        assert "data:    " + outside in banner, banner
        assert os.path.isfile(os.path.join(outside, "accounts.lmdb"))
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=30)
        log.close()
        shutil.rmtree(outside, ignore_errors=True)
        if not parent_existed:
            shutil.rmtree("/var/lib/postern-demo", ignore_errors=True)
    assert status == 0


# ---- systemd's notify protocol, against a socket of the test's own ----

class NotifySocket:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def next(self, timeout=15):
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def close(self):
        self.sock.close()


def test_notify_ready_reloading_stopping(workdir):
    directory = os.path.join(workdir, "srv")
    os.mkdir(directory)
    srv = Server(directory)
    notify = NotifySocket(os.path.join(workdir, "notify"))
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    log = open(srv.log_path, "wb")
    proc = subprocess.Popen([POSTERN, "serve", "-c", srv.config_path], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    try:
        msg = notify.next()
        assert msg.get("READY") == "1", msg
        assert "serving" in msg.get("STATUS", ""), msg
        # READY=1 means every listener is bound: a client is taken at once
        for name, port in srv.ports.items():
            sock = raw_connect(port, tls=name in ("submissions", "pop3s", "imaps"))
            assert read_line(sock).startswith((b"220 ", b"+OK", b"* OK")), name
            sock.close()

        proc.send_signal(signal.SIGHUP)     # what `systemctl reload` sends
        msg = notify.next()
        assert msg.get("RELOADING") == "1" and "READY" not in msg, msg
        assert int(msg["MONOTONIC_USEC"]) > 0
        msg = notify.next()
        assert msg.get("READY") == "1" and "generation 1" in msg["STATUS"], msg

        # a reload that fails still ends with READY=1, and says so
        with open(srv.config_path, "a") as f:
            f.write("no_such_key = 1\n")
        proc.send_signal(signal.SIGHUP)
        assert notify.next().get("RELOADING") == "1"
        msg = notify.next()
        assert msg.get("READY") == "1" and "reload failed" in msg["STATUS"], msg

        proc.send_signal(signal.SIGTERM)
        assert notify.next().get("STOPPING") == "1"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        notify.close()


def test_notify_says_why_the_master_gave_up(workdir):
    srv = server_with_garbage(workdir, "queue.lmdb")
    notify = NotifySocket(os.path.join(workdir, "notify"))
    try:
        status, err, _ = serve(srv, env=dict(os.environ, NOTIFY_SOCKET=notify.path))
        assert status == 1, err
        assert notify.next().get("READY") == "1"
        msg = notify.next()
        assert msg.get("STOPPING") == "1", msg
        assert "failed to start 3 times" in msg["STATUS"] and "queue.lmdb" in msg["STATUS"], msg
    finally:
        notify.close()
