"""Real IMAP clients against Postern: mbsync (isync) and offlineimap
two-way syncs over implicit TLS, with changes on both sides and a final run
that changes nothing."""

import hashlib
import os
import ssl
import subprocess

from imap_helpers import PASSWORD, USER, deliver, imap, make_account, message


def mbsync_config(srv, workdir):
    local = os.path.join(workdir, "local")
    os.makedirs(local, exist_ok=True)
    pwfile = os.path.join(workdir, "pw")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")
    conf = os.path.join(workdir, "mbsyncrc")
    with open(conf, "w") as f:
        f.write("""IMAPAccount test
Host localhost
Port %d
User %s
PassCmd "cat %s"
SSLType IMAPS
CertificateFile %s
AuthMechs PLAIN

IMAPStore remote
Account test

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""" % (srv.port("imaps"), USER, pwfile, srv.cert, local, local))
    return conf, local


def run_mbsync(conf):
    out = subprocess.run(["mbsync", "-c", conf, "-a"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def maildir_files(path):
    found = {}
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            for name in os.listdir(d):
                with open(os.path.join(d, name), "rb") as f:
                    found[name] = f.read()
    return found


def server_state(srv):
    m = imap(srv)
    state = {}
    for box in ("INBOX", "Work"):
        m.select(box, readonly=True)
        typ, data = m.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        state[box] = sorted(d[0] + d[1] for d in data if isinstance(d, tuple))
    m.logout()
    return state


def seed(server, prefix, inbox_count):
    """An account with INBOX messages and a folder Work holding one."""
    make_account(server)
    m = imap(server)
    m.create("Work")
    m.logout()
    for i in range(inbox_count):
        deliver(server, USER, message("%sinbox %d" % (prefix, i)))
    deliver(server, USER, message("%swork 0" % prefix), mailbox="Work")


def test_mbsync_two_way(server, workdir):
    seed(server, "", 3)
    conf, local = mbsync_config(server, workdir)

    run_mbsync(conf)
    inbox = maildir_files(os.path.join(local, "INBOX"))
    assert len(inbox) == 3
    assert any(b"Subject: inbox 2" in body for body in inbox.values())
    assert len(maildir_files(os.path.join(local, "Work"))) == 1

    # changes on both sides
    m = imap(server)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Flagged)")
    m.logout()
    deliver(server, USER, message("inbox 3"))
    work_new = os.path.join(local, "Work", "new")
    with open(os.path.join(work_new, "1700000000.local1.host"), "wb") as f:
        f.write(message("written locally").encode())
    # mark one message read locally (Maildir: into cur/ with the S flag)
    inbox_dir = os.path.join(local, "INBOX")
    sub = "new" if os.listdir(os.path.join(inbox_dir, "new")) else "cur"
    victim = sorted(os.listdir(os.path.join(inbox_dir, sub)))[-1]
    base = victim.split(":2,")[0]
    os.rename(os.path.join(inbox_dir, sub, victim), os.path.join(inbox_dir, "cur", base + ":2,S"))

    run_mbsync(conf)
    assert len(maildir_files(os.path.join(local, "INBOX"))) == 4
    assert any(name.endswith("F") or ":2,F" in name
               for name in os.listdir(os.path.join(local, "INBOX", "cur")))
    state = server_state(server)
    assert len(state["Work"]) == 2
    assert any(b"written locally" in entry for entry in state["Work"])
    assert sum(b"\\Seen" in entry for entry in state["INBOX"]) == 1

    # nothing left to do: a third run changes nothing on either side
    before_local = (maildir_files(os.path.join(local, "INBOX")),
                    maildir_files(os.path.join(local, "Work")))
    run_mbsync(conf)
    assert server_state(server) == state
    assert (maildir_files(os.path.join(local, "INBOX")),
            maildir_files(os.path.join(local, "Work"))) == before_local


def offlineimap_config(srv, workdir):
    local = os.path.join(workdir, "oimap")
    pwfile = os.path.join(workdir, "oimap-pw")
    with open(pwfile, "w") as f:
        f.write(PASSWORD + "\n")
    with open(srv.cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    conf = os.path.join(workdir, "offlineimaprc")
    with open(conf, "w") as f:
        f.write("""[general]
accounts = test
metadata = %s/meta

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = %s

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = %d
remoteuser = %s
remotepassfile = %s
ssl = yes
cert_fingerprint = %s
""" % (workdir, local, srv.port("imaps"), USER, pwfile, hashlib.sha256(der).hexdigest()))
    return conf, local


def run_offlineimap(conf):
    out = subprocess.run(["offlineimap", "-c", conf, "-o", "-u", "quiet"], capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ERROR" not in out.stdout + out.stderr, out.stdout + out.stderr


def test_offlineimap_two_way(server, workdir):
    seed(server, "oi ", 2)
    conf, local = offlineimap_config(server, workdir)
    run_offlineimap(conf)
    assert len(maildir_files(os.path.join(local, "INBOX"))) == 2
    assert len(maildir_files(os.path.join(local, "Work"))) == 1

    with open(os.path.join(local, "Work", "new", "1700000001.oi.host"), "wb") as f:
        f.write(message("oi local").encode())
    m = imap(server)
    m.select("INBOX")
    m.store("2", "+FLAGS", "(\\Seen)")
    m.logout()
    run_offlineimap(conf)
    state = server_state(server)
    assert len(state["Work"]) == 2 and any(b"oi local" in e for e in state["Work"])
    assert any(name.endswith("S") for name in maildir_files(os.path.join(local, "INBOX")))

    run_offlineimap(conf)
    assert server_state(server) == state
