"""Per-engine health, shared by every call of the process: an engine that failed is skipped until it is back.

An engine that fails a request (an error, or its stage's deadline) is marked down. While it is down the
fallback chains (media_host/engines/chain.py) skip it, so one outage costs one request a failure, not
every call a timeout first. A background task owns its recovery: after the cool-down it runs the
engine's probe (a cheap request: a short synthesis, a short recognition; `watch`), bounded by the probe's
timeout; the engine is back when a probe succeeds, else it waits another cool-down and probes again. An
engine without a probe comes back after one cool-down (the next real request is its probe). A real
request that succeeds on an engine that is down (every engine of a chain was down, so all were tried)
brings it back at once.

Nothing here runs per frame: marking is a dict update, and only an engine that is down has a task.
`aclose()` cancels the probe tasks (at shutdown). The clock is injectable (`Clock`), so tests drive the
cool-down without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]
ChangeCallback = Callable[[str, bool], None]  # (engine key, available)


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: monotonic time, and asyncio's sleep."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class _Watch:
    probe: Probe | None
    timeout_s: float


class EngineHealth:
    """Which engines are up. Keys name an engine in a stage ("stt:azure_speech"): one engine can serve
    two stages (Azure Speech) and fail in one only.

    `cooldown_s`: how long a failed engine is skipped before it is probed (and between probes).
    `on_change(key, available)`: told when an engine goes down or comes back (never raises into us).
    """

    def __init__(self, *, cooldown_s: float, clock: Clock | None = None,
                 on_change: ChangeCallback | None = None) -> None:
        if cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")
        self.cooldown_s = cooldown_s
        self.clock: Clock = clock or MonotonicClock()
        self.on_change = on_change
        self._watched: dict[str, _Watch] = {}
        self._down: dict[str, float] = {}  # key -> when it went down (clock time)
        self._recovering: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def watch(self, key: str, probe: Probe | None = None, *, timeout_s: float = 5.0) -> None:
        """Know `key`, and how to probe it (`probe` raises, or passes `timeout_s`, when the engine is not back)."""
        self._watched[key] = _Watch(probe, timeout_s)

    def available(self, key: str) -> bool:
        return key not in self._down

    def status(self) -> dict[str, bool]:
        """{key: available} for every engine watched or seen failing (for the metrics page)."""
        return {key: key not in self._down for key in sorted({*self._watched, *self._down})}

    def samples(self) -> dict[tuple[tuple[str, str], ...], float]:
        """{labels: 1.0 up / 0.0 down} for a gauge; a "stage:engine" key gives stage and engine labels."""
        values: dict[tuple[tuple[str, str], ...], float] = {}
        for key, up in self.status().items():
            stage, _, engine = key.rpartition(":")
            values[(("engine", engine), ("stage", stage))] = 1.0 if up else 0.0
        return values

    def failed(self, key: str, reason: str) -> None:
        """A request on `key` failed: skip it from now on, and start its recovery (once)."""
        if key in self._down or self._closed:
            return
        self._down[key] = self.clock.now()
        log.warning("engine %s is down (%s); skipped for %.0f s, then probed", key, reason, self.cooldown_s,
                    extra={"engine": key, "reason": reason, "cooldown_s": self.cooldown_s})
        self._changed(key, False)
        task = asyncio.get_running_loop().create_task(self._recover(key), name=f"engine-probe-{key}")
        self._recovering[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def succeeded(self, key: str) -> None:
        """A real request on `key` succeeded: it is up, whatever its probe was waiting for."""
        if key not in self._down:
            return
        task = self._recovering.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._up(key, "a request succeeded")

    async def aclose(self) -> None:
        """Cancel every probe task and wait for them (at shutdown)."""
        self._closed = True
        tasks = list(self._recovering.values())
        self._recovering.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- internals -------------------------------------------------------------------------------------
    async def _recover(self, key: str) -> None:
        watch = self._watched.get(key, _Watch(None, 0.0))
        attempt = 0
        while True:
            await self.clock.sleep(self.cooldown_s)
            if watch.probe is None:
                break
            attempt += 1
            try:
                async with asyncio.timeout(watch.timeout_s):
                    await watch.probe()
            except Exception as exc:  # the engine is still not answering: wait another cool-down
                log.info("engine %s probe failed (%s); next probe in %.0f s", key, type(exc).__name__,
                         self.cooldown_s, extra={"engine": key, "error": type(exc).__name__, "attempt": attempt})
                continue
            break
        if key in self._down:
            self._up(key, "probe succeeded" if watch.probe is not None else "cool-down over")

    def _up(self, key: str, why: str) -> None:
        since = self._down.pop(key)
        log.info("engine %s is back (%s)", key, why,
                 extra={"engine": key, "down_s": round(self.clock.now() - since, 1)})
        self._changed(key, True)

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._recovering.get(key) is task:
            del self._recovering[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("engine %s probe task failed", key, exc_info=task.exception())
            if key in self._down:  # nothing would bring it back: let the next request try it
                self._up(key, "its probe task failed")

    def _changed(self, key: str, available: bool) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(key, available)
        except Exception:  # a listener must never break a caller's turn
            log.exception("engine health listener failed")
