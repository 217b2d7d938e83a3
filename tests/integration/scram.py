"""A small SCRAM client (RFC 5802 / RFC 7677) for the tests, checked
against RFC 7677's SCRAM-SHA-256 test vector before it is trusted."""

import base64
import hashlib
import hmac
import os


class ScramClient:
    def __init__(self, user, password, algorithm="sha256", nonce=None):
        self.user = user.replace("=", "=3D").replace(",", "=2C")
        self.password = password.encode()
        self.algorithm = algorithm
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.client_first_bare = "n=%s,r=%s" % (self.user, self.nonce)
        self.server_signature = None
        self.channel_binding = "biws"   # base64 of the GS2 header "n,,"

    def first(self):
        return ("n,," + self.client_first_bare).encode()

    def final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.nonce), "server nonce does not extend ours"
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        digest = getattr(hashlib, self.algorithm)
        salted = hashlib.pbkdf2_hmac(self.algorithm, self.password, salt, iterations)
        client_key = hmac.new(salted, b"Client Key", digest).digest()
        stored_key = digest(client_key).digest()
        without_proof = "c=%s,r=%s" % (self.channel_binding, attrs["r"])
        auth_message = ",".join([self.client_first_bare, server_first, without_proof]).encode()
        client_signature = hmac.new(stored_key, auth_message, digest).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature))
        server_key = hmac.new(salted, b"Server Key", digest).digest()
        self.server_signature = hmac.new(server_key, auth_message, digest).digest()
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify(self, server_final):
        attrs = dict(kv.split("=", 1) for kv in server_final.decode().split(","))
        return base64.b64decode(attrs.get("v", "")) == self.server_signature


def check_rfc7677_vector():
    """RFC 7677 section 3: user, pencil."""
    c = ScramClient("user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert c.first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = c.final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert final == (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def b64(data):
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text)
