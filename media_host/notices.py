"""Notices from the control plane to the calls this host carries (e.g. a transfer that failed).

One Redis pattern subscription per host, not one per call: each notice is handed to the channel of
the call it names, as an inbound event its pipeline already understands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pydantic import ValidationError

from media_host.channel import CallChannel
from media_host.events import TransferStatusReceived
from switchboard.session_models import CallEvent
from switchboard.session_store import SessionStore

log = logging.getLogger(__name__)

RETRY_S = 1.0
POLL_S = 0.1  # redis-py's listen() can swallow a cancellation: poll, and stop on a flag instead


class NoticeBoard:
    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.calls: dict[str, CallChannel] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.ready = asyncio.Event()

    def attach(self, channel: CallChannel) -> None:
        self.calls[channel.call_id] = channel

    def detach(self, channel: CallChannel) -> None:
        if self.calls.get(channel.call_id) is channel:
            del self.calls[channel.call_id]

    def stopping(self) -> bool:  # a method: the flag changes while the listener awaits
        return self._stopping

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="notices")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), POLL_S * 4)
            if not self._task.done():
                self._task.cancel()

    async def _listen(self) -> None:
        while not self._stopping:  # a Redis restart must not end notices for good
            try:
                async with self.store.redis.pubsub() as pubsub:
                    await pubsub.psubscribe(self.store.notice_pattern)
                    self.ready.set()
                    while not self._stopping:
                        await self.store.refresh_subscription(pubsub)  # renews an Entra ID token before expiry
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                        if message is not None and message.get("type") == "pmessage":
                            self.deliver(self.store.call_of_notice(_text(message["channel"])), message["data"])
            except Exception:
                self.ready.clear()
                if self.stopping():
                    return
                log.warning("notice subscription lost; resubscribing", exc_info=True)
                await asyncio.sleep(RETRY_S)

    def deliver(self, call_id: str, data: bytes | str) -> None:
        channel = self.calls.get(call_id)
        if channel is None:
            return  # another host carries the call
        try:
            event = CallEvent.model_validate_json(data)
        except ValidationError:
            log.warning("ignoring a malformed notice")
            return
        if event.kind == "transfer_failed":
            channel.feed_event(TransferStatusReceived("failed", str(event.data.get("reason") or "")[:200]))
        else:  # recorded in the session already; the agent's policy on the hot path agrees or this is logged
            log.info("control plane notice", extra={"kind": event.kind})


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
