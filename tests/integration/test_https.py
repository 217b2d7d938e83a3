"""Issue 18, item 6: the HTTPS listener. Per hosted domain: Thunderbird
autoconfig, Microsoft POX Autodiscover and the MTA-STS policy, fetched
with curl (certificate and host name verified) and with Python, whose
client then sets itself up from the document: the server, port and TLS
mode it finds, an address and a password."""

import http.client
import imaplib
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import xml.etree.ElementTree as ET

import pytest

from harness import client_context, free_port, run_as_user

PW = "auto-pw"
ADDRESS = "fred@example.org"
NAMES = ("mail.test.example", "mta-sts.example.org", "autoconfig.example.org",
         "autodiscover.example.org", "example.org", "mta-sts.other.example")


def web_cert(srv):
    """Replaces the server's certificate by one naming the web hosts, then
    reloads: the new web process serves it."""
    san = ",".join("DNS:" + n for n in NAMES) + ",DNS:localhost,IP:127.0.0.1"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", srv.key, "-out", srv.cert,
                    "-days", "2", "-subj", "/CN=mail.test.example", "-addext",
                    "subjectAltName=" + san], check=True, capture_output=True)
    os.chmod(srv.key, 0o600)
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_log(r"event=reloaded generation=1")
    srv.wait_log(r"event=web-ready", count=2)


@pytest.fixture
def web(server_factory):
    port = free_port()
    srv = server_factory(sections={"listen": {"https": "127.0.0.1:%d" % port},
                                   "mta_sts": {"mode": "enforce", "max_age": "1d"}})
    srv.https_port = port
    srv.add_user(ADDRESS, PW)
    srv.add_domain("other.example")
    web_cert(srv)
    return srv


def curl(srv, host, path, *extra):
    """curl against the listener as https://HOST:PORT/PATH, verifying the
    certificate against the server's own; (status, headers, body)."""
    out = subprocess.run(["curl", "-sS", "-i", "--max-time", "20", "--cacert", srv.cert,
                          "--resolve", "%s:%d:127.0.0.1" % (host, srv.https_port), *extra,
                          "https://%s:%d%s" % (host, srv.https_port, path)],
                         capture_output=True)
    assert out.returncode == 0, out.stderr
    # bytes: text mode would turn the CRLF of the policy into LF
    head, _, body = out.stdout.decode().partition("\r\n\r\n")
    status = int(head.split()[1])
    return status, head, body


def fetch(srv, host, path, method="GET", body=None):
    """The same with Python's http.client over a verified TLS connection."""
    ctx = ssl.create_default_context(cafile=srv.cert)
    sock = socket.create_connection(("127.0.0.1", srv.https_port), timeout=20)
    conn = http.client.HTTPSConnection(host, srv.https_port, context=ctx)
    conn.sock = ctx.wrap_socket(sock, server_hostname=host)
    conn.request(method, path, body=body,
                 headers={"Content-Type": "text/xml"} if body is not None else {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Type"), data


def test_mta_sts_policy(web):
    status, head, body = curl(web, "mta-sts.example.org", "/.well-known/mta-sts.txt")
    assert status == 200
    assert re.search(r"(?im)^content-type: text/plain", head)
    # RFC 8461 3.2: CRLF lines, this server as the MX, the configured mode
    assert body == ("version: STSv1\r\nmode: enforce\r\nmx: mail.test.example\r\n"
                    "max_age: 86400\r\n")
    # every hosted domain, and only hosted domains, only at mta-sts.DOMAIN
    assert curl(web, "mta-sts.other.example", "/.well-known/mta-sts.txt")[0] == 200
    assert curl(web, "example.org", "/.well-known/mta-sts.txt")[0] == 404
    status, _, _ = curl(web, "localhost", "/.well-known/mta-sts.txt",
                        "-H", "Host: mta-sts.not-hosted.example")
    assert status == 404
    assert curl(web, "mta-sts.example.org", "/.well-known/mta-sts.txt", "-X", "POST")[0] == 405
    # a reload with another mode serves the new policy
    with open(web.config_path) as f:
        text = f.read()
    assert "mode = enforce\n" in text
    with open(web.config_path, "w") as f:
        f.write(text.replace("mode = enforce\n", "mode = testing\n"))
    web.proc.send_signal(signal.SIGHUP)
    web.wait_log(r"event=reloaded generation=2")
    web.wait_log(r"event=web-ready", count=3)
    assert "mode: testing\r\n" in curl(web, "mta-sts.example.org",
                                        "/.well-known/mta-sts.txt")[2]


def port_of(srv, listener):
    return srv.port(listener)


def test_thunderbird_sets_itself_up(web):
    for host, path in (("autoconfig.example.org",
                        "/mail/config-v1.1.xml?emailaddress=fred%40example.org"),
                       ("example.org", "/.well-known/autoconfig/mail/config-v1.1.xml"),
                       ("autoconfig.example.org", "/mail/config-v1.1.xml")):
        status, head, body = curl(web, host, path)
        assert status == 200, (host, path)
        assert re.search(r"(?im)^content-type: application/xml", head)
    status, ctype, data = fetch(web, "autoconfig.example.org",
                                "/mail/config-v1.1.xml?emailaddress=fred%40example.org")
    assert status == 200
    root = ET.fromstring(data)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider.get("id") == "example.org"
    assert provider.find("domain").text == "example.org"
    incoming = provider.findall("incomingServer")
    outgoing = provider.findall("outgoingServer")
    # every configured port, implicit TLS first, never port 25
    assert [(s.get("type"), int(s.find("port").text), s.find("socketType").text)
            for s in incoming] == [
        ("imap", web.port("imaps"), "SSL"), ("imap", web.port("imap"), "STARTTLS"),
        ("pop3", web.port("pop3s"), "SSL"), ("pop3", web.port("pop3"), "STARTTLS")]
    assert [(int(s.find("port").text), s.find("socketType").text) for s in outgoing] == [
        (web.port("submissions"), "SSL"), (web.port("submission"), "STARTTLS")]
    assert web.port("smtp") not in [int(s.find("port").text) for s in outgoing]

    # what Thunderbird does with it: the first of each, %EMAILADDRESS% as the user
    imap_conf, smtp_conf = incoming[0], outgoing[0]
    assert imap_conf.find("hostname").text == "mail.test.example"
    user = imap_conf.find("username").text.replace("%EMAILADDRESS%", ADDRESS)
    assert imap_conf.find("authentication").text == "password-cleartext"
    m = imaplib.IMAP4_SSL("127.0.0.1", int(imap_conf.find("port").text),
                          ssl_context=client_context())
    assert m.login(user, PW)[0] == "OK"
    m.logout()
    s = smtplib.SMTP_SSL("127.0.0.1", int(smtp_conf.find("port").text),
                         context=client_context())
    s.login(smtp_conf.find("username").text.replace("%EMAILADDRESS%", ADDRESS), PW)
    s.quit()

    # not a hosted domain: nothing
    assert curl(web, "autoconfig.example.org",
                "/mail/config-v1.1.xml?emailaddress=x%40elsewhere.example")[0] == 404
    assert curl(web, "autoconfig.elsewhere.example", "/mail/config-v1.1.xml",
                "-k")[0] == 404


AUTODISCOVER_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>%s</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""

NS = {"a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
      "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}


def test_outlook_autodiscover(web):
    status, ctype, data = fetch(web, "autodiscover.example.org",
                                "/autodiscover/autodiscover.xml", "POST",
                                (AUTODISCOVER_REQUEST % ADDRESS).encode())
    assert status == 200 and ctype.startswith("application/xml")
    root = ET.fromstring(data)
    account = root.find("o:Response/o:Account", NS)
    assert account.find("o:AccountType", NS).text == "email"
    assert account.find("o:Action", NS).text == "settings"
    protocols = {p.find("o:Type", NS).text: p for p in account.findall("o:Protocol", NS)}
    assert sorted(protocols) == ["IMAP", "POP3", "SMTP"]
    for kind, listener in (("IMAP", "imaps"), ("POP3", "pop3s"), ("SMTP", "submissions")):
        p = protocols[kind]
        assert p.find("o:Server", NS).text == "mail.test.example"
        assert int(p.find("o:Port", NS).text) == web.port(listener)
        assert p.find("o:SSL", NS).text == "on"
        assert p.find("o:Encryption", NS).text == "SSL"
        assert p.find("o:LoginName", NS).text == ADDRESS
        assert p.find("o:AuthRequired", NS).text == "on"
    # what Outlook does with it
    p = protocols["IMAP"]
    m = imaplib.IMAP4_SSL("127.0.0.1", int(p.find("o:Port", NS).text),
                          ssl_context=client_context())
    assert m.login(p.find("o:LoginName", NS).text, PW)[0] == "OK"
    m.logout()

    # with curl, a namespace prefix and another spelling of the path
    body = AUTODISCOVER_REQUEST.replace("<EMailAddress>", "<x:EMailAddress>").replace(
        "</EMailAddress>", "</x:EMailAddress>") % "fred@Example.ORG"
    status, _, text = curl(web, "autodiscover.example.org", "/Autodiscover/Autodiscover.xml",
                           "-X", "POST", "--data-binary", body)
    assert status == 200 and "<LoginName>fred@Example.ORG</LoginName>" in text
    # unknown domain, no address at all, bad XML-ish input: 404, never an echo
    assert fetch(web, "autodiscover.example.org", "/autodiscover/autodiscover.xml", "POST",
                 (AUTODISCOVER_REQUEST % "x@elsewhere.example").encode())[0] == 404
    status, _, data = fetch(web, "autodiscover.example.org", "/autodiscover/autodiscover.xml",
                            "POST", (AUTODISCOVER_REQUEST % "<script>@example.org").encode())
    assert status == 200 and b"<script>" not in data and b"LoginName" not in data
    # a body over the limit (16 KiB) is refused before it is read: a 413, or
    # the connection closed under the writing client; the server goes on
    try:
        status = fetch(web, "autodiscover.example.org", "/autodiscover/autodiscover.xml",
                       "POST", b"x" * 1000000)[0]
    except (OSError, http.client.HTTPException):
        status = None
    assert status in (413, None)
    web.wait_log(r"event=http-request listener=https .*status=200")
    assert fetch(web, "autodiscover.example.org", "/autodiscover/autodiscover.xml", "POST",
                 (AUTODISCOVER_REQUEST % ADDRESS).encode())[0] == 200


def test_web_process_is_unprivileged_and_not_plain_http(web):
    pids = [int(p) for p in re.findall(r"event=web-started slot=\d+ pid=(\d+)", web.read_log())]
    live = [p for p in pids if p in web.child_pids()]
    assert len(live) == 1
    with open("/proc/%d/status" % live[0]) as f:
        uid = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
    import pwd
    assert uid == pwd.getpwnam(run_as_user()).pw_uid
    # plain HTTP on the HTTPS port gets no answer in clear
    with socket.create_connection(("127.0.0.1", web.https_port), timeout=10) as s:
        s.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: mta-sts.example.org\r\n\r\n")
        try:
            reply = s.recv(4096)
        except OSError:
            reply = b""
    assert b"STSv1" not in reply and not reply.startswith(b"HTTP/")
    assert curl(web, "mta-sts.example.org", "/nothing-here")[0] == 404
    web.wait_log(r"event=http-request listener=https remote=127\.0\.0\.1 method=GET "
                 r"path=\"/nothing-here\" status=404")
