"""One simulated banking call for bench/turn_latency.py: the caller's lines, what was timed, and the
host's own marks for the same turns (read back from the call session in Redis).

Client-side times are all `time.monotonic()` in this process:

- end of speech: the send time of the caller's last *voiced* frame of a line (a frame whose RMS is
  above `VOICED_DBFS`; the synthesized line ends in silence, which does not count). -60 dBFS, not
  -50: through the 8 kHz band a final fricative ("balance?") sits at -52..-55 dBFS for 80 ms;

- first audio: the arrival of the first agent frame after that;
- barge-in reaction: from the send time of the first voiced frame of an interrupting line to the
  arrival of the first StopAudio after it.

Host-side marks are the agent turns' `latency_ms` and the `barge_in` events. They are matched to the
caller's lines by wall-clock time (`Turn.at`, `CallEvent.at`): a line owns the caller turns and
barge-in events recorded between its start and the next line's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from local_stack.callers.acs_caller import AcsMediaClient
from local_stack.callers.live import LiveCaller
from local_stack.callers.scripted import Line
from switchboard.session_models import CallState, Speaker

VOICED_DBFS = -60.0  # a frame louder than this (RMS) is speech; the synthesized lines' silence is -93 dBFS
QUIET_S = 0.8  # the caller speaks once the agent has been quiet this long (sentence gaps are far shorter)
REPLY_TIMEOUT_S = 20.0  # no agent audio this long after a line: the line got no reply (a failure)
WALL_OFFSET = time.time() - time.monotonic()  # monotonic -> wall clock, to match the host's `at` stamps

# A banking call (account 4567, born 1980-03-03 is the sample bank's Ada Lovelace) with two barge-ins:
# the caller cuts the five transactions short with a new subject, and later asks for a person while the
# card agent is confirming the block.
SCRIPT: tuple[Line, ...] = (
    Line("My account number is 4567 and my date of birth is March third, 1980."),
    Line("What is my balance?"),  # a handoff to the account agent, which greets, then answers
    Line("Read me my last five transactions please."),
    Line("My card was stolen.", interrupt_after_s=2.5),  # over the transactions; a handoff to cards
    Line("Yes, please block it."),
    Line("I would like to talk to a human agent.", interrupt_after_s=2.0),  # over "Done. ... Your reference is"
)


def _rms_dbfs(frame: bytes) -> float:
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    if not samples.size:
        return -math.inf
    rms = math.sqrt(float(np.mean(samples * samples)))
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf


@dataclass
class TurnResult:
    """One caller line and the agent's reply to it."""

    call: str
    index: int  # position in the script
    text: str
    barge_in: bool  # the line was said over the agent (a planned interruption)
    started: float = math.nan  # monotonic: the line's audio was queued
    voiced_start: float = math.nan  # send time of its first voiced frame
    voiced_end: float = math.nan  # send time of its last voiced frame (the end of speech)
    first_audio: float = math.nan  # arrival of the first agent frame after voiced_end
    stop_audio: float = math.nan  # barge-ins: arrival of the first StopAudio after voiced_start
    leaked_frames: int = 0  # barge-ins: agent frames that arrived after StopAudio while the caller spoke
    client_total_ms: float = math.nan
    client_barge_in_ms: float = math.nan
    heard: str = ""  # what the host's STT made of the line (its caller turns, joined)
    caller_turns: int = 0  # caller turns the host recorded for the line (1 expected)
    listening_agent: str | None = None  # the agent whose end-of-speech window applied
    reply_agent: str | None = None
    reply_text: str = ""
    reply_interrupted: bool = False
    host: dict[str, float] = field(default_factory=dict)  # the reply turn's latency_ms
    host_barge_in_ms: float = math.nan
    failure: str | None = None

    @property
    def handoff(self) -> bool:
        """The reply came from another agent than the one listening (a handoff within the turn)."""
        return None not in (self.listening_agent, self.reply_agent) and self.listening_agent != self.reply_agent

    def as_json(self) -> dict[str, Any]:
        doc = {k: ((round(v, 4) if math.isfinite(v) else None) if isinstance(v, float) else v)
               for k, v in asdict(self).items()}
        return {**doc, "handoff": self.handoff}


@dataclass
class CallResult:
    label: str
    call_id: str
    turns: list[TurnResult]
    seconds: float = 0.0
    unplanned_stops: list[float] = field(default_factory=list)  # StopAudio not caused by a planned barge-in
    unplanned_barge_ins: list[dict[str, Any]] = field(default_factory=list)  # host barge_in events, ditto
    greeting_ms: float = math.nan  # socket open -> first agent audio
    error: str | None = None
    tools: list[tuple[str, bool]] = field(default_factory=list)
    final_agent: str | None = None
    started: float = math.nan  # monotonic: the socket was opened
    agent_segments: list[tuple[float, float]] = field(default_factory=list)  # agent audio (ms from start), as heard
    host_turns: list[dict[str, Any]] = field(default_factory=list)  # the session's turns and events, for the JSON
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core during the call

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "call_id": self.call_id, "seconds": round(self.seconds, 1),
                "greeting_ms": None if math.isnan(self.greeting_ms) else round(self.greeting_ms, 1),
                "error": self.error, "tools": self.tools, "final_agent": self.final_agent,
                "unplanned_stop_audio": len(self.unplanned_stops), "unplanned_barge_ins": self.unplanned_barge_ins,
                "cpu_pct": self.cpu, "turns": [t.as_json() for t in self.turns],
                "agent_audio_ms": [[round(a), round(b)] for a, b in self.agent_segments],
                "host_record": self.host_turns}


async def _wait_reply(media: LiveCaller, since: float, next_line: Line | None) -> str | None:
    """Wait for the agent's reply to a line said at `since`: until it has finished (quiet for QUIET_S),
    or, when the next line interrupts, until it is that far into the reply. Returns a failure or None."""
    try:
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            await media.agent_speaking(after=since, timeout=REPLY_TIMEOUT_S)
    except TimeoutError:
        return "closed" if media.closed.is_set() else f"no agent audio within {REPLY_TIMEOUT_S:g} s"
    if next_line is not None and next_line.interrupt_after_s is not None:
        await asyncio.sleep(next_line.interrupt_after_s)
        return None
    with contextlib.suppress(TimeoutError):
        await media.agent_finished(QUIET_S, timeout=60.0, since=since)
    return None


async def drive_call(label: str, call_id: str, url: str, voices: dict[str, bytes], *,
                     script: tuple[Line, ...] = SCRIPT, delay_s: float = 0.0,
                     media: LiveCaller | None = None) -> tuple[CallResult, LiveCaller]:
    """Say the script over an ACS media socket, or over `media` (not yet opened; e.g. an AudioCodes caller);
    returns the timings (host marks not yet attached)."""
    await asyncio.sleep(delay_s)
    result = CallResult(label, call_id, [TurnResult(label, i, line.text, line.interrupt_after_s is not None)
                                         for i, line in enumerate(script)])
    started = result.started = time.monotonic()
    media = media or AcsMediaClient(url, headers={"x-ms-call-correlation-id": f"bench-{label}"})
    try:
        async with media:
            # The greeting: the caller listens to it all first.
            if await _wait_reply(media, 0.0, script[0]) is not None:
                result.error = "no greeting"
                return result, media
            result.greeting_ms = (media.agent.frames[0][0] - started) * 1000
            for i, line in enumerate(script):
                turn = result.turns[i]
                turn.started = time.monotonic()
                media.say(voices[line.text])
                await media.spoken()
                ended = time.monotonic()
                nxt = script[i + 1] if i + 1 < len(script) else None
                failure = await _wait_reply(media, ended, nxt)
                await asyncio.sleep(0.05)  # the sender records a frame just after sending it
                _time_line(media, turn, ended)
                if failure is not None:
                    turn.failure = failure
                    if media.closed.is_set():
                        result.error = f"the host closed the socket ({media.close_code} {media.close_reason})"
                        break
    except (OSError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - started
    planned = {t.stop_audio for t in result.turns if t.barge_in}
    result.unplanned_stops = [s for s in media.stops if s not in planned]
    result.agent_segments = _segments([t for t, _ in media.agent.frames], started)
    return result, media


def _segments(arrivals: list[float], origin: float, gap_s: float = 0.1) -> list[tuple[float, float]]:
    """Spans of agent audio (ms after `origin`), split where no frame arrived for `gap_s`."""
    spans: list[tuple[float, float]] = []
    for t in arrivals:
        if spans and t - (origin + spans[-1][1] / 1000) <= gap_s:
            spans[-1] = (spans[-1][0], (t - origin) * 1000)
        else:
            spans.append(((t - origin) * 1000, (t - origin) * 1000))
    return spans


def _time_line(media: LiveCaller, turn: TurnResult, ended: float) -> None:
    voiced = [t for t, pcm in media.caller.frames
              if turn.started <= t <= ended + 0.04 and _rms_dbfs(pcm) > VOICED_DBFS]
    if not voiced:
        turn.failure = "no voiced caller frame found"
        return
    turn.voiced_start, turn.voiced_end = voiced[0], voiced[-1]
    first = next((t for t, _ in media.agent.frames if t > turn.voiced_end), None)
    if first is not None:
        turn.first_audio = first
        turn.client_total_ms = (first - turn.voiced_end) * 1000
    if turn.barge_in:
        stop = next((s for s in media.stops if s >= turn.voiced_start), None)
        if stop is None or stop > ended + 2.0:
            turn.failure = "no StopAudio after the caller talked over the agent"
        else:
            turn.stop_audio = stop
            turn.client_barge_in_ms = (stop - turn.voiced_start) * 1000
            turn.leaked_frames = sum(1 for t, _ in media.agent.frames if stop < t <= turn.voiced_end)


def attach_host_marks(result: CallResult, state: CallState | None) -> None:
    """Match the host's turns and barge-in events to the caller's lines (by wall-clock time)."""
    if state is None:
        result.error = result.error or "no call session in Redis after the call"
        return
    origin = result.started + WALL_OFFSET
    record = [(t.at, {"turn": t.speaker.value, "agent": t.agent, "text": t.text, "interrupted": t.interrupted,
                      "latency_ms": t.latency_ms}) for t in state.turns]
    record += [(e.at, {"event": e.kind, "agent": e.agent, "data": e.data}) for e in state.events]
    record.sort(key=lambda r: r[0])
    result.host_turns = [{"at_ms": round((at - origin) * 1000), **item} for at, item in record]
    result.tools = [(str(e.data.get("name")), bool(e.data.get("ok"))) for e in state.events if e.kind == "tool_call"]
    result.final_agent = state.session.current_agent
    starts = [t.started + WALL_OFFSET if not math.isnan(t.started) else math.inf for t in result.turns]
    bounds = [*starts[1:], math.inf]
    turns = state.turns
    claimed_barge_ins: set[int] = set()
    for turn, lo, hi in zip(result.turns, starts, bounds, strict=True):
        mine = [k for k, t in enumerate(turns) if t.speaker is Speaker.CALLER and lo <= t.at < hi]
        turn.caller_turns = len(mine)
        turn.heard = " | ".join(turns[k].text for k in mine)
        if mine:
            before = [t for t in turns[: mine[0]] if t.speaker is Speaker.AGENT]
            turn.listening_agent = before[-1].agent if before else None
            for t in turns[mine[-1] + 1:]:
                if t.speaker is Speaker.CALLER:
                    break
                if t.speaker is Speaker.AGENT and "eos_detected" in t.latency_ms:
                    turn.host = dict(t.latency_ms)
                    turn.reply_agent, turn.reply_text, turn.reply_interrupted = t.agent, t.text, t.interrupted
                    break
        elif turn.failure is None:
            turn.failure = "the host recorded no caller turn for the line"
        if turn.barge_in:
            for k, event in enumerate(state.events):
                if event.kind == "barge_in" and lo <= event.at < hi and k not in claimed_barge_ins:
                    claimed_barge_ins.add(k)
                    turn.host_barge_in_ms = float(event.data.get("reaction_ms", math.nan))
                    break
        if turn.failure is None and math.isnan(turn.client_total_ms):
            turn.failure = "no agent audio after the line"
    result.unplanned_barge_ins = [
        {"at_line": _line_at(e.at, starts), "reaction_ms": e.data.get("reaction_ms"), "heard": e.data.get("heard")}
        for k, e in enumerate(state.events) if e.kind == "barge_in" and k not in claimed_barge_ins]


def _line_at(at: float, starts: list[float]) -> int:
    """The index of the line in progress at wall time `at` (-1: before the first)."""
    return sum(1 for s in starts if s <= at) - 1
