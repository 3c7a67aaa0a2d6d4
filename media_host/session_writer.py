"""Write-behind for the media host's session writes: a call never waits on Redis, and an outage loses nothing.

Everything a call writes down as it happens (transcript turns, events, handoffs, session updates) goes
into that call's queue and is written by the call's flusher task, one write at a time, in order. While
Redis answers, the caller's `await` returns once the write is done (up to `wait_s`), exactly as a
direct write would. When a write fails because Redis cannot be reached (a refused or dropped
connection, a timeout, a replica that is read-only during a failover) it stays at the head of its
queue and everything behind it waits: one call (the prober) retries with backoff, the others wait for
it, and when Redis answers again every queue drains in its own order. Meanwhile writes return at once,
so the audio path and the caller's turns never wait on a dead Redis.

Retries are idempotent: a retried append is not made again if the list already ends with the item (a
timeout may hide a write that did happen), and session updates are mutations that can be applied twice.
A write Redis refuses (the session is gone, a data error) is logged and dropped: retrying cannot help.

The bound: at most `max_pending` writes per call. Past it the oldest waiting write is dropped (the one
being attempted is kept), counted and logged, so memory stays bounded in a long outage. At shutdown
`close()` flushes for a grace period and logs what could not be written.

Reads are not buffered: a (re)connecting socket loads the session from Redis, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client.core import Metric
from redis.exceptions import ClusterDownError, ReadOnlyError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from media_host.metrics import counter_family, gauge_family
from switchboard.session_models import CallEvent, CallSession, HandoffRecord, Turn
from switchboard.session_store import SessionStore

log = logging.getLogger(__name__)

# Redis could not be reached, or cannot take writes for now: worth retrying. Anything else is an answer.
TRANSIENT: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, TryAgainError,
                                              ClusterDownError, OSError, TimeoutError)
MAX_PENDING = 2000  # writes per call (a turn or event is ~0.3-1 kB: at most ~2 MB per call)
WAIT_S = 0.25  # the longest a write's caller waits for it while Redis is up
BACKOFF_S = (0.05, 1.0)  # the prober's first and longest wait between retries: writes land <= 1 s after Redis

Write = Callable[[bool], Awaitable[object]]  # run(retry): the store call; retry=True asks for its idempotent form


@dataclass(eq=False)
class _Pending:
    what: str  # for logs: "turn", "event:barge_in", "session", "handoff"
    run: Write
    attempts: int = 0
    done: asyncio.Future[None] | None = None  # only when a caller waits for it

    def settle(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


@dataclass(eq=False)
class _CallQueue:
    call_id: str
    writes: deque[_Pending] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    drained: asyncio.Event = field(default_factory=asyncio.Event)


class SessionWriter:
    def __init__(self, store: SessionStore, *, max_pending: int = MAX_PENDING, wait_s: float = WAIT_S,
                 backoff: tuple[float, float] = BACKOFF_S) -> None:
        self.store = store
        self.max_pending = max(2, max_pending)
        self.wait_s = wait_s
        self.backoff = backoff
        self.held = 0  # writes that failed at least once and were kept for a retry
        self.dropped = 0  # writes dropped over the per-call bound
        self.failed = 0  # writes Redis refused (not retried)
        self.outages = 0
        self._queues: dict[str, _CallQueue] = {}
        self._prober: _CallQueue | None = None  # set while Redis is down: the one queue that retries
        self._up = asyncio.Event()
        self._up.set()
        self._down_since = 0.0
        self._closing = False

    # --- what calls write ------------------------------------------------------------------------
    async def append_turn(self, call_id: str, turn: Turn) -> None:
        await self._submit(call_id, "turn", lambda retry: self.store.append_turn(call_id, turn, unless_last=retry))

    async def append_event(self, call_id: str, event: CallEvent) -> None:
        await self._submit(call_id, f"event:{event.kind}",
                           lambda retry: self.store.append_event(call_id, event, unless_last=retry))

    async def update(self, call_id: str, mutate: Callable[[CallSession], None]) -> None:
        """`mutate` may run more than once (a retry): it must set values, not add to them."""
        await self._submit(call_id, "session", lambda _retry: self.store.update(call_id, mutate))

    async def record_handoff(self, call_id: str, handoff: HandoffRecord) -> None:
        await self._submit(call_id, "handoff",
                           lambda retry: self.store.record_handoff(call_id, handoff, unless_last=retry))

    # --- state -----------------------------------------------------------------------------------
    @property
    def down(self) -> bool:
        """Redis is known to be unreachable (since a write failed, until one succeeds)."""
        return self._prober is not None

    @property
    def pending(self) -> int:
        return sum(len(q.writes) for q in self._queues.values())

    async def flushed(self, call_ids: Iterable[str] | None = None) -> None:
        """Until these calls' (default: every call's) writes so far are in Redis (or given up)."""
        queues = list(self._queues.values()) if call_ids is None else [
            q for q in (self._queues.get(c) for c in call_ids) if q is not None]
        for queue in queues:
            await queue.drained.wait()

    async def close(self, grace_s: float) -> int:
        """Flush for up to `grace_s` seconds, then stop. Returns how many writes were lost (and logs them)."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self.flushed()
        lost = self.pending
        tasks = [q.task for q in self._queues.values() if q.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if lost:
            log.error("session writes lost at shutdown: redis unreachable",
                      extra={"writes": lost, "calls": len(self._queues)})
        self._queues.clear()
        return lost

    # --- the queue -------------------------------------------------------------------------------
    async def _submit(self, call_id: str, what: str, run: Write) -> None:
        if self._closing:
            log.error("session write after shutdown dropped", extra={"what": what})
            return
        queue = self._queues.get(call_id)
        if queue is None:
            queue = self._queues[call_id] = _CallQueue(call_id)
        idle = not queue.writes
        pending = _Pending(what, run)
        if len(queue.writes) >= self.max_pending:
            dropped = queue.writes[1]  # the oldest not being attempted
            del queue.writes[1]
            dropped.settle()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("session writes dropped: redis unreachable and the call's queue is full",
                            extra={"what": dropped.what, "dropped": self.dropped, "bound": self.max_pending})
        queue.writes.append(pending)
        queue.drained.clear()
        if queue.task is None:
            queue.task = asyncio.create_task(self._flush(queue), name="session-writes")
        if idle and not self.down and self.wait_s > 0:
            # While Redis answers, the caller sees its write done (read-your-writes), as with a direct write.
            pending.done = asyncio.get_running_loop().create_future()
            await asyncio.wait({pending.done}, timeout=self.wait_s)

    async def _flush(self, queue: _CallQueue) -> None:
        try:
            while queue.writes:
                if self._prober is not None and self._prober is not queue:
                    await self._up.wait()  # one queue probes a dead Redis; the others wait for it
                    continue
                pending = queue.writes[0]
                try:
                    await pending.run(pending.attempts > 0)
                except TRANSIENT as exc:
                    await self._failed(queue, pending, exc)
                    continue
                except Exception:
                    self.failed += 1
                    log.warning("session write refused: %s", pending.what, exc_info=True)
                self._answered()
                if queue.writes and queue.writes[0] is pending:
                    queue.writes.popleft()
                pending.settle()
        finally:
            queue.task = None
            queue.drained.set()
            if not queue.writes and self._queues.get(queue.call_id) is queue:
                del self._queues[queue.call_id]

    async def _failed(self, queue: _CallQueue, pending: _Pending, exc: BaseException) -> None:
        pending.attempts += 1
        pending.settle()  # whoever waits for it goes on: it is kept, and written once Redis is back
        if pending.attempts == 1:
            self.held += 1
        if self._prober is None:
            self._prober = queue
            self._up.clear()
            self._down_since = time.monotonic()
            self.outages += 1
            log.warning("session store unreachable: writes are held and retried", extra={
                "error": type(exc).__name__, "pending": self.pending})
        if self._prober is queue:
            # Idle pooled connections from before the outage are dead (redis-py would fail on each of them
            # once): close them, so the next try and the flush after it start on fresh ones.
            with contextlib.suppress(Exception):
                await self.store.redis.connection_pool.disconnect(inuse_connections=False)
            first, longest = self.backoff
            await asyncio.sleep(min(longest, first * 2 ** min(pending.attempts - 1, 16)))

    def _answered(self) -> None:
        """Redis answered a write: if it was down, everyone may go on."""
        if self._prober is None:
            return
        self._prober = None
        self._up.set()
        log.info("session store reachable again: flushing held writes", extra={
            "down_ms": round((time.monotonic() - self._down_since) * 1000), "pending": self.pending})

    # --- metrics ---------------------------------------------------------------------------------
    def render_metrics(self) -> Iterable[Metric]:
        """The writer's metric families (a source of `MediaMetrics`)."""
        yield gauge_family("switchboard_session_writes_pending", "Session writes waiting for Redis",
                           [((), self.pending)])
        yield counter_family("switchboard_session_write_faults_total",
                             "Session writes held for a retry, dropped or refused",
                             [((("kind", kind),), value)
                              for kind, value in (("held", self.held), ("dropped", self.dropped),
                                                  ("refused", self.failed))])

