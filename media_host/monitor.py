"""What happens on each call, published to Redis for whoever watches: `make run`'s console, a dashboard.

Off unless MONITOR_CALLS. The pipeline's outbound events are tapped where the channel sends them, so
every transport is covered; one queue and one publisher task per host keep each call's events in
order and keep Redis off the audio path (a full queue drops events and counts them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from typing import Any

from media_host.events import (
    AgentChanged,
    HangUp,
    Outbound,
    StopPlayback,
    ToolCalled,
    TranscriptLine,
    Transfer,
    TurnLatency,
)
from switchboard.session_store import SessionStore

log = logging.getLogger(__name__)

KINDS: dict[type[Any], str] = {TranscriptLine: "transcript", AgentChanged: "handoff", ToolCalled: "tool",
                               TurnLatency: "latency", Transfer: "transfer", HangUp: "hangup",
                               StopPlayback: "barge_in"}
QUEUE_LIMIT = 1000


def monitor_message(event: Outbound) -> str | None:
    """The JSON published for an event, or None for events nobody watches (audio, hypotheses)."""
    kind = KINDS.get(type(event))
    if kind is None:
        return None
    return json.dumps({"type": kind, "at": time.time(), **dataclasses.asdict(event)})


class CallMonitor:
    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.dropped = 0
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    def __call__(self, call_id: str, event: Outbound) -> None:
        message = monitor_message(event)
        if message is None:
            return
        try:
            self._queue.put_nowait((call_id, message))
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._publish(), name="monitor")

    async def stop(self) -> None:
        """Publish what is queued (briefly), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), 1.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _publish(self) -> None:
        while True:
            call_id, message = await self._queue.get()
            try:
                await self.store.redis.publish(self.store.monitor_channel(call_id), message)
            except Exception:  # a watcher's feed must never end a call
                self.dropped += 1
                log.warning("monitor publish failed", exc_info=True)
            finally:
                self._queue.task_done()
