"""The process split and the sandboxes (issue 19): only the auth process
holds the account database; workers, the relay and the auth process run
under no_new_privs, Landlock (where the kernel has it) and a seccomp
allowlist; a worker that steps outside dies and is replaced; the master
keeps only the capabilities it needs."""

import ctypes
import os
import re
import signal
import time

import imaplib

from harness import client_context

USER = "gina@example.org"
PASSWORD = "gina pw"


def landlock_abi():
    libc = ctypes.CDLL(None, use_errno=True)
    # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return libc.syscall(444, None, 0, 1)


def status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def open_files(pid):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    return out


def auth_pids(srv):
    started = {int(p) for p in re.findall(r"event=auth-started slot=\d+ pid=(\d+)",
                                             srv.read_log())}
    return [p for p in srv.child_pids() if p in started]


def login_works(srv):
    c = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context())
    try:
        return c.login(USER, PASSWORD)[0] == "OK"
    finally:
        c.logout()


def test_only_the_auth_process_holds_the_accounts(server):
    server.add_user(USER, PASSWORD)
    assert login_works(server)
    server.wait_log(r"event=sandbox kind=auth", count=1)
    server.wait_log(r"event=sandbox kind=worker", count=2)
    server.wait_log(r"event=sandbox kind=relay", count=1)
    [auth] = auth_pids(server)
    assert any(f.endswith("/accounts.lmdb") for f in open_files(auth))
    for pid in server.worker_pids() + server.relay_pids():
        files = open_files(pid)
        assert not any("accounts.lmdb" in f or "throttle.lmdb" in f or "auth-secret" in f
                       for f in files), files
    for pid in server.worker_pids() + server.relay_pids() + [auth]:
        st = status(pid)
        assert st["NoNewPrivs"].strip() == "1", (pid, st["NoNewPrivs"])
        assert st["Seccomp"].strip() == "2", (pid, st["Seccomp"])
    landlock = "yes" if landlock_abi() >= 2 else "no"
    assert len(re.findall(r"event=sandbox kind=\w+ landlock=%s seccomp=yes" % landlock,
                          server.read_log())) == 4


def test_a_worker_cannot_open_the_account_database(server, monkeypatch):
    """The worker-side test hook tries to open every file of data_dir."""
    server.stop()
    monkeypatch.setenv("POSTERN_SANDBOX_TEST", "probe")
    server.start()
    server.add_user(USER, PASSWORD)
    assert login_works(server)
    worker = server.worker_pids()[0]
    os.kill(worker, signal.SIGUSR2)
    server.wait_log(r"postern\[%d\] .*event=sandbox-probe file=mail" % worker)
    probes = dict(re.findall(r"postern\[%d\] .*event=sandbox-probe file=(\S+) result=(.*)"
                             % worker, server.read_log()))
    assert probes["queue.lmdb"] == "opened" and probes["mail"] == "opened"
    if landlock_abi() >= 2:
        for name in ("accounts.lmdb", "throttle.lmdb", "auth-secret"):
            assert probes[name] == "Permission denied", probes
    assert worker in server.worker_pids()   # a refused open is no violation


def test_a_worker_stepping_outside_dies_and_is_replaced(server, monkeypatch):
    server.stop()
    monkeypatch.setenv("POSTERN_SANDBOX_TEST", "violate")
    server.start()
    server.add_user(USER, PASSWORD)
    worker = server.worker_pids()[0]
    os.kill(worker, signal.SIGUSR2)
    server.wait_log(r"postern\[%d\] error event=sandbox-violation syscall=59" % worker)
    server.wait_log(r"event=worker-died slot=\d+ pid=%d signal=31 reason=sandbox-violation"
                    % worker)
    server.wait_log(r"event=worker-started", count=3)
    deadline = time.time() + 10
    while len(server.worker_pids()) < 2:
        assert time.time() < deadline
        time.sleep(0.1)
    assert worker not in server.worker_pids()
    assert login_works(server)


def test_the_master_keeps_only_what_it_needs(server):
    master = status(server.proc.pid)
    assert master["NoNewPrivs"].strip() == "1"
    if os.geteuid() == 0:
        keep = {6, 7, 5, 1, 2}    # setgid setuid kill dac_override dac_read_search
        eff = int(master["CapEff"], 16)
        bnd = int(master["CapBnd"], 16)
        assert eff == sum(1 << c for c in keep), hex(eff)
        assert bnd == eff, hex(bnd)
        assert not eff & (1 << 10)   # no binding of new low ports
        assert not eff & (1 << 21)   # no CAP_SYS_ADMIN


def test_the_web_process_is_sandboxed_too(server_factory):
    """The web process (metrics, autoconfig, MTA-STS) parses requests
    from the network: it runs under the same walls, without the account
    database or the mail."""
    from harness import free_port
    srv = server_factory(sections={"listen": {"metrics": "127.0.0.1:%d" % free_port()}})
    srv.wait_log(r"event=web-ready")
    srv.wait_log(r"event=sandbox kind=web", count=1)
    started = {int(p) for p in re.findall(r"event=web-started slot=\d+ pid=(\d+)",
                                             srv.read_log())}
    [web] = [p for p in srv.child_pids() if p in started]
    st = status(web)
    assert st["NoNewPrivs"].strip() == "1" and st["Seccomp"].strip() == "2", st
    files = open_files(web)
    assert not any("accounts.lmdb" in f or "/mail/" in f for f in files), files
