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
    directory = os.path.join(workdir, "srv")
    os.mkdir(directory)
    srv = Server(directory)
    os.makedirs(srv.data_dir)
    garbage = os.path.join(srv.data_dir, "accounts.lmdb")
    with open(garbage, "wb") as f:
        f.write(b"not an LMDB file " * 1000)
    if os.geteuid() == 0:
        user = pwd.getpwnam(run_as_user())
        os.chown(garbage, user.pw_uid, user.pw_gid)
    status, err, took = serve(srv)
    assert status == 1, err
    assert took < 15, "took %.1f s" % took
    last = err.strip().splitlines()[-1]
    assert "event=giving-up" in last and "accounts.lmdb" in last, err
    assert "MDB_INVALID" in last or "not an LMDB file" in last.lower(), last
    # it tried a few times, then stopped restarting
    assert 2 <= err.count("event=worker-started slot=0 ") <= 5, err


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
