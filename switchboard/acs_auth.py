"""Verify the JWT ACS puts on callbacks and media WebSocket upgrades (RS256, issuer, audience, JWKS).

Used by both runtimes. The signing keys are fetched from ACS's JWKS endpoint and cached; a token with
an unknown key id triggers one refresh (keys rotate). Only RS256 is accepted, so a token cannot pick
its own algorithm (`none`, or HS256 keyed with the public key).
"""

from __future__ import annotations

import asyncio
from typing import Any

import jwt

ALGORITHMS = ["RS256"]
LEEWAY_S = 30  # clock skew between ACS and us


class AcsAuthError(Exception):
    """The request does not carry a valid ACS token. The message is safe to return to the caller."""


class AcsJwtVerifier:
    def __init__(self, jwks_url: str, issuer: str, audience: str, cache_seconds: int = 3600) -> None:
        self.issuer = issuer
        self.audience = audience
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=cache_seconds, timeout=5)

    def verify_sync(self, authorization: str | None) -> dict[str, Any]:
        """Check an `Authorization: Bearer <jwt>` header value; returns the claims."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AcsAuthError("missing bearer token")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AcsAuthError("malformed token") from None
        if header.get("alg") not in ALGORITHMS:
            raise AcsAuthError("token algorithm not accepted")
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise AcsAuthError("signing keys unavailable") from None
        except jwt.PyJWKClientError:
            raise AcsAuthError("token signed with an unknown key") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer, leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AcsAuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AcsAuthError("token audience is not this ACS resource") from None
        except jwt.InvalidIssuerError:
            raise AcsAuthError("token issuer is not ACS") from None
        except jwt.InvalidTokenError:
            raise AcsAuthError("invalid token") from None
        return claims

    async def verify(self, authorization: str | None) -> dict[str, Any]:
        """As verify_sync, off the event loop: a key-cache miss is a blocking HTTP fetch."""
        return await asyncio.to_thread(self.verify_sync, authorization)
