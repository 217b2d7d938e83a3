"""Fresh-machine truth (issue 18): every program and Python module the
tests and benchmark helpers use comes from a package that postern.sh
installs by name (or that it pulls in as a dependency, or that every
Debian system has). `apt-get install --no-install-recommends` leaves
Recommends out, which is how swaks once lost its TLS (Net::SSLeay): every
Recommends of a listed package is either listed too or named below as not
needed, with the reason."""

import ast
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys

from harness import REPO

# Recommends we leave out on purpose: what the tests use works without them.
RECOMMENDS_NOT_NEEDED = {
    "swaks": {"libio-socket-inet6-perl",    # tests connect to 127.0.0.1 only
              "libnet-dns-perl"},           # swaks is always given --server
    "msmtp": {"ca-certificates"},           # tls_certcheck off, loopback only
    "fetchmail": {"ca-certificates"},       # sslfingerprint, loopback only
    "python3-pytest": {"python3-pygments"}, # colours in failure reports
    "meson": {"dpkg-dev"},                  # cross-file helpers
    "clang": {"llvm-14-dev", "python3"},    # the fuzz build needs libclang-rt-14-dev only
    "clang-14": {"llvm-14-dev", "python3"},
    "debhelper": {"dh-make"},               # templates for new packages
    # the package test builds unsigned (-us -uc), as root, with gcc from
    # build-essential: no signing tools, no fakeroot
    "dpkg-dev": {"build-essential", "gcc", "c-compiler", "fakeroot", "gnupg", "gpgv", "sq",
                 "sqop", "pgpainless-cli", "libalgorithm-merge-perl"},
    "liblmdb-dev": {"lmdb-doc"},            # API documentation
    "prometheus": {"prometheus-node-exporter"},   # only promtool is used, no server runs
    "testssl.sh": {"libengine-gost-openssl1.1"},  # GOST ciphers: not in our profile
    "git": {"less", "ssh-client"},          # CI clones a local directory
    "iproute2": {"libatm1"},                # ATM queueing
    "procps": {"psmisc"},                   # killall & co.: never used
    "systemd": {"default-dbus-system-bus", "dbus-system-bus",   # only systemd-analyze
                "systemd-timesyncd", "time-daemon"},            # is used (offline)
}

# Programs that shell scripts (postern.sh, .ci/run, tests/fuzz/run,
# .ci/demo-check) run; the Python files are read below.
SHELL_PROGRAMS = ("git", "meson", "ninja", "clang", "openssl", "dpkg-query", "apt-get",
                  "adduser", "nproc", "flock", "timeout")

BENCH_PYTHON = ("run", "smtp", "deliver", "relay")


def shell_list(text, name):
    m = re.search(r"^%s=\((.*?)\)" % name, text, re.S | re.M)
    assert m, "postern.sh has no %s list" % name
    return set(m.group(1).split())


def postern_sh_packages():
    with open(os.path.join(REPO, "postern.sh")) as f:
        text = f.read()
    return shell_list(text, "BUILD_PACKAGES") | shell_list(text, "TEST_PACKAGES")


def bench_packages():
    with open(os.path.join(REPO, "bench", "run")) as f:
        m = re.search(r"^PACKAGES = \[(.*?)\]", f.read(), re.M | re.S)
    return set(re.findall(r'"([^"]+)"', m.group(1)))


def closure(packages):
    """The listed packages and everything they depend on (not Recommends)."""
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--installed", "--no-recommends",
                          "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                          "--no-enhances"] + sorted(packages),
                         capture_output=True, text=True, check=True).stdout
    return {line.strip() for line in out.splitlines() if line and not line.startswith(" ")}


def always_there(package):
    """Essential or Priority: required: on every Debian system, even a container's."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Essential} ${Priority}", package],
                         capture_output=True, text=True).stdout
    return out.startswith("yes") or out.endswith("required")


def owners(paths):
    """{path: package that installed it}, trying the /bin and /usr/bin
    spellings (Debian 12 merged /usr; dpkg knows one of them) and the
    file a symlink points to."""
    spellings = {}
    for path in paths:
        real = os.path.realpath(path)
        for p in (path, real):
            for spelling in (p, p[4:] if p.startswith("/usr/") else "/usr" + p):
                spellings.setdefault(spelling, set()).add(path)
    out = subprocess.run(["dpkg-query", "-S"] + sorted(spellings), capture_output=True,
                         text=True).stdout
    found = {}
    for line in out.splitlines():
        package, _, p = line.partition(": ")
        for path in spellings.get(p, ()):
            found.setdefault(path, package.split(",")[0].split(":")[0].strip())
    return found


def python_files():
    files = glob.glob(os.path.join(REPO, "tests", "integration", "*.py"))
    files += glob.glob(os.path.join(REPO, "bench", "*.py"))
    files += [os.path.join(REPO, "bench", name) for name in BENCH_PYTHON]
    return sorted(files)


def programs_and_modules(path):
    """Programs named as the first word of a literal argument list, and
    the top-level modules imported."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    programs, modules = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
        elif isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            first = node.elts[0]
            if (isinstance(first, ast.Constant) and isinstance(first.value, str)
                    and re.fullmatch(r"[a-z][a-z0-9.+_-]*|/usr/[a-z0-9/._-]+", first.value)):
                programs.add(first.value)
    return programs, modules


def test_every_program_and_module_comes_from_a_listed_package():
    listed = postern_sh_packages()
    covered = closure(listed)
    bench_covered = closure(bench_packages() | listed)
    local = {os.path.splitext(os.path.basename(p))[0] for p in python_files()}
    problems = []
    seen = {}
    for path in python_files():
        in_bench = "/bench/" in path
        programs, modules = programs_and_modules(path)
        for program in programs:
            found = shutil.which(program)
            if found is None:
                continue    # a word in a list, not a program (or one bench installs)
            seen.setdefault(("program", program, found), set()).add((path, in_bench))
        for module in modules - local:
            if module in sys.stdlib_module_names:
                continue
            spec = importlib.util.find_spec(module)
            assert spec is not None and spec.origin, "%s imports %s: not installed" % (path, module)
            seen.setdefault(("module", module, spec.origin), set()).add((path, in_bench))
    for program in SHELL_PROGRAMS:
        found = shutil.which(program)
        assert found, "%s is not installed" % program
        seen.setdefault(("program", program, found), set()).add(("postern.sh", False))
    packages = owners({where for _, _, where in seen})
    for (kind, name, where), users in sorted(seen.items()):
        base = packages.get(where)
        if base is None:
            problems.append("%s %s (%s): no package owns it" % (kind, name, where))
            continue
        bench_only = all(b for _, b in users)
        ok = base in covered or always_there(base) or (bench_only and base in bench_covered)
        if not ok:
            problems.append("%s %s (package %s, used by %s) is not installed by postern.sh"
                            % (kind, name, base, ", ".join(sorted(os.path.relpath(u, REPO)
                                                                 for u, _ in users))))
    assert not problems, "\n".join(problems)


def test_recommends_of_listed_packages_are_listed_or_not_needed():
    listed = postern_sh_packages()
    covered = closure(listed)
    problems = []
    for package in sorted(listed):
        out = subprocess.run(["dpkg-query", "-W", "-f=${Recommends}", package],
                             capture_output=True, text=True)
        assert out.returncode == 0, "%s is listed in postern.sh but not installed" % package
        for alternatives in filter(None, (a.strip() for a in out.stdout.split(","))):
            names = [re.sub(r"[ :(].*", "", alt.strip()) for alt in alternatives.split("|")]
            if any(n in covered for n in names):
                continue
            if any(n in RECOMMENDS_NOT_NEEDED.get(package, ()) for n in names):
                continue
            problems.append("%s recommends %s: list it in postern.sh or say why it is not "
                            "needed in RECOMMENDS_NOT_NEEDED" % (package, alternatives))
    assert not problems, "\n".join(problems)
