import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Server  # noqa: E402


@pytest.fixture
def workdir():
    """A scratch directory the unprivileged workers can reach (pytest's
    own tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix="postern-it-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server_factory(workdir):
    """Starts servers with custom settings; stops and checks them after."""
    started = []

    def start(extra=None, sections=None, workers=2, name="srv"):
        directory = os.path.join(workdir, name)
        os.mkdir(directory)
        srv = Server(str(directory), extra, sections, workers)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        code = srv.stop()
        srv.check_sanitizers()
        assert code in (0, None), "server exit status %s:\n%s" % (code, srv.read_log()[-4000:])


@pytest.fixture
def server(server_factory):
    return server_factory()
