"""TLS as Mozilla's "intermediate" profile (issue 19), checked from the
outside by testssl.sh (Debian's) on every TLS endpoint: the implicit-TLS
ports and STARTTLS on submission, IMAP and POP3. The certificate is
issued by a test CA and names an OCSP responder that the test runs on
loopback (Python's cryptography builds its answers), so stapling is
checked too."""

import datetime
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from harness import Server

# what testssl rates above LOW fails the test
BAD = {"MEDIUM", "HIGH", "CRITICAL"}


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Responder:
    """An OCSP responder on 127.0.0.1 that says "good" for cert."""

    def __init__(self):
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests += 1
                body = outer.answer()
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def load(self, cert_path, ca_path, ca_key_path):
        def cert(path):
            with open(path, "rb") as f:
                return x509.load_pem_x509_certificate(f.read())
        self.cert, self.ca = cert(cert_path), cert(ca_path)
        with open(ca_key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), None)

    def answer(self):
        now = datetime.datetime.utcnow()
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=self.cert, issuer=self.ca, algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD, this_update=now - datetime.timedelta(minutes=5),
            next_update=now + datetime.timedelta(days=1), revocation_time=None,
            revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def stop(self):
        self.httpd.shutdown()


def make_pki(directory, ocsp_port):
    """A CA, and a server certificate it issued that names the responder."""
    ca, ca_key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca-key.pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca, "-days", "400", "-subj", "/CN=Postern test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
    key, csr = os.path.join(directory, "key.pem"), os.path.join(directory, "req.pem")
    cert, chain = os.path.join(directory, "cert.pem"), os.path.join(directory, "chain.pem")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    ext = os.path.join(directory, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                "authorityInfoAccess=OCSP;URI:http://127.0.0.1:%d/\n" % ocsp_port)
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "365", "-extfile", ext)
    with open(chain, "w") as f:
        f.write(open(cert).read() + open(ca).read())
    os.chmod(key, 0o644)   # the test server's master reads it as whoever runs the test
    return ca, ca_key, cert, chain, key


@pytest.fixture(scope="module")
def tls_server():
    # not pytest's tmp_path: the unprivileged children must reach it
    directory = tempfile.mkdtemp(prefix="postern-tls-")
    os.chmod(directory, 0o755)
    responder = Responder()   # first: the certificate names its port
    ca, ca_key, cert, chain, key = make_pki(directory, responder.port)
    responder.load(cert, ca, ca_key)
    srv_dir = os.path.join(directory, "srv")
    os.mkdir(srv_dir)
    os.chmod(srv_dir, 0o755)
    srv = Server(srv_dir, sections={"tls": {"cert": chain, "key": key}})
    srv.start()
    srv.ca = ca
    srv.responder = responder
    yield srv
    code = srv.stop()
    responder.stop()
    srv.check_sanitizers()
    shutil.rmtree(directory, ignore_errors=True)
    assert code == 0


ENDPOINTS = [
    ("imaps", None), ("pop3s", None), ("submissions", None),
    ("imap", "imap"), ("pop3", "pop3"), ("submission", "smtp"),
]


def run_testssl(srv, name, starttls, checks):
    out = os.path.join(srv.dir, "testssl-%s.json" % name)
    if os.path.exists(out):
        os.unlink(out)
    cmd = ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--add-ca", srv.ca,
           "--jsonfile", out, "--connect-timeout", "10", "--openssl-timeout", "10", *checks]
    if starttls:
        cmd += ["--starttls", starttls]
    cmd.append("127.0.0.1:%d" % srv.port(name))
    start = time.time()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    took = time.time() - start
    assert os.path.exists(out), run.stdout[-2000:] + run.stderr[-2000:]
    with open(out) as f:
        return {item["id"]: item for item in json.load(f)}, took


def finding(results, key):
    return results[key]["finding"] if key in results else None


def test_ocsp_response_is_stapled(tls_server):
    tls_server.wait_log(r"event=ocsp-stapled")
    assert tls_server.responder.requests >= 1
    out = subprocess.run(["openssl", "s_client", "-connect",
                          "127.0.0.1:%d" % tls_server.port("imaps"), "-status",
                          "-CAfile", tls_server.ca], input="", capture_output=True,
                         text=True, timeout=30).stdout
    assert "OCSP Response Status: successful" in out, out[:3000]
    assert "Cert Status: good" in out
    assert "Verify return code: 0 (ok)" in out


# every endpoint gets the protocols, the standard cipher lists, forward
# secrecy, the server's preferences, its defaults (OCSP stapling among
# them) and every vulnerability check; --fast (first preferred cipher
# only, openssl for the cipher lists) keeps each run near half a minute
CHECKS = ["--fast", "-p", "-s", "-f", "-P", "-S", "-U"]


def test_testssl_finds_nothing_above_low(tls_server):
    tls_server.wait_log(r"event=ocsp-stapled")
    jobs = [(name, starttls, CHECKS) for name, starttls in ENDPOINTS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda j: (j[0],) + run_testssl(tls_server, *j), jobs))
    report = []
    for name, res, took in results:
        report.append("%s %.0fs" % (name, took))
        bad = ["%s %s: %s" % (v["severity"], k, v["finding"]) for k, v in res.items()
               if v["severity"] in BAD]
        assert not bad, (name, bad)
        # TLS 1.2 and 1.3 only
        assert finding(res, "SSLv3") == "not offered"
        assert finding(res, "TLS1") == "not offered"
        assert finding(res, "TLS1_1") == "not offered"
        assert finding(res, "TLS1_2") == "offered"
        assert finding(res, "TLS1_3").startswith("offered")
        assert "AES128-SHA " not in finding(res, "PFS_ciphers") + " "
        # forward secrecy everywhere, in the server's order
        assert res["PFS"]["severity"] == "OK" and finding(res, "PFS") == "offered"
        assert finding(res, "cipher_order") == "server"
        # no compression, no client renegotiation
        assert "not vulnerable" in finding(res, "CRIME_TLS")
        assert "not vulnerable" in finding(res, "secure_client_renego")
        assert finding(res, "OCSP_stapling").startswith("offered"), finding(res, "OCSP_stapling")
    print("testssl durations:", ", ".join(report))
