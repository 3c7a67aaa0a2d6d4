"""One call's engine fallbacks, written to its session as `engine_fallback` events (the call record keeps them).

The STT streams and TTS syntheses of the fallback chains carry their notes (`fallbacks_of`); the cascade
hands each request to `report` once it is done, and the responder hands a chat fallback to `add`. A
failure is written every time it happens. An engine skipped because it is down is written once per call
and stage: during an outage every turn of the call would say it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from media_host.engines.base import EngineFallback, fallbacks_of
from media_host.engines.chain import DOWN

ENGINE_FALLBACK: Final = "engine_fallback"  # the session event's kind

RecordEvent = Callable[..., Awaitable[None]]  # Conversation.record_event(kind, **data)


class CallFallbacks:
    def __init__(self, record_event: RecordEvent) -> None:
        self._record_event = record_event
        self._skips: set[tuple[str, str, str | None]] = set()

    async def report(self, request: object) -> None:
        """Write the fallbacks an STT stream or a synthesis went through (nothing for a plain engine)."""
        for note in fallbacks_of(request):
            await self.add(note)

    async def add(self, note: EngineFallback) -> None:
        if note.reason == DOWN:
            key = (note.stage, note.engine, note.to)
            if key in self._skips:
                return
            self._skips.add(key)
        data: dict[str, Any] = note.event_data()
        await self._record_event(ENGINE_FALLBACK, **data)
