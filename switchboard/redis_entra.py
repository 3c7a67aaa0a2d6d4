"""Microsoft Entra ID auth for Redis (REDIS_USE_ENTRA_ID): Azure Managed Redis with access keys disabled.

The user name is the identity's object id (the token's `oid` claim) and the password an access token for
`https://redis.azure.com/.default`, from `azure.identity.aio.DefaultAzureCredential` (the managed identity;
AZURE_CLIENT_ID picks a user-assigned one). This module is imported only when the setting is on: the
Functions cold start does not pay for it otherwise.

Tokens expire (1 to 24 hours) and the server drops a connection whose token has expired, so:

- `EntraCredentialProvider` caches the token and, once it is within `refresh_margin` (5 minutes; Azure
  asks for at least 3) of expiry, renews it in the background: commands never wait for Entra ID while a
  valid token exists. A failed renewal is retried every `retry_after` seconds; the current token stays
  in use until it expires.
- `EntraConnection` / `EntraSSLConnection` remember when the token they authenticated with expires. Every
  use of a pooled connection goes through `connect()` (the pool checks a connection out that way); a
  connection whose token is within the margin, once a newer token is at hand, *reconnects*: a fresh
  socket, authenticated with the new token. Nothing is lost: a checked-out connection carries no state
  (db and client name are set again on connect).
- A pub/sub subscription holds one connection for good and never goes back to the pool: its owner calls
  `SessionStore.refresh_subscription()` between reads (media_host/notices.py does, every poll), which runs
  the same `connect()`; redis-py's connect callback then subscribes again. Notices published during that
  reconnect (one TLS handshake and AUTH, once per token lifetime) are missed, as after a Redis failover.

Why reconnect rather than send AUTH on the open connection (redis-py's `StreamingCredentialProvider`, which
the `redis-entraid` package uses): a RESP2 connection in subscribed mode refuses AUTH, so redis-py only
re-authenticates pub/sub under RESP3; its provider keeps a single re-auth callback (the last client or
subscription registered wins); and redis-entraid calls the synchronous credential on the event loop and
stops renewing after one failed attempt. A reconnect per connection per token lifetime costs one handshake.

The token is never logged, and its repr is hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from azure.core.credentials_async import AsyncTokenCredential
from redis.asyncio.connection import (
    AbstractConnection,
    BlockingConnectionPool,
    Connection,
    SSLConnection,
    parse_url,
)
from redis.credentials import CredentialProvider
from redis.exceptions import AuthenticationError

log = logging.getLogger(__name__)

REDIS_SCOPE = "https://redis.azure.com/.default"
REFRESH_MARGIN_S = 300.0
RETRY_AFTER_S = 10.0


class EntraAuthError(AuthenticationError):
    """No usable Entra ID token, or Redis refused it. A redis-py error, so a half-open socket is closed."""


@dataclass(frozen=True)
class EntraToken:
    username: str  # the identity's object id
    value: str = field(repr=False)
    expires_on: float  # seconds since the epoch


def default_credential() -> AsyncTokenCredential:
    """The managed identity in Azure (AZURE_CLIENT_ID for a user-assigned one), `az login` on a laptop."""
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - only with REDIS_USE_ENTRA_ID

    return DefaultAzureCredential()


def object_id(token: str) -> str:
    """The `oid` claim. Not verified here: the token came straight from Entra ID, and Redis verifies it."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise EntraAuthError(f"the Entra ID token for Redis is not a JWT ({type(exc).__name__})") from None
    oid = claims.get("oid")
    if not isinstance(oid, str) or not oid:
        raise EntraAuthError("the Entra ID token for Redis has no oid claim (the user name Redis expects)")
    return oid


class EntraCredentialProvider(CredentialProvider):
    """redis-py's credential provider for async connections; owns (and closes) `credential`.

    Renewal runs in the background while the current token is valid, so no Redis command waits for
    Entra ID; only without a valid token (the first connection, or after a long outage) do callers wait.
    """

    def __init__(self, credential: AsyncTokenCredential, *, scope: str = REDIS_SCOPE,
                 refresh_margin: float = REFRESH_MARGIN_S, retry_after: float = RETRY_AFTER_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.credential = credential
        self.scope = scope
        self.refresh_margin = refresh_margin
        self.retry_after = retry_after
        self.clock = clock
        self.renewal: asyncio.Task[None] | None = None  # the background renewal in progress or last run
        self._token: EntraToken | None = None
        self._next_attempt = 0.0
        self._lock = asyncio.Lock()

    def expiring(self, expires_on: float) -> bool:
        """True once a token expiring at `expires_on` is within the refresh margin."""
        return expires_on - self.refresh_margin <= self.clock()

    def _valid(self) -> EntraToken | None:
        token = self._token
        return token if token is not None and token.expires_on > self.clock() else None

    async def token(self) -> EntraToken:
        """The current token (starting its renewal once it is within the margin), or a new one."""
        current = self._valid()
        if current is not None:
            if self.expiring(current.expires_on):
                self._renew_in_background()
            return current
        async with self._lock:  # one fetch at a time; callers arriving meanwhile get its token
            return self._valid() or await self._fetch()

    def _renew_in_background(self) -> None:
        if (self.renewal is not None and not self.renewal.done()) or self.clock() < self._next_attempt:
            return
        self._next_attempt = self.clock() + self.retry_after  # a failing Entra ID is asked every few seconds
        self.renewal = asyncio.get_running_loop().create_task(self._renew(), name="redis-entra-renewal")

    async def _renew(self) -> None:
        async with self._lock:
            current = self._valid()
            if current is not None and not self.expiring(current.expires_on):
                return  # a waiting caller fetched one meanwhile
            try:
                await self._fetch()
            except EntraAuthError as exc:
                log.warning("could not renew the Entra ID token for Redis; the current one stays in use",
                            extra={"error": str(exc.__cause__ or exc)[:300],
                                   "expires_in_s": round(current.expires_on - self.clock()) if current else 0})

    async def _fetch(self) -> EntraToken:
        try:
            access = await self.credential.get_token(self.scope)
        except Exception as exc:
            raise EntraAuthError(f"could not get a Microsoft Entra ID token for Redis "
                                 f"({type(exc).__name__}: {exc})") from exc
        fresh = EntraToken(object_id(access.token), access.token, float(access.expires_on))
        self._token = fresh
        log.info("Entra ID token for Redis acquired",
                 extra={"object_id": fresh.username, "expires_in_s": round(fresh.expires_on - self.clock())})
        return fresh

    async def get_credentials_async(self) -> tuple[str, str]:
        token = await self.token()
        return token.username, token.value

    def get_credentials(self) -> tuple[str, str]:
        raise NotImplementedError("Entra ID auth is for redis.asyncio clients (the token is fetched asynchronously)")

    async def aclose(self) -> None:
        if self.renewal is not None and not self.renewal.done():
            self.renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.renewal
        await self.credential.close()


class _EntraAuth(AbstractConnection):
    """Remembers its token's expiry; `connect()` reconnects with a newer token before that one expires."""

    auth_expires_on = 0.0

    def _entra(self) -> EntraCredentialProvider:
        provider = self.credential_provider
        if not isinstance(provider, EntraCredentialProvider):
            raise TypeError("an Entra connection needs an EntraCredentialProvider")
        return provider

    async def connect(self) -> None:
        entra = self._entra()
        if self.is_connected and entra.expiring(self.auth_expires_on):
            renewed = await entra.token()
            if renewed.expires_on > self.auth_expires_on:  # else the renewal is under way (or failing): keep it
                log.debug("reconnecting to Redis with a renewed Entra ID token")
                await self.disconnect()
        await super().connect()  # type: ignore[no-untyped-call]

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        # Fetched first, so the AUTH below (which asks the provider again) uses this cached token or a later one.
        token = await self._entra().token()
        self.auth_expires_on = token.expires_on
        try:
            await super().on_connect_check_health(check_health)
        except EntraAuthError:
            raise
        except AuthenticationError as exc:
            raise EntraAuthError(
                f"Redis refused the Microsoft Entra ID token of object id {token.username} ({exc}); is that "
                "identity a user of the cache with a data access policy?"
            ) from None


class EntraConnection(_EntraAuth, Connection):
    pass


class EntraSSLConnection(_EntraAuth, SSLConnection):
    pass


def entra_pool(url: str, provider: EntraCredentialProvider, **options: Any) -> BlockingConnectionPool:
    """What `BlockingConnectionPool.from_url(url, **options)` builds, authenticating with `provider`.

    The settings insist on rediss://; redis:// is accepted here for tests against a local server.
    """
    url_options: dict[str, Any] = dict(parse_url(url))
    if url_options.get("username") or url_options.get("password"):
        raise ValueError("a Redis URL used with Entra ID must not carry a user name or password")
    base = url_options.pop("connection_class", Connection)
    if base is SSLConnection:
        connection_class: type[AbstractConnection] = EntraSSLConnection
    elif base is Connection:
        connection_class = EntraConnection
    else:
        raise ValueError("Entra ID auth needs a redis:// or rediss:// URL")
    return BlockingConnectionPool(connection_class=connection_class, credential_provider=provider,
                                  **{**options, **url_options})
