"""MTA-STS for outbound mail (RFC 8461): a throwaway DNS server (dnslib)
with the _mta-sts TXT records, an HTTPS policy server on 127.0.0.x with
a certificate from a test CA ([relay] mta_sts_ca_file), and SMTP sinks.
Enforce without STARTTLS defers and sends nothing; with a valid
certificate it delivers; testing delivers and logs."""

import http.server
import re
import threading

import pytest
from test_relay import Sink, dns, free_port_on, inject, start_smtp, wait_for  # noqa: F401
from tls_helpers import issue, make_ca, server_context

SENDER = "alice@local.example"


class PolicyServer:
    """HTTPS on ip:port serving /.well-known/mta-sts.txt."""

    def __init__(self, ip, port, cert, key, policy):
        self.policy = policy
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.headers.get("Host"), self.path))
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                body = outer.policy.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((ip, port), Handler)
        self.httpd.socket = server_context(cert, key).wrap_socket(self.httpd.socket,
                                                                  server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sts(dns, workdir, server_factory):
    """Builds one MTA-STS destination: (domain, policy mode, sink TLS) ->
    (server, sink); everything on its own 127.0.0.x."""
    ca = make_ca(workdir)
    stops = []

    def make(domain, mode, sink_tls, ip, cert_host=None):
        mx = "mx." + domain
        smtp_port = free_port_on([ip])
        https_port = free_port_on([ip])
        dns.zone[domain] = {"MX": [(10, mx)]}
        dns.zone[mx] = {"A": [ip]}
        dns.zone["mta-sts." + domain] = {"A": [ip]}
        dns.zone["_mta-sts." + domain] = {"TXT": ["v=STSv1; id=20261204a"]}
        pcert = issue(workdir, ca, "mta-sts." + domain)
        policy = "version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: 86400\r\n" % (mode, mx)
        web = PolicyServer(ip, https_port, pcert[0], pcert[1], policy)
        stops.append(web.stop)
        sink = Sink()
        tls = None
        if sink_tls:
            scert = issue(workdir, ca, cert_host or mx, name="smtp-" + domain)
            tls = server_context(*scert)
        ctl = start_smtp(ip, smtp_port, sink, tls=tls)
        stops.append(ctl.stop)
        srv = server_factory(sections={"relay": {
            "mode": "mx", "dns": "127.0.0.1:%d" % dns.port, "mx_port": str(smtp_port),
            "retry_schedule": "1h", "max_lifetime": "1d", "delay_warning": "0",
            "mta_sts": "yes", "mta_sts_ca_file": ca[0], "mta_sts_port": str(https_port),
            "dane": "no"}}, name="srv-" + domain)
        srv.add_user(SENDER, "secret-password-1")
        srv.wait_log(r"event=relay-running", timeout=30)
        srv.web = web
        return srv, sink

    yield make
    for stop in stops:
        stop()


def test_enforce_without_starttls_defers(sts):
    srv, sink = sts("enforce-plain.example", "enforce", False, "127.0.0.21")
    qid = inject(srv, ["bob@enforce-plain.example"], "enforce plain")
    srv.wait_log(r"event=relay-delivery id=%s .*status=deferred" % qid, timeout=30)
    assert sink.messages == []          # nothing went over the clear connection
    show = srv.cli("queue", "show", qid).stdout
    line = [l for l in show.splitlines() if l.startswith("recipient: bob@")][0]
    assert "state=pending" in line
    assert re.search(r"last_error=451 4\.7\.5 MTA-STS: mx\.enforce-plain\.example of "
                     r"enforce-plain\.example must use TLS", line), show
    assert srv.web.requests == [("mta-sts.enforce-plain.example:%d" % srv.web.httpd.server_port,
                                 "/.well-known/mta-sts.txt")] or \
        srv.web.requests[0][1] == "/.well-known/mta-sts.txt"
    assert "event=mta-sts-policy domain=enforce-plain.example id=20261204a mode=enforce" in \
        srv.read_log()


def test_enforce_with_valid_certificate_delivers(sts, dns):
    srv, sink = sts("enforce-tls.example", "enforce", True, "127.0.0.22")
    # a second recipient whose domain has no mail exchanger keeps the
    # message queued, so that `postern queue show` has the first one's facts
    dns.zone["nowhere.example"] = {}
    dns.servfail.add("nowhere.example")
    qid = inject(srv, ["bob@enforce-tls.example", "carol@nowhere.example"], "enforce tls")
    srv.wait_log(r"event=relay-delivery id=%s rcpt=bob@enforce-tls\.example .*status=sent" % qid,
                 timeout=30)
    wait_for(lambda: len(sink.messages) == 1, 10, "the sink's message")
    assert sink.messages[0][3] is True   # over TLS
    log = srv.read_log()
    assert re.search(r"event=relay-delivery id=%s rcpt=bob@enforce-tls\.example .*"
                     r"tls=\"TLSv1\.[23] [^\"]+\" status=sent .*verified=yes tls_auth=mta-sts "
                     % qid, log), log[-3000:]
    srv.wait_log(r"event=relay-attempt-done id=%s" % qid, timeout=30)
    show = srv.cli("queue", "show", qid).stdout
    line = [l for l in show.splitlines() if l.startswith("recipient: bob@")][0]
    assert "state=done" in line
    assert re.search(r'tls="TLSv1\.[23] \S+ verified=yes auth=mta-sts"', line), show


def test_enforce_with_wrong_certificate_defers(sts):
    srv, sink = sts("enforce-bad.example", "enforce", True, "127.0.0.23",
                    cert_host="other.example")
    qid = inject(srv, ["bob@enforce-bad.example"], "enforce bad")
    srv.wait_log(r"event=relay-delivery id=%s .*status=deferred" % qid, timeout=30)
    assert sink.messages == []
    show = srv.cli("queue", "show", qid).stdout
    assert re.search(r"last_error=451 4\.7\.5 MTA-STS: the certificate of "
                     r"mx\.enforce-bad\.example does not check out", show), show


def test_testing_mode_delivers_and_logs(sts):
    srv, sink = sts("testing.example", "testing", False, "127.0.0.24")
    qid = inject(srv, ["bob@testing.example"], "testing mode")
    srv.wait_log(r"event=relay-delivery id=%s .*status=sent" % qid, timeout=30)
    wait_for(lambda: len(sink.messages) == 1, 10, "the sink's message")
    assert sink.messages[0][3] is False   # in clear, as the policy only tests
    log = srv.read_log()
    assert re.search(r"event=mta-sts-testing id=%s domain=testing\.example "
                     r"host=mx\.testing\.example .*problem=\"no STARTTLS\"" % qid, log), log[-3000:]
    assert re.search(r"id=%s .*tls=\"none\" status=sent .*verified=no tls_auth=none " % qid, log)
