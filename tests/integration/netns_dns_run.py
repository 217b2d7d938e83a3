"""Runs a command in a private network and mount namespace where the
system resolver (/etc/resolv.conf) is a throwaway DNS server on
127.0.0.1:53 answering from a zone file. For programs that only know the
system resolver (OpenDKIM's opendkim-testmsg): nothing leaves the
namespace, and the machine's own resolver is untouched.

    unshare --mount --net python3 netns_dns_run.py ZONEFILE CMD [ARGS...] < stdin

Must be started by unshare (as root); prints the command's output and
exits with its status. The zone file holds lines "NAME TTL IN TYPE DATA"
as `postern dns` prints them (TXT, MX, CNAME, SRV; ';' comments)."""

import os
import subprocess
import sys
import tempfile

from dnslib import QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class ZoneFileResolver(BaseResolver):
    def __init__(self, text):
        lines = [l for l in text.splitlines() if l.strip() and not l.startswith(";")]
        self.records = RR.fromZone("\n".join(lines))

    def resolve(self, request, handler):
        reply = request.reply()
        qname = request.q.qname
        found = False
        for rr in self.records:
            if rr.rname == qname:
                found = True
                if rr.rtype == request.q.qtype:
                    reply.add_answer(rr)
        if not found:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def main():
    zone = open(sys.argv[1]).read()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = tempfile.NamedTemporaryFile("w", delete=False, suffix=".conf")
    resolv.write("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    resolv.close()
    subprocess.run(["mount", "--bind", resolv.name, "/etc/resolv.conf"], check=True)
    resolver = ZoneFileResolver(zone)
    logger = DNSLogger(logf=lambda s: None)
    udp = DNSServer(resolver, port=53, address="127.0.0.1", logger=logger)
    tcp = DNSServer(resolver, port=53, address="127.0.0.1", tcp=True, logger=logger)
    udp.start_thread()
    tcp.start_thread()
    try:
        result = subprocess.run(sys.argv[2:], stdin=sys.stdin, capture_output=True)
    finally:
        udp.stop()
        tcp.stop()
        os.unlink(resolv.name)
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
