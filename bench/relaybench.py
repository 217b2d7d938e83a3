"""Relay throughput, Postern and Postfix side by side: messages per second
from a full queue to a local `smtp-sink` (Debian's postfix package), the
recipients spread over N destination domains.

Both sides start with the whole load queued and outbound delivery held,
then are released, and the clock runs from the release to the last
message the sink accepted (each server's own log says when):

- Postern: the queue is filled with `postern queue inject` while the
  server is stopped; `postern serve` starts it. Its relay looks up the MX
  of each domain in a throwaway DNS server (python3-dnslib) on loopback,
  which points every domain at the sink (`[relay] mx_port`).
- Postfix: filled over SMTP (smtp-source from loopback, allowed to relay
  by mynetworks) with `defer_transports = smtp`; then the hold is lifted
  (`postfix reload`, `postqueue -f`). Postfix cannot use a DNS server on
  another port, so a transport map sends every domain to
  `[127.0.0.1]:SINK` (no DNS at all, which only helps Postfix).

Equal concurrency: Postern `[relay] max_connections = CONN`; Postfix sees
one next hop, so `default_destination_concurrency_limit = CONN` is its
total too. Postfix keeps its default connection caching (a real feature
of it: it reuses a connection for the next message to the same host);
Postern keeps a finished connection 2 s for the next message to the same
host too. Neither offers nor is offered
STARTTLS (smtp-sink does not announce it): TLS is measured elsewhere.
Both fsync their queue before accepting and remove it after delivery.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

from dnslib import A, MX, QTYPE, RR  # noqa: E402
from dnslib.server import BaseResolver, DNSLogger, DNSServer  # noqa: E402

import servers as S  # noqa: E402
from harness import Server  # noqa: E402

SENDER = "bench@local.example"


class _Resolver(BaseResolver):
    """dN.bench.example MX mx.dN.bench.example, which is 127.0.0.1."""

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        if name.endswith(".bench.example"):
            if qtype == "MX" and not name.startswith("mx."):
                reply.add_answer(RR(request.q.qname, QTYPE.MX,
                                    rdata=MX("mx." + name + "."), ttl=3600))
            elif qtype == "A" and name.startswith("mx."):
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=3600))
        return reply


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_count(read, pattern, count, what, timeout=600):
    """Polls read() until pattern occurs count times; returns the time."""
    deadline = time.monotonic() + timeout
    while True:
        n = len(re.findall(pattern, read()))
        if n >= count:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError("%s: only %d of %d after %d s" % (what, n, count, timeout))
        time.sleep(0.02)


class RelayBench:
    """One DNS server and one smtp-sink for every round of both servers."""

    def __init__(self, domains=100, connections=20, size=2000, log_level="info"):
        self.domains = domains
        self.connections = connections
        self.size = size
        self.log_level = log_level
        # Postfix writes its maillog only under /var (maillog_file_prefixes)
        self.work = tempfile.mkdtemp(prefix="postern-bench-relay-", dir="/var/tmp")
        os.chmod(self.work, 0o755)
        self.dns = None
        self.sink = None
        self.dns_port = _free_udp_port()
        self.dns = DNSServer(_Resolver(), port=self.dns_port, address="127.0.0.1",
                             logger=DNSLogger(logf=lambda s: None))
        self.dns.start_thread()
        self.sink_port = S.free_port()
        cmd = ["smtp-sink"] + (["-u", "nobody"] if os.geteuid() == 0 else []) + \
            ["127.0.0.1:%d" % self.sink_port, "1024"]
        self.sink = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        S.wait_port(self.sink_port, self.sink)
        self.rounds = 0
        body = "x" * 76 + "\r\n"
        self.text = ("From: %s\r\nSubject: bench\r\n\r\n" % SENDER +
                     body * max(1, size // len(body)))

    def recipient(self, i):
        return "user%d@d%d.bench.example" % (i, i % self.domains)

    def postern_round(self, messages):
        """Messages/s for Postern's relay draining MESSAGES queued messages."""
        self.rounds += 1
        top = os.path.join(self.work, "postern%d" % self.rounds)
        os.mkdir(top)
        srv = Server(top, workers=1,
                     sections={"relay": {"mode": "mx", "dns": "127.0.0.1:%d" % self.dns_port,
                                         "mx_port": str(self.sink_port),
                                         "retry_schedule": "1m", "delay_warning": "0",
                                         "max_connections": str(self.connections)}},
                     extra={"log_level": self.log_level})
        try:
            for i in range(messages):
                srv.cli("queue", "inject", "--from", SENDER, self.recipient(i), input=self.text)
            srv.start()
            srv.wait_log(r"event=relay-running", timeout=30)
            start = time.monotonic()
            end = _wait_count(srv.read_log, r"event=relay-message-done", messages,
                              "postern relay")
            if re.search(r"status=(deferred|bounced)", srv.read_log()):
                raise RuntimeError("postern relay: a delivery was deferred or bounced")
            return messages / (end - start)
        finally:
            srv.stop()
            if os.environ.get("BENCH_KEEP"):
                shutil.copy(srv.log_path, "/tmp/bench-relay-postern.log")
            shutil.rmtree(top, ignore_errors=True)

    def postfix_round(self, messages):
        """Messages/s for Postfix's queue manager and smtp(8) draining
        MESSAGES messages that smtp-source queued while smtp was held."""
        self.rounds += 1
        top = os.path.join(self.work, "postfix%d" % self.rounds)
        os.mkdir(top)
        pf = PostfixRelay(top, self.sink_port, self.domains, self.connections)
        try:
            pf.start()
            per_domain = [0] * self.domains
            for i in range(messages):
                per_domain[i % self.domains] += 1
            for d, count in enumerate(per_domain):
                if count == 0:
                    continue
                subprocess.run(["smtp-source", "-s", "5", "-m", str(count),
                                "-l", str(self.size), "-f", SENDER,
                                "-t", "user@d%d.bench.example" % d,
                                "127.0.0.1:%d" % pf.port],
                               check=True, capture_output=True, timeout=300)
            _wait_count(pf.log, r"status=deferred", messages, "postfix hold")
            pf.release()
            start = time.monotonic()
            end = _wait_count(pf.log, r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent",
                              messages, "postfix relay")
            return messages / (end - start)
        finally:
            pf.stop()
            if os.environ.get("BENCH_KEEP"):
                shutil.copy(pf.maillog, "/tmp/bench-relay-postfix.log")
            shutil.rmtree(top, ignore_errors=True)

    def close(self):
        if self.sink is not None:
            self.sink.send_signal(signal.SIGTERM)
            self.sink.wait()
            self.sink = None
        if self.dns is not None:
            self.dns.stop()
            self.dns = None
        shutil.rmtree(self.work, ignore_errors=True)


class PostfixRelay(S.Postfix):
    """Debian's Postfix (bench/servers.py) relaying for 127.0.0.0/8 to
    [127.0.0.1]:SINK through a transport map, smtp(8) held until
    release()."""

    def __init__(self, top, sink_port, domains, connections):
        os.chmod(top, 0o755)
        transport = os.path.join(top, "transport")
        with open(transport, "w") as f:
            for d in range(domains):
                f.write("d%d.bench.example smtp:[127.0.0.1]:%d\n" % (d, sink_port))
        super().__init__(top, [], extra={
            "virtual_mailbox_domains": "",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "transport_maps": "texthash:" + transport,
            "defer_transports": "smtp",
            "default_destination_concurrency_limit": str(connections),
            "smtp_destination_concurrency_limit": str(connections),
            "smtp_tls_security_level": "none",
            "smtpd_peername_lookup": "no",
        })

    def release(self):
        subprocess.run(["postconf", "-c", self.etc, "-e", "defer_transports="], check=True)
        subprocess.run(["postfix", "-c", self.etc, "reload"], check=True, capture_output=True)
        subprocess.run(["postqueue", "-c", self.etc, "-f"], check=True, capture_output=True)
