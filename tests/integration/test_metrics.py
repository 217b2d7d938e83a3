"""Issue 18, item 5: the Prometheus endpoint on [listen] metrics (checked
with Debian's promtool and read with curl) and `postern status`."""

import imaplib
import os
import poplib
import re
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from dnslib.server import DNSLogger, DNSServer
from harness import client_context, free_port
from test_relay import SENDER, Sink, ZoneResolver, free_udp_port, inject, mx_domain, start_smtp

PW = "metrics-pw"


def scrape(port):
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "http://127.0.0.1:%d/metrics" % port],
                         capture_output=True, text=True, check=True)
    return out.stdout


def parse(text):
    """{'name{labels}': value} of every sample."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def promtool(text):
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True)


def metrics_server(server_factory, **sections):
    port = free_port()
    listen = {"metrics": str(port)}       # a bare port: 127.0.0.1
    srv = server_factory(sections={"listen": listen, **sections})
    srv.metrics_port = port
    srv.wait_log(r"event=web-ready")
    return srv


def wait_sample(srv, name, predicate, timeout=20):
    deadline = time.time() + timeout
    while True:
        samples = parse(scrape(srv.metrics_port))
        if predicate(samples.get(name)):
            return samples
        assert time.time() < deadline, "%s is %r" % (name, samples.get(name))
        time.sleep(0.1)


def test_counters_move_and_promtool_accepts_them(server_factory):
    srv = metrics_server(server_factory)
    assert "metrics = 127.0.0.1:%d" % srv.metrics_port in srv.cli("check").stdout
    srv.add_user("m@example.org", PW)
    before = parse(scrape(srv.metrics_port))

    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context())
    m.login("m@example.org", PW)
    bad = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context())
    with pytest.raises(imaplib.IMAP4.error):
        bad.login("m@example.org", "wrong")
    bad.logout()
    p = poplib.POP3("127.0.0.1", srv.port("pop3"))
    p.stls(context=client_context())
    p.user("m@example.org")
    p.pass_(PW)
    p.quit()
    s = smtplib.SMTP_SSL("127.0.0.1", srv.port("submissions"), context=client_context())
    s.login("m@example.org", PW)
    s.sendmail("m@example.org", ["m@example.org"],
               b"From: m@example.org\r\nSubject: counted\r\n\r\nhi\r\n")
    s.quit()
    # a client that is not speaking TLS to a TLS port
    with socket.create_connection(("127.0.0.1", srv.port("pop3s"))) as raw:
        raw.sendall(b"USER nobody\r\n")
        raw.settimeout(10)
        try:
            raw.recv(100)
        except OSError:
            pass

    after = wait_sample(srv, 'postern_messages_accepted_total', lambda v: v == 1)

    def grew(name, by):
        return after[name] - before.get(name, 0) == by

    assert grew('postern_logins_total{protocol="imap",result="ok"}', 1)
    assert grew('postern_logins_total{protocol="imap",result="failed"}', 1)
    assert grew('postern_logins_total{protocol="pop3",result="ok"}', 1)
    assert grew('postern_logins_total{protocol="smtp",result="ok"}', 1)
    assert grew('postern_messages_delivered_total{destination="local"}', 1)
    assert grew('postern_connections_total{listener="imaps"}', 2)
    assert grew('postern_connections_total{listener="pop3"}', 1)
    assert grew('postern_tls_handshakes_total{listener="pop3"}', 1)     # STLS
    assert grew('postern_tls_handshakes_total{listener="imaps"}', 2)
    assert grew('postern_tls_handshake_failures_total{listener="pop3s"}', 1)
    assert after['postern_connections_open{listener="imaps"}'] == 1     # m is still open
    assert after["postern_queue_messages"] == 0
    assert abs(after["postern_start_time_seconds"] - time.time()) < 600
    enddate = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", srv.cert],
                             capture_output=True, text=True, check=True).stdout
    expiry = subprocess.run(["date", "-u", "-d", enddate.split("=", 1)[1].strip(), "+%s"],
                            capture_output=True, text=True, check=True).stdout
    assert after["postern_tls_certificate_expiry_timestamp_seconds"] == int(expiry)
    m.logout()
    wait_sample(srv, 'postern_connections_open{listener="imaps"}', lambda v: v == 0)

    checked = promtool(scrape(srv.metrics_port))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # only /metrics, only GET/HEAD
    code = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           "http://127.0.0.1:%d/other" % srv.metrics_port],
                          capture_output=True, text=True).stdout
    assert code == "404"
    code = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                           "http://127.0.0.1:%d/metrics" % srv.metrics_port],
                          capture_output=True, text=True).stdout
    assert code in ("405", "501")


def test_a_worker_restart_is_counted_and_its_connections_forgotten(server_factory):
    srv = metrics_server(server_factory, limits={})
    srv.add_user("r@example.org", PW)
    held = [imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context())
            for _ in range(4)]
    wait_sample(srv, 'postern_connections_open{listener="imaps"}', lambda v: v == 4)
    for pid in srv.worker_pids():
        os.kill(pid, signal.SIGKILL)
    samples = wait_sample(srv, 'postern_process_restarts_total{process="worker"}',
                          lambda v: v == 2)
    samples = wait_sample(srv, 'postern_connections_open{listener="imaps"}', lambda v: v == 0)
    assert samples['postern_process_restarts_total{process="relay"}'] == 0
    for m in held:
        try:
            m.shutdown()
        except OSError:
            pass
    srv.wait_log(r"event=worker-ready", count=4)


@pytest.fixture
def dns():
    resolver = ZoneResolver()
    port = free_udp_port()
    server = DNSServer(resolver, port=port, address="127.0.0.1",
                       logger=DNSLogger(logf=lambda s: None))
    server.start_thread()
    resolver.port = port
    yield resolver
    server.stop()


def test_relay_results_and_the_queue(server_factory, dns, workdir):
    ip = "127.0.0.21"
    port = mx_domain(dns, "remote.example", ip)
    sink = Sink({"bad@remote.example": ["550 5.1.1 no such user"],
                 "later@remote.example": ["451 4.3.0 try later"]})
    ctl = start_smtp(ip, port, sink)
    try:
        relay = {"mode": "mx", "dns": "127.0.0.1:%d" % dns.port, "mx_port": str(port),
                 "retry_schedule": "1h", "max_lifetime": "1d", "delay_warning": "0"}
        srv = metrics_server(server_factory, relay=relay)
        srv.add_user(SENDER, PW)     # the bounce goes back to the sender
        mport = srv.metrics_port
        srv.wait_log(r"event=relay-running", timeout=30)
        inject(srv, ["ok@remote.example", "bad@remote.example", "later@remote.example"],
               subject="mixed 1")
        samples = wait_sample(srv, 'postern_relay_attempts_total{result="deferred"}',
                              lambda v: v == 1, timeout=60)
        samples = wait_sample(srv, 'postern_messages_bounced_total', lambda v: v == 1)
        assert samples['postern_relay_attempts_total{result="sent"}'] >= 1
        assert samples['postern_relay_attempts_total{result="bounced"}'] == 1
        assert samples['postern_messages_delivered_total{destination="remote"}'] == 1
        assert samples["postern_messages_deferred_total"] == 1
        # the bounce is queued, then delivered here; "later" waits an hour
        wait_sample(srv, 'postern_messages_delivered_total{destination="local"}',
                    lambda v: v == 1)
        samples = wait_sample(srv, "postern_queue_messages", lambda v: v == 1)
        assert 0 <= samples["postern_queue_oldest_age_seconds"] < 120
        checked = promtool(scrape(mport))
        assert checked.returncode == 0, checked.stdout + checked.stderr

        status = srv.cli("status").stdout
        assert re.search(r"queue\s+1 message, the oldest \d+s old", status), status
        assert re.search(r"relay\s+\d+ sent, 1 deferred, 1 bounced", status), status
    finally:
        ctl.stop()


def test_status_for_a_person(server_factory):
    srv = metrics_server(server_factory)
    srv.add_user("s@example.org", PW)
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context())
    m.login("s@example.org", PW)
    out = srv.cli("status")
    assert out.returncode == 0
    text = out.stdout
    assert re.search(r"server\s+running, pid %d, up " % srv.proc.pid, text), text
    assert re.search(r"^imaps\s+127\.0\.0\.1:%d\s+1\s+" % srv.port("imaps"), text, re.M), text
    assert re.search(r"logins\s+smtp 0 ok, 0 failed; imap 1 ok, 0 failed; pop3 0 ok", text)
    assert re.search(r"queue\s+empty", text), text
    assert re.search(r"certificate\s+%s expires \d{4}-\d\d-\d\d .*RENEW IT" % srv.cert, text)
    assert "metrics      http://127.0.0.1:%d/metrics" % srv.metrics_port in text
    m.logout()
    # stopped: says so, exit status 1, still tells what it can
    srv.stop()
    out = srv.cli("status", check=False)
    assert out.returncode == 1
    assert "server       not running" in out.stdout
    assert "the server is not running" in out.stderr and out.stderr.count("\n") == 1
    assert re.search(r"certificate\s+.* expires", out.stdout)
