"""The host's own ceiling for bench/load.py: bench.media_load's echo-pipeline steps (PIPELINE=echo, 20 ms
frames at real-time pace, every frame timed), read as calls per core.

The media budget is media_load's: p99 added latency <= 5 ms and 0 late frames (host-counted). The host
is one process running one asyncio thread, so it can use at most one core whatever the machine has;
calls per core is the largest N within budget for that one core. The host's measured CPU at that N and
the cores the machine has (shared with Redis and the load clients) are reported beside it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from bench import media_load as ml
from switchboard.redis_server import EmbeddedRedis

HOST_CORES = 1  # one asyncio thread (uvloop): the most the host process can use


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_ceiling(calls: list[int], seconds: float, transports: list[str], quiet_wait: float,
                json_path: Path) -> dict[str, dict[str, Any]]:
    """media_load's steps for each transport on a fresh echo host; prints its rows as they are measured."""
    wav = ml.CALLER_WAV
    if not wav.exists():
        ml.make_caller_wav(wav)
    pcm24 = ml.read_wav(wav)
    cfg = ml.Config(calls=calls, seconds=seconds, ramp=2.0, workers=2, stop_p99_ms=4 * ml.BUDGET_P99_MS,
                    json_path=json_path, wav=wav, quiet_wait=quiet_wait)
    (ml.OUT_DIR / "media_host.log").unlink(missing_ok=True)
    print(f"\nhost ceiling: echo pipeline, steps {calls}, {seconds:g} s measured per step "
          f"(budget p99 <= {ml.BUDGET_P99_MS:g} ms, 0 late frames)", flush=True)
    redis = EmbeddedRedis()
    redis.start()
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    try:
        for transport in transports:
            results[transport] = ml.run_transport(transport, redis, pcm24, cfg)
    finally:
        redis.stop()
    print(f"  (host ceiling took {time.monotonic() - started:.0f} s)", flush=True)
    return results


def summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per transport and overall: the largest N within budget and what it means per core."""
    per: dict[str, Any] = {}
    for transport, res in results.items():
        steps: list[ml.Step] = res["steps"]
        held = [s for s in steps if s.within_budget()]
        best = max(held, key=lambda s: s.n) if held else None
        miss = next((s for s in steps if not s.within_budget() and (best is None or s.n > best.n)), None)
        doc: dict[str, Any] = {"label": res["label"], "largest_n_within_budget": best.n if best else None,
                               "first_miss": {"n": miss.n, "why": miss.misses()} if miss else None,
                               "every_step_held": best is not None and miss is None}
        if best is not None:
            doc.update({"p99_ms_at_n": round(best.p99_ms, 2), "host_cpu_pct_at_n": round(best.host_cpu_pct, 1),
                        "other_cpu_pct_at_n": round(best.other_cpu_pct, 1),
                        "calls_per_core": best.n / HOST_CORES,
                        "calls_per_busy_core": (round(best.n / (best.host_cpu_pct / 100))
                                                if best.host_cpu_pct > 0 else None)})
        per[transport] = doc
    ceilings = [d["calls_per_core"] for d in per.values() if d.get("calls_per_core") is not None]
    lowest = min(ceilings) if len(ceilings) == len(per) and per else None
    at_least = any(d["every_step_held"] and d.get("calls_per_core") == lowest for d in per.values())
    # A transport that held no step: its ceiling is below the smallest step measured.
    below = min((d["first_miss"]["n"] for d in per.values() if d["largest_n_within_budget"] is None), default=None)
    return {"transports": per, "calls_per_core": lowest, "calls_per_core_is_lower_bound": at_least,
            "calls_per_core_below": below / HOST_CORES if below is not None else None,
            "host_cores": HOST_CORES, "machine_cores": usable_cores(),
            "basis": (f"the largest N within budget divided by the {HOST_CORES} core the host process can use "
                      f"(one asyncio thread); the machine has {usable_cores()} cores, shared with Redis and the "
                      "load clients")}


def report(results: dict[str, dict[str, Any]], doc: dict[str, Any]) -> list[str]:
    lines = [f"\nHOST CEILING (PIPELINE=echo; budget p99 <= {ml.BUDGET_P99_MS:g} ms and 0 late frames)",
             "  columns as in `make bench-media`: p50/p99/max added latency (frame sent -> echoed back), late = host's "
             "late frames, host CPU% = % of one core, other% = other processes on the machine"]
    for transport, res in results.items():
        lines += [f"\n  {res['label']}", "  " + ml.table_header()]
        lines += ["  " + ml.table_row(s) for s in res["steps"]]
        d = doc["transports"][transport]
        if d["largest_n_within_budget"] is None:
            lines.append(f"  no step held the budget: N={d['first_miss']['n']}: {d['first_miss']['why']}")
            continue
        lines.append(f"  largest N within budget: {d['largest_n_within_budget']} (p99 {d['p99_ms_at_n']} ms, host "
                     f"{d['host_cpu_pct_at_n']}% of one core, other processes {d['other_cpu_pct_at_n']}%)")
        if d["first_miss"]:
            lines.append(f"  first step over budget: N={d['first_miss']['n']}: {d['first_miss']['why']}")
        else:
            lines.append("  every step held the budget: the ceiling is above the largest step measured")
        if res["stopped_early"]:
            lines.append(f"  {res['stopped_early']}")
        lines += [f"  note: {n}" for n in ml.notes(res["steps"])]
    total = doc["calls_per_core"]
    lines.append("")
    if total is None:
        below = doc["calls_per_core_below"]
        lines.append(f"  CEILING: below {below:g} calls per core: a transport held the budget at no step, not even "
                     f"N={below:g} ({doc['basis']})" if below is not None else "  CEILING: - (no step ran)")
    else:
        busy = [d["calls_per_busy_core"] for d in doc["transports"].values()
                if d.get("calls_per_busy_core") and d["host_cpu_pct_at_n"] >= 50]
        bound = "at least " if doc["calls_per_core_is_lower_bound"] else ""
        lines.append(f"  CEILING: {bound}{total:g} calls per core, the lower of the transports ({doc['basis']})")
        if busy:
            lines.append(f"  (normalised by the host's measured CPU at that N it would be ~{min(busy)} calls per fully "
                         "busy core: an extrapolation, latency rises before a core is saturated)")
    return lines


def clean(value: Any) -> Any:
    """NaN -> None, recursively, for the JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def steps_json(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {t: {"label": r["label"], "idle_rss_mb": r["idle_rss_mb"], "stopped_early": r["stopped_early"],
                "host_exit_code": r["host_exit_code"],
                "steps": [clean({**vars(s), "within_budget": s.within_budget()}) for s in r["steps"]]}
            for t, r in results.items()}
