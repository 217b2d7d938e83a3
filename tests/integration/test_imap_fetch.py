"""IMAP FETCH / UID FETCH: cached ENVELOPE/BODY/BODYSTRUCTURE of the MIME
corpus, body sections streamed with exact literal sizes (CRLF and LF-only
files), partial fetches, HEADER.FIELDS(.NOT), \\Seen, large messages."""

import email
import glob
import os
import re
import subprocess

import pytest

from harness import REPO
from imap_helpers import (raw_session, PASSWORD, USER, Raw, deliver, drop, imap, imaps, login_raw,
                          make_account, message)

MIME = os.path.join(REPO, "tests", "data", "mime")
CORPUS = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(MIME, "*.eml")))


@pytest.fixture
def srv(server):
    make_account(server)
    return server


def crlf(data):
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def test_bodystructure_envelope_body_of_the_corpus(srv):
    for name in CORPUS:
        with open(os.path.join(MIME, name + ".eml"), "rb") as f:
            drop(srv, USER, f.read())
    r = raw_session(srv, "INBOX")
    for seq, name in enumerate(CORPUS, 1):
        for item, ext in (("BODYSTRUCTURE", "bodystructure"), ("ENVELOPE", "envelope"),
                          ("BODY", "body")):
            with open(os.path.join(MIME, name + "." + ext), "rb") as f:
                want = f.read().rstrip(b"\r\n")
            lines = r.cmd("f", "FETCH %d %s" % (seq, item))
            assert lines[-1] == b"f OK FETCH completed\r\n"
            assert lines[0] == b"* %d FETCH (%s %s)\r\n" % (seq, item.encode(), want), name


def test_body_sections_have_exact_sizes(srv):
    """Every section of every corpus message: the literal's size is what
    was sent, and BODY[] is the file with CRLF line ends."""
    for name in CORPUS:
        with open(os.path.join(MIME, name + ".eml"), "rb") as f:
            drop(srv, USER, f.read())
    r = raw_session(srv, "INBOX")
    for seq, name in enumerate(CORPUS, 1):
        with open(os.path.join(MIME, name + ".eml"), "rb") as f:
            raw = f.read()
        lines = r.cmd("f", "FETCH %d (RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
                      "BODY.PEEK[1] BODY.PEEK[1.MIME])" % seq)
        assert lines[-1] == b"f OK FETCH completed\r\n"
        resp = lines[0]
        size = int(re.search(rb"RFC822.SIZE (\d+)", resp).group(1))
        assert size == len(crlf(raw)), name
        body = resp[resp.index(b"BODY[] {"):]
        n = int(re.match(rb"BODY\[\] \{(\d+)\}\r\n", body).group(1))
        start = body.index(b"}\r\n") + 3
        assert body[start:start + n] == crlf(raw), name
        header = re.search(rb"BODY\[HEADER\] \{(\d+)\}\r\n", resp)
        hstart = header.end()
        hdr = resp[hstart:hstart + int(header.group(1))]
        assert crlf(raw).startswith(hdr) and (hdr.endswith(b"\r\n\r\n") or hdr == crlf(raw))
        # the structure after each literal is intact
        for m in re.finditer(rb"(BODY\[[^\]]*\]) \{(\d+)\}\r\n", resp):
            after = resp[m.end() + int(m.group(2)):]
            assert after[:1] in (b" ", b")"), (name, m.group(1), after[:20])


def test_partial_fetch_and_header_fields(srv):
    msg = ("From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: partial\r\n"
           "X-Folded: one\r\n two\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\n\r\n"
           "0123456789abcdefghij\r\nline two\r\n")
    drop(srv, USER, msg)
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", "FETCH 1 BODY.PEEK[TEXT]<5.10>") == [
        b"* 1 FETCH (BODY[TEXT]<5> {10}\r\n56789abcde)\r\n", b"a OK FETCH completed\r\n"]
    assert r.cmd("b", "FETCH 1 BODY.PEEK[TEXT]<30.100>") == [
        b"* 1 FETCH (BODY[TEXT]<30> {2}\r\n\r\n)\r\n", b"b OK FETCH completed\r\n"]
    assert r.cmd("c", "FETCH 1 BODY.PEEK[TEXT]<500.10>") == [
        b"* 1 FETCH (BODY[TEXT]<500> {0}\r\n)\r\n", b"c OK FETCH completed\r\n"]
    assert r.cmd("d", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject x-folded)])") == [
        b"* 1 FETCH (BODY[HEADER.FIELDS (Subject x-folded)] {41}\r\n"
        b"Subject: partial\r\nX-Folded: one\r\n two\r\n\r\n)\r\n",
        b"d OK FETCH completed\r\n"]
    lines = r.cmd("e", "FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Subject X-Folded Date)]")
    assert lines[0] == (b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (Subject X-Folded Date)] {54}\r\n"
                        b"From: Bob <bob@example.net>\r\nTo: alice@example.org\r\n\r\n)\r\n")
    assert r.cmd("f", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (From)]<0.4>)") == [
        b"* 1 FETCH (BODY[HEADER.FIELDS (From)]<0> {4}\r\nFrom)\r\n", b"f OK FETCH completed\r\n"]
    # a part that does not exist is empty
    assert r.cmd("g", "FETCH 1 BODY.PEEK[3.2]") == [
        b"* 1 FETCH (BODY[3.2] {0}\r\n)\r\n", b"g OK FETCH completed\r\n"]


def test_lf_only_file_is_sent_with_crlf(srv):
    with open(os.path.join(MIME, "lf-only.eml"), "rb") as f:
        raw = f.read()
    assert b"\r\n" not in raw
    drop(srv, USER, raw)
    r = raw_session(srv, "INBOX")
    lines = r.cmd("a", "FETCH 1 (RFC822.SIZE RFC822)")
    n = len(crlf(raw))
    # RFC822 sets \Seen, so the new flags come along
    assert lines[0] == b"* 1 FETCH (FLAGS (\\Seen \\Recent) RFC822.SIZE %d RFC822 {%d}\r\n%s)\r\n" \
        % (n, n, crlf(raw))
    lines = r.cmd("b", "FETCH 1 BODY[TEXT]<1.7>")
    text = crlf(raw).split(b"\r\n\r\n", 1)[1]
    assert lines[0].endswith(b"{7}\r\n" + text[1:8] + b" FLAGS (\\Seen))\r\n") or \
        lines[0].endswith(b"{7}\r\n" + text[1:8] + b")\r\n")


def test_seen_is_set_by_body_but_not_by_peek(srv):
    deliver(srv, USER, message("seen"))
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", "FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])")[0] == (
        b"* 1 FETCH (FLAGS (\\Recent) BODY[HEADER.FIELDS (Subject)] {17}\r\n"
        b"Subject: seen\r\n\r\n)\r\n")
    lines = r.cmd("b", "FETCH 1 BODY[TEXT]")
    assert lines[0] == b"* 1 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT] {14}\r\nHello there.\r\n)\r\n"
    # read-only: nothing changes
    deliver(srv, USER, message("ro"))
    r2 = Raw(srv.port("imap"))
    login_raw(r2)
    r2.cmd("x", "EXAMINE INBOX")
    assert r2.cmd("c", "FETCH 2 (BODY[TEXT] FLAGS)")[0] == \
        b"* 2 FETCH (BODY[TEXT] {14}\r\nHello there.\r\n FLAGS ())\r\n"


def test_uid_fetch_ranges_and_errors(srv):
    for i in range(5):
        deliver(srv, USER, message("m%d" % i))
    r = raw_session(srv, "INBOX")
    assert r.cmd("a", "UID FETCH 2:3 FLAGS") == [
        b"* 2 FETCH (UID 2 FLAGS (\\Recent))\r\n", b"* 3 FETCH (UID 3 FLAGS (\\Recent))\r\n",
        b"a OK UID FETCH completed\r\n"]
    assert r.cmd("b", "UID FETCH 9:* UID") == [b"* 5 FETCH (UID 5)\r\n",
                                               b"b OK UID FETCH completed\r\n"]
    assert r.cmd("c", "UID FETCH 100 UID") == [b"c OK UID FETCH completed\r\n"]
    assert r.cmd("d", "FETCH 5:4,1 (UID)") == [
        b"* 1 FETCH (UID 1)\r\n", b"* 4 FETCH (UID 4)\r\n", b"* 5 FETCH (UID 5)\r\n",
        b"d OK FETCH completed\r\n"]
    assert r.cmd("e", "FETCH 6 UID") == [b"e BAD Invalid message sequence number\r\n"]
    assert r.cmd("f", "FETCH 0 UID") == [b"f BAD Invalid sequence set\r\n"]
    assert r.cmd("g", "FETCH 1 (UID BOGUS)") == [b"g BAD Invalid FETCH arguments\r\n"]
    assert r.cmd("h", "FETCH 1 BODY[HEADER.FIELDS ()]") == [b"h BAD Invalid FETCH arguments\r\n"]
    assert r.cmd("i", "FETCH 1 BODY[1.MIMEX]") == [b"i BAD Invalid FETCH arguments\r\n"]
    assert r.cmd("j", "FETCH 1 BODY[]<0.0>") == [b"j BAD Invalid FETCH arguments\r\n"]
    lines = r.cmd("k", "FETCH 1 ALL")
    assert re.match(rb'\* 1 FETCH \(FLAGS \(\\Recent\) INTERNALDATE "\d\d-[A-Z][a-z]{2}-\d{4} '
                    rb'\d\d:\d\d:\d\d \+0000" RFC822.SIZE \d+ ENVELOPE \(', lines[0])
    assert r.cmd("l", "FETCH 1 FAST")[-1] == b"l OK FETCH completed\r\n"
    assert r.cmd("m", "FETCH 1 FULL")[-1] == b"m OK FETCH completed\r\n"


def test_large_message_streams(srv):
    line = b"x" * 998 + b"\n"
    body = line * 6000   # ~6 MB, LF-only
    raw = b"From: big@example.net\nSubject: big\n\n" + body
    drop(srv, USER, raw)
    m = imap(srv)
    m.select("INBOX")
    typ, data = m.fetch("1", "(BODY.PEEK[] RFC822.SIZE)")
    assert typ == "OK"
    assert data[0][1] == crlf(raw)
    typ, data = m.uid("FETCH", "1", "(BODY.PEEK[TEXT]<1000000.10>)")
    assert data[0][1] == crlf(body)[1000000:1000010]
    # pipelined commands wait their turn behind a streaming FETCH
    r = raw_session(srv, "INBOX")
    r.send(b"a FETCH 1 BODY.PEEK[]\r\nb NOOP\r\n")
    lines = r.until_tagged("a")
    assert lines[-1] == b"a OK FETCH completed\r\n"
    assert r.line() == b"b OK NOOP completed\r\n"
    # a client that goes away mid-stream costs nothing
    r = raw_session(srv, "INBOX")
    r.send(b"a FETCH 1 BODY.PEEK[]\r\n")
    r.close()
    assert imap(srv).noop()[0] == "OK"


def test_imaplib_and_imaps_fetch(srv):
    deliver(srv, USER, message("via imaplib", body="Body text.\r\n"))
    m = imaps(srv)
    m.login(USER, PASSWORD)
    m.select("INBOX", readonly=True)
    typ, data = m.fetch("1", "(RFC822)")
    parsed = email.message_from_bytes(data[0][1])
    assert parsed["Subject"] == "via imaplib"
    typ, data = m.uid("FETCH", "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: via imaplib\r\n\r\n"
    m.logout()


def test_curl_fetch_by_uid(srv):
    stored = deliver(srv, USER, message("for curl", body="curl body\r\n"))
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", "%s:%s" % (USER, PASSWORD),
                          "imap://127.0.0.1:%d/INBOX;UID=1" % srv.port("imap")],
                         capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.replace(b"\r\n", b"\n") == stored.replace(b"\r\n", b"\n")
    out = subprocess.run(["curl", "-sS", "-k", "--max-time", "20", "-u", "%s:%s" % (USER, PASSWORD),
                          "imaps://127.0.0.1:%d/INBOX;UID=1;SECTION=TEXT" % srv.port("imaps")],
                         capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"curl body\r\n"
