"""A real authoritative DNS server for the tests: NSD (Debian's nsd) on
127.0.0.1 and a free port, serving zones the test writes, some of them
DNSSEC-signed with ldnsutils (ldns-keygen, ldns-signzone). The trust
anchor of a signed zone (its KSK's DS record) goes into a file the
server under test is pointed at ([relay] dane_trust_anchor).

Use names under "example." for such zones, not "test.": unbound (so
libunbound) answers every name under "test." itself with NXDOMAIN (RFC
6761 special-use names are local zones by default)."""

import glob
import os
import signal
import socket
import subprocess
import time

SOA = "@ 3600 IN SOA ns.{o} hostmaster.{o} 1 3600 600 86400 60\n@ 3600 IN NS ns.{o}\n" \
      "ns.{o} 3600 IN A 127.0.0.1\n"


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket() as t:
                    t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def write_zone(directory, origin, records, sign=False):
    """origin "dane.example."; records: zone-file lines with relative or
    absolute names. Returns (zone file to serve, trust anchor line or None)."""
    path = os.path.join(directory, origin + "zone")
    with open(path, "w") as f:
        f.write("$ORIGIN %s\n$TTL 60\n" % origin)
        f.write(SOA.format(o=origin))
        for line in records:
            f.write(line + "\n")
    if not sign:
        return path, None
    keys = os.path.join(directory, "keys-" + origin.rstrip("."))
    os.mkdir(keys)
    ksk = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", origin], cwd=keys,
                         check=True, capture_output=True, text=True).stdout.strip()
    zsk = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", origin], cwd=keys,
                         check=True, capture_output=True, text=True).stdout.strip()
    # the DNSKEYs go in the zone, then it is signed (NSEC, default validity)
    with open(path, "a") as f:
        for key in (ksk, zsk):
            with open(os.path.join(keys, key + ".key")) as k:
                f.write(k.read())
    subprocess.run(["ldns-signzone", "-f", path + ".signed", path,
                    os.path.join(keys, ksk), os.path.join(keys, zsk)],
                   check=True, capture_output=True)
    with open(os.path.join(keys, ksk + ".ds")) as f:
        anchor = f.read().strip()
    return path + ".signed", anchor


class Nsd:
    def __init__(self, directory, zones):
        """zones: {origin: zone file}."""
        self.dir = directory
        self.port = free_port()
        conf = os.path.join(directory, "nsd.conf")
        with open(conf, "w") as f:
            f.write("server:\n  ip-address: 127.0.0.1\n  port: %d\n  username: \"\"\n"
                    "  chroot: \"\"\n  zonesdir: \"%s\"\n  pidfile: \"%s/nsd.pid\"\n"
                    "  xfrdfile: \"%s/xfrd.state\"\n  zonelistfile: \"%s/zone.list\"\n"
                    "  database: \"\"\n  logfile: \"%s/nsd.log\"\n  server-count: 1\n"
                    "  verbosity: 1\nremote-control:\n  control-enable: no\n"
                    % (self.port, directory, directory, directory, directory, directory))
            for origin, path in zones.items():
                f.write("zone:\n  name: \"%s\"\n  zonefile: \"%s\"\n" % (origin, path))
        subprocess.run(["nsd-checkconf", conf], check=True, capture_output=True)
        self.proc = subprocess.Popen(["nsd", "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self._wait()

    def _wait(self):
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nsd exited: " + self.log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nsd did not start: " + self.log())

    def log(self):
        try:
            with open(os.path.join(self.dir, "nsd.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
