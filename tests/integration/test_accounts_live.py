"""Issue 3: admin commands while the server runs (and is under login
load): a new user can log in at once, a deleted one cannot, a changed
password takes effect on the next login, and nobody else's logins fail."""

import poplib
import smtplib
import threading

from harness import client_context


def pop_login(srv, user, password):
    p = poplib.POP3_SSL("127.0.0.1", srv.port("pop3s"), context=client_context(), timeout=30)
    try:
        p.user(user)
        p.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        try:
            p.quit()
        except (poplib.error_proto, OSError):
            pass


def smtp_login(srv, user, password):
    s = smtplib.SMTP_SSL("127.0.0.1", srv.port("submissions"), context=client_context(),
                         timeout=30)
    try:
        s.login(user, password)
        return True
    except smtplib.SMTPAuthenticationError:
        return False
    finally:
        s.quit()


def test_cli_changes_under_login_load(server_factory):
    # throttling would blame the steady failures of the load on the address
    srv = server_factory(sections={"auth": {"delay_after": "1000", "block_after": "100000"}})
    srv.add_user("steady@example.org", "steady-pw")
    failures, stop = [], threading.Event()

    def load(login):
        while not stop.is_set():
            if not login(srv, "steady@example.org", "steady-pw"):
                failures.append(login.__name__)

    # one POP3 session at a time per maildrop ([IN-USE] otherwise); SMTP twice
    threads = [threading.Thread(target=load, args=(fn,))
               for fn in (pop_login, smtp_login, smtp_login)]
    for t in threads:
        t.start()
    try:
        for i in range(8):
            user = "new%d@example.org" % i
            srv.cli("user", "add", user, input="pw-%d\n" % i)
            assert pop_login(srv, user, "pw-%d" % i), user
            assert smtp_login(srv, user, "pw-%d" % i), user
            srv.cli("user", "passwd", user, input="changed-%d\n" % i)
            assert not smtp_login(srv, user, "pw-%d" % i)
            assert smtp_login(srv, user, "changed-%d" % i)
            srv.cli("user", "del", user)
            assert not pop_login(srv, user, "changed-%d" % i)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [], "logins of an untouched user failed: %s" % failures
