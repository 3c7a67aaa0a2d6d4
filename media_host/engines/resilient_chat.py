"""Retrying a cloud chat model while a caller waits, and knowing when to stop so the fallback answers.

`ResilientChatModel` wraps any `ChatModel` (in practice an `OpenAIChatModel` on Azure OpenAI, OpenAI or
an OpenAI-compatible server, whose clients are built with the SDK's own retries off). The policy:

====================================================  =================================================
What failed (`classify_failure`)                      What happens
====================================================  =================================================
429, 5xx (and 409), timeout, connection error, an     Retried, if nothing has been yielded yet and
error event or bad chunk in the stream: transient     retries are left (`max_retries`). The wait is the
                                                      server's (`retry-after-ms` / `retry-after`) when
                                                      it gives one, else exponential backoff with
                                                      jitter (`base_delay_s` * 2^n, halved at random
                                                      by up to `jitter`), never above `max_wait_s`.
The server asks for a wait above `max_wait_s`         Not retried: given up at once, so the fallback
                                                      answers now. The model is then not asked again
                                                      until that wait is over (at most
                                                      `max_cooldown_s`): every request in the meantime
                                                      fails at once with `ChatUnavailable`.
No retries left, or the wait would pass `budget_s`    Given up; the last failure is re-raised.
401/403 (auth), 400/404/422 and content filters       Not retried (the same request fails the same
(rejected), anything that is not an SDK error         way): re-raised at once.
Any failure once a delta has been yielded             Not retried (that would repeat the start of the
                                                      reply to the caller): re-raised.
====================================================  =================================================

`budget_s` (optional) bounds the silence before the first delta across all attempts: the request in
flight is abandoned when it runs out (`ChatDeadlineExceeded`), and no retry starts that could not
begin before it. Without it, the worst case is `(max_retries + 1) * timeout_s` plus the waits.

Whoever consumes the stream falls back on what is re-raised (the cascade's responder turns to the
offline brain). Outcomes are counted in `ChatRetryStats` (for the host's metrics) and reported to
`on_failure(kind, outcome)`; each retry and give-up is logged with its kind, attempt and wait, never
the prompt, the caller's words or the server's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import openai

from media_host.engines.base import ChatDelta, ChatModel, ChatRequest
from media_host.engines.openai_chat import ChatFailure, classify_failure, retry_after_s

if TYPE_CHECKING:
    from switchboard.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_BASE_DELAY_S = 0.25
DEFAULT_JITTER = 0.5
DEFAULT_MAX_COOLDOWN_S = 60.0

# Outcomes, as counted and reported (`on_failure(kind, outcome)`).
RETRIED: Final = "retried"  # a transient failure before any output; the request is tried again
GAVE_UP: Final = "gave_up"  # transient, but no retry is possible in time: re-raised, the fallback answers
NOT_RETRYABLE: Final = "not_retryable"  # auth, a refused request, an unknown error: re-raised at once
AFTER_OUTPUT: Final = "after_output"  # failed after text was yielded: re-raised, what was said stands
COOLING_DOWN: Final = "cooling_down"  # not even tried: the server asked us to wait longer than a caller can
RECOVERED: Final = "recovered"  # answered after one or more retries (kind: the last failure's)

OTHER: Final = "other"  # the kind of a failure that is not an SDK error

Classifier = Callable[[BaseException], ChatFailure | None]
FailureCallback = Callable[[str, str], None]


class ChatUnavailable(Exception):
    """The model is not asked: the server asked for a longer wait than a caller can be given."""

    def __init__(self, engine: str, retry_in_s: float) -> None:
        super().__init__(f"{engine} asked for a pause; {retry_in_s:.1f} s left")
        self.engine = engine
        self.retry_in_s = retry_in_s


class ChatDeadlineExceeded(TimeoutError):
    """No delta within the request's `budget_s`, retries included."""


@dataclass
class ChatRetryStats:
    """Counts by (engine, kind, outcome), for a Prometheus counter such as
    `switchboard_chat_failures_total{engine,kind,outcome}` (see `samples()`)."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def record(self, engine: str, kind: str, outcome: str) -> None:
        key = (engine, kind, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def get(self, *, engine: str | None = None, kind: str | None = None, outcome: str | None = None) -> int:
        """The total over the counts that match every given label."""
        return sum(n for (e, k, o), n in self.counts.items()
                   if engine in (None, e) and kind in (None, k) and outcome in (None, o))

    def samples(self) -> dict[tuple[tuple[str, str], ...], float]:
        """{labels: value}, the shape `media_host.metrics.DerivedCounter.render_from` takes."""
        return {(("engine", e), ("kind", k), ("outcome", o)): float(n) for (e, k, o), n in self.counts.items()}


@dataclass(frozen=True, slots=True)
class _Decision:
    outcome: str
    wait_s: float = 0.0
    reason: str = ""


class ResilientChatModel:
    """A `ChatModel` that retries its `inner` model's transient failures before any output (module docstring).

    `max_retries`: retries per request (so at most `max_retries + 1` attempts).
    `max_wait_s`: the longest wait before one retry; a server asking for more is not waited for.
    `base_delay_s`, `jitter`: the backoff without `retry-after`: `base_delay_s * 2**n` (n = 0, 1, ...),
    capped at `max_wait_s`, then reduced by a random fraction up to `jitter` (0: none, 1: "full jitter").
    `budget_s`: the longest silence before the first delta, all attempts included (None: unbounded).
    `max_cooldown_s`: the longest a server's long `retry-after` keeps requests from being sent.
    `stats`, `on_failure(kind, outcome)`: where outcomes are counted and reported (never raises into us).
    `classify`: maps an exception onto a `ChatFailure` (None: not an SDK error, never retried).
    """

    def __init__(self, inner: ChatModel, *, max_retries: int = 2, max_wait_s: float = 2.0,
                 base_delay_s: float = DEFAULT_BASE_DELAY_S, jitter: float = DEFAULT_JITTER,
                 budget_s: float | None = None, max_cooldown_s: float = DEFAULT_MAX_COOLDOWN_S,
                 stats: ChatRetryStats | None = None, on_failure: FailureCallback | None = None,
                 classify: Classifier = classify_failure, rng: Callable[[], float] = random.random,
                 name: str | None = None) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        if max_wait_s < 0 or base_delay_s < 0 or max_cooldown_s < 0:
            raise ValueError("waits must not be negative")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be from 0 to 1")
        if budget_s is not None and budget_s <= 0:
            raise ValueError("budget_s must be positive")
        self.inner = inner
        self.name = name or inner.name
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.base_delay_s = base_delay_s
        self.jitter = jitter
        self.budget_s = budget_s
        self.max_cooldown_s = max_cooldown_s
        self.stats = stats if stats is not None else ChatRetryStats()
        self.on_failure = on_failure
        self.classify = classify
        self._rng = rng
        self._paused_until = 0.0  # loop time before which the server asked not to be called

    async def aclose(self) -> None:
        """Close the inner model (its HTTP client, a credential), at shutdown."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()

    def backoff_s(self, retry: int) -> float:
        """The wait before retry number `retry` (0-based) when the server named none."""
        delay: float = min(self.max_wait_s, self.base_delay_s * 2.0 ** retry)
        return delay * (1.0 - self.jitter * self._rng())

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """The inner model's reply, retried as the module docstring says; raises what was given up on."""
        loop = asyncio.get_running_loop()
        paused_for = self._paused_until - loop.time()
        if paused_for > 0:
            self._count(ChatFailure.RATE_LIMITED.value, COOLING_DOWN)
            log.info("chat model %s not asked: the server asked for a pause", self.name,
                     extra={"engine": self.name, "outcome": COOLING_DOWN, "paused_for_ms": round(paused_for * 1000)})
            raise ChatUnavailable(self.name, paused_for)
        deadline = None if self.budget_s is None else loop.time() + self.budget_s
        retries = 0
        last_kind = ""
        while True:
            produced = False
            wait_s = 0.0
            deltas = self.inner.stream(request)
            try:
                first = await self._first(deltas, deadline)
                if first is not None:
                    produced = True
                    yield first
                    async for delta in deltas:
                        yield delta
                if retries:
                    self._count(last_kind, RECOVERED)
                    log.info("chat model %s answered after %d retries", self.name, retries,
                             extra={"engine": self.name, "kind": last_kind, "outcome": RECOVERED,
                                    "attempt": retries + 1})
                return
            except Exception as exc:
                failure = ChatFailure.TIMEOUT if isinstance(exc, ChatDeadlineExceeded) else self.classify(exc)
                last_kind = failure.value if failure is not None else OTHER
                decision = self._decide(exc, failure, produced=produced, retries=retries, deadline=deadline,
                                       now=loop.time())
                self._count(last_kind, decision.outcome)
                self._log(exc, last_kind, decision, retries)
                if decision.outcome != RETRIED:
                    raise
                wait_s = decision.wait_s
            finally:
                await _close(deltas)
            retries += 1
            await asyncio.sleep(wait_s)

    # --- internals ---------------------------------------------------------------------------------
    async def _first(self, deltas: AsyncIterator[ChatDelta], deadline: float | None) -> ChatDelta | None:
        """The first delta (None: the reply was empty), within the budget."""
        if deadline is None:
            return await anext(deltas, None)
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                return await anext(deltas, None)
        except TimeoutError as exc:
            if timeout.expired():
                raise ChatDeadlineExceeded(f"no reply from {self.name} within {self.budget_s} s") from exc
            raise

    def _decide(self, exc: BaseException, failure: ChatFailure | None, *, produced: bool, retries: int,
                deadline: float | None, now: float) -> _Decision:
        if produced:
            return _Decision(AFTER_OUTPUT, reason="output_started")
        if isinstance(exc, ChatDeadlineExceeded):
            return _Decision(GAVE_UP, reason="budget_spent")
        if failure is None or not failure.transient:
            return _Decision(NOT_RETRYABLE, reason="not_transient")
        asked = retry_after_s(exc)
        if asked is not None and asked > self.max_wait_s:
            self._paused_until = max(self._paused_until, now + min(asked, self.max_cooldown_s))
            return _Decision(GAVE_UP, asked, reason="retry_after_too_long")
        if retries >= self.max_retries:
            return _Decision(GAVE_UP, reason="retries_exhausted")
        wait = asked if asked is not None else self.backoff_s(retries)
        if deadline is not None and now + wait >= deadline:
            return _Decision(GAVE_UP, wait, reason="budget_spent")
        return _Decision(RETRIED, wait)

    def _count(self, kind: str, outcome: str) -> None:
        self.stats.record(self.name, kind, outcome)
        if self.on_failure is not None:
            try:
                self.on_failure(kind, outcome)
            except Exception:  # metrics must never break a caller's turn
                log.exception("on_failure callback failed")

    def _log(self, exc: BaseException, kind: str, decision: _Decision, retries: int) -> None:
        extra: dict[str, Any] = {"engine": self.name, "kind": kind, "outcome": decision.outcome,
                                 "attempt": retries + 1, "error": type(exc).__name__}
        if isinstance(exc, openai.APIStatusError):
            extra["status"] = exc.status_code
            extra["request_id"] = exc.request_id
        if decision.outcome == RETRIED:
            extra["wait_ms"] = round(decision.wait_s * 1000)
            log.warning("chat model %s failed (%s); retrying in %.0f ms", self.name, kind, decision.wait_s * 1000,
                        extra=extra)
            return
        extra["reason"] = decision.reason
        if decision.reason == "retry_after_too_long":
            extra["retry_after_ms"] = round(decision.wait_s * 1000)
        log.warning("chat model %s failed (%s); not retried: %s", self.name, kind, decision.reason, extra=extra)


async def _close(deltas: AsyncIterator[ChatDelta]) -> None:
    """Close an attempt's stream (its HTTP response); a stream that failed may refuse to close cleanly."""
    close = getattr(deltas, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


def resilient(model: ChatModel, settings: Settings, *, budget_s: float | None = None,
              stats: ChatRetryStats | None = None, on_failure: FailureCallback | None = None,
              classify: Classifier = classify_failure) -> ResilientChatModel:
    """`model` with the cloud chat retry policy of these settings (`CHAT_MAX_RETRIES`,
    `CHAT_RETRY_MAX_WAIT_SECONDS`); the same for Azure OpenAI and OpenAI-compatible endpoints."""
    return ResilientChatModel(model, max_retries=settings.chat_max_retries,
                              max_wait_s=settings.chat_retry_max_wait_seconds, budget_s=budget_s,
                              stats=stats, on_failure=on_failure, classify=classify)
