"""`postern serve --demo DIR` (CONTRACT.md): fixed loopback ports, a
self-signed certificate, and TLS on every port (issue 2's "done when")."""

import os
import signal
import socket
import subprocess
import time

import pytest

from harness import POSTERN

# the demo's ports are fixed: its tests never run side by side
pytestmark = pytest.mark.xdist_group("demo")

DEMO_PORTS = {"submission": 1587, "submissions": 1465, "smtp": 1025, "pop3": 1110,
              "pop3s": 1995, "imap": 1143, "imaps": 1993}


@pytest.fixture
def demo(workdir):
    directory = os.path.join(workdir, "demo")
    log = open(os.path.join(workdir, "demo.log"), "wb")
    proc = subprocess.Popen([POSTERN, "serve", "--demo", directory], stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    for port in DEMO_PORTS.values():
        while True:
            assert proc.poll() is None, open(os.path.join(workdir, "demo.log")).read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "demo never listened on %d" % port
                time.sleep(0.1)
    yield directory, proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log.close()


@pytest.mark.parametrize("name,starttls", [
    ("submission", "smtp"), ("pop3", "pop3"), ("imap", "imap"),
    ("submissions", None), ("pop3s", None), ("imaps", None)])
def test_demo_tls_on_every_port(demo, name, starttls):
    cmd = ["openssl", "s_client", "-brief", "-connect", "127.0.0.1:%d" % DEMO_PORTS[name]]
    if starttls:
        cmd[2:2] = ["-starttls", starttls]
    out = subprocess.run(cmd, input=b"", capture_output=True, timeout=20)
    text = (out.stdout + out.stderr).decode("utf-8", "replace")
    assert "CONNECTION ESTABLISHED" in text, text


def test_demo_files(demo):
    directory, _ = demo
    for name in ("cert.pem", "key.pem", "postern.conf"):
        assert os.path.exists(os.path.join(directory, name))
    assert os.stat(os.path.join(directory, "key.pem")).st_mode & 0o077 == 0
    out = subprocess.run([POSTERN, "check", "-c", os.path.join(directory, "postern.conf")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "imaps = 127.0.0.1:1993" in out.stdout
