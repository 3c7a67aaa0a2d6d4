"""How fast the speech cascade answers a caller: `python -m bench.turn_latency` (`make bench-turn`).

Starts an embedded Redis and the media host (`python -m media_host`, PIPELINE=cascade: silero VAD,
Whisper tiny.en, the offline brain, hibari) as a separate process, then runs simulated banking calls
over the ACS media socket (local_stack.callers.acs_caller): the caller's lines are synthesized by the same
TTS engine, band-limited through 8 kHz as a phone line is (local_stack.callers.scripted.telephone_voice), and
streamed at real-time pace. Each call has six lines, two of them said over the agent (barge-ins).
The calls run one after another; then (unless --concurrent 0) a pair runs at once, the second
offset by --offset seconds, as a second row.

It reports p50/p95/max of:

- turn latency, measured by the caller: its last voiced frame sent -> the agent's first frame back;
  and the host's own figure (`Turn.latency_ms["total"]`: last voiced audio -> first frame sent);
- the pipeline's overhead: the host's total minus the silence window and the engines' time;
- barge-in reaction, measured by the caller: its first voiced frame over the agent -> StopAudio; and
  the host's own (`barge_in` event `reaction_ms`: VAD onset -> playback stopped);
- per stage: the end-of-speech silence window (per listening agent: the banking `auth` agent waits
  900 ms, the others 600 ms), STT, the chat model to its first token, TTS to its first chunk.

A call takes about 67 s (the agent's replies are played in full); the default 3 + 2 calls about 4.6
minutes in all. The caller's lines are synthesized once, before the host starts.

Design budgets: turn <= 1.2 s (p50), overhead <= 30 ms, barge-in <= 150 ms. They are reported, not
asserted: the script always exits 0 once it has run, and prints every line that got no reply.
Results also go to out/bench/turn_latency.json; the host's log to out/bench/turn_latency_host.log.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.media_load import CpuSample, HostProcess, cpu_model, wait_quiet
from bench.stats import percentile
from bench.turn_calls import QUIET_S, SCRIPT, VOICED_DBFS, CallResult, TurnResult, attach_host_marks, drive_call
from switchboard.redis_server import EmbeddedRedis
from switchboard.session_models import CallSession
from switchboard.session_store import SessionStore, connect_redis
from switchboard.tokens import Purpose, TokenSigner

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "out" / "bench"
JSON_PATH = OUT_DIR / "turn_latency.json"
HOST_LOG = OUT_DIR / "turn_latency_host.log"
ACS_RATE = 24000
BUDGET_TURN_MS = 1200.0
BUDGET_OVERHEAD_MS = 30.0
BUDGET_BARGE_IN_MS = 150.0
START_TIMEOUT_S = 120.0  # the host loads and warms up its engines before /health answers
QUIET_WAIT_S = 5.0  # before each call, wait (at most this long) for the machine to go quiet
OTHER_CPU_PCT = 20.0  # other processes used more than this during a call: say its figures may be skewed


# --- statistics ------------------------------------------------------------------------------------


def stats(values: Iterable[float]) -> dict[str, float]:
    xs = [v for v in values if math.isfinite(v)]
    return {"p50": percentile(xs, 50), "p95": percentile(xs, 95), "max": max(xs) if xs else math.nan, "n": len(xs)}


def _ms(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.0f}"


def _s(value_ms: float) -> str:
    return "-" if not math.isfinite(value_ms) else f"{value_ms / 1000:.2f} s"


def verdict(st: dict[str, float], budget: float | None) -> str:
    if budget is None or not st["n"]:
        return ""
    if st["p50"] > budget:
        return f"MISSED (p50 +{st['p50'] - budget:.0f} ms)"
    if st["p95"] > budget:
        return "p50 met, p95 over"
    return "met"


# --- the host and the calls -------------------------------------------------------------------------


def start_host(redis: EmbeddedRedis, log_path: Path = HOST_LOG, max_calls: int = 16) -> HostProcess:
    host = HostProcess(redis.url, secret=secrets.token_urlsafe(32), bot_token=secrets.token_urlsafe(24),
                       log_path=log_path)
    host.env.update({"PIPELINE": "cascade", "LOG_LEVEL": "WARNING", "MEDIA_MAX_CALLS": str(max_calls)})
    host.env.pop("ECHO_PROMPT_MS", None)
    for name in ("CHAT_ENGINE", "STT_ENGINE", "TTS_ENGINE", "OPENAI_BASE_URL"):  # the embedded engines only
        host.env.pop(name, None)
    started = time.monotonic()
    host.start(timeout=START_TIMEOUT_S)
    print(f"host pid {host.pid} on port {host.port}: healthy after {time.monotonic() - started:.1f} s "
          "(engines loaded and warmed up)", flush=True)
    return host


async def seed(store: SessionStore) -> tuple[str, str]:
    """A session as the incoming-call handler stores it (tests/support/media_harness.seed_call): banking, `auth`."""
    call_id = f"bench-turn-{uuid.uuid4().hex[:10]}"
    await store.create(CallSession(call_id=call_id, scenario="banking", current_agent="auth",
                                   caller="+14255550123", callee="+18005550100"))
    return call_id, store.issue_token(call_id, Purpose.MEDIA, 3600)


async def run_calls(host: HostProcess, redis: EmbeddedRedis, voices: dict[str, bytes], labels: list[str],
                    offset_s: float) -> list[CallResult]:
    """Calls at once (one label: a single call), the k-th `k * offset_s` after the first."""
    store = SessionStore(connect_redis(redis.url), TokenSigner(host.secret), ttl_seconds=3600)
    try:
        seeded = [await seed(store) for _ in labels]
        base = f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token="
        cpu0 = host.cpu(redis.pid)
        done = await asyncio.gather(*(drive_call(label, call_id, base + token, voices, delay_s=k * offset_s)
                                      for k, (label, (call_id, token)) in enumerate(zip(labels, seeded, strict=True))))
        cpu = cpu_use(cpu0, host.cpu(redis.pid))
        await asyncio.to_thread(host.wait_idle, 20.0)  # the host writes the last turns as the call closes
        results = []
        for result, _media in done:
            attach_host_marks(result, await store.load(result.call_id))
            result.cpu = cpu
            results.append(result)
        return results
    finally:
        await store.close()


def cpu_use(a: CpuSample, b: CpuSample) -> dict[str, float]:
    """% of one core used between two samples by the host, Redis, this bench, and everything else."""
    hz = os.sysconf("SC_CLK_TCK")
    seconds = max(b.at - a.at, 1e-6)
    cores = os.cpu_count() or 1
    def share(ticks_a: int, ticks_b: int) -> float:
        return 100 * (ticks_b - ticks_a) / max(b.machine_total - a.machine_total, 1) * cores

    machine = share(a.machine_busy, b.machine_busy)
    steal, softirq = share(a.machine_steal, b.machine_steal), share(a.machine_softirq, b.machine_softirq)
    host = 100 * (b.host_ticks - a.host_ticks) / hz / seconds
    redis = 100 * (b.redis_ticks - a.redis_ticks) / hz / seconds
    bench = 100 * (b.self_ticks - a.self_ticks) / hz / seconds
    return {"host": round(host, 1), "redis": round(redis, 1), "bench": round(bench, 1), "steal": round(steal, 1),
            "other": round(max(0.0, machine - host - redis - bench - steal - softirq), 1)}


def synthesize_lines(texts: Iterable[str]) -> dict[str, bytes]:
    """Every caller line, synthesized once (before the calls, so it never competes with the host)."""
    from local_stack.callers.scripted import telephone_voice  # noqa: PLC0415 - loads the engines' audio code
    from media_host.engines.embedded.build import get_hibari_tts  # noqa: PLC0415

    tts = get_hibari_tts()
    speak = telephone_voice(tts, ACS_RATE)

    async def all_lines() -> dict[str, bytes]:
        return {text: await speak(text) for text in dict.fromkeys(texts)}

    return asyncio.run(all_lines())


def describe_call(call: CallResult) -> list[str]:
    tools = ", ".join(f"{name}:{'ok' if ok else 'fail'}" for name, ok in call.tools)
    cpu = ", ".join(f"{k} {v:.0f}%" for k, v in call.cpu.items())
    lines = [f"{call.label} ({call.call_id}): {call.seconds:.0f} s, greeting after {_ms(call.greeting_ms)} ms, "
             f"ended with agent {call.final_agent}; CPU (% of a core) {cpu}; tools {tools}"]
    if call.error:
        lines.append(f"  ERROR: {call.error}")
    for t in call.turns:
        host_total = t.host.get("total", math.nan)
        barge = f" barge-in {_ms(t.client_barge_in_ms)}/{_ms(t.host_barge_in_ms)} ms" if t.barge_in else ""
        lines.append(f"  {t.index}. [{t.listening_agent or '?'}] {t.text!r} -> heard {t.heard!r}; first audio "
                     f"{_ms(t.client_total_ms)} ms (host {_ms(host_total)}){barge}; "
                     f"{t.reply_agent or '?'}{' (interrupted)' if t.reply_interrupted else ''}: {t.reply_text[:70]!r}"
                     + (f"  FAILURE: {t.failure}" if t.failure else ""))
    if call.unplanned_stops or call.unplanned_barge_ins:
        lines.append(f"  unplanned: {len(call.unplanned_stops)} StopAudio, barge-ins {call.unplanned_barge_ins}")
    return lines


# --- the report -------------------------------------------------------------------------------------

Row = tuple[str, dict[str, float], float | None]


def _host(turns: list[TurnResult], key: str) -> list[float]:
    return [t.host[key] for t in turns if key in t.host]


def _gap(turns: list[TurnResult]) -> list[float]:
    """What the caller waited minus what the host measured (VAD dating, transit; or marks that are off)."""
    return [t.client_total_ms - t.host["total"] for t in turns
            if "total" in t.host and math.isfinite(t.client_total_ms)]


def _auth(turns: list[TurnResult], auth: bool) -> list[TurnResult]:
    """The turns the `auth` agent listened to (900 ms window), or the others (600 ms)."""
    return [t for t in turns if (t.listening_agent == "auth") == auth]


def _diff(turns: list[TurnResult], a: str, b: str) -> list[float]:
    return [t.host[a] - t.host[b] for t in turns if a in t.host and b in t.host]


def main_rows(turns: list[TurnResult]) -> list[Row]:
    answered = [t for t in turns if math.isfinite(t.client_total_ms)]
    rows: list[Row] = [
        ("turn: end of speech -> first audio (caller)", stats(t.client_total_ms for t in answered), BUDGET_TURN_MS),
    ]
    for auth, name in ((True, "auth (900 ms window)"), (False, "others (600 ms window)")):
        rows.append((f"  listening agent {name}", stats(t.client_total_ms for t in _auth(answered, auth)),
                     BUDGET_TURN_MS))
    rows += [
        ("turn: host's own total", stats(_host(turns, "total")), BUDGET_TURN_MS),
        ("pipeline overhead (host: total - window - engines)", stats(_host(turns, "overhead")), BUDGET_OVERHEAD_MS),
        ("  replies by the same agent", stats(_host([t for t in turns if not t.handoff], "overhead")),
         BUDGET_OVERHEAD_MS),
        ("  replies after a handoff (greeting first)", stats(_host([t for t in turns if t.handoff], "overhead")),
         BUDGET_OVERHEAD_MS),
        ("barge-in: voiced onset -> StopAudio (caller)",
         stats(t.client_barge_in_ms for t in turns if t.barge_in), BUDGET_BARGE_IN_MS),
        ("barge-in: host's reaction_ms (VAD onset -> stop)",
         stats(t.host_barge_in_ms for t in turns if t.barge_in), BUDGET_BARGE_IN_MS),
    ]
    return rows


def stage_rows(turns: list[TurnResult]) -> list[Row]:
    return [
        ("silence window: eos_detected (all)", stats(_host(turns, "eos_detected")), None),
        ("  listening agent auth (900 ms)", stats(_host(_auth(turns, True), "eos_detected")), None),
        ("  listening agent others (600 ms)", stats(_host(_auth(turns, False), "eos_detected")), None),
        ("STT engine (whisper decode)", stats(_host(turns, "stt_engine")), None),
        ("  eos_detected -> stt_done (with queueing)", stats(_diff(turns, "stt_done", "eos_detected")), None),
        ("LLM engine to first token (brain)", stats(_host(turns, "llm_engine")), None),
        ("  stt_done -> first_token", stats(_diff(turns, "first_token", "stt_done")), None),
        ("TTS engine to first chunk (hibari)", stats(_host(turns, "tts_engine")), None),
        ("  first_token -> first_tts_chunk", stats(_diff(turns, "first_tts_chunk", "first_token")), None),
        ("  first_tts_chunk -> first_audio_out", stats(_diff(turns, "first_audio_out", "first_tts_chunk")), None),
        ("caller total - host total, same agent replies", stats(_gap([t for t in turns if not t.handoff])), None),
        ("caller total - host total, after a handoff", stats(_gap([t for t in turns if t.handoff])), None),
    ]


def table(rows: list[Row], budgets: bool = True) -> list[str]:
    width = max(len(r[0]) for r in rows)
    head = f"{'metric':<{width}}  {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'n':>3}"
    if budgets:
        head += f"  {'budget':>7}  verdict"
    out = [head, "-" * len(head)]
    for name, st, budget in rows:
        line = f"{name:<{width}}  {_ms(st['p50']):>7} {_ms(st['p95']):>7} {_ms(st['max']):>7} {st['n']:>3}"
        if budgets:
            line += f"  {_ms(budget) if budget else '':>7}  {verdict(st, budget)}"
        out.append(line)
    return out


def where_time_goes(turns: list[TurnResult]) -> list[str]:
    """Per listening agent: the caller's p50 against the medians of each stage, and what makes a miss."""
    answered = [t for t in turns if math.isfinite(t.client_total_ms)]
    others_window = percentile(_host(_auth(answered, False), "eos_detected"), 50)
    lines = ["where the time goes (medians in ms; STT/LLM/TTS are the engines' own time, overhead the rest of the "
             "host's total, caller-host the part the host's clock does not see):"]
    for name, sub in (("all lines", answered), ("auth listening", _auth(answered, True)),
                      ("others listening", _auth(answered, False))):
        if not sub:
            continue
        c50 = percentile([t.client_total_ms for t in sub], 50)
        window = percentile(_host(sub, "eos_detected"), 50)
        engines = {k: percentile(_host(sub, f"{k}_engine"), 50) for k in ("stt", "llm", "tts")}
        overhead = percentile(_host(sub, "overhead"), 50)
        gap = percentile(_gap(sub), 50)
        line = (f"  {name:<17} (n={len(sub):>2}) caller p50 {c50:.0f} = window {window:.0f} + {c50 - window:.0f} after "
                f"it (STT {engines['stt']:.0f}, LLM {engines['llm']:.0f}, TTS first chunk {engines['tts']:.0f}, "
                f"overhead {_ms(overhead)}, caller-host {_ms(gap)})")
        lines.append(line)
        if c50 > BUDGET_TURN_MS:
            miss = c50 - BUDGET_TURN_MS
            engine_sum = sum(v for v in engines.values() if math.isfinite(v))
            why = (f"    misses {BUDGET_TURN_MS:.0f} ms by {miss:.0f} ms: the silence window (a setting) is "
                   f"{100 * window / c50:.0f}% of the turn, the engines {100 * engine_sum / c50:.0f}%, the pipeline's "
                   f"overhead {100 * overhead / c50 if math.isfinite(overhead) else 0:.0f}%")
            if window - others_window > 50:
                shorter = c50 - window + others_window
                why += (f"; with the others' window ({others_window:.0f} ms) it would be ~{shorter:.0f} ms, "
                        f"{'within' if shorter <= BUDGET_TURN_MS else 'still over'} budget")
            lines.append(why)
    return lines


def metrics_check(samples: dict[str, float], calls: list[CallResult]) -> list[str]:
    """The host's /metrics histogram against the sessions: what `switchboard_turn_latency_ms` counts."""
    def hist(mark: str) -> tuple[float, float]:
        key = f'{{mark="{mark}"}}'
        count = samples.get(f"switchboard_turn_latency_ms_count{key}", 0.0)
        return count, samples.get(f"switchboard_turn_latency_ms_sum{key}", 0.0) / count if count else math.nan

    agent = [r for c in calls for r in c.host_turns if r.get("turn") == "agent" and r.get("latency_ms")]
    replies = [r["latency_ms"] for r in agent if "eos_detected" in r["latency_ms"]]
    others = [r["latency_ms"] for r in agent if "eos_detected" not in r["latency_ms"]]
    played = [m["total"] for m in replies if "total" in m]
    extra = [m["total"] for m in others if "total" in m]
    count, mean = hist("total")
    barge_count, _ = hist("barge_in")
    barge_events = sum(1 for c in calls for r in c.host_turns if r.get("event") == "barge_in")
    return [
        f'/metrics switchboard_turn_latency_ms{{mark="total"}}: count {count:.0f}, mean {_ms(mean)} ms. The sessions '
        f"hold {len(played)} reply totals (mean {_ms(statistics.fmean(played) if played else math.nan)} ms) + "
        f"{len(extra)} from agent turns that answer no caller speech (greetings: mean "
        f"{_ms(statistics.fmean(extra) if extra else math.nan)} ms, the time to synthesize them); "
        f"{len(replies) - len(played)} interrupted replies have no total at all",
        f'/metrics mark="barge_in": count {barge_count:.0f}; the sessions hold {barge_events} barge_in events',
    ]


def failures(calls: list[CallResult]) -> list[str]:
    out = []
    for call in calls:
        if call.error:
            out.append(f"{call.label}: {call.error}")
        for t in call.turns:
            if t.failure:
                out.append(f"{call.label} line {t.index} {t.text!r}: {t.failure}")
            elif t.caller_turns > 1:
                out.append(f"{call.label} line {t.index} {t.text!r}: the host split it into {t.caller_turns} turns")
            if t.leaked_frames:
                out.append(f"{call.label} line {t.index}: {t.leaked_frames} agent frames arrived after StopAudio")
        if call.unplanned_stops or call.unplanned_barge_ins:
            out.append(f"{call.label}: unplanned barge-ins (the caller talked over the agent by accident?): "
                       f"{len(call.unplanned_stops)} StopAudio, host events {call.unplanned_barge_ins}")
    return out


def consistency(turns: list[TurnResult]) -> list[str]:
    """Marks that do not add up: turns without a host total, negative or large overheads."""
    out = []
    no_total = [t for t in turns if t.host and "total" not in t.host]
    if no_total:
        out.append(f"{len(no_total)} reply turns have marks but no total/first_audio_out (interrupted replies: "
                   + ", ".join(f"{t.call}#{t.index}" for t in no_total) + ")")
    no_marks = [t for t in turns if not t.host and t.caller_turns and not t.failure]
    if no_marks:
        out.append(f"{len(no_marks)} answered lines have no host latency marks: "
                   + ", ".join(f"{t.call}#{t.index}" for t in no_marks))
    odd = [t for t in turns if "overhead" in t.host and not -5 <= t.host["overhead"] <= 100]
    for t in odd:
        out.append(f"{t.call}#{t.index} {t.text!r}: overhead {t.host['overhead']:.0f} ms (marks {t.host})")
    handoff_gap = percentile(_gap([t for t in turns if t.handoff]), 50)
    if handoff_gap < -20:
        out.append(f"after a handoff the host's total is {-handoff_gap:.0f} ms (p50) later than the first audio the "
                   "caller got (the new agent's greeting): the turn's marks time the answer queued behind it")
    far = [t for t in turns if "total" in t.host and math.isfinite(t.client_total_ms)
           and abs(t.client_total_ms - t.host["total"]) > 150]
    for t in far:
        out.append(f"{t.call}#{t.index} {t.text!r}: the caller waited {t.client_total_ms:.0f} ms, the host says "
                   f"{t.host['total']:.0f} ms")
    return out


def header_lines(args: argparse.Namespace) -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        "turn latency: speech cascade (silero VAD -> Whisper tiny.en -> offline brain -> hibari), ACS 24 kHz, loopback",
        f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs ({usable} usable); host, Redis and the callers share them",
        f"Python {platform.python_version()}, websockets {importlib.metadata.version('websockets')}, "
        f"{platform.system()} {platform.release()}",
        f"calls: {args.calls} one after another, then {args.concurrent} at once (offset {args.offset:g} s); "
        f"{len(SCRIPT)} lines each ({sum(1 for line in SCRIPT if line.interrupt_after_s is not None)} barge-ins); "
        f"the caller speaks {QUIET_S:g} s after the agent's last frame",
        f"caller audio: hibari, through 8 kHz, at 24 kHz; end of speech = last frame above {VOICED_DBFS:g} dBFS RMS",
        f"budgets: turn <= {BUDGET_TURN_MS:g} ms p50, overhead <= {BUDGET_OVERHEAD_MS:g} ms, "
        f"barge-in <= {BUDGET_BARGE_IN_MS:g} ms",
    ]


def section(title: str, calls: list[CallResult]) -> tuple[list[str], dict[str, Any]]:
    turns = [t for c in calls for t in c.turns]
    lines = [f"\n{title}", *table(main_rows(turns)), "", "per stage (host marks, ms after the last voiced audio):",
             *table(stage_rows(turns), budgets=False), "", *where_time_goes(turns)]
    fails = failures(calls)
    answered = sum(1 for t in turns if math.isfinite(t.client_total_ms) and not t.failure)
    lines.append(f"lines answered: {answered}/{len(turns)}")
    lines += [f"FAILURE: {f}" for f in fails]
    lines += [f"note: {n}" for n in consistency(turns)]
    busy = [f"{c.label} {c.cpu['other']:.0f}%" for c in calls if c.cpu.get("other", 0.0) > OTHER_CPU_PCT]
    if busy:
        lines.append(f"note: other processes used CPU during {', '.join(busy)} (% of one core; 2 cores in all): "
                     "those calls' figures may be skewed")

    def dump(rows: list[Row]) -> dict[str, Any]:
        return {name.strip(): {**{k: (None if math.isnan(v) else round(v, 1)) for k, v in st.items()},
                               "budget": budget, "verdict": verdict(st, budget) or None}
                for name, st, budget in rows}

    doc = {"metrics": dump(main_rows(turns)), "stages": dump(stage_rows(turns)), "failures": fails,
           "notes": consistency(turns), "where_time_goes": where_time_goes(turns),
           "calls": [c.as_json() for c in calls]}
    return lines, doc


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3, help="banking calls one after another (default 3)")
    parser.add_argument("--concurrent", type=int, default=2, help="then this many at once (0: skip; default 2)")
    parser.add_argument("--offset", type=float, default=0.1,
                        help="seconds between the concurrent calls' starts (default 0.1: their lines end about "
                             "that far apart, so their transcriptions overlap)")
    parser.add_argument("--json", type=Path, default=JSON_PATH)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every line of every call as it ends")
    return parser.parse_args(argv)


def _say(verbose: bool) -> Callable[[list[str]], None]:
    def out(lines: list[str]) -> None:
        for line in lines if verbose else lines[:1]:
            print(line, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    for line in header_lines(args):
        print(line, flush=True)
    voices = synthesize_lines(line.text for line in SCRIPT)
    HOST_LOG.unlink(missing_ok=True)
    redis = EmbeddedRedis()
    redis.start()
    host: HostProcess | None = None
    sequential: list[CallResult] = []
    concurrent: list[CallResult] = []
    report = _say(args.verbose)
    scraped: dict[str, float] = {}
    try:
        host = start_host(redis)
        for k in range(args.calls):
            wait_quiet(QUIET_WAIT_S)
            (call,) = asyncio.run(run_calls(host, redis, voices, [f"call{k + 1}"], 0.0))
            sequential.append(call)
            report(describe_call(call))
        if args.concurrent > 0:
            wait_quiet(QUIET_WAIT_S)
            labels = [f"pair{k + 1}" for k in range(args.concurrent)]
            concurrent = asyncio.run(run_calls(host, redis, voices, labels, args.offset))
            for call in concurrent:
                report(describe_call(call))
        scraped = host.metrics()
    finally:
        code = host.stop() if host is not None else None
        redis.stop()
    print("\n" + "=" * 110)
    for line in header_lines(args):
        print(line)
    doc: dict[str, Any] = {"header": header_lines(args), "host_exit_code": code,
                           "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
                           "script": [{"text": ln.text, "interrupt_after_s": ln.interrupt_after_s} for ln in SCRIPT],
                           "budgets_ms": {"turn_p50": BUDGET_TURN_MS, "overhead": BUDGET_OVERHEAD_MS,
                                          "barge_in": BUDGET_BARGE_IN_MS}}
    if sequential:
        lines, doc["sequential"] = section(f"{len(sequential)} calls, one at a time", sequential)
        print("\n".join(lines))
    if concurrent:
        lines, doc["concurrent"] = section(f"{len(concurrent)} calls at once (started {args.offset:g} s apart)",
                                           concurrent)
        print("\n".join(lines))
    if scraped:
        doc["metrics_check"] = metrics_check(scraped, sequential + concurrent)
        print("\n" + "\n".join(doc["metrics_check"]))
    if code not in (0, None):
        print(f"note: the host exited with {code}; see {HOST_LOG.relative_to(ROOT)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    print(f"\nresults: {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}; "
          f"host log: {HOST_LOG.relative_to(ROOT)}; took {time.monotonic() - started:.0f} s")
    return 0


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
