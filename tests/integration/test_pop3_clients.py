"""Issue 7 with real POP3 clients: fetchmail (keep with UIDL tracking, and
no-keep), getmail6, curl pop3:// (plain and STLS) and pop3s://, and
poplib over implicit TLS, each fetching a mailbox that holds a message
with dot lines, an LF-only file dropped into the Maildir and (for some) a
20 MiB message; every message compared byte for byte."""

import hashlib
import os
import ssl
import subprocess
import time

from pop3util import (PASSWORD, PLAIN, USER, fill_mailbox, fix_owner, maildir, pop3,
                      retr_bytes)


def lf(message):
    return message.replace(b"\r\n", b"\n")


def strip_first_header(message, name):
    """Removes a header field (and its continuation lines) a client put
    in front of the message."""
    assert message.startswith(name + b":"), message[:200]
    lines = message.split(b"\n")
    i = 1
    while lines[i].startswith((b" ", b"\t")):
        i += 1
    return b"\n".join(lines[i:])


def strip_client_trace(message, name, marker):
    """Removes the header field called name that holds marker (the trace
    field a client added, wherever it put it)."""
    lines = message.split(b"\n")
    for i, line in enumerate(lines):
        if line == b"":
            break
        if not line.startswith(name + b":"):
            continue
        j = i + 1
        while lines[j].startswith((b" ", b"\t")):
            j += 1
        if marker in b"\n".join(lines[i:j]):
            return b"\n".join(lines[:i] + lines[j:])
    raise AssertionError("no %r field with %r in %r" % (name, marker, message[:300]))


def cert_der(server):
    with open(server.cert) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def message_files(directory):
    paths = sorted(os.path.join(directory, n) for n in os.listdir(directory))
    out = []
    for path in paths:
        with open(path, "rb") as f:
            out.append(f.read())
    return out


# ---- fetchmail ----

class Fetchmail:
    def __init__(self, server, workdir, keep):
        self.dir = os.path.join(workdir, "fetchmail")
        self.out = os.path.join(self.dir, "out")
        os.makedirs(self.out)
        mda = os.path.join(self.dir, "mda.sh")
        with open(mda, "w") as f:
            f.write('#!/bin/sh\ncat > "%s/$(date +%%s%%N)"\n' % self.out)
        os.chmod(mda, 0o755)
        md5 = ":".join("%02X" % b for b in hashlib.md5(cert_der(server)).digest())
        self.rc = os.path.join(self.dir, "fetchmailrc")
        with open(self.rc, "w") as f:
            f.write('set no bouncemail\n'
                    'poll 127.0.0.1 with proto POP3 port %d uidl\n'
                    '  user "%s" there with password "%s" is root here\n'
                    '  options %s ssl sslfingerprint "%s" no sslcertck\n'
                    '  mda "%s"\n' % (server.port("pop3s"), USER, PASSWORD,
                                      "keep" if keep else "no keep", md5, mda))
        os.chmod(self.rc, 0o600)

    def run(self):
        env = dict(os.environ, HOME=self.dir)
        # as root fetchmail locks /var/run/fetchmail.pid: tests running in
        # parallel would find "another fetchmail" (exit 8)
        out = subprocess.run(["fetchmail", "-f", self.rc, "--nodetach", "-v",
                              "--idfile", os.path.join(self.dir, "ids"),
                              "--pidfile", os.path.join(self.dir, "pid")],
                             capture_output=True, env=env, timeout=300)
        return out.returncode, out.stdout.decode("utf-8", "replace")

    def messages(self):
        return [strip_client_trace(m, b"Received", b"fetchmail") for m in message_files(self.out)]


def test_fetchmail_keep_tracks_uidl(server, workdir):
    expected = fill_mailbox(server)
    fm = Fetchmail(server, workdir, keep=True)
    code, log = fm.run()
    assert code == 0, log
    assert sorted(fm.messages()) == sorted(lf(m) for m in expected)
    assert "DELE" not in log
    # second run: nothing new (exit 1 means "no mail")
    code, log = fm.run()
    assert code == 1, log
    assert len(fm.messages()) == 3
    # one new message: only that one is fetched
    new = server.deliver(USER, PLAIN.replace(b"Subject: plain", b"Subject: fourth"))
    fix_owner(server)
    code, log = fm.run()
    assert code == 0, log
    got = fm.messages()
    assert len(got) == 4 and lf(new) in got
    # keep: everything is still on the server
    assert pop3(server).stat()[0] == 4


def test_fetchmail_no_keep_with_big_message(server, workdir):
    expected = fill_mailbox(server, big=True)
    fm = Fetchmail(server, workdir, keep=False)
    code, log = fm.run()
    assert code == 0, log
    got = fm.messages()
    assert len(got) == len(expected)
    assert sorted(got) == sorted(lf(m) for m in expected)
    assert "DELE" in log
    p = pop3(server)
    assert p.stat() == (0, 0)
    p.quit()
    root = maildir(server)
    assert os.listdir(os.path.join(root, "new")) + os.listdir(os.path.join(root, "cur")) == []


# ---- getmail6 ----

def test_getmail6(server, workdir):
    expected = fill_mailbox(server)
    base = os.path.join(workdir, "getmail")
    md = os.path.join(base, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub))
    # as root getmail6 delivers as the destination's user, who owns the Maildir
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "nobody:", md], check=True)
    fingerprint = hashlib.sha256(cert_der(server)).hexdigest()
    with open(os.path.join(base, "getmailrc"), "w") as f:
        f.write("[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\n"
                "port = %d\nusername = %s\npassword = %s\nssl_fingerprints = (\"%s\",)\n\n"
                "[destination]\ntype = Maildir\npath = %s/\n%s\n"
                "[options]\nread_all = false\ndelete = false\ndelivered_to = false\n"
                "received = false\n"
                % (server.port("pop3s"), USER, PASSWORD, fingerprint, md,
                   "user = nobody\n" if os.geteuid() == 0 else ""))
    cmd = ["getmail", "--getmaildir", base, "--rcfile", "getmailrc"]
    out = subprocess.run(cmd, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    # getmail writes its own Return-Path (taken from ours) in place of ours
    got = [strip_first_header(m, b"Return-Path") for m in message_files(os.path.join(md, "new"))]
    assert sorted(got) == sorted(lf(m).split(b"\n", 1)[1] if m.startswith(b"Return-Path:")
                                 else lf(m) for m in expected)
    # UIDL remembered: a second run retrieves nothing
    out = subprocess.run(cmd, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert b"0 messages" in out.stdout, out.stdout
    assert len(os.listdir(os.path.join(md, "new"))) == len(expected)


# ---- curl ----

def curl(url, *extra):
    out = subprocess.run(["curl", "-sS", "-k", "--login-options", "AUTH=PLAIN",
                          "-u", USER + ":" + PASSWORD, url, *extra],
                         capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_curl_pop3_and_pop3s(server):
    expected = fill_mailbox(server, big=True)
    plain = "pop3://127.0.0.1:%d/" % server.port("pop3")
    tls = "pop3s://127.0.0.1:%d/" % server.port("pop3s")
    for n, msg in enumerate(expected, 1):
        assert curl(tls + str(n)) == msg, n
    for n in (1, 2, 4):
        assert curl(plain + str(n)) == expected[n - 1], n
        assert curl(plain + str(n), "--ssl-reqd") == expected[n - 1], n
    listing = curl(tls)
    assert listing == b"".join(b"%d %d\r\n" % (i, len(m)) for i, m in enumerate(expected, 1))
    server.wait_log(r'event=auth-ok service=pop remote=127.0.0.1 user="bob@example.org" mech=PLAIN')


# ---- poplib over implicit TLS, with the big message ----

def test_poplib_ssl_big_message(server):
    expected = fill_mailbox(server, big=True)
    p = pop3(server, tls=True)
    assert p.stat() == (len(expected), sum(len(m) for m in expected))
    start = time.monotonic()
    got = retr_bytes(p, 3)
    elapsed = time.monotonic() - start
    assert len(got) == len(expected[2]) and got == expected[2]
    assert elapsed < 60
    assert retr_bytes(p, 1) == expected[0]
    p.quit()
    assert "pop3-size-mismatch" not in server.read_log()
