"""Turn settings into the shared services a runtime needs: Redis (external or embedded) and the store."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from switchboard.redis_server import EmbeddedRedis
from switchboard.session_store import SessionStore, connect_redis
from switchboard.settings import Settings
from switchboard.tokens import TokenSigner

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

    async def close(self) -> None:
        await self.store.close()
        if self.redis_server is not None:
            self.redis_server.stop()


async def open_services(settings: Settings) -> SharedServices:
    """Connect to REDIS_URL, or start the embedded server when it is unset, and check it answers."""
    server: EmbeddedRedis | None = None
    url = settings.redis_url
    if url is None:
        server = EmbeddedRedis()
        # Started in this thread on purpose: PR_SET_PDEATHSIG fires when the *forking thread* exits, so a
        # pool thread would take the server down with it. It costs ~50 ms, once, at start-up.
        url = server.start()
    store = SessionStore(connect_redis(url), token_signer(settings), ttl_seconds=settings.session_ttl_seconds)
    try:
        await store.ping()
    except Exception:
        await store.close()
        if server is not None:
            server.stop()
        raise
    return SharedServices(store=store, redis_server=server)
