"""Counting the chat stage's outcomes per engine, as the STT and TTS chains count theirs.

The cascade's responder falls back from the chat model to the offline brain itself (media_host/pipelines/
cascade/responder.py); the factory wraps both in `MeteredChatModel`, so every request lands in
`switchboard_engine_outcomes_total{stage="chat"}`: `ok` (the model answered), `fallback` (the brain answered
in its place), `timeout` (no first token within CHAT_FIRST_TOKEN_SECONDS, or the SDK's own time-out),
`error`, `skipped` (not asked: the server asked for a pause, `ChatUnavailable`). A reply that breaks off
after its first words counts as an `error`; one the caller cut short (a barge-in) as answered.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import openai

from media_host.engines.base import ChatDelta, ChatModel, ChatRequest, EngineFallback
from media_host.engines.outcomes import ERROR, OK, SKIPPED, TIMEOUT, EngineStats
from media_host.engines.resilient_chat import ChatUnavailable


def chat_failure_outcome(exc: BaseException) -> str:
    if isinstance(exc, ChatUnavailable):
        return SKIPPED
    return TIMEOUT if isinstance(exc, TimeoutError | openai.APITimeoutError) else ERROR


def chat_fallback(engine: str, to: str, exc: BaseException) -> EngineFallback:
    """The call record's note for a turn the fallback model answered."""
    return EngineFallback("chat", engine, to, chat_failure_outcome(exc), error=type(exc).__name__)


class MeteredChatModel:
    """`inner`, with each request's outcome counted in `stats`; `answered` is what an answer counts as."""

    def __init__(self, inner: ChatModel, stats: EngineStats, *, answered: str = OK) -> None:
        self.inner = inner
        self.name = inner.name
        self.stats = stats
        self.answered = answered

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        deltas = self.inner.stream(request)
        produced = False
        outcome: str | None = None
        try:
            async for delta in deltas:
                produced = True
                yield delta
            outcome = self.answered
        except Exception as exc:
            outcome = ERROR if produced else chat_failure_outcome(exc)
            raise
        finally:
            if outcome is None and produced:  # closed early by the listener (a barge-in): it did answer
                outcome = self.answered
            if outcome is not None:
                self.stats.record("chat", self.name, outcome)
            close = getattr(deltas, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
