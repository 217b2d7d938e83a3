#!/usr/bin/python3
"""Times IMAP SEARCH over a large INBOX: one throwaway Postern on loopback
(tests/integration/harness.py, POSTERN_BIN picks the binary), N small
messages delivered straight into the store by build/bench/store-deliver,
then each key searched 5 times with imaplib; prints the median and the
fastest time per key.

    bench/search-time.py DIR [N] [--keep]

DIR is created (tmpfs is best: /dev/shm/...); a DIR kept by a previous
--keep run with the same N is reused (delivering 100,000 takes ~30 s)."""

import imaplib
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import REPO, Server, run_as_user  # noqa: E402

ADDRESS = "bench@example.org"
PASSWORD = "bench-password"
KEYS = [
    "UID SEARCH HEADER Subject foo",
    "UID SEARCH HEADER Subject \"message 99999\"",
    "SEARCH SUBJECT foo",
    "SEARCH FROM \"s77777@\"",
    "SEARCH TO nobody",
    "SEARCH SENTBEFORE 1-Jan-2020",
    "SEARCH LARGER 4900",
    "SEARCH FLAGGED",
    "SEARCH UNSEEN SMALLER 2400",
    "SEARCH HEADER Message-ID \"<4242@\"",
    "SEARCH HEADER MIME-Version 2.0",
]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 100000
    keep = "--keep" in sys.argv
    os.makedirs(top, exist_ok=True)
    os.chmod(top, 0o755)
    server = Server(top, workers=1)
    marker = os.path.join(top, "delivered")
    if not os.path.exists(marker) or open(marker).read() != str(n):
        shutil.rmtree(server.data_dir, ignore_errors=True)
        server.cli("user", "list")   # creates the data directory
        server.add_user(ADDRESS, PASSWORD)
        start = time.monotonic()
        subprocess.run([os.path.join(REPO, "build", "bench", "store-deliver"),
                        server.data_dir, str(n), "small"], check=True,
                       stdout=subprocess.DEVNULL)
        print("delivered %d in %.1f s" % (n, time.monotonic() - start))
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", run_as_user(), server.data_dir], check=True)
        with open(marker, "w") as f:
            f.write(str(n))
    server.start()
    try:
        m = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=600)
        m.login(ADDRESS, PASSWORD)
        typ, data = m.select("INBOX")
        print("INBOX: %s messages" % data[0].decode())
        for key in KEYS:
            times = []
            for _ in range(5):
                start = time.monotonic()
                typ, data = m._simple_command(*key.split(" ", 1)) if key.startswith("UID") \
                    else m._simple_command("SEARCH", key.split(" ", 1)[1])
                times.append(time.monotonic() - start)
                assert typ == "OK", (key, data)
            hits = len(m.untagged_responses.pop("SEARCH", [b""])[0].split())
            print("%-45s median %6.3f s  min %6.3f s  (%d hits)"
                  % (key, statistics.median(times), min(times), hits))
        m.logout()
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
