"""`postern check` (issue 18): a duplicate key, a run_as user that does not
exist and a hostname that is not a domain name are errors naming the file
and line; a certificate that expires within 14 days or does not cover
hostname is a warning (exit 0). `serve` refuses the same errors."""

import os
import subprocess

from harness import POSTERN, run_as_user, run_postern


def write_conf(workdir, body, cert_days=90, cert_names="mail.example.org"):
    cert = os.path.join(workdir, "cert.pem")
    key = os.path.join(workdir, "key.pem")
    san = ",".join("DNS:" + n for n in cert_names.split())
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", str(cert_days), "-subj", "/CN=" + cert_names.split()[0],
                    "-addext", "subjectAltName=" + san], check=True, capture_output=True)
    path = os.path.join(workdir, "postern.conf")
    with open(path, "w") as f:
        f.write(body % {"cert": cert, "key": key, "data": os.path.join(workdir, "data"),
                        "user": run_as_user()})
    return path


GOOD = """hostname = mail.example.org
data_dir = %(data)s
run_as = %(user)s

[tls]
cert = %(cert)s
key = %(key)s

[listen]
imaps = 127.0.0.1:1
"""


def test_a_good_file_passes_without_warnings(workdir):
    out = run_postern("check", "-c", write_conf(workdir, GOOD))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert "hostname = mail.example.org" in out.stdout


def test_duplicate_key_is_an_error_with_file_and_line(workdir):
    path = write_conf(workdir, GOOD + "[auth]\nplaintext = never\n[listen]\nimaps = 127.0.0.1:2\n")
    out = run_postern("check", "-c", path)
    assert out.returncode == 1
    assert out.stderr.strip() == ("postern: %s:14: duplicate key 'imaps' in [listen] "
                                  "(first on line 10)" % path)
    serve = subprocess.run([POSTERN, "serve", "-c", path], capture_output=True, text=True,
                           timeout=30)
    assert serve.returncode == 1 and "duplicate key 'imaps'" in serve.stderr


def test_missing_run_as_user_is_an_error_with_file_and_line(workdir):
    path = write_conf(workdir, GOOD.replace("%(user)s", "no-such-user-zq"))
    out = run_postern("check", "-c", path)
    assert out.returncode == 1
    assert out.stderr.strip() == "postern: %s:3: run_as: no such system user " \
        "'no-such-user-zq'" % path


def test_hostname_that_is_not_a_domain_is_an_error_with_file_and_line(workdir):
    for bad in ("mail_server.example.org", "mail..example.org", "10.0.0.1", "-x.example"):
        path = write_conf(workdir, GOOD.replace("mail.example.org", bad, 1))
        out = run_postern("check", "-c", path)
        assert out.returncode == 1, bad
        assert out.stderr.strip() == "postern: %s:1: hostname: '%s' is not a valid " \
            "domain name" % (path, bad)


def test_certificate_expiring_within_14_days_is_a_warning(workdir):
    path = write_conf(workdir, GOOD, cert_days=5)
    out = run_postern("check", "-c", path)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    start = "postern: warning: %s: certificate expires in " % os.path.join(workdir, "cert.pem")
    assert lines[0].startswith((start + "4 days, on ", start + "5 days, on ")), lines
    assert "hostname = mail.example.org" in out.stdout
    # 15 days: nothing to say yet
    out = run_postern("check", "-c", write_conf(workdir, GOOD, cert_days=15))
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_certificate_not_covering_hostname_is_a_warning(workdir):
    path = write_conf(workdir, GOOD, cert_names="www.example.org example.org")
    out = run_postern("check", "-c", path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == ("postern: warning: %s: certificate does not cover hostname "
                                  "mail.example.org (it names www.example.org, example.org)"
                                  % os.path.join(workdir, "cert.pem"))
    # a wildcard covers it
    out = run_postern("check", "-c", write_conf(workdir, GOOD, cert_names="*.example.org"))
    assert out.returncode == 0 and out.stderr == "", out.stderr
