"""What the Realtime service says about the session rather than the conversation: errors and rate limits.

Both are parsed once, at the edge (protocol.py `ServerError`, `RateLimit`). One the SDK's models could not read
is a one-line warning, counted as `malformed`, and the call goes on: the service's own bug must cost the caller
nothing, and a traceback per event would bury the log.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from media_host.pipelines.cascade.conversation import Conversation
from media_host.pipelines.realtime.holding import HoldingLine
from media_host.pipelines.realtime.link import Event
from media_host.pipelines.realtime.protocol import BENIGN_ERRORS, MalformedEvent, RateLimit, ServerError
from media_host.pipelines.realtime.session import SessionControl

log = logging.getLogger(__name__)


class CallParts(Protocol):
    """What the notices need of the call (RealtimeCall)."""

    conv: Conversation
    session: SessionControl
    holding: HoldingLine

    def spawn(self, work: Coroutine[Any, Any, None], tool: bool = False) -> None: ...

    def count(self, kind: str, metric_kind: str | None = None, **labels: str) -> None: ...


class ServiceNotices:
    def __init__(self, parts: CallParts) -> None:
        self.parts = parts

    def malformed(self, event: Event, problem: MalformedEvent) -> None:
        log.warning("realtime: malformed %s event ignored: %s", event["type"][:60], problem)
        self.parts.count("malformed", event=event["type"][:60])

    def on_error(self, event: Event) -> None:
        parts = self.parts
        try:
            error = ServerError.parse(event)
        except MalformedEvent as problem:
            self.malformed(event, problem)
            return
        if parts.holding.refused(error):
            return
        code = error.label
        if code in BENIGN_ERRORS:
            log.info("realtime: %s", code)
            parts.count("benign_error", code=code)
            return
        log.warning("realtime error", extra={"error_type": error.type, "code": code, "param": error.param,
                                             "event_id": error.event_id, "error_message": error.message[:200]})
        parts.count("error", "realtime_error", code=code)
        kept = parts.session.voice_refused(error)
        if kept is not None:  # the server keeps the voice once assistant audio exists: the rest is applied
            parts.count("voice_kept")
            parts.spawn(parts.conv.record_event("voice_kept", voice=kept[0], refused=kept[1]))

    def on_rate_limits(self, event: Event) -> None:
        try:
            limits = RateLimit.parse_all(event)
        except MalformedEvent as problem:
            self.malformed(event, problem)
            return
        self.parts.count("rate_limits_updated")
        for limit in limits:
            (log.warning if limit.low else log.debug)("realtime rate limit", extra={
                "limit_name": limit.name, "remaining": limit.remaining, "limit": limit.limit,
                "reset_seconds": limit.reset_seconds})
