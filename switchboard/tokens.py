"""Per-call signed tokens: HMAC-SHA256 over (call id, purpose, expiry).

A token authorizes one call for one purpose (the media socket, ACS callbacks, the browser socket),
until it expires. It is stateless, so both runtimes verify it with the shared signing secret and no
Redis round trip. The signature is checked in constant time before anything in the token is trusted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Purpose(StrEnum):
    MEDIA = "media"
    CALLBACK = "callback"
    BROWSER = "browser"


class TokenError(Exception):
    """The token is missing, malformed, forged, expired, or for another call or purpose."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    call_id: str
    purpose: Purpose
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_MAX_TOKEN_LENGTH = 1024


class TokenSigner:
    """Signs and verifies tokens with one secret. `now` is injectable for tests."""

    def __init__(self, secret: str | bytes, *, clock: Callable[[], float] = time.time) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 16:
            raise ValueError("signing secret must be at least 16 bytes")
        self._key = key
        self._now = clock

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def issue(self, call_id: str, purpose: Purpose, ttl_seconds: int) -> str:
        claims = {"c": call_id, "p": purpose.value, "e": int(self._now()) + ttl_seconds}
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str | None, purpose: Purpose, call_id: str | None = None) -> TokenClaims:
        """Return the claims, or raise TokenError with a reason safe to show the client."""
        if not token:
            raise TokenError("missing token")
        if len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise TokenError("malformed token")
        body, signature = token.split(".")
        try:
            body.encode("ascii")
            signature.encode("ascii")
        except UnicodeEncodeError:
            raise TokenError("malformed token") from None
        if not hmac.compare_digest(self._sign(body), signature):
            raise TokenError("bad token signature")
        try:
            raw = json.loads(_unb64(body))
            claims = TokenClaims(call_id=str(raw["c"]), purpose=Purpose(raw["p"]), expires_at=int(raw["e"]))
        except (ValueError, KeyError, TypeError):
            raise TokenError("malformed token") from None
        if claims.purpose is not purpose:
            raise TokenError(f"token is not valid for {purpose.value}")
        if claims.expires_at <= self._now():
            raise TokenError("token expired")
        if call_id is not None and not hmac.compare_digest(claims.call_id.encode(), call_id.encode()):
            raise TokenError("token is for another call")
        return claims
