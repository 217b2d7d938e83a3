"""Issue 5 (and the SMTP part of issue 3): submission on 587/465 and the
inbound MX port, with real clients: smtplib, swaks, msmtp, curl. Mail is
read back from the Maildir the store wrote."""

import base64
import os
import smtplib
import subprocess
import time

import pytest

from harness import client_context, raw_connect, read_line, read_until
import scram

PASSWORD = 'p"a ss#w%rd\\x'     # quoting trouble for every client config
USER = "alice@example.org"


@pytest.fixture
def mta(server_factory):
    srv = server_factory(sections={"relay": {"mode": "mx"}})
    srv.add_user(USER, PASSWORD)
    srv.add_user("bob@example.org", "bobpass")
    return srv


def submit(srv, port="submission", user=USER, password=PASSWORD):
    if port == "submissions":
        s = smtplib.SMTP_SSL("127.0.0.1", srv.port(port), context=client_context(), timeout=30)
    else:
        s = smtplib.SMTP("127.0.0.1", srv.port(port), timeout=30)
        s.starttls(context=client_context())
    s.ehlo("client.example")
    if user is not None:
        s.login(user, password)
    return s


def message(sender=USER, to="bob@example.org", subject="hello", body="Hello Bob.\r\n",
            extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\n%s\r\n%s" % (sender, to, subject, extra,
                                                              body)).encode()


def body_of(raw):
    return raw.split(b"\r\n\r\n", 1)[1]


# ---- sending with real clients ----

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_587(mta, mech):
    s = smtplib.SMTP("127.0.0.1", mta.port("submission"), timeout=30)
    s.starttls(context=client_context())
    s.ehlo()
    assert "auth" in s.esmtp_features
    assert mech in s.esmtp_features["auth"].split()
    s.user, s.password = USER, PASSWORD
    code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=(mech == "PLAIN"))
    assert code == 235
    refused = s.sendmail(USER, ["bob@example.org"], message(subject="via " + mech))
    assert refused == {}
    s.quit()
    msgs = mta.messages("bob@example.org")
    assert len(msgs) == 1
    raw = msgs[0]
    # final delivery puts the envelope sender in front (RFC 5321 4.4)
    assert raw.startswith(b"Return-Path: <alice@example.org>\r\nReceived: from ")
    assert b"with ESMTPSA" in raw and b"(authenticated user alice@example.org)" in raw
    assert b"TLSv1.3" in raw or b"TLSv1.2" in raw
    assert b"\r\nSubject: via " + mech.encode() + b"\r\n" in raw
    assert b"\r\nMessage-ID: <" in raw and b"\r\nDate: " in raw
    assert body_of(raw) == b"Hello Bob.\r\n"


def test_smtp_ssl_465(mta):
    s = submit(mta, "submissions")
    s.sendmail(USER, ["bob@example.org"], message())
    s.quit()
    assert len(mta.messages("bob@example.org")) == 1


def test_scram_sha256(mta):
    scram.check_rfc7677_vector()
    sock = raw_connect(mta.port("submissions"), tls=True)
    read_line(sock)
    sock.sendall(b"EHLO x\r\n")
    ehlo = read_until(sock, lambda l: l.startswith(b"250 "))
    assert any(b"SCRAM-SHA-256" in l for l in ehlo)
    c = scram.ScramClient(USER, PASSWORD)
    sock.sendall(b"AUTH SCRAM-SHA-256 " + scram.b64(c.first()).encode() + b"\r\n")
    line = read_line(sock)
    assert line.startswith(b"334 "), line
    sock.sendall(scram.b64(c.final(scram.unb64(line[4:].strip()))).encode() + b"\r\n")
    line = read_line(sock)
    assert line.startswith(b"334 "), line
    assert c.verify(scram.unb64(line[4:].strip()))
    sock.sendall(b"\r\n")
    assert read_line(sock).startswith(b"235 2.7.0")
    sock.close()


def test_swaks(mta):
    out = subprocess.run(
        ["swaks", "--server", "127.0.0.1:%d" % mta.port("submission"), "--tls",
         "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
         "--from", USER, "--to", "bob@example.org", "--h-Subject", "from swaks",
         "--body", "swaks body"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    msgs = mta.messages("bob@example.org")
    assert len(msgs) == 1 and b"Subject: from swaks" in msgs[0]


def test_msmtp(mta, workdir):
    rc = os.path.join(workdir, "msmtprc")
    pwfile = os.path.join(workdir, "msmtp-pass")
    with open(pwfile, "w") as f:
        f.write(PASSWORD)
    with open(rc, "w") as f:
        f.write("account default\nhost 127.0.0.1\nport %d\nfrom %s\nauth plain\nuser %s\n"
                "passwordeval cat %s\ntls on\ntls_starttls on\ntls_certcheck off\n"
                % (mta.port("submission"), USER, USER, pwfile))
    os.chmod(rc, 0o600)
    out = subprocess.run(["msmtp", "-C", rc, "bob@example.org"], input=message(subject="msmtp"),
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert b"Subject: msmtp" in mta.messages("bob@example.org")[0]


def test_curl_smtp(mta, workdir):
    path = os.path.join(workdir, "mail.txt")
    with open(path, "wb") as f:
        f.write(message(subject="curl"))
    out = subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "-k", "smtp://127.0.0.1:%d" % mta.port("submission"),
         "--login-options", "AUTH=PLAIN", "--user", "%s:%s" % (USER, PASSWORD),
         "--mail-from", USER, "--mail-rcpt", "bob@example.org", "--upload-file", path],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert b"Subject: curl" in mta.messages("bob@example.org")[0]


def test_alias_and_several_recipients(mta):
    mta.cli("alias", "add", "team@example.org", "bob@example.org,alice@example.org")
    s = submit(mta)
    refused = s.sendmail(USER, ["team@example.org", "nobody@example.org", "bob@example.org"],
                         message(to="team@example.org"))
    assert list(refused) == ["nobody@example.org"]
    assert refused["nobody@example.org"][0] == 550
    s.quit()
    assert len(mta.messages("bob@example.org")) == 1      # once, not twice
    assert len(mta.messages(USER)) == 1


def test_smtputf8_and_8bit(mta):
    mta.add_user("jörg@example.org", "pw")
    s = submit(mta)
    text = "From: %s\r\nTo: jörg@example.org\r\nSubject: Grüße\r\n\r\nÄÖÜ\r\n" % USER
    s.sendmail(USER, ["jörg@example.org"], text.encode(), mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        s.sendmail(USER, ["jörg@example.org"], b"x")
    assert list(err.value.recipients.values())[0][0] == 553
    s.quit()
    msgs = mta.messages("jörg@example.org")
    assert len(msgs) == 1 and "ÄÖÜ".encode() in msgs[0]


def test_20mib_message(mta):
    body = (b"x" * 998 + b"\r\n") * (20 * 1024 * 1024 // 1000)
    s = submit(mta)
    s.sendmail(USER, ["bob@example.org"], message(body="") + body)
    s.quit()
    raw = mta.messages("bob@example.org")[0]
    assert body_of(raw) == body


def bdat_session(srv, chunks, expect_last=b"250 2.0.0 Ok"):
    sock = raw_connect(srv.port("submissions"), tls=True)
    read_line(sock)
    cred = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    sock.sendall(b"EHLO x\r\nAUTH PLAIN " + cred + b"\r\n")
    read_until(sock, lambda l: l.startswith(b"250 "))
    assert read_line(sock).startswith(b"235")
    sock.sendall(b"MAIL FROM:<%s> BODY=BINARYMIME\r\nRCPT TO:<bob@example.org>\r\n" % USER.encode())
    assert read_line(sock).startswith(b"250")
    assert read_line(sock).startswith(b"250")
    # all chunks pipelined in one write
    blob = b""
    for i, chunk in enumerate(chunks):
        last = b" LAST" if i == len(chunks) - 1 else b""
        blob += b"BDAT %d%s\r\n" % (len(chunk), last) + chunk
    sock.sendall(blob)
    replies = [read_line(sock) for _ in chunks]
    sock.sendall(b"QUIT\r\n")
    sock.close()
    return replies


def test_bdat_chunks(mta):
    head = message(body="")
    chunks = [head, b"line one\r\n.\r\n", b"binary \x00\x01\xff bytes\n", b""]
    replies = bdat_session(mta, chunks)
    assert replies[0].startswith(b"250 2.0.0 %d octets" % len(head))
    assert replies[-1].startswith(b"250 2.0.0 Ok: queued as")
    raw = mta.messages("bob@example.org")[0]
    assert body_of(raw) == b"line one\r\n.\r\nbinary \x00\x01\xff bytes\n"


def test_pipelined_transaction(mta):
    sock = raw_connect(mta.port("submissions"), tls=True)
    read_line(sock)
    cred = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    sock.sendall(b"EHLO x\r\nAUTH PLAIN " + cred + b"\r\nMAIL FROM:<" + USER.encode() +
                 b">\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<ghost@example.org>\r\n"
                 b"RCPT TO:<alice@example.org>\r\nDATA\r\n")
    lines = read_until(sock, lambda l: l.startswith(b"354"))
    codes = [l[:3] for l in lines if not l.startswith(b"250-")]
    assert codes == [b"250", b"235", b"250", b"250", b"550", b"250", b"354"], lines
    sock.sendall(message() + b".\r\nRSET\r\nQUIT\r\n")
    assert read_line(sock).startswith(b"250 2.0.0 Ok")
    assert read_line(sock).startswith(b"250")
    assert read_line(sock).startswith(b"221")
    assert len(mta.messages("bob@example.org")) == 1
    assert len(mta.messages(USER)) == 1


def test_remote_recipient_is_queued(mta):
    s = submit(mta)
    s.sendmail(USER, ["someone@elsewhere.example"], message(to="someone@elsewhere.example"))
    s.quit()
    qdir = os.path.join(mta.data_dir, "queue")
    spooled = [n for n in os.listdir(qdir) if len(n) == 16]
    assert len(spooled) == 1
    with open(os.path.join(qdir, spooled[0]), "rb") as f:
        assert b"Subject: hello" in f.read()


# ---- refusals ----

def test_mail_without_auth_refused(mta):
    s = submit(mta, user=None)
    code, text = s.mail(USER)
    assert code == 530 and text.startswith(b"5.7.0")
    s.quit()


def test_auth_refused_before_starttls_when_plaintext_never(server_factory):
    srv = server_factory(sections={"auth": {"plaintext": "never"}})
    srv.add_user(USER, PASSWORD)
    s = smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=30)
    s.ehlo()
    assert not s.has_extn("auth")
    code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0a\0b").decode())
    assert code == 530 and text.startswith(b"5.7.0")
    s.starttls(context=client_context())
    s.ehlo()
    assert s.has_extn("auth")
    assert s.login(USER, PASSWORD)[0] == 235
    s.quit()


def test_auth_failures(mta):
    s = submit(mta, user=None)
    for user, pw in [(USER, "wrong"), ("ghost@example.org", "x"), ("", "")]:
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            s.login(user, pw)
        assert err.value.smtp_code == 535
    assert s.docmd("AUTH", "PLAIN !!notbase64!!")[0] == 501
    assert s.docmd("AUTH", "FOO")[0] == 504
    code, _ = s.docmd("AUTH", "LOGIN")
    assert code == 334
    assert s.docmd("*")[0] == 501
    assert s.login(USER, PASSWORD)[0] == 235
    assert s.docmd("AUTH", "PLAIN")[0] == 503
    s.quit()


def test_disabled_and_deleted_user(mta):
    mta.cli("user", "disable", "bob@example.org")
    s = submit(mta, user=None)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        s.login("bob@example.org", "bobpass")
    s.quit()
    mta.cli("user", "enable", "bob@example.org")
    s = submit(mta, user="bob@example.org", password="bobpass")
    s.quit()
    mta.cli("user", "del", "bob@example.org")
    s = submit(mta, user=None)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        s.login("bob@example.org", "bobpass")
    s.quit()


def test_sender_mismatch(mta):
    s = submit(mta)
    code, text = s.mail("bob@example.org")
    assert code == 553 and text.startswith(b"5.7.1")
    s.rset()
    with pytest.raises(smtplib.SMTPDataError) as err:
        s.sendmail(USER, ["bob@example.org"], message(sender="Bob <bob@example.org>"))
    assert err.value.smtp_code == 553
    # an alias that points to the user may be used
    mta.cli("alias", "add", "sales@example.org", USER)
    assert s.sendmail("sales@example.org", ["bob@example.org"],
                      message(sender="Sales <sales@example.org>")) == {}
    s.quit()
    assert len(mta.messages("bob@example.org")) == 1


def test_inbound_mx_policy(mta):
    s = smtplib.SMTP("127.0.0.1", mta.port("smtp"), timeout=30)
    s.ehlo("mx.sender.example")
    assert not s.has_extn("auth")
    assert s.mail("")[0] == 250                     # the null sender is fine
    code, text = s.rcpt("victim@elsewhere.example")
    assert code == 554 and text.startswith(b"5.7.1")
    code, text = s.rcpt("ghost@example.org")
    assert code == 550 and text.startswith(b"5.1.1")
    assert s.rcpt("bob@example.org")[0] == 250
    assert s.data(message(sender="someone@sender.example"))[0] == 250
    s.quit()
    raw = mta.messages("bob@example.org")[0]
    assert b"with ESMTP id" in raw
    assert b"Message-ID" not in raw    # inbound mail is passed on unchanged
    # never an open relay, even unauthenticated on 587
    s = submit(mta, user=None)
    assert s.mail("x@elsewhere.example")[0] == 530
    s.quit()


def test_size_limits(server_factory):
    srv = server_factory(sections={"smtp": {"max_message_size": "100k"}})
    srv.add_user(USER, PASSWORD)
    s = submit(srv)
    code, text = s.mail(USER, ["SIZE=200000"])
    assert code == 552 and text.startswith(b"5.3.4")
    s.rset()
    # no SIZE= announced: refused by the actual size, after the data
    assert s.mail(USER)[0] == 250 and s.rcpt(USER)[0] == 250
    code, text = s.data(message(to=USER, body=("y" * 900 + "\r\n") * 150))
    assert code == 552 and text.startswith(b"5.3.4")
    assert s.noop()[0] == 250
    s.quit()
    assert srv.messages(USER) == []


def test_overlong_line_and_bare_lf_smuggling(mta):
    sock = raw_connect(mta.port("submissions"), tls=True)
    read_line(sock)
    cred = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    sock.sendall(b"EHLO x\r\nAUTH PLAIN " + cred + b"\r\n")
    read_until(sock, lambda l: l.startswith(b"235"))

    def txn(data):
        sock.sendall(b"MAIL FROM:<%s>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n" % USER.encode())
        read_until(sock, lambda l: l.startswith(b"354"))
        sock.sendall(data)
        return read_line(sock)

    reply = txn(message(body="z" * 1200 + "\r\n") + b".\r\n")
    assert reply.startswith(b"550 5.6.0"), reply
    smuggle = (message() + b"\n.\nMAIL FROM:<" + USER.encode() + b">\r\n"
               b"RCPT TO:<alice@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n")
    reply = txn(smuggle)
    assert reply.startswith(b"550 5.6.0"), reply
    sock.sendall(b"NOOP\r\n")
    assert read_line(sock).startswith(b"250")
    sock.close()
    assert mta.messages("bob@example.org") == []
    assert mta.messages(USER) == []


def test_too_many_recipients(server_factory):
    srv = server_factory(sections={"smtp": {"max_recipients": "3"}})
    srv.add_user(USER, PASSWORD)
    s = submit(srv)
    s.mail(USER)
    for _ in range(3):
        assert s.rcpt(USER)[0] == 250
    code, text = s.rcpt(USER)
    assert code == 452 and text.startswith(b"4.5.3")
    s.quit()


def test_mail_loop_refused(mta):
    hops = "".join("Received: from hop%d by x; Sun, 1 Jan 2026 00:00:00 +0000\r\n" % i
                   for i in range(60))
    s = submit(mta)
    with pytest.raises(smtplib.SMTPDataError) as err:
        s.sendmail(USER, ["bob@example.org"], message(extra=hops))
    assert err.value.smtp_code == 554 and err.value.smtp_error.startswith(b"5.4.6")
    s.quit()


def test_garbage_commands(mta):
    sock = raw_connect(mta.port("submission"))
    read_line(sock)
    sock.sendall(b"\x00\xff\xfe garbage\r\nMAIL FROM:<x>\r\nDATA\r\nBDATX\r\n")
    lines = [read_line(sock) for _ in range(4)]
    assert [l[:3] for l in lines] == [b"500", b"503", b"503", b"502"], lines
    sock.sendall(b"QUIT\r\n")
    assert read_line(sock).startswith(b"221")
    sock.close()
    s = submit(mta)
    assert s.noop()[0] == 250
    s.quit()


# ---- durability ----

def test_disconnect_mid_data_leaves_nothing(mta):
    sock = raw_connect(mta.port("submissions"), tls=True)
    read_line(sock)
    cred = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    sock.sendall(b"EHLO x\r\nAUTH PLAIN " + cred + b"\r\nMAIL FROM:<" + USER.encode() +
                 b">\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<far@elsewhere.example>\r\nDATA\r\n")
    read_until(sock, lambda l: l.startswith(b"354"))
    sock.sendall(message() + b"partial line without an end")
    time.sleep(0.3)
    sock.close()
    time.sleep(0.5)
    assert mta.messages("bob@example.org") == []
    for d in ("tmp", "queue/tmp"):
        assert os.listdir(os.path.join(mta.data_dir, d)) == [], d
    assert [n for n in os.listdir(os.path.join(mta.data_dir, "queue")) if len(n) == 16] == []


def test_kill_after_250_keeps_message(mta):
    s = submit(mta)
    s.sendmail(USER, ["bob@example.org"], message(subject="durable"))
    # no QUIT: the whole server dies at once
    mta.crash()
    mta.start()
    msgs = mta.messages("bob@example.org")
    assert len(msgs) == 1 and b"Subject: durable" in msgs[0]


def test_per_user_rate_limit(server_factory):
    srv = server_factory(sections={"smtp": {"rate_limit": "2"}})
    srv.add_user(USER, PASSWORD)
    s = submit(srv)
    for _ in range(2):
        assert s.sendmail(USER, [USER], message(to=USER)) == {}
    code, text = s.mail(USER)
    assert code == 450 and text.startswith(b"4.7.1")
    s.quit()
    # another worker, another connection: the same count
    s = submit(srv, "submissions")
    assert s.mail(USER)[0] == 450
    s.quit()
    assert len(srv.messages(USER)) == 2


def test_login_with_empty_or_nul_user_name(mta):
    """Odd names fail like any wrong login (and leak nothing: the suite's
    sanitizer run checks the server log at teardown)."""
    s = submit(mta, user=None)
    for name in (b"", b"\x00", b"a\x00b"):
        assert s.docmd("AUTH", "LOGIN")[0] == 334
        code = s.docmd(base64.b64encode(name).decode())[0]
        if code == 334:
            code = s.docmd(base64.b64encode(b"pw").decode())[0]
        assert code == 535
    assert s.docmd("AUTH", "LOGIN =")[0] == 535
    s.quit()


@pytest.mark.parametrize("tempfail", ["no", "yes"])
def test_quota(server_factory, tempfail):
    srv = server_factory(sections={"smtp": {"quota_full_tempfail": tempfail}})
    srv.add_user(USER, PASSWORD)
    srv.cli("user", "add", "small@example.org", "--quota", "3000", input="pw\n")
    want = (452, b"4.2.2") if tempfail == "yes" else (552, b"5.2.2")
    s = submit(srv)
    # about 2.5 kB: fits
    assert s.sendmail(USER, ["small@example.org"], message(body=("a" * 98 + "\r\n") * 20)) == {}
    # announced by SIZE=: refused at RCPT
    assert s.mail(USER, ["SIZE=1000"])[0] == 250
    code, text = s.rcpt("small@example.org")
    assert (code, text[:5]) == want, (code, text)
    s.rset()
    # not announced: refused when the store would go over, after the data
    assert s.mail(USER)[0] == 250 and s.rcpt("small@example.org")[0] == 250
    code, text = s.data(message(body=("b" * 98 + "\r\n") * 10))
    assert (code, text[:5]) == want, (code, text)
    # more room: accepted again
    srv.cli("user", "quota", "small@example.org", "100k")
    assert s.sendmail(USER, ["small@example.org"], message()) == {}
    s.quit()
    assert len(srv.messages("small@example.org")) == 2


def test_local_and_remote_in_one_message(mta):
    s = submit(mta)
    s.sendmail(USER, ["bob@example.org", "far@elsewhere.example"], message(subject="both"))
    s.quit()
    local = mta.messages("bob@example.org")
    assert len(local) == 1
    qdir = os.path.join(mta.data_dir, "queue")
    spooled = [n for n in os.listdir(qdir) if len(n) == 16]
    assert len(spooled) == 1
    with open(os.path.join(qdir, spooled[0]), "rb") as f:
        assert f.read() == local[0]       # the same bytes, written once
    assert os.listdir(os.path.join(mta.data_dir, "tmp")) == []


def test_binarymime_only_for_local_recipients(mta):
    s = submit(mta)
    assert s.mail(USER, ["BODY=BINARYMIME"])[0] == 250
    code, text = s.rcpt("far@elsewhere.example")
    assert code == 554 and text.startswith(b"5.6.3")
    assert s.rcpt("bob@example.org")[0] == 250
    s.quit()
