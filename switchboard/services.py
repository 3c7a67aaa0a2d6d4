"""Turn settings into the shared services a runtime needs: Redis (external or embedded) and the store."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from switchboard.redis_server import EmbeddedRedis
from switchboard.session_store import SessionStore, connect_redis
from switchboard.settings import Settings
from switchboard.tokens import TokenSigner

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from switchboard.redis_entra import EntraCredentialProvider

log = logging.getLogger(__name__)


def token_signer(settings: Settings) -> TokenSigner:
    if settings.signing_secret is not None:
        return TokenSigner(settings.signing_secret.get_secret_value())
    # Only reachable in the embedded default (settings require a secret once ACS is configured).
    log.warning("SIGNING_SECRET is unset: using a random per-process secret; tokens from other processes "
                "will not verify")
    return TokenSigner(secrets.token_bytes(32))


@dataclass
class SharedServices:
    store: SessionStore
    redis_server: EmbeddedRedis | None = None
    redis_credentials: EntraCredentialProvider | None = None  # REDIS_USE_ENTRA_ID

    async def close(self) -> None:
        try:
            await self.store.close()
        finally:
            if self.redis_credentials is not None:
                await self.redis_credentials.aclose()
            if self.redis_server is not None:
                self.redis_server.stop()


def redis_credentials(settings: Settings,
                      credential: AsyncTokenCredential | None = None) -> EntraCredentialProvider | None:
    """The Entra ID credential provider when REDIS_USE_ENTRA_ID is on (it owns and closes `credential`,
    by default `DefaultAzureCredential`); None otherwise, without importing azure.identity."""
    if not settings.redis_use_entra_id:
        return None
    from switchboard.redis_entra import EntraCredentialProvider, default_credential  # noqa: PLC0415

    return EntraCredentialProvider(credential if credential is not None else default_credential())


async def open_services(settings: Settings, *, credential: AsyncTokenCredential | None = None) -> SharedServices:
    """Connect to REDIS_URL, or start the embedded server when it is unset, and check it answers.

    `credential` stands in for `DefaultAzureCredential` with REDIS_USE_ENTRA_ID (tests).
    """
    server: EmbeddedRedis | None = None
    url = settings.redis_url
    if url is None:
        server = EmbeddedRedis()
        # Started in this thread on purpose: PR_SET_PDEATHSIG fires when the *forking thread* exits, so a
        # pool thread would take the server down with it. It costs ~50 ms, once, at start-up.
        url = server.start()
    provider = redis_credentials(settings, credential)
    try:
        redis = connect_redis(url, credential_provider=provider)
    except Exception:
        if provider is not None:
            await provider.aclose()
        if server is not None:
            server.stop()
        raise
    services = SharedServices(SessionStore(redis, token_signer(settings), ttl_seconds=settings.session_ttl_seconds),
                              redis_server=server, redis_credentials=provider)
    try:
        await services.store.ping()
    except Exception:
        await services.close()
        raise
    return services
