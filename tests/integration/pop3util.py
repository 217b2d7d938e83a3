"""Helpers shared by the POP3 integration tests: a mailbox with awkward
messages, the bytes a POP3 client must receive, raw commands over
poplib, and a SCRAM-SHA-256 client (RFC 5802/7677)."""

import base64
import hashlib
import hmac
import os
import poplib
import subprocess

from harness import client_context, run_as_user

USER = "bob@example.org"
PASSWORD = "correct horse #1"

PLAIN = (b"From: Ann <ann@example.net>\r\nTo: bob@example.org\r\nSubject: plain\r\n"
         b"Message-ID: <plain@example.net>\r\n\r\nHello Bob,\r\nsee you.\r\n")
DOTS = (b"From: ann@example.net\r\nTo: bob@example.org\r\nSubject: dots\r\n\r\n"
        b".\r\n..\r\n.leading dot\r\nmid.dle\r\n...\r\n. \r\nend\r\n")
LF_ONLY = (b"From: carl@example.net\nTo: bob@example.org\nSubject: lf only\n\n"
           b"line one\n.dot line\n\nlast line\n")


def big_message(mib=20):
    """About mib MiB of 76-character lines, some starting with a dot."""
    head = (b"From: ann@example.net\r\nTo: bob@example.org\r\nSubject: big\r\n"
            b"Content-Type: text/plain\r\n\r\n")
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab\r\n"
    lines = []
    for i in range((mib * 1024 * 1024) // len(line)):
        lines.append(b"." + line[1:] if i % 1000 == 0 else line)
    return head + b"".join(lines)


def crlf(message):
    """What POP3 sends: every line end CRLF."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def maildir(server, user=USER):
    local, domain = user.split("@")
    return os.path.join(server.data_dir, "mail", domain, local)


def fix_owner(server):
    """`postern deliver` runs as root here and leaves the index lock and the
    uidlist owned by root (store branch fix 43e4dd9 is not merged yet):
    give the mail tree to the server's user."""
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", run_as_user() + ":", os.path.join(server.data_dir, "mail")],
                       check=True)


def drop_file(server, name, message, user=USER):
    """Another MDA drops a file into new/ behind the store's back."""
    path = os.path.join(maildir(server, user), "new", name)
    with open(path, "wb") as f:
        f.write(message)
    fix_owner(server)
    return path


def fill_mailbox(server, big=False):
    """UID 1 PLAIN, 2 DOTS, (3 big), then the LF-only file dropped in."""
    server.add_user(USER, PASSWORD)
    # what the store holds: intake's trace fields on top of each
    expected = [server.deliver(USER, PLAIN), server.deliver(USER, DOTS)]
    if big:
        expected.append(server.deliver(USER, big_message()))
    drop_file(server, "1700000000.M1P1.dropped", LF_ONLY)
    expected.append(LF_ONLY)
    return [crlf(m) for m in expected]


def pop3(server, tls=False, login=True, user=USER, password=PASSWORD):
    if tls:
        p = poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=client_context(),
                            timeout=30)
    else:
        p = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=30)
    if login:
        p.user(user)
        p.pass_(password)
    return p


def send(p, line):
    """One command; the reply line whatever it is (no exception on -ERR)."""
    p._putcmd(line)
    return p._getline()[0]


def multiline(p):
    lines = []
    while True:
        line = p._getline()[0]
        if line == b".":
            return lines
        lines.append(line[1:] if line.startswith(b"..") else line)


def retr_bytes(p, n):
    _, lines, _ = p.retr(n)
    return b"".join(line + b"\r\n" for line in lines)


def b64(data):
    return base64.b64encode(data).decode()


# ---- SCRAM-SHA-256 (RFC 5802, RFC 7677) ----

class Scram:
    def __init__(self, user, password, nonce=None):
        self.user = user
        self.password = password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"),
                                         self.nonce)

    def client_first(self):
        return "n,," + self.first_bare

    def client_final(self, server_first):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.nonce)
        salt = base64.b64decode(attrs["s"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        auth_message = ",".join([self.first_bare, server_first, without_proof]).encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = base64.b64encode(
            hmac.new(server_key, auth_message, hashlib.sha256).digest()).decode()
        return without_proof + ",p=" + base64.b64encode(proof).decode()

    def verify_server_final(self, server_final):
        return server_final == "v=" + self.server_signature
