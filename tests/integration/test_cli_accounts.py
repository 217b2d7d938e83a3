"""postern domain|user|alias: the admin CLI against a scratch data_dir.

Every error path: exit status 1 and one line on stderr for user errors,
2 for usage errors. The binary is $POSTERN_BIN, else <repo>/build/postern.
"""
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSTERN = os.environ.get("POSTERN_BIN", os.path.join(REPO, "build", "postern"))
RUN_AS = "nobody"


class Cli:
    def __init__(self, directory):
        self.directory = directory
        self.data_dir = os.path.join(directory, "data")
        self.config = os.path.join(directory, "postern.conf")
        with open(self.config, "w") as f:
            f.write("hostname = mail.example.org\n"
                    "data_dir = %s\n"
                    "run_as = %s\n" % (self.data_dir, RUN_AS))

    def run(self, *args, stdin="", env=None, config=True):
        argv = [POSTERN] + list(args)
        if config:
            argv += ["-c", self.config]
        proc = subprocess.run(argv, input=stdin.encode(), capture_output=True,
                              timeout=60, env=env)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def ok(self, *args, stdin=""):
        code, out, err = self.run(*args, stdin=stdin)
        assert code == 0, "postern %s: %d %s" % (" ".join(args), code, err)
        assert err == ""
        return out

    def fails(self, *args, stdin="", match=None):
        """A user error: status 1, one line on stderr."""
        code, out, err = self.run(*args, stdin=stdin)
        assert code == 1, "postern %s: status %d, stderr %r" % (" ".join(args), code, err)
        lines = err.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("postern: "), err
        if match is not None:
            assert re.search(match, lines[0]), lines[0]
        return lines[0]

    def usage(self, *args):
        code, out, err = self.run(*args)
        assert code == 2, "postern %s: status %d, stderr %r" % (" ".join(args), code, err)
        assert err.startswith("postern: ")

    def lines(self, *args):
        return self.ok(*args).splitlines()


@pytest.fixture
def cli():
    path = tempfile.mkdtemp(prefix="postern-cli-")
    os.chmod(path, 0o755)
    yield Cli(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def org(cli):
    """example.org with bob and ann."""
    cli.ok("domain", "add", "example.org")
    cli.ok("user", "add", "bob@example.org", stdin="bobpass\n")
    cli.ok("user", "add", "ann@example.org", stdin="annpass\n")
    return cli


# ---- domains -----------------------------------------------------------

def test_domain_add_list_del(cli):
    assert cli.lines("domain", "list") == []
    cli.ok("domain", "add", "Example.ORG")
    cli.ok("domain", "add", "bücher.example")
    assert cli.lines("domain", "list") == ["example.org", "xn--bcher-kva.example"]
    listed = json.loads(cli.ok("domain", "list", "--json"))
    assert [d["name"] for d in listed] == ["example.org", "xn--bcher-kva.example"]
    cli.ok("domain", "del", "BÜCHER.example")
    assert cli.lines("domain", "list") == ["example.org"]


def test_domain_errors(cli):
    cli.ok("domain", "add", "example.org")
    cli.fails("domain", "add", "example.org", match="exists")
    cli.fails("domain", "add", "EXAMPLE.org", match="exists")
    cli.fails("domain", "add", "bad_domain.org", match="bad domain")
    cli.fails("domain", "add", "a..b", match="bad domain")
    cli.fails("domain", "del", "example.net", match="unknown domain")


def test_domain_del_with_users_needs_force(org):
    org.ok("alias", "add", "info@example.org", "bob@example.org")
    org.fails("domain", "del", "example.org", match="--force")
    assert org.lines("domain", "list") == ["example.org"]
    assert len(org.lines("user", "list")) == 2
    org.ok("domain", "del", "example.org", "--force")
    assert org.lines("domain", "list") == []
    assert org.lines("user", "list") == []
    assert org.lines("alias", "list") == []


def test_domain_del_with_only_alias_needs_force(cli):
    cli.ok("domain", "add", "example.org")
    cli.ok("alias", "add", "@example.org", "someone@remote.example")
    cli.fails("domain", "del", "example.org", match="--force")
    cli.ok("domain", "del", "--force", "example.org")


# ---- users -------------------------------------------------------------

def test_user_add_list(org):
    org.ok("user", "add", "Carol.Smith@EXAMPLE.org", "--quota", "10M", stdin="pw\n")
    org.ok("user", "add", "dave@example.org", "--disabled", stdin="pw\n")
    lines = org.lines("user", "list")
    names = [line.split()[0] for line in lines]
    assert names == ["ann@example.org", "bob@example.org", "Carol.Smith@example.org",
                     "dave@example.org"]
    users = {u["address"]: u for u in json.loads(org.ok("user", "list", "--json"))}
    assert users["Carol.Smith@example.org"]["quota"] == 10 * 1024 * 1024
    assert users["dave@example.org"]["enabled"] is False
    assert users["bob@example.org"]["enabled"] is True
    org.ok("user", "enable", "dave@example.org")
    org.ok("user", "disable", "BOB@example.org")
    users = {u["address"]: u for u in json.loads(org.ok("user", "list", "--json"))}
    assert users["dave@example.org"]["enabled"] is True
    assert users["bob@example.org"]["enabled"] is False
    org.ok("user", "quota", "ann@example.org", "1G")
    users = {u["address"]: u for u in json.loads(org.ok("user", "list", "--json"))}
    assert users["ann@example.org"]["quota"] == 1 << 30


def test_user_list_by_domain(org):
    org.ok("domain", "add", "example.net")
    org.ok("user", "add", "zed@example.net", stdin="pw\n")
    assert [l.split()[0] for l in org.lines("user", "list", "example.net")] == \
        ["zed@example.net"]
    assert len(org.lines("user", "list", "EXAMPLE.org")) == 2
    org.fails("user", "list", "example.com", match="unknown domain")


def test_user_errors(org):
    org.fails("user", "add", "bob@example.org", stdin="x\n", match="exists")
    org.fails("user", "add", "BOB@Example.org", stdin="x\n", match="exists")
    org.fails("user", "add", "x@example.com", stdin="x\n", match="unknown domain")
    for bad in ["bob", "bob@", "@example.org", "a b@example.org", "a..b@example.org",
                "x" * 65 + "@example.org", "bob@exa_mple.org", "bob@[127.0.0.1]"]:
        org.fails("user", "add", bad, stdin="x\n", match="bad address")
    org.fails("user", "add", "new@example.org", stdin="", match="password")
    org.fails("user", "add", "new@example.org", stdin="\n", match="empty password")
    org.fails("user", "del", "nobody@example.org", match="unknown user")
    org.fails("user", "passwd", "nobody@example.org", stdin="x\n", match="unknown user")
    org.fails("user", "disable", "nobody@example.org", match="unknown user")
    assert len(org.lines("user", "list")) == 2


def test_user_is_alias(org):
    org.ok("alias", "add", "info@example.org", "bob@example.org")
    org.fails("user", "add", "info@example.org", stdin="x\n", match="is an alias")


def test_user_del_and_passwd(org):
    org.ok("user", "passwd", "bob@example.org", stdin="newpass\n")
    org.ok("user", "del", "Bob@Example.ORG")
    assert [l.split()[0] for l in org.lines("user", "list")] == ["ann@example.org"]


def test_password_never_stored_in_clear(cli):
    cli.ok("domain", "add", "example.org")
    secret = "Unmistakable-Secret-8472"
    cli.ok("user", "add", "bob@example.org", stdin=secret + "\n")
    cli.ok("user", "passwd", "bob@example.org", stdin=secret + "-2\n")
    for name in os.listdir(cli.data_dir):
        with open(os.path.join(cli.data_dir, name), "rb") as f:
            assert secret.encode() not in f.read(), name


def test_password_line_keeps_spaces(cli):
    """Only the newline is stripped: leading and trailing spaces count."""
    cli.ok("domain", "add", "example.org")
    cli.ok("user", "add", "bob@example.org", stdin="  spaced  \n")


# ---- aliases -----------------------------------------------------------

def test_alias_add_list_del(org):
    org.ok("alias", "add", "info@example.org", "bob@example.org,Ann@example.org")
    org.ok("alias", "add", "sales@example.org", "info@example.org", "x@remote.example")
    org.ok("alias", "add", "@example.org", "bob@example.org")
    lines = org.lines("alias", "list")
    assert [l.split()[0] for l in lines] == ["@example.org", "info@example.org",
                                            "sales@example.org"]
    assert "bob@example.org,Ann@example.org" in lines[1]
    aliases = {a["alias"]: a["targets"] for a in json.loads(org.ok("alias", "list", "--json"))}
    assert aliases["sales@example.org"] == ["info@example.org", "x@remote.example"]
    org.ok("alias", "del", "SALES@example.org")
    org.ok("alias", "del", "@EXAMPLE.org")
    assert [l.split()[0] for l in org.lines("alias", "list")] == ["info@example.org"]


def test_alias_errors(org):
    org.fails("alias", "add", "bob@example.org", "ann@example.org", match="is a user")
    org.fails("alias", "add", "x@example.com", "ann@example.org", match="unknown domain")
    org.fails("alias", "add", "x@example.org", "ghost@example.org", match="unknown user")
    org.fails("alias", "add", "bad alias@example.org", "ann@example.org", match="bad address")
    org.fails("alias", "add", "x@example.org", "not-an-address", match="bad address")
    org.fails("alias", "del", "nothere@example.org", match="unknown alias")
    org.ok("alias", "add", "info@example.org", "bob@example.org")
    org.fails("alias", "add", "info@example.org", "ann@example.org", match="exists")


def test_alias_loops(org):
    org.fails("alias", "add", "self@example.org", "self@example.org", match="loop")
    org.ok("alias", "add", "a@example.org", "bob@example.org")
    org.ok("alias", "add", "b@example.org", "a@example.org")
    org.ok("alias", "add", "c@example.org", "b@example.org,ann@example.org")
    org.ok("alias", "del", "a@example.org")
    org.fails("alias", "add", "a@example.org", "c@example.org", match="loop")
    # a catch-all whose target falls back to the catch-all itself
    org.fails("alias", "add", "@example.org", "ghost@example.org", match="loop")
    assert [l.split()[0] for l in org.lines("alias", "list")] == \
        ["b@example.org", "c@example.org"]


# ---- usage and config --------------------------------------------------

def test_usage_errors(cli):
    cli.usage("domain")
    cli.usage("domain", "frob", "x")
    cli.usage("domain", "add")
    cli.usage("domain", "add", "a.org", "b.org")
    cli.usage("domain", "add", "a.org", "--force")
    cli.usage("domain", "list", "extra")
    cli.usage("user")
    cli.usage("user", "add")
    cli.usage("user", "list", "a.org", "b.org")
    cli.usage("user", "del", "a@b.org", "--bogus")
    cli.usage("user", "add", "a@b.org", "--quota")
    cli.usage("user", "add", "a@b.org", "--quota", "lots")
    cli.usage("user", "del", "a@b.org", "--json")
    cli.usage("alias")
    cli.usage("alias", "add", "a@b.org")
    cli.usage("alias", "del")
    code, _, _ = cli.run("domain", "list", "-c")
    assert code == 2


def test_missing_config_file(cli):
    code, out, err = cli.run("domain", "list", "-c", "/nonexistent/postern.conf",
                             config=False)
    assert code == 1
    assert len(err.strip().split("\n")) == 1


def test_config_from_environment(cli):
    env = dict(os.environ, POSTERN_CONFIG=cli.config)
    code, out, err = cli.run("domain", "add", "env.example", env=env, config=False)
    assert code == 0, err
    assert cli.lines("domain", "list") == ["env.example"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand files over")
def test_files_belong_to_run_as(cli):
    cli.ok("domain", "add", "example.org")
    uid = pwd.getpwnam(RUN_AS).pw_uid
    assert os.stat(cli.data_dir).st_uid == uid
    for name in os.listdir(cli.data_dir):
        assert os.stat(os.path.join(cli.data_dir, name)).st_uid == uid, name


def test_concurrent_user_adds(cli):
    cli.ok("domain", "add", "example.org")

    def add(i):
        return cli.run("user", "add", "u%d@example.org" % i, stdin="pw%d\n" % i)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(add, range(12)))
    assert all(code == 0 for code, _, _ in results), results
    assert len(cli.lines("user", "list")) == 12


# ---- the fail2ban filter -----------------------------------------------

def test_fail2ban_filter_matches_failure_line():
    path = os.path.join(REPO, "conf", "fail2ban", "filter.d", "postern.conf")
    with open(path) as f:
        text = f.read()
    failregex = re.search(r"^failregex\s*=\s*(.+)$", text, re.M).group(1).strip()
    regex = re.compile(failregex.replace("<HOST>", r"(?P<host>[0-9a-fA-F.:]+)"))
    line = ('2026-01-01T10:00:00.000Z postern[1234] info event=auth-fail service=imap '
            'remote=203.0.113.9 user="bob@example.org" mech=PLAIN reason=credentials')
    assert regex.search(line).group("host") == "203.0.113.9"
    spoof = ('2026-01-01T10:00:00.000Z postern[1234] info event=auth-fail service=smtp '
             'remote=198.51.100.1 user="x remote=192.0.2.66 " mech=LOGIN reason=credentials')
    assert regex.search(spoof).group("host") == "198.51.100.1"
    ok = ('2026-01-01T10:00:00.000Z postern[1234] info event=auth-ok service=imap '
          'remote=203.0.113.9 user="bob@example.org" mech=PLAIN')
    assert regex.search(ok) is None


# ---- the password prompt on a terminal ---------------------------------

def _prompted(cli, address, answers):
    """Runs `user add` on a pseudo-terminal, answering each prompt."""
    import pty
    import select
    import time
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(POSTERN, [POSTERN, "user", "add", address, "-c", cli.config])
    seen = b""
    deadline = time.time() + 30

    def read_until(marker):
        nonlocal seen
        while marker not in seen and time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    return
                if not chunk:
                    return
                seen += chunk

    for prompt, answer in zip([b"Password:", b"Again:"], answers):
        read_until(prompt)
        os.write(fd, answer)
    read_until(b"\x00never")   # until EOF
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_password_prompted_twice(cli):
    cli.ok("domain", "add", "example.org")
    code, seen = _prompted(cli, "tty@example.org", [b"s3cret-tty\n", b"s3cret-tty\n"])
    assert code == 0, seen
    assert "s3cret-tty" not in seen      # never echoed
    assert [l.split()[0] for l in cli.lines("user", "list")] == ["tty@example.org"]
    code, seen = _prompted(cli, "tty2@example.org", [b"one\n", b"two\n"])
    assert code == 1
    assert "do not match" in seen
    assert len(cli.lines("user", "list")) == 1
