"""DKIM checks for the tests: the TXT records exactly as `postern dns`
prints them, and two independent verifiers, dkimpy (python3-dkim) and
OpenDKIM's own (opendkim-testmsg from opendkim-tools, which asks the
system resolver: it runs in a private network namespace whose resolver
is a throwaway DNS server serving those records, see netns_dns_run.py)."""

import os
import re
import subprocess
import sys
import tempfile

import dkim

HERE = os.path.dirname(os.path.abspath(__file__))


def zone_txt(zone_text):
    """name (lowercase, no trailing dot) -> TXT value (its strings joined)."""
    records = {}
    for line in zone_text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        name, _ttl, _cls, rtype, data = line.split(None, 4)
        if rtype == "TXT":
            strings = re.findall(r'"((?:[^"\\]|\\.)*)"', data)
            records[name.rstrip(".").lower()] = "".join(s.replace('\\"', '"') for s in strings)
    return records


def header_fields(message):
    head = message.split(b"\r\n\r\n", 1)[0]
    return re.split(rb"\r\n(?=[^ \t])", head)


def signatures(message):
    return [f for f in header_fields(message) if f.lower().startswith(b"dkim-signature:")]


def tag(signature, name):
    """A tag's value of a DKIM-Signature field (folding removed)."""
    flat = re.sub(rb"\s+", b"", signature.split(b":", 1)[1])
    for part in flat.split(b";"):
        if part.startswith(name + b"="):
            return part[len(name) + 1:].decode()
    return None


def only_signature(message, index):
    """The message with only its index-th DKIM-Signature field."""
    head, body = message.split(b"\r\n\r\n", 1)
    fields = re.split(rb"\r\n(?=[^ \t])", head)
    sigs = [f for f in fields if f.lower().startswith(b"dkim-signature:")]
    rest = [f for f in fields if not f.lower().startswith(b"dkim-signature:")]
    return b"\r\n".join([sigs[index]] + rest) + b"\r\n\r\n" + body


def verify_dkimpy(message, zone_text):
    """One True/False per DKIM-Signature."""
    records = zone_txt(zone_text)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return records.get(name.rstrip(".").lower(), "").encode()

    checker = dkim.DKIM(message)
    return [bool(checker.verify(idx=i, dnsfunc=dnsfunc))
            for i in range(len(signatures(message)))]


def verify_opendkim(message, zone_text):
    """One (passed, output) per DKIM-Signature, each checked alone."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        zone = os.path.join(tmp, "zone")
        with open(zone, "w") as f:
            f.write(zone_text)
        for i in range(len(signatures(message))):
            out = subprocess.run(
                ["unshare", "--mount", "--net", "/usr/bin/python3",
                 os.path.join(HERE, "netns_dns_run.py"), zone, "opendkim-testmsg"],
                input=only_signature(message, i), capture_output=True, timeout=60)
            results.append((out.returncode == 0, (out.stdout + out.stderr).decode(errors="replace")))
    return results
