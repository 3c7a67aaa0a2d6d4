"""Verify the JWT ACS puts on callbacks and media WebSocket upgrades (RS256, issuer, audience, JWKS).

Used by both runtimes. Only RS256 is accepted, so a token cannot pick its own algorithm (`none`, or
HS256 keyed with the public key).

Signing keys come from ACS's JWKS endpoint, fetched on the event loop (aiohttp) and held as one set for
`lifespan` seconds (ACS_JWKS_LIFESPAN_SECONDS): after that the set is fetched again, so a key ACS
withdrew stops validating within the lifespan. A token whose key id is not in the set (a rotation)
triggers a refetch at once, but fetches start at most once per `refetch_interval` and concurrent
verifications share the one in flight: a flood of forged key ids costs ACS one request per interval.
A set that expired and cannot be fetched fails closed.

PyJWT's PyJWKClient (2.15, jwt/jwks_client.py) is not used: its per-kid cache (`cache_keys`) is an
lru_cache with no expiry (`lifespan` only ages the set behind it), an unknown kid is refused for
`cooldown_duration` (30 s) after every fetch, initial and expiry fetches included, and it fetches with
blocking urllib.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp
import jwt
from jwt import PyJWK, PyJWKSet

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256"]
LEEWAY_S = 30  # clock skew between ACS and us
DEFAULT_LIFESPAN_S: Final = 900.0
REFETCH_INTERVAL_S: Final = 5.0  # the fewest seconds between two fetches, whatever asks for them
FETCH_TIMEOUT_S: Final = 5.0
MAX_JWKS_BYTES: Final = 256 * 1024  # ACS's set is a few kB


class AcsAuthError(Exception):
    """The request does not carry a valid ACS token. The message is safe to return to the caller."""


class JwksUnavailable(Exception):
    """The key set could not be fetched or read (the message is for logs)."""


class JwksCache:
    """ACS's signing keys by key id: one set, refreshed on expiry or on an unknown kid, rate-limited."""

    def __init__(self, url: str, *, lifespan: float = DEFAULT_LIFESPAN_S,
                 refetch_interval: float = REFETCH_INTERVAL_S, clock: Callable[[], float] = time.monotonic,
                 timeout: float = FETCH_TIMEOUT_S) -> None:
        if lifespan <= 0 or refetch_interval < 0:
            raise ValueError("lifespan must be > 0 and refetch_interval >= 0")
        self.url = url
        self.lifespan = lifespan
        self.refetch_interval = refetch_interval
        self.fetches = 0  # fetches started (for tests and metrics)
        self._clock = clock
        self._timeout = timeout
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None  # when the held set's fetch started
        # When the last fetch an unknown kid asked for, or that failed, started: no other starts within
        # refetch_interval of it. A due fetch of an expired set that succeeds does not count (PyJWT's
        # cooldown counts every fetch, so a key rotated just after one waits 30 s).
        self._cooldown_from: float | None = None
        self._inflight: asyncio.Task[None] | None = None

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self.lifespan

    async def key(self, kid: str) -> PyJWK:
        """The key `kid` names; raises AcsAuthError if it is unknown or no fresh set can be had."""
        fetched = False
        if not self._fresh():
            fetched = await self._refresh(unknown_kid=False)
            if not self._fresh():
                raise AcsAuthError("signing keys unavailable")
        if kid not in self._keys and not fetched:  # a set fetched for this very call is as new as it gets
            await self._refresh(unknown_kid=True)
        key = self._keys.get(kid)
        if key is None:
            raise AcsAuthError("token signed with an unknown key")
        return key

    async def _refresh(self, *, unknown_kid: bool) -> bool:
        """Join the fetch in flight, or start one unless the cooldown forbids it; whether one was awaited."""
        loop = asyncio.get_running_loop()
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not loop:
            now = self._clock()
            if self._cooldown_from is not None and now - self._cooldown_from < self.refetch_interval:
                return False  # rate-limited: the caller decides with the set it has
            if unknown_kid:
                self._cooldown_from = now
            self.fetches += 1
            task = self._inflight = loop.create_task(self._fetch(now))
            task.add_done_callback(_retrieve)
        with contextlib.suppress(JwksUnavailable):  # logged once, in _fetch; the caller checks what it has
            await asyncio.shield(task)  # a caller that gives up does not cancel the others' fetch
        return True

    async def _fetch(self, started: float) -> None:
        try:
            await self._fetch_set(started)
        except JwksUnavailable as exc:
            log.warning("ACS signing keys could not be fetched", extra={"reason": str(exc)[:200]})
            self._cooldown_from = started  # an endpoint that fails is not asked again at once
            raise

    async def _fetch_set(self, started: float) -> None:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout)) as http, \
                    http.get(self.url, allow_redirects=False, headers={"Accept": "application/json"}) as response:
                if response.status != 200:
                    raise JwksUnavailable(f"HTTP {response.status}")
                body = await response.content.read(MAX_JWKS_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise JwksUnavailable(type(exc).__name__) from None
        if len(body) > MAX_JWKS_BYTES:
            raise JwksUnavailable("key set too large")
        try:
            doc = json.loads(body)
            keys = PyJWKSet.from_dict(doc).keys if isinstance(doc, dict) else []
        except (ValueError, TypeError, KeyError, jwt.PyJWTError) as exc:
            raise JwksUnavailable(f"unreadable key set: {type(exc).__name__}") from None
        signing = {k.key_id: k for k in keys if k.key_id and k.public_key_use in ("sig", None)}
        if not signing:
            raise JwksUnavailable("no signing keys in the set")
        self._keys, self._fetched_at = signing, started  # withdrawn keys go with the old set


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a failed fetch's exception as seen even if every waiter gave up."""
    if not task.cancelled():
        task.exception()


class AcsJwtVerifier:
    def __init__(self, jwks_url: str, issuer: str, audience: str, *, lifespan_seconds: float = DEFAULT_LIFESPAN_S,
                 refetch_interval_seconds: float = REFETCH_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = JwksCache(jwks_url, lifespan=lifespan_seconds, refetch_interval=refetch_interval_seconds,
                              clock=clock)

    async def verify(self, authorization: str | None) -> dict[str, Any]:
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
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AcsAuthError("token signed with an unknown key")
        key = (await self.keys.key(kid)).key
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
