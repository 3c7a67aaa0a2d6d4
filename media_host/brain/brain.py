"""The offline brain as a `ChatModel`: Switchboard's embedded default chat model and the fallback
when a cloud model fails mid-call.

No language model: routing by example phrases, argument extraction by each tool's schema, and reply
templates (see the package docstring). Deterministic (the same request gives the same reply) and fast
(well under a millisecond of CPU per turn once an agent's index is built), so it runs on the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from media_host.brain.actions import Reply
from media_host.brain.dialogue import Turn
from media_host.brain.replies import CLARIFY
from media_host.engines.base import ChatDelta, ChatRequest, TextDelta, ToolCallDelta

log = logging.getLogger(__name__)


class OfflineBrainChatModel:
    """A `ChatModel` without a language model. Stateless: a call's dialogue state is in `request.state`."""

    def __init__(self, name: str = "offline") -> None:
        self.name = name

    def respond(self, request: ChatRequest) -> Reply:
        """The whole reply at once: text, and at most one tool call."""
        started = time.perf_counter()
        try:
            reply = Turn(request).run()
        except Exception:  # the fallback of every other model must not fail itself
            log.exception("offline brain failed on agent %s", request.agent.name)
            reply = Reply(CLARIFY)
        log.debug("offline brain: agent=%s call=%s text_chars=%d took_ms=%.2f why=%s", request.agent.name,
                  reply.call.name if reply.call else None, len(reply.text),
                  (time.perf_counter() - started) * 1000, " | ".join(reply.trace))
        return reply

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        reply = self.respond(request)
        if reply.text:
            yield TextDelta(reply.text)
        if reply.call is not None:
            yield ToolCallDelta(reply.call)
