"""How much conversation load one media host carries: `python -m bench.load` (`make bench-load`).

Two parts, each on its own host process (`python -m media_host`) against an embedded Redis:

1. Conversation load on the embedded speech cascade (silero VAD, Whisper tiny.en, the offline brain,
   hibari): N simulated banking callers at once (bench/turn_calls.py's script: six lines with two
   barge-ins and handoffs between agents), alternately over the ACS media socket (24 kHz PCM) and the
   AudioCodes Bot API (`raw/lpcm16`, 16 kHz, bearer token), their starts staggered. N steps up 1, 2,
   3, ... until turn latency p95 exceeds twice the design budget (2 x 1.2 s), a line gets no reply or
   a call fails. Per step: calls held (completed / started), the host's late frames, turn latency
   p50/p95/p99 and barge-in reaction p50/p95 as the callers measured them, host CPU (% of one core)
   and RSS per call, and errors (lines with no reply, sockets that ended in error, ERROR lines in the
   host's log).
2. The host's own ceiling on the passthrough pipeline (PIPELINE=echo): bench/media_load.py's steps
   (every 20 ms frame timed), read as calls per core: the largest N with p99 added latency <= 5 ms and
   0 late frames, for the one core the host process (one asyncio thread) can use.

Before each step the bench waits (briefly) for the machine to go quiet, and reports the CPU other
processes used during the step; a step that breaks the limits while others were busy runs again once.
Figures are measured, not asserted: it exits 0 once it has run. JSON goes to out/bench/load.json.
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
import sys
import time
from pathlib import Path
from typing import Any

from bench.load_calls import ConvStep, Target, run_conversation_step, synthesize_voices
from bench.load_ceiling import clean, report, run_ceiling, steps_json, summary, usable_cores
from bench.media_load import DISTURBED_PCT, STEAL_NOTE_PCT, cpu_model, machine_busy_pct, wait_quiet
from bench.stats import percentile
from bench.turn_calls import QUIET_S, SCRIPT
from bench.turn_latency import BUDGET_BARGE_IN_MS, BUDGET_TURN_MS, start_host
from switchboard.redis_server import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "out" / "bench"
JSON_PATH = OUT_DIR / "load.json"
HOST_LOG = OUT_DIR / "load_host.log"
STOP_P95_MS = 2 * BUDGET_TURN_MS  # stop stepping up once turn latency p95 exceeds twice the design budget


# --- conversation load ------------------------------------------------------------------------------


def steps_of(max_calls: int, step: int) -> list[int]:
    return sorted({1, *range(step, max_calls + 1, step)} - {0})


def over(step: ConvStep) -> str | None:
    """Why the ramp stops at this step, or None: it kept up."""
    why = []
    if step.no_reply:
        why.append(f"{len(step.no_reply)} lines got no reply")
    errors = sum(c.socket_error is not None for c in step.calls)
    if errors:
        why.append(f"{errors} calls ended in error")
    p95 = percentile(step.turn_ms, 95)
    if not p95 <= STOP_P95_MS:
        why.append(f"turn p95 {p95:.0f} ms > {STOP_P95_MS:.0f} ms")
    return ", ".join(why) or None


def run_conversation(args: argparse.Namespace) -> dict[str, Any]:
    script = SCRIPT[: args.lines]
    print(f"\nconversation load: synthesizing {len(script)} caller lines at 24 and 16 kHz ...", flush=True)
    voices = synthesize_voices([line.text for line in script])
    HOST_LOG.unlink(missing_ok=True)
    redis = EmbeddedRedis()
    redis.start()
    steps: list[ConvStep] = []
    stopped: str | None = None
    code: int | None = None
    idle_rss = math.nan
    try:
        host = start_host(redis, log_path=HOST_LOG, max_calls=max(16, 2 * args.max_calls))
        try:
            time.sleep(0.5)
            idle_rss = host.rss_mb()
            target = Target(host, redis, voices, script, idle_rss)
            print(f"  host idle RSS {idle_rss:.0f} MB (engines loaded)\n  " + conv_header(), flush=True)
            for n in steps_of(args.max_calls, args.step):
                step = conv_step(target, n, args)
                why = over(step)
                if why and step.cpu.get("other", 0.0) > DISTURBED_PCT:
                    print("  " + conv_row(step) + f"  (other processes {step.cpu['other']:.0f}% of a core: "
                          "running it again)", flush=True)
                    first = step
                    step = conv_step(target, n, args)
                    step.retried = f"first run disturbed (other processes {first.cpu['other']:.0f}%): {why}"
                    why = over(step)
                steps.append(step)
                print("  " + conv_row(step), flush=True)
                if why:
                    stopped = f"stopped at N={n}: {why}"
                    break
        finally:
            code = host.stop()
    finally:
        redis.stop()
    return {"steps": steps, "stopped": stopped, "idle_rss_mb": idle_rss, "host_exit_code": code}


def conv_step(target: Target, n: int, args: argparse.Namespace) -> ConvStep:
    waited, _ = wait_quiet(args.quiet_wait)
    step = asyncio.run(run_conversation_step(target, n, args.stagger, args.hold))
    step.quiet_wait_s = waited
    return step


CONV_COLUMNS = [("N", 3), ("held", 5), ("conc", 4), ("turn p50", 8), ("p95", 5), ("p99", 5), ("barge p50", 9),
                ("p95", 4), ("late", 5), ("host CPU%", 9), ("loop%", 5), ("peak MB", 7), ("MB/call", 7),
                ("no reply", 8), ("sock err", 8), ("ERROR log", 9), ("other%", 6), ("steal%", 6), ("", 4)]

CONV_LEGEND = f"""columns:
  held        calls completed / started (completed: every line answered, barge-ins stopped the agent, no error)
  conc        mean concurrent calls over the step (sum of call durations / the step's wall time)
  turn        caller's last voiced frame sent -> first agent frame back, ms (every answered line of the step)
  barge       caller's first voiced frame over the agent -> StopAudio (ACS) / playStream.stop (AudioCodes), ms
  late        outbound frames the host sent later than due (switchboard_late_frames_total, delta over the step)
  host CPU%   the host process, % of one core (the engines run in threads: it can exceed 100)
  loop%       of which its main thread, the one asyncio loop every call's sockets, VAD and playout share: at
              100% it is the host's limit whatever the cores; the rest is the engines' threads
  peak MB     the host's peak RSS during the step (sampled every second)
  MB/call     (peak MB - idle RSS with the engines loaded) / N; the first call also grows buffers once, so the
              marginal cost of a call is the slope between steps (printed below)
  no reply    lines the agent never answered; sock err: calls whose socket failed or was closed with an error
  ERROR log   ERROR/CRITICAL lines in the host's log during the step
  other%      CPU used meanwhile by processes that are not the host, Redis or this bench, % of one core
  steal%      CPU the hypervisor took from this VM meanwhile (/proc/stat steal), % of one core
  verdict     ok: kept up; STOP: turn p95 > {STOP_P95_MS:.0f} ms, a line without reply or a failed call"""


def _f(value: float, digits: int = 0) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{digits}f}"


def conv_header() -> str:
    return "  ".join(name.rjust(w) for name, w in CONV_COLUMNS)


def conv_row(s: ConvStep) -> str:
    cells = [str(s.n), f"{s.completed}/{s.started}", _f(s.mean_concurrency, 1),
             *(_f(percentile(s.turn_ms, q)) for q in (50, 95, 99)),
             *(_f(percentile(s.barge_ms, q)) for q in (50, 95)), str(s.late_frames),
             _f(s.cpu.get("host", math.nan)), _f(s.cpu.get("host_loop", math.nan)), _f(s.rss_peak_mb),
             _f(s.rss_per_call_mb, 1), str(len(s.no_reply)),
             str(sum(c.socket_error is not None for c in s.calls)), str(len(s.error_lines)),
             _f(s.cpu.get("other", math.nan)), _f(s.cpu.get("steal", math.nan)), "STOP" if over(s) else "ok"]
    return "  ".join(c.rjust(w) for c, (_, w) in zip(cells, CONV_COLUMNS, strict=True))


def conv_report(conv: dict[str, Any]) -> list[str]:
    steps: list[ConvStep] = conv["steps"]
    lines = ["\nCONVERSATION LOAD (PIPELINE=cascade, embedded engines; calls alternate ACS 24 kHz / AudioCodes "
             f"raw/lpcm16; host idle RSS {_f(conv['idle_rss_mb'])} MB)", CONV_LEGEND, "  " + conv_header()]
    lines += ["  " + conv_row(s) for s in steps]
    kept = [s for s in steps if not over(s)]
    if kept:
        best = max(kept, key=lambda s: s.n)
        lines.append(f"  largest N that kept up: {best.n} (turn p50 {_f(percentile(best.turn_ms, 50))} ms, p95 "
                     f"{_f(percentile(best.turn_ms, 95))} ms; budget p50 <= {BUDGET_TURN_MS:.0f} ms: "
                     f"{'met' if percentile(best.turn_ms, 50) <= BUDGET_TURN_MS else 'MISSED'}; barge-in p95 "
                     f"{_f(percentile(best.barge_ms, 95))} ms, budget {BUDGET_BARGE_IN_MS:.0f} ms)")
        per_call = best.cpu.get("host", math.nan) / best.mean_concurrency
        lines.append(f"  host CPU per concurrent call at N={best.n}: {_f(per_call)}% of a core")
        late = ", ".join(f"N={s.n} {100 * s.late_frames / s.frames_out:.2f}%" for s in steps if s.frames_out)
        lines.append(f"  late frames as a share of the agent frames sent: {late} (media budget: 0)")
        first = min(steps, key=lambda s: s.n)
        if best.n > first.n:
            slope = (best.rss_peak_mb - first.rss_peak_mb) / (best.n - first.n)
            lines.append(f"  memory per added call (peak RSS N={first.n} -> N={best.n}): {_f(slope, 1)} MB; the first "
                         f"call {_f(first.rss_peak_mb - conv['idle_rss_mb'])} MB over idle")
    else:
        lines.append("  no step kept up")
    lines.append(f"  {conv['stopped'] or 'every step kept up: the limit is above the largest N measured'}")
    for s in steps:
        lines += [f"  N={s.n}: FAILURE: {f}" for f in s.failures[:8]]
        lines += [f"  N={s.n}: host logged: {ln}" for ln in s.error_lines[:3]]
        if s.host_errors:
            lines.append(f"  N={s.n}: host error counters rose: {s.host_errors}")
        if s.dropped_frames:
            lines.append(f"  N={s.n}: the host dropped {s.dropped_frames} inbound frames (a pipeline fell behind)")
        if s.cpu.get("other", 0.0) > DISTURBED_PCT:
            lines.append(f"  N={s.n}: other processes used {s.cpu['other']:.0f}% of a core during the step: its "
                         "figures are pessimistic")
        if s.cpu.get("steal", 0.0) > STEAL_NOTE_PCT:
            lines.append(f"  N={s.n}: the hypervisor took {s.cpu['steal']:.0f}% of a core (steal) during the step")
        if s.retried:
            lines.append(f"  N={s.n}: measured twice; {s.retried}")
    if conv["host_exit_code"] not in (0, None):
        lines.append(f"  note: the cascade host exited with {conv['host_exit_code']}; see {HOST_LOG}")
    return lines


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--max-calls", type=int, default=16, help="conversation load: the largest N (default 16)")
    parser.add_argument("--step", type=int, default=1, help="conversation load: N = 1, then multiples of this")
    parser.add_argument("--stagger", type=float, default=2.0, help="seconds between the calls' starts (default 2)")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="keep each step's N lines busy this long, a finished call replaced by a new one "
                             "(default 0: one call per line, about 65 s with the whole script)")
    parser.add_argument("--lines", type=int, default=len(SCRIPT),
                        help=f"say only the first LINES of the {len(SCRIPT)}-line script (short runs; the barge-ins "
                             "are lines 4 and 6)")
    parser.add_argument("--seconds", type=float, default=10.0, help="host ceiling: measured seconds per step")
    parser.add_argument("--ceiling-calls", default="10,25,50,75,100,125,150,200",
                        help="host ceiling: comma-separated steps of N (echo pipeline)")
    parser.add_argument("--ceiling-transport", choices=["acs", "audiocodes", "both"], default="both")
    parser.add_argument("--skip-conversation", action="store_true", help="only the host ceiling")
    parser.add_argument("--skip-ceiling", action="store_true", help="only the conversation load")
    parser.add_argument("--quiet-wait", type=float, default=10.0,
                        help="before each step, wait up to this long for other load on the machine to stop")
    parser.add_argument("--json", type=Path, default=JSON_PATH)
    args = parser.parse_args(argv)
    if args.max_calls < 1 or args.step < 1 or not 1 <= args.lines <= len(SCRIPT):
        parser.error(f"--max-calls and --step need positive integers, --lines 1..{len(SCRIPT)}")
    if args.skip_conversation and args.skip_ceiling:
        parser.error("--skip-conversation and --skip-ceiling together leave nothing to run")
    args.ceiling_steps = sorted({int(x) for x in args.ceiling_calls.split(",") if x.strip()})
    if not args.ceiling_steps or args.ceiling_steps[0] < 1:
        parser.error("--ceiling-calls needs positive integers")
    return args


def header_lines(args: argparse.Namespace, busy_pct: float) -> list[str]:
    script = SCRIPT[: args.lines]
    barges = sum(1 for line in script if line.interrupt_after_s is not None)
    return [
        "load: conversation load on the speech cascade, and the host's ceiling on the echo pipeline (loopback)",
        f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs ({usable_cores()} usable); host, Redis and the callers "
        "share them",
        f"Python {platform.python_version()}, websockets {importlib.metadata.version('websockets')}, "
        f"{platform.system()} {platform.release()}",
        f"machine busy before the run: {busy_pct:.0f}% of one core (other processes)",
        f"conversation: banking script, {len(script)} lines ({barges} barge-ins), the caller speaks {QUIET_S:g} s "
        f"after the agent; N = {steps_of(args.max_calls, args.step)} (at most), starts {args.stagger:g} s apart, "
        f"hold {args.hold:g} s",
        f"budgets: turn <= {BUDGET_TURN_MS:.0f} ms p50 (the ramp stops at p95 > {STOP_P95_MS:.0f} ms), barge-in "
        f"<= {BUDGET_BARGE_IN_MS:.0f} ms; media: p99 <= 5 ms added latency and 0 late frames",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    head = header_lines(args, machine_busy_pct(1.0))
    print("\n".join(head), flush=True)
    conv: dict[str, Any] | None = None
    ceiling: dict[str, dict[str, Any]] | None = None
    if not args.skip_conversation:
        conv = run_conversation(args)
    if not args.skip_ceiling:
        transports = ["acs", "audiocodes"] if args.ceiling_transport == "both" else [args.ceiling_transport]
        ceiling = run_ceiling(args.ceiling_steps, args.seconds, transports, args.quiet_wait,
                              OUT_DIR / "media_load.json")
    print("\n" + "=" * 110 + "\n" + "\n".join(head))
    doc: dict[str, Any] = {"header": head, "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(),
                                                       "usable_cpus": usable_cores(),
                                                       "python": platform.python_version()},
                           "config": {k: v for k, v in vars(args).items() if k != "json"}}
    if conv is not None:
        print("\n".join(conv_report(conv)))
        doc["conversation"] = {"stopped": conv["stopped"], "idle_rss_mb": conv["idle_rss_mb"],
                               "host_exit_code": conv["host_exit_code"], "stop_p95_ms": STOP_P95_MS,
                               "largest_n_kept_up": max((s.n for s in conv["steps"] if not over(s)), default=None),
                               "steps": [clean(s.figures()) for s in conv["steps"]]}
    if ceiling is not None:
        ceiling_doc = summary(ceiling)
        print("\n".join(report(ceiling, ceiling_doc)))
        doc["ceiling"] = {**ceiling_doc, "runs": steps_json(ceiling)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nresults: {args.json}; host logs: {HOST_LOG.relative_to(ROOT)}, out/bench/media_host.log; "
          f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
