"""Helpers for the IMAP tests: a raw-protocol client that sends exact bytes
and reads whole responses (literals included), account set-up, delivery
as the server's user, and a small SCRAM-SHA-256 client."""

import base64
import hashlib
import hmac
import imaplib
import os
import re
import subprocess

from harness import POSTERN, as_service_user, client_context, raw_connect, run_as_user

PASSWORD = "p \"w\\ d%#"   # quotes, backslash, space, % and # on purpose
USER = "alice@example.org"

LITERAL_END = re.compile(rb"\{(\d+)\}\r\n$")


class Raw:
    """Exact bytes out, exact responses in."""

    def __init__(self, port, tls=False):
        self.sock = raw_connect(port, tls)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def line(self):
        """One response line, with any literals it carries inline."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            i = self.buf.index(b"\r\n") + 2
            part, self.buf = self.buf[:i], self.buf[i:]
            out += part
            m = LITERAL_END.search(part)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += self.buf[:n]
            self.buf = self.buf[n:]

    def until_tagged(self, tag):
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def cmd(self, tag, text):
        if isinstance(text, str):
            text = text.encode()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.until_tagged(tag)

    def closed(self):
        """True when the server closed the connection (after what it sent)."""
        try:
            while True:
                self._fill()
        except (EOFError, ConnectionResetError):
            return True

    def close(self):
        self.sock.close()


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def created(lines, tag):
    """A CREATE's one reply: OK with the new mailbox's MAILBOXID (RFC 8474)."""
    return len(lines) == 1 and re.fullmatch(
        rb"%s OK \[MAILBOXID \([A-Za-z0-9_-]+\)\] CREATE completed\r\n" % tag.encode(),
        lines[0]) is not None


def login_raw(raw, user=USER, password=PASSWORD, tag="L"):
    lines = raw.cmd(tag, "LOGIN %s %s" % (quote(user), quote(password)))
    assert lines[-1].startswith(b"%s OK" % tag.encode()), lines
    return lines


def raw_session(server, mailbox=None):
    """A raw session logged in over 143, with mailbox selected if given."""
    r = Raw(server.port("imap"))
    login_raw(r)
    if mailbox is not None:
        assert r.cmd("S", "SELECT " + mailbox)[-1].startswith(b"S OK")
    return r


def deliver(server, address, message, mailbox=None):
    """`postern deliver` as the server's user, so that the files it makes
    stay readable by the workers. Returns the stored copy (intake's
    Return-Path and Received on top, CRLF line ends)."""
    if isinstance(message, str):
        message = message.encode()
    before = server.new_files(address, mailbox)
    args = [POSTERN, "deliver", address, "-c", server.config_path]
    if mailbox:
        args += ["--mailbox", mailbox]
    out = subprocess.run(as_service_user(args), input=message, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return server.stored_since(address, before, mailbox)


_dropped = [0]


def drop(server, address, message, mailbox=None):
    """A file put into the Maildir's new/ from outside, byte for byte (as
    another MDA leaves it; the store indexes it when it next looks). For
    tests that need exact file contents: `postern deliver` puts intake's
    trace fields on top and makes line ends CRLF."""
    if isinstance(message, str):
        message = message.encode()
    root = server.maildir(address, mailbox)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    _dropped[0] += 1
    path = os.path.join(root, "new", "1700000000.M%06dP%d.dropped" % (_dropped[0], os.getpid()))
    with open(path, "wb") as f:
        f.write(message)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", run_as_user() + ":", os.path.join(server.data_dir, "mail")],
                       check=True)
    return message


def make_account(server, address=USER, password=PASSWORD):
    server.add_user(address, password)
    # the first login creates the store account as the server's user
    m = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
    m.login(address, password)
    m.logout()


def imap(server, user=USER, password=PASSWORD):
    m = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
    m.login(user, password)
    return m


def imaps(server):
    return imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=client_context(),
                             timeout=10)


def message(subject="hello", body="Hello there.\r\n", sender="bob@example.net"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\n"
            "Message-ID: <%s@example.net>\r\n\r\n%s" % (sender, USER, subject,
                                                         subject.replace(" ", "."), body))


# ---- SCRAM-SHA-256 (RFC 5802 / RFC 7677), client side ----

def scram_client_final(password, client_first_bare, server_first, gs2=b"n,,"):
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salt = base64.b64decode(attrs["s"])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = "c=%s,r=%s" % (base64.b64encode(gs2).decode(), attrs["r"])
    auth_message = ",".join([client_first_bare, server_first, without_proof]).encode()
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    server_signature = hmac.new(server_key, auth_message, "sha256").digest()
    return (without_proof + ",p=" + base64.b64encode(proof).decode(),
            "v=" + base64.b64encode(server_signature).decode())


def scram_username(user):
    return user.replace("=", "=3D").replace(",", "=2C")
