"""The Redis session store both runtimes share.

Keys (all under one prefix `<p>`, all with a TTL refreshed on write):
- `<p>call:{<id>}`           the CallSession JSON, updated with optimistic concurrency (WATCH/MULTI);
- `<p>call:{<id>}:turns`     transcript turns, a list (RPUSH is atomic: concurrent writers lose nothing);
- `<p>call:{<id>}:handoffs`  handoff history, a list;
- `<p>call:{<id>}:events`    tool calls, barge-ins and other events, a list;
- `<p>dedupe:<scope>:<key>`  de-duplication claims (SET NX EX).

The braces make the call id a hash tag: a call's keys share one slot, so the transactions and the
multi-key reads and deletes that span them also work on a sharded Redis (a cluster, or Azure Managed
Redis with more than one shard).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from switchboard.session_models import CallEvent, CallSession, CallState, HandoffRecord, Turn, now
from switchboard.tokens import Purpose, TokenClaims, TokenSigner

if TYPE_CHECKING:
    from switchboard.redis_entra import EntraCredentialProvider

M = TypeVar("M", bound=BaseModel)

_MAX_UPDATE_ATTEMPTS = 64

# RPUSH unless the list already ends with this very item: an append retried after a failure whose outcome is
# unknown (a timeout after the request went out) is not written twice. Items carry their own timestamp, so
# two different items are never equal.
_APPEND_ONCE = """
if redis.call('LINDEX', KEYS[1], -1) ~= ARGV[1] then redis.call('RPUSH', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class SessionNotFoundError(KeyError):
    """No session for that call id (never created, expired, or cleaned up)."""


class ConcurrentUpdateError(RuntimeError):
    """An optimistic update lost the race too many times in a row."""


def connect_redis(url: str, *, credential_provider: EntraCredentialProvider | None = None,
                  max_connections: int = 64, timeout: float = 5.0) -> Redis:
    """An async client with a bounded, blocking pool and retries with backoff on dropped connections.

    With `credential_provider` (REDIS_USE_ENTRA_ID) connections authenticate with Entra ID tokens and
    reconnect before a token expires (see switchboard/redis_entra.py); the caller closes the provider.
    """
    options: dict[str, Any] = {
        "max_connections": max_connections, "timeout": timeout, "socket_timeout": timeout,
        "socket_connect_timeout": timeout, "socket_keepalive": True, "health_check_interval": 30,
    }
    if credential_provider is None:
        pool = BlockingConnectionPool.from_url(url, **options)
    else:
        from switchboard.redis_entra import entra_pool  # noqa: PLC0415 - only with REDIS_USE_ENTRA_ID

        pool = entra_pool(url, credential_provider, **options)
    return Redis(
        connection_pool=pool,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


DEFAULT_PREFIX = "sb:"


def monitor_channel(call_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Redis channel a media host publishes a call's monitor events on (MONITOR_CALLS)."""
    return f"{prefix}monitor:{call_id}"


class SessionStore:
    def __init__(self, redis: Redis, signer: TokenSigner, *, ttl_seconds: int, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.signer = signer
        self.ttl = ttl_seconds
        self.prefix = prefix
        self._append_once = redis.register_script(_APPEND_ONCE)

    # --- keys ----------------------------------------------------------------------------------
    def _key(self, call_id: str, part: str = "") -> str:
        return f"{self.prefix}call:{{{call_id}}}{':' + part if part else ''}"

    def _all_keys(self, call_id: str) -> list[str]:
        return [self._key(call_id, part) for part in ("", "turns", "handoffs", "events")]

    # --- sessions ------------------------------------------------------------------------------
    async def create(self, session: CallSession) -> bool:
        """Store a new session. Returns False (and changes nothing) if the call already has one."""
        created = await self.redis.set(self._key(session.call_id), session.model_dump_json(), nx=True, ex=self.ttl)
        return bool(created)

    async def get(self, call_id: str) -> CallSession | None:
        raw = await self.redis.get(self._key(call_id))
        return CallSession.model_validate_json(raw) if raw is not None else None

    async def require(self, call_id: str) -> CallSession:
        session = await self.get(call_id)
        if session is None:
            raise SessionNotFoundError(call_id)
        return session

    async def update(self, call_id: str, mutate: Callable[[CallSession], None]) -> CallSession:
        """Apply `mutate` to the stored session atomically (retried if another writer interleaves)."""
        return await self._update(call_id, mutate)

    async def _update(
        self,
        call_id: str,
        mutate: Callable[[CallSession], None],
        appends: dict[str, BaseModel] | None = None,
        *,
        unless_last: bool = False,
    ) -> CallSession:
        """WATCH the session, mutate it, and write it back with any list appends in one MULTI.
        `unless_last`: an append whose list already ends with that item is not made again (a retry)."""
        key = self._key(call_id)
        items = {self._key(call_id, part): item.model_dump_json() for part, item in (appends or {}).items()}
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_UPDATE_ATTEMPTS):
                try:
                    await pipe.watch(key, *(items if unless_last else ()))
                    raw = await pipe.get(key)
                    if raw is None:
                        raise SessionNotFoundError(call_id)
                    pending = dict(items)
                    if unless_last:
                        for list_key, item in items.items():
                            last = await pipe.lindex(list_key, -1)  # immediate: the pipeline is watching
                            if last is not None and _text(last) == item:
                                del pending[list_key]
                    session = CallSession.model_validate_json(raw)
                    mutate(session)
                    session.updated_at = now()
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, session.model_dump_json(), ex=self.ttl)
                    for list_key, item in pending.items():
                        pipe.rpush(list_key, item)
                        pipe.expire(list_key, self.ttl)
                    await pipe.execute()
                    return session
                except WatchError:
                    continue
        raise ConcurrentUpdateError(call_id)

    async def delete(self, call_id: str) -> None:
        await self.redis.delete(*self._all_keys(call_id))

    async def ttl_of(self, call_id: str) -> int:
        """Seconds until the session expires (-2 if it does not exist)."""
        return int(await self.redis.ttl(self._key(call_id)))

    # --- append-only parts ---------------------------------------------------------------------
    async def _append(self, call_id: str, part: str, item: BaseModel, *, unless_last: bool = False) -> None:
        key = self._key(call_id, part)
        if unless_last:
            await self._append_once(keys=[key], args=[item.model_dump_json(), self.ttl])
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, item.model_dump_json())
            pipe.expire(key, self.ttl)
            await pipe.execute()

    async def _read(self, call_id: str, part: str, model: type[M]) -> list[M]:
        raw = await self.redis.lrange(self._key(call_id, part), 0, -1)
        return [model.model_validate_json(item) for item in raw]

    async def append_turn(self, call_id: str, turn: Turn, *, unless_last: bool = False) -> None:
        """Append a transcript turn. `unless_last`: not if the list already ends with it (a retried write)."""
        await self._append(call_id, "turns", turn, unless_last=unless_last)

    async def turns(self, call_id: str) -> list[Turn]:
        return await self._read(call_id, "turns", Turn)

    async def append_event(self, call_id: str, event: CallEvent, *, unless_last: bool = False) -> None:
        await self._append(call_id, "events", event, unless_last=unless_last)

    async def events(self, call_id: str) -> list[CallEvent]:
        return await self._read(call_id, "events", CallEvent)

    # --- notices: the control plane tells the media host carrying the call ----------------------
    @property
    def notice_pattern(self) -> str:
        return f"{self.prefix}notice:*"

    def call_of_notice(self, channel: str) -> str:
        return channel.removeprefix(f"{self.prefix}notice:")

    async def refresh_subscription(self, pubsub: PubSub) -> None:
        """Call between reads of a long-lived subscription: it never goes back to the pool, so this is where
        an Entra ID connection reconnects (and redis-py resubscribes) before its token expires. Otherwise
        a connected check; a dropped connection is reconnected, as the next read would do."""
        connection = cast("AbstractConnection | None", pubsub.connection)  # redis-py's annotation says None
        if connection is not None:
            await connection.connect()  # type: ignore[no-untyped-call]

    async def notify(self, call_id: str, event: CallEvent) -> None:
        """Record `event` and publish it to whichever media host carries the call (if any)."""
        await self.append_event(call_id, event)
        await self.redis.publish(f"{self.prefix}notice:{call_id}", event.model_dump_json())

    # --- the monitor: what happens on a call, published for watchers (MONITOR_CALLS) -------------
    def monitor_channel(self, call_id: str) -> str:
        return monitor_channel(call_id, self.prefix)

    async def handoffs(self, call_id: str) -> list[HandoffRecord]:
        return await self._read(call_id, "handoffs", HandoffRecord)

    async def record_handoff(self, call_id: str, handoff: HandoffRecord, *, unless_last: bool = False) -> CallSession:
        """Switch the current agent and append the handoff in one transaction (`unless_last`: as append_turn)."""

        def switch(session: CallSession) -> None:
            session.current_agent = handoff.to_agent

        return await self._update(call_id, switch, {"handoffs": handoff}, unless_last=unless_last)

    async def load(self, call_id: str) -> CallState | None:
        """Everything about a call in one round trip, for a (re)connecting socket or the call record."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key(call_id))
            for part in ("turns", "handoffs", "events"):
                pipe.lrange(self._key(call_id, part), 0, -1)
            raw, turns, handoffs, events = await pipe.execute()
        if raw is None:
            return None
        return CallState(
            session=CallSession.model_validate_json(raw),
            turns=[Turn.model_validate_json(t) for t in turns],
            handoffs=[HandoffRecord.model_validate_json(h) for h in handoffs],
            events=[CallEvent.model_validate_json(e) for e in events],
        )

    # --- de-duplication ------------------------------------------------------------------------
    async def claim(self, scope: str, key: str, ttl_seconds: int) -> bool:
        """True for exactly one caller per (scope, key) within the TTL: SET NX EX."""
        claimed = await self.redis.set(f"{self.prefix}dedupe:{scope}:{key}", "1", nx=True, ex=ttl_seconds)
        return bool(claimed)

    async def release(self, scope: str, key: str) -> None:
        """Undo a claim whose work failed, so a redelivery may try again."""
        await self.redis.delete(f"{self.prefix}dedupe:{scope}:{key}")

    # --- tokens --------------------------------------------------------------------------------
    def issue_token(self, call_id: str, purpose: Purpose, ttl_seconds: int | None = None) -> str:
        return self.signer.issue(call_id, purpose, ttl_seconds or self.ttl)

    def verify_token(self, token: str | None, purpose: Purpose, call_id: str | None = None) -> TokenClaims:
        return self.signer.verify(token, purpose, call_id)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        # The pool was passed in, so the client does not own it: disconnect it explicitly.
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
