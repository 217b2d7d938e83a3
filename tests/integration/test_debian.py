"""Debian packaging (issue 18): `dpkg-buildpackage -us -uc` builds a .deb
from a copy of this tree; installing it creates the postern user, the data
directory and a self-signed certificate, after which `postern check` passes;
purging removes it again. The machine is left as it was: what the test
finds in the package's places beforehand is set aside and put back, and a
user or directory it created is removed."""

import fcntl
import os
import pwd
import shutil
import subprocess
import time

import pytest

from harness import REPO

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="installing a package needs root"),
    # one package test on the machine at a time (dpkg, and the same paths)
    pytest.mark.xdist_group("debian-package"),
]

# what the package owns or makes outside /usr
PLACES = ("/etc/postern", "/var/lib/postern", "/etc/fail2ban/filter.d/postern.conf",
          "/etc/fail2ban/jail.d/postern.conf")
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600",
       "-o", "Dpkg::Options::=--force-confnew"]


def copy_tree(dest):
    """The files git knows (tracked, and new ones not ignored), as they are now."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, out.decode().split("\0")):
        src = os.path.join(REPO, rel)
        if not os.path.isfile(src):
            continue        # deleted in the work tree
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel))


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_debian_package_builds_installs_checks_and_purges(workdir):
    lock = open("/tmp/postern-debian-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    timings = {}
    installed_before = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "postern"],
                                      capture_output=True, text=True).stdout
    assert "install ok installed" not in installed_before, \
        "a postern package is installed on this machine: the test would replace it"
    aside = os.path.join(workdir, "aside")
    moved = []
    user_before = user_exists("postern")
    try:
        for place in PLACES:
            if os.path.lexists(place):
                target = os.path.join(aside, place.lstrip("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.move(place, target)
                moved.append((place, target))

        src = os.path.join(workdir, "postern")
        copy_tree(src)
        start = time.monotonic()
        build = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src,
                               capture_output=True, text=True, timeout=900,
                               env=dict(os.environ,
                                        DEB_BUILD_OPTIONS="nocheck noautodbgsym parallel=2"))
        timings["build"] = time.monotonic() - start
        assert build.returncode == 0, (build.stdout + build.stderr)[-5000:]
        debs = [f for f in os.listdir(workdir) if f.startswith("postern_") and f.endswith(".deb")]
        assert len(debs) == 1, os.listdir(workdir)

        start = time.monotonic()
        out = subprocess.run(APT + ["install", "--no-install-recommends",
                                    os.path.join(workdir, debs[0])],
                             capture_output=True, text=True, timeout=900,
                             env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        timings["install"] = time.monotonic() - start
        assert out.returncode == 0, out.stdout + out.stderr

        user = pwd.getpwnam("postern")
        assert user.pw_uid != 0
        st = os.stat("/var/lib/postern")
        assert (st.st_uid, st.st_mode & 0o777) == (user.pw_uid, 0o750)
        assert os.stat("/etc/postern/key.pem").st_mode & 0o077 == 0
        assert os.path.isfile("/lib/systemd/system/postern.service")
        assert os.path.isfile("/usr/share/man/man8/postern.8.gz")
        check = subprocess.run(["/usr/sbin/postern", "check"], capture_output=True, text=True,
                               timeout=60)
        assert check.returncode == 0, check.stderr
        assert check.stderr == "", check.stderr     # the certificate covers the hostname
        assert "# effective settings from /etc/postern/postern.conf" in check.stdout
        assert "run_as = postern" in check.stdout

        start = time.monotonic()
        out = subprocess.run(APT + ["purge", "postern"], capture_output=True, text=True,
                             timeout=900, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        timings["purge"] = time.monotonic() - start
        assert out.returncode == 0, out.stdout + out.stderr
        assert not os.path.exists("/usr/sbin/postern")
        assert not os.path.exists("/etc/postern")
        assert not os.path.exists("/lib/systemd/system/postern.service")
        print("debian package timings: " + ", ".join("%s %.1f s" % kv for kv in timings.items()))
    finally:
        if "install ok installed" in subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", "postern"], capture_output=True,
                text=True).stdout:
            subprocess.run(APT + ["purge", "postern"], capture_output=True)
        for place in PLACES:
            if os.path.isdir(place) and not os.path.islink(place):
                shutil.rmtree(place)
            elif os.path.lexists(place):
                os.unlink(place)
        for place, target in moved:
            shutil.move(target, place)
        if not user_before and user_exists("postern"):
            subprocess.run(["deluser", "--system", "postern"], capture_output=True)
            subprocess.run(["delgroup", "--system", "postern"], capture_output=True)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
