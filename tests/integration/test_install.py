"""Install layout and service (issue 18): `meson install` puts every file in
its FHS place and never overwrites /etc/postern/postern.conf; the systemd
unit passes `systemd-analyze verify` and its own hardening review; the
server's system calls all belong to the unit's SystemCallFilter=; the man
pages pass `mandoc -T lint` and postern.conf(5) names every key."""

import imaplib
import os
import poplib
import re
import shutil
import signal
import smtplib
import subprocess
import time

import pytest

from harness import POSTERN, REPO, Server, client_context, run_as_user
from imap_helpers import make_account

BUILD = os.path.dirname(POSTERN)
UNIT = os.path.join(BUILD, "conf", "postern.service")
MAN = os.path.join(BUILD, "docs", "man")


def meson_install(destdir):
    out = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", destdir],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def installed_files(root):
    found = set()
    for dirpath, _, names in os.walk(root):
        for name in names:
            found.add(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def test_meson_install_puts_files_in_their_places(workdir):
    dest = os.path.join(workdir, "root")
    meson_install(dest)
    prefix = subprocess.run(["meson", "introspect", "--buildoptions", BUILD], capture_output=True,
                            text=True, check=True).stdout
    prefix = re.search(r'"name": "prefix", "value": "([^"]+)"', prefix).group(1).lstrip("/")
    unitdir = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
                             capture_output=True, text=True).stdout.strip().lstrip("/")
    want = {
        prefix + "/sbin/postern",
        "etc/postern/postern.conf",
        prefix + "/share/man/man8/postern.8",
        prefix + "/share/man/man5/postern.conf.5",
        (unitdir or prefix + "/lib/systemd/system") + "/postern.service",
        prefix + "/lib/tmpfiles.d/postern.conf",
        prefix + "/lib/sysusers.d/postern.conf",
        "etc/fail2ban/filter.d/postern.conf",
        "etc/fail2ban/jail.d/postern.conf",
        prefix + "/share/doc/postern/postern.conf.example",
    }
    assert installed_files(dest) == want
    with open(os.path.join(dest, "etc/postern/postern.conf")) as f, \
            open(os.path.join(REPO, "conf", "postern.conf.example")) as g:
        assert f.read() == g.read()
    unit = open(os.path.join(dest, unitdir, "postern.service")).read()
    assert "ExecStart=/%s/sbin/postern serve -c /etc/postern/postern.conf" % prefix in unit


def test_meson_install_keeps_an_existing_config(workdir):
    dest = os.path.join(workdir, "root")
    os.makedirs(os.path.join(dest, "etc", "postern"))
    conf = os.path.join(dest, "etc", "postern", "postern.conf")
    with open(conf, "w") as f:
        f.write("hostname = mine.example.org\n")
    meson_install(dest)
    with open(conf) as f:
        assert f.read() == "hostname = mine.example.org\n"


# ---- the systemd unit ----

def unit_for_test(workdir):
    """The built unit, its ExecStart pointing at the binary under test and
    its man pages where `man` finds them (MANPATH)."""
    text = open(UNIT).read()
    exec_start = re.search(r"^ExecStart=(\S+)", text, re.M).group(1)
    path = os.path.join(workdir, "postern.service")
    with open(path, "w") as f:
        f.write(text.replace(exec_start, POSTERN))
    man = os.path.join(workdir, "man")
    for section in ("5", "8"):
        os.makedirs(os.path.join(man, "man" + section))
    shutil.copy(os.path.join(MAN, "postern.8"), os.path.join(man, "man8"))
    shutil.copy(os.path.join(MAN, "postern.conf.5"), os.path.join(man, "man5"))
    return path, man


def test_unit_passes_systemd_analyze_verify(workdir):
    path, man = unit_for_test(workdir)
    out = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True,
                         env=dict(os.environ, MANPATH=man), timeout=60)
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


def test_unit_is_type_notify_with_the_hardening_asked_for():
    text = open(UNIT).read()
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    assert settings["Type"] == ["notify"]
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for key, value in (("ProtectSystem", "strict"), ("ReadWritePaths", "/var/lib/postern"),
                       ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes")):
        assert settings[key] == [value], key
    assert set(settings["CapabilityBoundingSet"][0].split()) == {
        "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL"}
    assert set(settings["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET",
                                                                   "AF_INET6"}
    assert settings["SystemCallFilter"][0] == "@system-service"


def test_unit_hardening_review(workdir):
    path, _ = unit_for_test(workdir)
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", path],
                         capture_output=True, text=True, timeout=60)
    level = re.search(r"Overall exposure level for postern.service: ([0-9.]+)", out.stdout)
    assert level, out.stdout + out.stderr
    # 0 is a sealed box, 10 is no hardening; "OK" is below 3
    assert float(level.group(1)) <= 3.0, out.stdout


# ---- SystemCallFilter=@system-service: what the server calls ----

def syscall_groups():
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         check=True).stdout
    groups, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.split()[0], set())
        elif current is not None and line.startswith("    ") and not line.strip().startswith("#"):
            current.add(line.strip())
    return groups


def expand(name, groups, seen=None):
    seen = set() if seen is None else seen
    result = set()
    for member in groups.get(name, ()):
        if member.startswith("@"):
            if member not in seen:
                seen.add(member)
                result |= expand(member, groups, seen)
        else:
            result.add(member)
    return result


def unit_syscall_allowlist():
    groups = syscall_groups()
    allowed = set()
    for line in open(UNIT).read().splitlines():
        if line.startswith("SystemCallFilter="):
            for word in line.split("=", 1)[1].split():
                allowed |= expand(word, groups) if word.startswith("@") else {word}
    return allowed


def sanitizer_build():
    out = subprocess.run(["ldd", POSTERN], capture_output=True, text=True).stdout
    return "libasan" in out or "libubsan" in out


def test_server_stays_within_the_units_syscall_filter(workdir):
    """Everything a server does in a day (start, SMTP with AUTH and local
    delivery, IMAP with IDLE, POP3, a reload, a stop), traced by strace:
    every system call it makes is one the unit allows."""
    trace = os.path.join(workdir, "strace.log")
    os.mkdir(os.path.join(workdir, "traced"))
    srv = Server(os.path.join(workdir, "traced"))
    srv.wrapper = ["strace", "-f", "-qq", "-o", trace]
    if sanitizer_build():
        # LeakSanitizer stops the world with ptrace, which strace holds
        srv.env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    srv.start()
    try:
        master = int(re.search(r"postern\[(\d+)\] info event=master-started",
                               srv.read_log()).group(1))
        make_account(srv, "alice@example.org", "secret-pw")
        s = smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=30)
        s.starttls(context=client_context())
        s.login("alice@example.org", "secret-pw")
        s.sendmail("alice@example.org", ["alice@example.org"],
                   b"Subject: traced\r\n\r\nhello\r\n")
        s.quit()
        m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=client_context(),
                              timeout=30)
        m.login("alice@example.org", "secret-pw")
        m.select("INBOX")
        assert m.fetch("1", "(BODY[])")[0] == "OK"
        tag = m._new_tag().decode()
        m.send(("%s IDLE\r\n" % tag).encode())
        m.readline()
        m.send(b"DONE\r\n")
        m.readline()
        m.logout()
        p = poplib.POP3_SSL("127.0.0.1", srv.port("pop3s"), context=client_context(), timeout=30)
        p.user("alice@example.org")
        p.pass_("secret-pw")
        p.retr(1)
        p.quit()
        os.kill(master, signal.SIGHUP)
        srv.wait_log(r"event=reloaded generation=1")
        time.sleep(1)
        os.kill(master, signal.SIGTERM)
        assert srv.proc.wait(timeout=60) == 0, srv.read_log()[-3000:]
    finally:
        srv.stop()
    calls = set()
    with open(trace) as f:
        for line in f:
            m = re.match(r"^\d+\s+([a-z0-9_]+)\(", line)
            if m:
                calls.add(m.group(1))
    assert "accept4" in calls and "setuid" in calls, sorted(calls)   # the trace is real
    outside = calls - unit_syscall_allowlist()
    assert not outside, "system calls outside the unit's SystemCallFilter: %s" % sorted(outside)


# ---- man pages ----

# scdoc writes a paragraph macro after every heading and before every
# indented block; mandoc skips them and says so. Anything else counts.
SCDOC_PARAGRAPHS = ("skipping paragraph macro: PP empty", "skipping paragraph macro: PP after SH")


@pytest.mark.parametrize("page", ["postern.8", "postern.conf.5"])
def test_man_page_passes_mandoc_lint(page):
    path = os.path.join(MAN, page)
    out = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", path], capture_output=True,
                         text=True)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if not any(p in line for p in SCDOC_PARAGRAPHS)]
    assert not problems, "\n".join(problems)
    text = subprocess.run(["mandoc", "-T", "utf8", path], capture_output=True, text=True,
                          check=True).stdout
    text = re.sub(r".\x08", "", text)     # overstrike (bold) as plain text
    assert "NAME" in text and "SEE ALSO" in text


def test_postern_conf_5_names_every_key(workdir):
    conf = os.path.join(workdir, "small.conf")
    with open(conf, "w") as f:
        f.write("hostname = mail.example.org\nrun_as = %s\n" % run_as_user())
    out = subprocess.run([POSTERN, "check", "-c", conf], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    keys = []
    section = ""
    for line in out.stdout.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif re.match(r"^[a-z_0-9]+ =", line):
            keys.append((section, line.split(" =")[0]))
    text = subprocess.run(["mandoc", "-T", "utf8", os.path.join(MAN, "postern.conf.5")],
                          capture_output=True, text=True, check=True).stdout
    text = re.sub(r".\x08", "", text)
    sections = re.split(r"\n(?=\S)", text)
    missing = []
    for section, key in keys:
        title = "[%s]" % section if section else "TOP SECTION"
        body = next((s for s in sections if s.startswith(title)), "")
        if not re.search(r"^\s+%s = " % re.escape(key), body, re.M):
            missing.append("%s %s" % (title, key))
    assert len(keys) > 40
    assert not missing, "postern.conf(5) lacks: " + ", ".join(missing)


def test_man_page_lists_every_command():
    usage = subprocess.run([POSTERN, "help"], capture_output=True, text=True).stdout
    commands = re.findall(r"^  ([a-z]+) ", usage, re.M)
    text = open(os.path.join(REPO, "docs", "man", "postern.8.scd")).read()
    assert len(commands) >= 7
    for command in commands:
        assert re.search(r"^\*%s\b" % command, text, re.M), command
