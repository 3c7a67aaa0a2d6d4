"""Conversation load for bench/load.py: N banking callers at once over the speech cascade, a mix of ACS
and AudioCodes sockets, and what one step of that load measured.

Every caller says bench/turn_calls.py's banking script (speech, two barge-ins, handoffs) through
`drive_call`. ACS callers use local_stack.callers.acs_caller.AcsMediaClient (24 kHz PCM); AudioCodes callers
use local_stack.callers.audiocodes_caller: VoiceAI Connect's side of the Bot API (bearer token,
session.initiate with `raw/lpcm16`, 16 kHz, a continuous userStream with silence between the lines,
playStream back).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.media_load import HostProcess
from bench.stats import percentile
from bench.turn_calls import CallResult, TurnResult, attach_host_marks, drive_call
from bench.turn_latency import cpu_use, seed
from local_stack.callers.audiocodes_caller import AudioCodesCaller
from local_stack.callers.scripted import Line
from switchboard.redis_server import EmbeddedRedis
from switchboard.session_store import SessionStore, connect_redis
from switchboard.tokens import TokenSigner

ACS_RATE = 24000
AC_RATE = 16000  # raw/lpcm16, what VAIC offers most often
ERROR_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (ERROR|CRITICAL) ")  # switchboard.logs.TextFormatter
WARNING_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} WARNING ")


@dataclass
class Target:
    """What a conversation step runs against."""

    host: HostProcess
    redis: EmbeddedRedis
    voices: dict[int, dict[str, bytes]]  # wire rate -> line text -> PCM16
    script: tuple[Line, ...]
    idle_rss_mb: float


@dataclass
class Placed:
    """One call of a step: the caller's timings and how its socket ended."""

    transport: str
    result: CallResult
    close_code: int | None
    close_reason: str | None
    stops_all: int  # AudioCodes: every playStream.stop (utterance ends and barge-ins)

    @property
    def socket_error(self) -> str | None:
        if self.result.error:
            return self.result.error
        if self.close_code not in (None, 1000):
            return f"closed {self.close_code} {self.close_reason}"
        return None

    @property
    def completed(self) -> bool:
        return self.socket_error is None and all(t.failure is None for t in self.result.turns)


@dataclass
class ConvStep:
    n: int
    calls: list[Placed] = field(default_factory=list)
    seconds: float = math.nan
    mean_concurrency: float = math.nan  # sum of call durations / the step's wall time
    turn_ms: list[float] = field(default_factory=list)  # caller-measured, every answered line
    barge_ms: list[float] = field(default_factory=list)
    host_turn_ms: list[float] = field(default_factory=list)  # the host's own total, for comparison
    late_frames: int = 0
    dropped_frames: int = 0
    frames_out: int = 0
    host_errors: dict[str, float] = field(default_factory=dict)  # switchboard_errors_total deltas
    error_lines: list[str] = field(default_factory=list)  # ERROR/CRITICAL lines the host logged
    warning_lines: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core: host, redis, bench, other
    rss_peak_mb: float = math.nan
    rss_per_call_mb: float = math.nan
    quiet_wait_s: float = 0.0
    retried: str | None = None

    @property
    def started(self) -> int:
        return len(self.calls)

    @property
    def completed(self) -> int:
        return sum(c.completed for c in self.calls)

    @property
    def lines(self) -> int:
        return sum(len(c.result.turns) for c in self.calls)

    @property
    def no_reply(self) -> list[str]:
        return [f"{c.result.label} line {t.index} {t.text!r}: {t.failure or 'no reply'}"
                for c in self.calls for t in c.result.turns if not math.isfinite(t.client_total_ms)]

    @property
    def failures(self) -> list[str]:
        """Every line that failed (no reply, no StopAudio on a barge-in, not heard), and every call error."""
        out = [f"{c.result.label} ({c.transport}): {c.socket_error}" for c in self.calls if c.socket_error]
        out += [f"{c.result.label} ({c.transport}) line {t.index} {t.text!r}: {t.failure}"
                for c in self.calls for t in c.result.turns if t.failure]
        return out

    def _split(self) -> list[tuple[str, list[float], list[float]]]:
        """Caller-measured turn and barge-in times per transport."""
        out = []
        for transport in ("acs", "audiocodes"):
            turns = [t for c in self.calls if c.transport == transport for t in c.result.turns]
            if turns:
                out.append((transport, [t.client_total_ms for t in turns],
                            [t.client_barge_in_ms for t in turns if t.barge_in]))
        return out

    def figures(self) -> dict[str, Any]:
        def r(x: float) -> float | None:
            return round(x, 1) if math.isfinite(x) else None

        return {
            "n": self.n, "started": self.started, "completed": self.completed, "seconds": r(self.seconds),
            "mean_concurrency": r(self.mean_concurrency),
            "by_transport": {t: sum(c.transport == t for c in self.calls) for t in ("acs", "audiocodes")},
            "lines": self.lines, "lines_no_reply": len(self.no_reply),
            "turn_ms": {f"p{q}": r(percentile(self.turn_ms, q)) for q in (50, 95, 99)} | {"n": len(self.turn_ms)},
            "host_turn_ms": {f"p{q}": r(percentile(self.host_turn_ms, q)) for q in (50, 95, 99)},
            "barge_in_ms": {f"p{q}": r(percentile(self.barge_ms, q)) for q in (50, 95)} | {"n": len(self.barge_ms)},
            "by_transport_ms": {tr: {"turn_p50": r(percentile(turn, 50)), "turn_p95": r(percentile(turn, 95)),
                                     "barge_in_p50": r(percentile(barge, 50))}
                                for tr, turn, barge in self._split()},
            "late_frames": self.late_frames, "dropped_frames": self.dropped_frames, "frames_out": self.frames_out,
            "socket_errors": sum(c.socket_error is not None for c in self.calls),
            "host_error_counters": self.host_errors, "host_error_log_lines": len(self.error_lines),
            "host_error_log_examples": self.error_lines[:5], "host_warning_log_lines": self.warning_lines,
            "cpu_pct_of_one_core": self.cpu, "rss_peak_mb": r(self.rss_peak_mb),
            "rss_per_call_mb": round(self.rss_per_call_mb, 2) if math.isfinite(self.rss_per_call_mb) else None,
            "quiet_wait_s": round(self.quiet_wait_s, 1), "retried": self.retried, "failures": self.failures,
            "calls": [{"transport": c.transport, "close_code": c.close_code, "completed": c.completed,
                       "stop_messages": c.stops_all,
                       **{k: v for k, v in c.result.as_json().items() if k not in ("agent_audio_ms", "host_record")}}
                      for c in self.calls],
        }


def loop_ticks(pid: int) -> int:
    """utime + stime of the host's main thread, which runs its asyncio loop (media_host.main: asyncio.Runner);
    the engines' threads are the rest of the process."""
    try:
        stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _sum_metric(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(name + "{") or k == name)


def _log_size(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.stat().st_size
    return 0


def _log_since(path: Path, offset: int) -> list[str]:
    with contextlib.suppress(OSError), path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()
    return []


async def _one_call(target: Target, store: SessionStore, transport: str, label: str) -> Placed:
    """One call; a call the host refused or broke off is a result (every line unanswered), not a crash."""
    try:
        return await _drive(target, store, transport, label)
    except Exception as exc:  # e.g. websockets' InvalidStatus when the host refuses the upgrade
        result = CallResult(label, "", [TurnResult(label, i, line.text, line.interrupt_after_s is not None,
                                                   failure="the call failed")
                                        for i, line in enumerate(target.script)])
        result.error = f"{type(exc).__name__}: {exc}"[:300]
        return Placed(transport, result, None, None, 0)


async def _drive(target: Target, store: SessionStore, transport: str, label: str) -> Placed:
    host = target.host
    if transport == "acs":
        call_id, token = await seed(store)
        url = f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token={token}"
        result, media = await drive_call(label, call_id, url, target.voices[ACS_RATE], script=target.script)
    else:
        call_id = f"bench-load-{uuid.uuid4().hex[:12]}"
        caller = AudioCodesCaller(host.port, host.bot_token, call_id)
        result, media = await drive_call(label, call_id, caller.url, target.voices[AC_RATE], script=target.script,
                                         media=caller)
    stops_all = len(media.all_stops) if isinstance(media, AudioCodesCaller) else len(media.stops)
    return Placed(transport, result, media.close_code, media.close_reason, stops_all)


async def run_conversation_step(target: Target, n: int, stagger_s: float, hold_s: float) -> ConvStep:
    """N lines of calls at once, the k-th line starting k * stagger_s after the first; calls alternate
    ACS / AudioCodes in the order they start. A line whose call ends before `hold_s` has passed since
    the step began starts another call, so the load is held that long (0: one call per line)."""
    host, redis = target.host, target.redis
    step = ConvStep(n)
    store = SessionStore(connect_redis(redis.url), TokenSigner(host.secret), ttl_seconds=3600)
    placed: list[Placed] = []
    started = 0
    rss = [host.rss_mb()]
    log_offset = _log_size(host.log_path)
    metrics0 = await asyncio.to_thread(host.metrics)
    cpu0, loop0 = host.cpu(redis.pid), loop_ticks(host.pid)
    t0 = time.monotonic()

    async def line(k: int) -> None:
        nonlocal started
        await asyncio.sleep(k * stagger_s)
        while True:
            transport = "acs" if started % 2 == 0 else "audiocodes"
            started += 1
            placed.append(await _one_call(target, store, transport, f"n{n}-{started}"))
            if time.monotonic() - t0 >= hold_s:
                return

    async def sample_rss() -> None:
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(OSError, ValueError):
                rss.append(host.rss_mb())

    sampler = asyncio.create_task(sample_rss())
    try:
        await asyncio.gather(*(line(k) for k in range(n)))
        cpu1, loop1 = host.cpu(redis.pid), loop_ticks(host.pid)
        step.seconds = time.monotonic() - t0
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    try:
        await asyncio.to_thread(host.wait_idle, 30.0)  # the host writes the last turns as each call closes
        for call in placed:
            if call.result.call_id:
                attach_host_marks(call.result, await store.load(call.result.call_id))
    finally:
        await store.close()
    metrics1 = await asyncio.to_thread(host.metrics)
    step.calls = placed
    step.mean_concurrency = sum(c.result.seconds for c in placed) / step.seconds
    turns = [t for c in placed for t in c.result.turns]
    step.turn_ms = [t.client_total_ms for t in turns if math.isfinite(t.client_total_ms)]
    step.host_turn_ms = [t.host["total"] for t in turns if "total" in t.host]
    step.barge_ms = [t.client_barge_in_ms for t in turns if t.barge_in and math.isfinite(t.client_barge_in_ms)]
    for name, attr in (("switchboard_late_frames_total", "late_frames"),
                       ("switchboard_dropped_frames_total", "dropped_frames"),
                       ("switchboard_frames_out_total", "frames_out")):
        setattr(step, attr, int(_sum_metric(metrics1, name) - _sum_metric(metrics0, name)))
    step.host_errors = {k: v - metrics0.get(k, 0.0) for k, v in metrics1.items()
                        if k.startswith("switchboard_errors_total") and v - metrics0.get(k, 0.0) > 0}
    logged = _log_since(host.log_path, log_offset)
    step.error_lines = [ln[:300] for ln in logged if ERROR_LINE.match(ln)]
    step.warning_lines = sum(1 for ln in logged if WARNING_LINE.match(ln))
    step.cpu = cpu_use(cpu0, cpu1)
    step.cpu["host_loop"] = round(100 * (loop1 - loop0) / os.sysconf("SC_CLK_TCK") / (cpu1.at - cpu0.at), 1)
    step.rss_peak_mb = max(rss)
    step.rss_per_call_mb = (step.rss_peak_mb - target.idle_rss_mb) / n
    return step


def synthesize_voices(texts: list[str]) -> dict[int, dict[str, bytes]]:
    """Every caller line at both wire rates, through an 8 kHz telephone band (before any host runs)."""
    from local_stack.callers.scripted import telephone_voice  # noqa: PLC0415 - loads the engines' audio code
    from media_host.engines.embedded.build import get_hibari_tts  # noqa: PLC0415

    tts = get_hibari_tts()

    async def all_lines() -> dict[int, dict[str, bytes]]:
        out: dict[int, dict[str, bytes]] = {}
        for rate in (ACS_RATE, AC_RATE):
            speak = telephone_voice(tts, rate)
            out[rate] = {text: await speak(text) for text in dict.fromkeys(texts)}
        return out

    return asyncio.run(all_lines())
