"""A local JWKS endpoint and an RSA signer standing in for ACS's token service in tests."""

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
              **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + expires_in, **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


@contextmanager
def jwks_server(*signers: Signer) -> Iterator[tuple[str, list[str]]]:
    """Serve the signers' public keys; yields (url, a log of request paths)."""
    requests: list[str] = []
    body = json.dumps({"keys": [s.jwk() for s in signers]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/calling/keys", requests
    finally:
        server.shutdown()
        server.server_close()
