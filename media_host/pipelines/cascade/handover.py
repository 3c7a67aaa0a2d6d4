"""The cascade's last resort for one call: no engine can answer, so the caller is let go, never left in silence.

A reply that ends in EnginesExhausted (speech-to-text, the models or text-to-speech had nothing left to try)
starts it: the caller hears the apology synthesized at start-up (media_host/engines/last_resort.py, PCM in
memory: no engine needed), then the call goes to the scenario's human number, or, with none, is ended. It
runs as its own task, which a barge-in does not cancel; once begun, no reply starts and caller speech is not
answered. If that transfer fails, the caller hears the goodbye clip and the call ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from media_host.channel import CallChannel
from media_host.engines.base import EnginesExhausted
from media_host.engines.last_resort import LastResort
from media_host.pipelines.cascade.conversation import Conversation

log = logging.getLogger(__name__)

Finish = Callable[[str | None, str | None], Awaitable[None]]  # (transfer reason, hang-up reason), once heard


class Handover:
    def __init__(self, call: CallChannel, conv: Conversation, clips: LastResort, finish: Finish) -> None:
        self.call, self.conv, self.clips, self.finish = call, conv, clips, finish
        self.task: asyncio.Task[None] | None = None

    @property
    def begun(self) -> bool:
        return self.task is not None

    async def guard(self, reply: Coroutine[Any, Any, None]) -> None:
        """Run a reply; if no engine can answer it, begin the last resort."""
        try:
            await reply
        except EnginesExhausted as exc:
            log.error("no %s engine can answer: last resort", exc.stage, extra={"error": str(exc)[:200]})
            self.begin(exc.stage)

    def begin(self, stage: str, *, hang_up: bool = False) -> None:
        """Once a call; again only to end a call whose last-resort transfer failed (`hang_up`)."""
        if self.task is None or (hang_up and self.task.done()):
            self.task = asyncio.create_task(self._run(stage, hang_up), name="last-resort")
            self.task.add_done_callback(_log_failure)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _run(self, stage: str, hang_up: bool) -> None:
        target = None if hang_up else self.conv.scenario.spec.policy.human_queue
        action = "transfer" if target else "hangup"
        self.call.start_utterance()  # queued after whatever part of a reply was already spoken
        self.call.play(self.clips.clip(transfer=target is not None, rate=self.call.outbound_rate))
        self.call.end_utterance()
        self.clips.used.inc(stage=stage, action=action)
        reason = "last resort: the transfer failed" if hang_up else f"last resort: no {stage} engine could answer"
        await self.conv.record_event("last_resort", stage=stage, action=action, reason=reason,
                                     said=self.clips.text(transfer=target is not None))
        await self.finish(reason if target else None, None if target else reason)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the last resort failed", exc_info=task.exception())
