"""How fast the control plane answers a call: `python -m bench.control` (`make bench-control`).

Two figures decide whether a caller hears ringing or nothing:

1. Cold start: `import function_app` (what the Functions worker does before it indexes any function,
   including `runtime.startup()`: settings and agent definitions), timed inside a fresh interpreter
   --imports times (median, min, max), with the process's RSS after the import and a bare interpreter's
   RSS for reference.
2. Answering: --events IncomingCall events through `callbacks.eventgrid.on_incoming_event`, the real Call
   Automation SDK against LocalAcs (HMAC-verified, over loopback HTTP), real Redis (embedded valkey, or
   REDIS_URL) and the real DurableOrchestrationClient against a fake Durable webhook. Per event:
   - event to answer: `on_incoming_event` called -> the answer request arriving at LocalAcs;
   - our work: `Answered.answer_ms` (de-duplication claim, routing, session seed, tokens, the SDK's
     options; everything before the answer request leaves);
   - event to session: until `on_incoming_event` returns (answered, session updated, start_new done).
   The first event (a cold worker: the SDK is imported, the clients connect) is reported on its own;
   the next --warmup are left out. Then a second row with the events arriving --burst at a time, as
   Event Grid delivers a burst of calls.

Design budgets: import <= 1 s (median), event to answer <= 50 ms (p99). They are printed alongside,
never asserted: the script exits 0 once it has run. Results also go to out/bench/control.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import logging
import math
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from azure.durable_functions import DurableOrchestrationClient
from azure.durable_functions.models.utils.http_utils import _close_session

from bench.stats import percentile
from callbacks import eventgrid, runtime
from callbacks.incoming import Answered
from callbacks.runtime import Worker
from local_stack.acs import LocalAcs, incoming_call_event, parse_incoming_call_context
from local_stack.durable.recording import DurableWebhook
from switchboard.call_records import open_record_store
from switchboard.redis_server import EmbeddedRedis
from switchboard.services import SharedServices
from switchboard.session_store import SessionStore, connect_redis
from switchboard.settings import load_settings
from switchboard.tokens import TokenSigner

ROOT = Path(__file__).resolve().parent.parent
JSON_PATH = ROOT / "out" / "bench" / "control.json"
BUDGET_IMPORT_S = 1.0
BUDGET_ANSWER_MS = 50.0
BANKING, CALLER = "+18005550100", "+14255550123"

_IMPORT = """
import json, sys, time
from bench.stats import percentile
started = time.perf_counter()
{imports}
elapsed = time.perf_counter() - started
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({{"s": elapsed, "rss_kb": rss, "modules": len(sys.modules)}}))
"""


# --- statistics ------------------------------------------------------------------------------------


def stats(values: Iterable[float]) -> dict[str, float]:
    xs = [v for v in values if math.isfinite(v)]
    return {"p50": percentile(xs, 50), "p99": percentile(xs, 99), "max": max(xs) if xs else math.nan,
            "n": len(xs)}


def _ms(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.1f}"


# --- 1. import time and memory -----------------------------------------------------------------------


def run_import(imports: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _IMPORT.format(imports=imports)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure_imports(times: int) -> dict[str, Any]:
    bare = run_import("pass")
    runs = [run_import("import function_app") for _ in range(times)]
    seconds = [r["s"] for r in runs]
    return {"runs": times, "median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "rss_mb": statistics.median(r["rss_kb"] for r in runs) / 1024, "bare_rss_mb": bare["rss_kb"] / 1024,
            "modules": int(statistics.median(r["modules"] for r in runs)), "bare_modules": int(bare["modules"])}


# --- 2. event to answer --------------------------------------------------------------------------------


class TimedAcs(LocalAcs):
    """LocalAcs that notes when each answer request reaches it (before HMAC and parsing)."""

    def __init__(self, access_key: str) -> None:
        super().__init__(access_key)
        self.arrivals: dict[str, float] = {}  # correlation id -> perf_counter()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        if request.method == "POST" and request.path.endswith(":answer"):
            body = json.loads(await request.read() or b"{}")
            ctx = parse_incoming_call_context(str(body.get("incomingCallContext", "")))
            if ctx is not None:
                self.arrivals[ctx.correlation_id] = arrived
        return await super()._handle(request)


@dataclass
class Sample:
    to_answer_ms: float
    our_work_ms: float
    to_session_ms: float


@dataclass
class Stack:
    worker: Worker
    acs: TimedAcs
    durable: DurableWebhook
    client: Any
    samples: list[Sample] = field(default_factory=list)


@asynccontextmanager
async def open_stack(redis_url: str, records_dir: Path) -> AsyncIterator[Stack]:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    async with AsyncExitStack() as stack:
        acs = TimedAcs(key)
        await acs.start()
        stack.push_async_callback(acs.stop)
        durable = DurableWebhook()
        await durable.start()
        stack.push_async_callback(durable.stop)
        settings = load_settings(
            redis_url=redis_url, signing_secret=secrets.token_urlsafe(32), acs_endpoint=acs.endpoint,
            acs_access_key=key, acs_connection_string=None, callback_base_url="https://functions.example.test",
            media_host_public_url="wss://media.example.test", records_db_path=records_dir / "records.sqlite3",
            cosmos_endpoint=None, acs_resource_id=None, log_level="WARNING")
        assert settings.signing_secret is not None
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        store = SessionStore(connect_redis(redis_url), TokenSigner(settings.signing_secret.get_secret_value()),
                             ttl_seconds=settings.session_ttl_seconds, prefix=prefix)
        worker = Worker(settings, runtime.agents(), SharedServices(store), open_record_store(settings), None)
        runtime.use(worker)

        async def close() -> None:
            keys = [k async for k in store.redis.scan_iter(match=f"{prefix}*")]
            for start in range(0, len(keys), 500):
                await store.redis.delete(*keys[start:start + 500])
            await runtime.shutdown()
            await store.redis.connection_pool.disconnect()
            await _close_session()

        stack.push_async_callback(close)
        yield Stack(worker, acs, durable, DurableOrchestrationClient(durable.binding))


async def one_event(stack: Stack) -> Sample:
    event = incoming_call_event(BANKING, CALLER, correlation_id=str(uuid.uuid4()))
    call_id = event["data"]["correlationId"]
    started = time.perf_counter()
    answered = await eventgrid.on_incoming_event(event["eventType"], event["data"], stack.client)
    done = time.perf_counter()
    if not isinstance(answered, Answered) or answered.outcome != "answered" or answered.answer_ms is None:
        raise RuntimeError(f"event {call_id} was not answered: {answered}")
    return Sample((stack.acs.arrivals[call_id] - started) * 1000, answered.answer_ms, (done - started) * 1000)


async def run_events(stack: Stack, events: int, burst: int) -> list[Sample]:
    samples: list[Sample] = []
    while len(samples) < events:
        batch = min(burst, events - len(samples))
        samples.extend(await asyncio.gather(*(one_event(stack) for _ in range(batch))))
    return samples


async def measure_answers(redis_url: str, events: int, warmup: int, burst: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-control-") as records_dir:
        async with open_stack(redis_url, Path(records_dir)) as stack:
            cold = await one_event(stack)
            await run_events(stack, warmup, 1)
            sequential = await run_events(stack, events, 1)
            bursts = await run_events(stack, events, burst) if burst > 1 else []
            answers = sum(1 for r in stack.acs.requests if r.operation == "answer")
            starts = len(stack.durable.started())
    expected = 1 + warmup + events + len(bursts)
    if (answers, starts) != (expected, expected):
        raise RuntimeError(f"{answers} answers and {starts} session starts for {expected} events")

    def row(samples: list[Sample]) -> dict[str, Any]:
        return {"to_answer_ms": stats(s.to_answer_ms for s in samples),
                "our_work_ms": stats(s.our_work_ms for s in samples),
                "to_session_ms": stats(s.to_session_ms for s in samples)}

    return {"cold": {"to_answer_ms": cold.to_answer_ms, "our_work_ms": cold.our_work_ms,
                     "to_session_ms": cold.to_session_ms},
            "sequential": row(sequential), "burst": row(bursts) if bursts else None, "burst_size": burst}


@asynccontextmanager
async def redis() -> AsyncIterator[tuple[str, str]]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"], "REDIS_URL"
        return
    with EmbeddedRedis() as server:
        yield server.url, "embedded valkey"


# --- report ------------------------------------------------------------------------------------------


def verdict(value: float, budget: float) -> str:
    return "-" if not math.isfinite(value) else "within budget" if value <= budget else "OVER BUDGET"


def report(imports: dict[str, Any], answers: dict[str, Any], redis_kind: str) -> list[str]:
    lines = [
        "control plane: import time and IncomingCall -> answer latency",
        f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; "
        f"Python {platform.python_version()}; Redis: {redis_kind}; ACS: LocalAcs (loopback HTTP, HMAC); "
        "Durable: fake webhook (loopback HTTP)",
        "",
        f"import function_app (fresh interpreter, {imports['runs']} runs): median {imports['median_s']:.3f} s "
        f"(min {imports['min_s']:.3f}, max {imports['max_s']:.3f}); budget {BUDGET_IMPORT_S:g} s: "
        f"{verdict(imports['median_s'], BUDGET_IMPORT_S)}",
        f"RSS after the import: {imports['rss_mb']:.1f} MB ({imports['modules']} modules); "
        f"a bare interpreter: {imports['bare_rss_mb']:.1f} MB ({imports['bare_modules']} modules)",
        "",
    ]
    cold = answers["cold"]
    lines.append(f"first event (cold worker: SDK import, connections): event to answer {cold['to_answer_ms']:.1f} ms, "
                 f"our work {cold['our_work_ms']:.1f} ms, event to session {cold['to_session_ms']:.1f} ms")
    header = f"{'events':<22}{'n':>5}  {'metric':<16}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  budget"
    lines += ["", header, "-" * len(header)]
    rows = [("one at a time", answers["sequential"])]
    if answers["burst"]:
        rows.append((f"{answers['burst_size']} at once", answers["burst"]))
    for label, row in rows:
        for i, (metric, key) in enumerate((("event to answer", "to_answer_ms"), ("our work", "our_work_ms"),
                                           ("event to session", "to_session_ms"))):
            st = row[key]
            budget = (f"<= {BUDGET_ANSWER_MS:g} ms (p99): {verdict(st['p99'], BUDGET_ANSWER_MS)}"
                      if key == "to_answer_ms" else "")
            lines.append(f"{label if i == 0 else '':<22}{st['n']:>5}  {metric:<16}{_ms(st['p50']):>9}"
                         f"{_ms(st['p99']):>9}{_ms(st['max']):>9}  {budget}".rstrip())
    lines += ["", "event to answer: on_incoming_event called -> the answer request at LocalAcs; our work: "
              "Answered.answer_ms; event to session: on_incoming_event returned (start_new done)"]
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--imports", type=int, default=5, help="fresh interpreters timing the import (default 5)")
    parser.add_argument("--events", type=int, default=200, help="IncomingCall events per row (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="events left out after the first (default 10)")
    parser.add_argument("--burst", type=int, default=10,
                        help="events at once in the second row (default 10; 1: no second row)")
    parser.add_argument("--json", type=Path, default=JSON_PATH, help="where to write the results")
    return parser.parse_args(argv)


async def _answers(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    async with redis() as (url, kind):
        return await measure_answers(url, args.events, args.warmup, args.burst), kind


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("callbacks").setLevel(logging.WARNING)
    print(f"timing `import function_app` in {args.imports} fresh interpreters ...", flush=True)
    imports = measure_imports(args.imports)
    print(f"answering {1 + args.warmup + args.events * (2 if args.burst > 1 else 1)} IncomingCall events ...",
          flush=True)
    answers, redis_kind = asyncio.run(_answers(args))
    lines = report(imports, answers, redis_kind)
    print("\n" + "=" * 100)
    print("\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"imports": imports, "answers": answers, "redis": redis_kind,
                                     "budgets": {"import_s": BUDGET_IMPORT_S, "event_to_answer_ms": BUDGET_ANSWER_MS},
                                     "report": lines}, indent=2))
    shown = args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json
    print(f"\nresults: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
