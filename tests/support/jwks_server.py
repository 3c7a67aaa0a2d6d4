"""A local JWKS endpoint and an RSA signer standing in for ACS's token service in tests.

The endpoint serves what it was last told to publish (keys rotate, keys are withdrawn, the endpoint
fails), and logs every request, so tests can count fetches.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://acscallautomation.communication.azure.com"
AUDIENCE = "11111111-2222-3333-4444-555555555555"


class Signer:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**doc, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, *, issuer: str = ISSUER, audience: str = AUDIENCE, expires_in: int = 300,
              kid: str | None = None, **claims: Any) -> str:
        """A token signed with this key; `kid` overrides the key id in the header (a forged one)."""
        now = int(time.time())
        body = {"iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + expires_in, **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": kid or self.kid})


class JwksEndpoint:
    def __init__(self, *signers: Signer) -> None:
        self.url = ""
        self.requests: list[str] = []  # request paths, in order
        self._lock = threading.Lock()
        self._status = 200
        self._body = b""
        self.publish(*signers)

    def publish(self, *signers: Signer) -> None:
        """Serve these keys from now on (a rotation adds one; a withdrawal leaves one out)."""
        with self._lock:
            self._status, self._body = 200, json.dumps({"keys": [s.jwk() for s in signers]}).encode()

    def fail(self, status: int = 503) -> None:
        with self._lock:
            self._status, self._body = status, b'{"error": "unavailable"}'

    def reply(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append(path)
            return self._status, self._body


@contextmanager
def jwks_endpoint(*signers: Signer) -> Iterator[JwksEndpoint]:
    """Serve the signers' public keys until told otherwise."""
    endpoint = JwksEndpoint(*signers)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = endpoint.reply(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/calling/keys"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def jwks_server(*signers: Signer) -> Iterator[tuple[str, list[str]]]:
    """Serve the signers' public keys; yields (url, a log of request paths)."""
    with jwks_endpoint(*signers) as endpoint:
        yield endpoint.url, endpoint.requests
