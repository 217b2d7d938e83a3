"""Issue 2: listeners, greetings, STARTTLS and implicit TLS, line limits,
garbage, half-done handshakes, timeouts, limits, worker restarts, reload,
privilege drop, `postern check`. Real clients: smtplib, imaplib, poplib,
openssl s_client."""

import imaplib
import os
import poplib
import random
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from harness import (client_context, make_cert, raw_connect, read_line, read_until,
                     run_postern, run_as_user)


def still_serving(server):
    """A fresh connection on every listener still gets its greeting."""
    for name, port in server.ports.items():
        sock = raw_connect(port, tls=name in ("submissions", "pop3s", "imaps"))
        greeting = read_line(sock)
        sock.close()
        assert greeting.startswith((b"220 ", b"+OK", b"* OK")), (name, greeting)


# ---- greetings and TLS through the standard library clients ----

def test_smtp_starttls_on_submission_and_25(server):
    for name in ("submission", "smtp"):
        s = smtplib.SMTP("127.0.0.1", server.port(name), timeout=10)
        code, banner = s.ehlo("client.example")
        assert code == 250
        assert s.has_extn("starttls")
        assert s.has_extn("pipelining") and s.has_extn("enhancedstatuscodes")
        code, _ = s.starttls(context=client_context())
        assert code == 220
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert not s.has_extn("starttls"), "STARTTLS offered again inside TLS"
        assert "TLSv1." in s.sock.version()
        assert s.noop()[0] == 250
        s.quit()


def test_smtp_implicit_tls_465(server):
    s = smtplib.SMTP_SSL("127.0.0.1", server.port("submissions"), timeout=10,
                         context=client_context())
    code, _ = s.ehlo("client.example")
    assert code == 250
    assert not s.has_extn("starttls"), "STARTTLS must not be offered on 465"
    assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert s.docmd("STARTTLS")[0] == 503
    assert s.rset()[0] == 250
    assert s.docmd("HELP")[0] == 214
    assert s.docmd("VRFY", "root")[0] == 252
    assert s.docmd("XYZZY")[0] == 502
    s.quit()


def test_smtp_greeting_and_helo(server):
    s = smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=10)
    assert s.helo("client.example")[0] == 250
    assert s.docmd("EHLO")[0] == 501
    assert s.docmd("STARTTLS", "now")[0] == 501
    s.quit()


def test_imap_starttls_and_implicit(server):
    m = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
    assert "STARTTLS" in m.capabilities
    # the harness allows plaintext on loopback ([auth] plaintext = loopback);
    # LOGINDISABLED under "never" is tested in test_imap.py
    assert "LOGINDISABLED" not in m.capabilities
    m.starttls(ssl_context=client_context())
    typ, data = m.capability()
    assert typ == "OK"
    caps = data[0].decode().split()
    assert "STARTTLS" not in caps
    assert m.noop()[0] == "OK"
    m.logout()

    m = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=client_context(),
                          timeout=10)
    assert "STARTTLS" not in m.capabilities
    assert "IMAP4REV1" in m.capabilities
    assert m.noop()[0] == "OK"
    typ, data = m._simple_command("XYZZY") if False else (None, None)
    m.logout()


def test_pop3_stls_and_implicit(server):
    p = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    assert "STLS" in p.capa()
    p.stls(context=client_context())
    assert "STLS" not in p.capa()
    p.quit()

    p = poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=client_context(), timeout=10)
    capa = p.capa()
    assert "STLS" not in capa and "RESP-CODES" in capa
    with pytest.raises(poplib.error_proto):
        p._shortcmd("XYZZY")
    p.quit()


# ---- openssl s_client, as the "done when" says ----

@pytest.mark.parametrize("name,starttls", [
    ("submission", "smtp"), ("smtp", "smtp"), ("pop3", "pop3"), ("imap", "imap"),
    ("submissions", None), ("pop3s", None), ("imaps", None)])
def test_openssl_s_client_handshake(server, name, starttls):
    cmd = ["openssl", "s_client", "-brief", "-connect", "127.0.0.1:%d" % server.port(name)]
    if starttls:
        cmd[2:2] = ["-starttls", starttls]
    out = subprocess.run(cmd, input=b"", capture_output=True, timeout=20)
    text = (out.stdout + out.stderr).decode("utf-8", "replace")
    assert "CONNECTION ESTABLISHED" in text, text
    assert "Protocol version: TLSv1.3" in text or "Protocol version: TLSv1.2" in text, text


def test_tls_1_1_refused(server):
    out = subprocess.run(
        ["openssl", "s_client", "-brief", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0",
         "-connect", "127.0.0.1:%d" % server.port("imaps")],
        input=b"", capture_output=True, timeout=20)
    text = (out.stdout + out.stderr).decode("utf-8", "replace")
    assert "CONNECTION ESTABLISHED" not in text
    server.wait_log(r"event=tls-handshake-failed")
    still_serving(server)


def test_tls_1_2_accepted(server):
    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port("imaps"))))
    assert sock.version() == "TLSv1.2"
    assert read_line(sock).startswith(b"* OK")
    sock.close()


# ---- STARTTLS command injection (RFC 3207 4.2, RFC 2595, RFC 3501) ----

def starttls_injection(port, greeting_prefix, starttls, injected, after, expect_prefix):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert read_line(sock).startswith(greeting_prefix)
    sock.sendall(starttls + injected)
    ok = read_line(sock)
    while ok.startswith(b"250"):     # the EHLO reply before STARTTLS's
        ok = read_line(sock)
    assert ok.startswith((b"220", b"+OK", b"a OK")), ok
    tls = client_context().wrap_socket(sock)
    tls.sendall(after)
    first = read_line(tls)
    tls.close()
    return first, expect_prefix


def test_starttls_injection_smtp(server):
    first, _ = starttls_injection(server.port("submission"), b"220", b"EHLO x\r\nSTARTTLS\r\n",
                                  b"RSET\r\nXINJECTED\r\n", b"EHLO x\r\n", b"250-")
    assert first.startswith(b"250-"), first


def test_starttls_injection_imap(server):
    first, _ = starttls_injection(server.port("imap"), b"* OK", b"a STARTTLS\r\n",
                                  b"b XINJECTED\r\n", b"c NOOP\r\n", b"c OK")
    assert first.startswith(b"c OK"), first


def test_starttls_injection_pop3(server):
    first, _ = starttls_injection(server.port("pop3"), b"+OK", b"STLS\r\n",
                                  b"XINJECTED\r\n", b"NOOP\r\n", b"-ERR")
    # NOOP is not valid before login: the reply is to our NOOP, not the injection
    assert first == b"-ERR Command not valid in this state\r\n", first


# ---- bounded lines, NUL and bare CR, garbage ----

def test_overlong_lines_answered_and_session_goes_on(server):
    sock = raw_connect(server.port("submission"))
    read_line(sock)
    sock.sendall(b"NOOP " + b"x" * 2000 + b"\r\nNOOP\r\n")
    assert read_line(sock).startswith(b"500 5.5.2")
    assert read_line(sock).startswith(b"250 2.0.0")
    sock.close()

    sock = raw_connect(server.port("pop3"))
    read_line(sock)
    sock.sendall(b"CAPA" + b"y" * 1000 + b"\r\nQUIT\r\n")
    assert read_line(sock).startswith(b"-ERR")
    assert read_line(sock).startswith(b"+OK")
    sock.close()

    sock = raw_connect(server.port("imaps"), tls=True)
    read_line(sock)
    sock.sendall(b"a NOOP " + b"z" * 100000 + b"\r\nb NOOP\r\n")
    assert read_line(sock).startswith(b"* BAD [TOOBIG]")
    assert read_line(sock) == b"b OK NOOP completed\r\n"
    sock.close()


def test_nul_and_bare_cr_in_commands(server):
    sock = raw_connect(server.port("submission"))
    read_line(sock)
    sock.sendall(b"NO\x00OP\r\nNO\rOP\r\nNOOP\r\n")
    assert read_line(sock).startswith(b"500 5.5.2")
    assert read_line(sock).startswith(b"500 5.5.2")
    assert read_line(sock).startswith(b"250")
    sock.close()

    sock = raw_connect(server.port("imap"))
    read_line(sock)
    sock.sendall(b"a NO\x00OP\r\nb NO\rOP\r\nc NOOP\r\n")
    assert b"BAD" in read_line(sock)
    assert read_line(sock).startswith(b"b BAD")
    assert read_line(sock).startswith(b"c OK")
    sock.close()


def test_bad_command_budget_closes(server):
    sock = raw_connect(server.port("imap"))
    read_line(sock)
    sock.sendall(b"".join(b"t%d BOGUS\r\n" % i for i in range(20)))
    lines = read_until(sock, lambda l: l.startswith(b"* BYE"))
    assert lines[-1].startswith(b"* BYE")
    assert sock.recv(100) == b""
    sock.close()
    still_serving(server)


def test_random_garbage_never_kills_the_server(server):
    rng = random.Random(20261129)
    for name, port in server.ports.items():
        for _ in range(5):
            sock = raw_connect(port, tls=name in ("submissions", "pop3s", "imaps"))
            read_line(sock)
            blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 20000)))
            try:
                sock.sendall(blob)
                sock.settimeout(0.3)
                while sock.recv(65536):
                    pass
            except (OSError, ssl.SSLError):
                pass
            sock.close()
    still_serving(server)
    assert len(server.worker_pids()) == 2
    assert "worker-died" not in server.read_log()


def test_disconnect_mid_handshake(server):
    for name in ("submissions", "pop3s", "imaps"):
        # TCP connect and close at once
        socket.create_connection(("127.0.0.1", server.port(name))).close()
        # half a ClientHello, then gone
        sock = socket.create_connection(("127.0.0.1", server.port(name)))
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40)
        sock.close()
    # STARTTLS, then close before the handshake
    sock = raw_connect(server.port("submission"))
    read_line(sock)
    sock.sendall(b"EHLO x\r\nSTARTTLS\r\n")
    assert read_until(sock, lambda l: l.startswith(b"220"))[-1].startswith(b"220")
    sock.close()
    time.sleep(0.3)
    still_serving(server)
    assert "worker-died" not in server.read_log()


# ---- timeouts and connection limits ----

def test_preauth_idle_timeout(server_factory):
    srv = server_factory(sections={"limits": {"timeout_preauth": "2s"}})
    sock = raw_connect(srv.port("imap"))
    read_line(sock)
    start = time.time()
    line = read_line(sock)
    assert line.startswith(b"* BYE"), line
    assert 1.5 < time.time() - start < 10
    assert sock.recv(10) == b""
    sock = raw_connect(srv.port("submission"))
    read_line(sock)
    assert read_line(sock).startswith(b"421 4.4.2")


def test_per_address_connection_limit(server_factory):
    srv = server_factory(sections={"limits": {"max_connections_per_ip": "4"}}, workers=2)
    held = []
    for _ in range(4):
        sock = raw_connect(srv.port("imap"))
        assert read_line(sock).startswith(b"* OK")
        held.append(sock)
    extra = raw_connect(srv.port("submission"))
    assert read_line(extra).startswith(b"421 4.7.0")
    extra.close()
    srv.wait_log(r"reason=per-address-connection-limit")
    for sock in held:
        sock.close()
    time.sleep(0.3)
    still_serving(srv)


def test_global_connection_limit(server_factory):
    srv = server_factory(sections={"limits": {"max_connections": "3"}})
    held = [raw_connect(srv.port("pop3")) for _ in range(3)]
    for sock in held:
        assert read_line(sock).startswith(b"+OK")
    extra = raw_connect(srv.port("pop3"))
    assert read_line(extra).startswith(b"-ERR [SYS/TEMP]")
    for sock in held:
        sock.close()


# ---- processes: restarts, reload, stop, privileges ----

def test_killed_worker_is_replaced(server):
    before = server.worker_pids()
    assert len(before) == 2
    for victim in before:
        os.kill(victim, signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline:
            pids = server.worker_pids()
            if victim not in pids and len(pids) == 2:
                break
            time.sleep(0.1)
        pids = server.worker_pids()
        assert victim not in pids and len(pids) == 2, pids
        server.wait_log(r"event=worker-ready", count=2)
    server.wait_log(r"event=worker-died slot=\d+ pid=\d+ signal=9", count=2)
    time.sleep(0.3)
    for _ in range(6):
        still_serving(server)


def cert_fingerprint(port):
    sock = socket.create_connection(("127.0.0.1", port))
    tls = client_context().wrap_socket(sock)
    der = tls.getpeercert(binary_form=True)
    tls.close()
    return der


def test_sighup_reloads_certificate(server):
    old = cert_fingerprint(server.port("imaps"))
    new_cert, new_key = make_cert(server.dir, name="new", cn="new.example")
    os.replace(new_cert, server.cert)
    os.replace(new_key, server.key)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"event=reloaded generation=1")
    deadline = time.time() + 10
    while cert_fingerprint(server.port("imaps")) == old and time.time() < deadline:
        time.sleep(0.1)
    assert cert_fingerprint(server.port("imaps")) != old
    still_serving(server)


def test_sighup_with_broken_config_keeps_serving(server):
    with open(server.config_path, "a") as f:
        f.write("\n[nonsense]\nkey = 1\n")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log(r"event=reload-failed")
    still_serving(server)


def test_sigterm_drains_and_exits(server):
    sock = raw_connect(server.port("imap"))
    read_line(sock)
    server.proc.send_signal(signal.SIGTERM)
    assert read_line(sock).startswith(b"* BYE [UNAVAILABLE]")
    code = server.proc.wait(timeout=20)
    assert code == 0
    assert "event=master-exit" in server.read_log()


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_workers_drop_privileges(server):
    import pwd
    nobody = pwd.getpwnam(run_as_user())
    for pid in server.worker_pids():
        with open("/proc/%d/status" % pid) as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        assert all(int(u) == nobody.pw_uid for u in uids), uids
    with open("/proc/%d/status" % server.proc.pid) as f:
        assert [l for l in f if l.startswith("Uid:")][0].split()[1] == "0"
    assert os.stat(server.data_dir).st_uid == nobody.pw_uid


# ---- postern check and the command line ----

def test_check_prints_effective_settings(server):
    out = run_postern("check", "-c", server.config_path)
    assert out.returncode == 0, out.stderr
    assert "hostname = mail.test.example" in out.stdout
    assert "imaps = 127.0.0.1:%d" % server.port("imaps") in out.stdout
    assert "max_lifetime = 432000s" in out.stdout
    env = dict(os.environ, POSTERN_CONFIG=server.config_path)
    assert run_postern("check", env=env).returncode == 0


def test_check_reports_file_and_line(workdir):
    path = os.path.join(workdir, "bad.conf")
    with open(path, "w") as f:
        f.write("hostname = x\n\n[listen]\nimap = nowhere\n")
    out = run_postern("check", "-c", path)
    assert out.returncode == 1
    assert out.stderr.strip() == "postern: %s:4: imap: must be ADDRESS:PORT " \
        "(use [::1]:PORT for IPv6, *:PORT for any)" % path
    assert run_postern("check", "-c", os.path.join(workdir, "missing.conf")).returncode == 1
    assert run_postern("check", "extra").returncode == 2
    assert run_postern("frobnicate").returncode == 2
    assert run_postern("version").stdout.startswith("postern ")


def test_workers_leave_when_the_master_is_killed(server):
    workers = server.worker_pids()
    assert workers
    server.proc.kill()
    server.proc.wait()
    deadline = time.time() + 15
    alive = workers
    while alive and time.time() < deadline:
        alive = [p for p in alive if os.path.exists("/proc/%d" % p) and
                 open("/proc/%d/stat" % p).read().split()[2] != "Z"]
        time.sleep(0.1)
    assert alive == [], "orphaned workers still running: %s" % alive
    server.stop()
