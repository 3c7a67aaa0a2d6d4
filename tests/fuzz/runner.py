"""The live fuzz run: every WebSocket protocol and HTTP endpoint of a running stack, at once, beside a
healthy call; then the figures, the checks and the findings.

    python -m tests.fuzz                      # three minutes, media host as a subprocess (`make fuzz`)
    python -m tests.fuzz --inputs 500         # 500 inputs per target instead
    python -m tests.fuzz --replay out/fuzz/acs-0-17.json

Input `i` of target `t` in a run seeded `s` is always the same input; a finding's input is saved to
out/fuzz/ for `--replay`. Exit status 1 when a finding was made, the healthy call was affected, or a
check after the run failed; the figures themselves never fail a run.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from random import Random
from typing import Any

import aiohttp

from switchboard.session_models import CallSession
from switchboard.tokens import Purpose
from tests.fuzz import live_functions, live_raw, scripts
from tests.fuzz.healthy import HealthReport, HealthyCall
from tests.fuzz.live_functions import Call, HttpInput
from tests.fuzz.live_raw import RawInput
from tests.fuzz.live_ws import WsContext, run_script
from tests.fuzz.logwatch import LogEvent
from tests.fuzz.mutate import rng_for
from tests.fuzz.report import Outcome, Tally, render, save_reproducer
from tests.fuzz.scripts import WsScript
from tests.fuzz.stack import Stack, checks_ok, post_checks
from tests.support.functions_harness import BANKING, CLINIC

WS_TARGETS = ("acs", "audiocodes", "browser")
FUNCTION_TARGETS = ("eventgrid", "callbacks", "call_apis")
TARGETS = (*WS_TARGETS, "media_http", "slowloris", *FUNCTION_TARGETS)
INPUT_TIMEOUT_S = 30.0
SLOWLORIS_WORKERS = 8
FuzzInput = WsScript | RawInput | HttpInput


@dataclass
class Plan:
    seed: int | str = 0
    inputs: int | None = 200  # per target; None: until `seconds` have passed
    seconds: float | None = None
    targets: tuple[str, ...] = TARGETS
    slowloris_s: float = 0.5  # how long each slowloris connection trickles its request in
    max_gap_s: float = 0.5  # the healthy call's longest acceptable wait between two frames


@dataclass
class Result:
    tally: Tally
    health: HealthReport | None
    checks: dict[str, str] = field(default_factory=dict)
    expected_errors: dict[str, int] = field(default_factory=dict)
    warnings: int = 0

    @property
    def ok(self) -> bool:
        return not self.tally.failed and (self.health is None or self.health.ok) and checks_ok(self.checks)

    def render(self) -> str:
        lines = [render(self.tally)]
        if self.health is not None:
            lines.append(self.health.render())
        lines.append("after the run: " + ", ".join(f"{k} {v}" for k, v in self.checks.items()))
        expected = ", ".join(f"{why} x{n}" for why, n in self.expected_errors.items()) or "none"
        lines.append(f"log: {self.warnings} WARNING lines (rejections), ERROR lines by design: {expected}")
        lines.append("machine load (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
                     + f" on {os.cpu_count()} cores")
        lines.append("RESULT: " + ("pass" if self.ok else "FAIL"))
        return "\n".join(lines)


class Runner:
    def __init__(self, stack: Stack, plan: Plan) -> None:
        self.stack, self.plan = stack, plan
        self.tally = Tally(plan.seed)
        self.pool: list[Call] = []
        self.ws = WsContext(stack.media_port, stack.store)
        self._http: aiohttp.ClientSession | None = None

    # --- inputs --------------------------------------------------------------------------------
    def generate(self, target: str, index: int) -> FuzzInput:
        rng: Random = rng_for(self.plan.seed, target, index)
        if target in WS_TARGETS:
            return scripts.GENERATORS[target](rng, index)
        if target == "media_http":
            return live_raw.raw_input(rng, index)
        if target == "slowloris":
            return live_raw.slowloris_input(rng, index, self.plan.slowloris_s)
        return live_functions.GENERATORS[target](rng, index, self.pool)

    async def execute(self, item: FuzzInput) -> Outcome:
        if isinstance(item, WsScript):
            return await run_script(item, self.ws)
        if isinstance(item, RawInput):
            return await live_raw.send_raw(item, self.stack.media_port)
        assert self._http is not None
        return await live_functions.send(item, self.stack.harness, self.pool, self._http)

    async def _one(self, target: str, index: int) -> None:
        item = self.generate(target, index)
        started = time.time()
        try:
            async with asyncio.timeout(INPUT_TIMEOUT_S):
                outcome = await self.execute(item)
        except TimeoutError:
            outcome = Outcome("hang", f"no outcome within {INPUT_TIMEOUT_S:g} s")
        except Exception as exc:  # the fuzzer's own failure: reported as a finding so it is not missed
            outcome = Outcome("crash", f"fuzzer error {type(exc).__name__}: {exc}"[:200])
        self.tally.add(target, index, started, outcome)

    async def _target(self, target: str, deadline: float | None, workers: int = 1) -> None:
        limit = self.plan.inputs
        if target == "slowloris" and limit is not None:
            limit = max(SLOWLORIS_WORKERS, limit // 10)  # each one takes `slowloris_s`: fewer, in parallel
        counter = iter(range(10**9))

        async def work() -> None:
            for index in counter:
                if (limit is not None and index >= limit) or (deadline is not None and time.monotonic() > deadline):
                    return
                await self._one(target, index)

        await asyncio.gather(*(work() for _ in range(workers)))

    # --- the run -------------------------------------------------------------------------------
    async def _answer_pool(self) -> None:
        """A few answered calls, each with its session and orchestration, for the callback targets."""
        harness = self.stack.harness
        for to in (BANKING, CLINIC, BANKING):
            call_id, connection_id = await harness.answered_call(to)
            self.pool.append(Call(call_id, connection_id, harness.acs.calls[connection_id].server_call_id))

    async def _healthy(self) -> HealthyCall:
        call_id = f"healthy-{uuid.uuid4().hex[:8]}"
        await self.stack.store.create(CallSession(call_id=call_id, scenario="banking", current_agent="auth"))
        token = self.stack.store.issue_token(call_id, Purpose.MEDIA, 3600)
        call = HealthyCall(self.stack.media_port, token, self.plan.max_gap_s)
        await call.start()
        return call

    async def run(self) -> Result:
        plan = self.plan
        await self._answer_pool()
        healthy = await self._healthy()
        # As `python -m media_host` does: what is loaded now lives all run, so keep it out of the collector's
        # full passes (the fuzzer's deep inputs trigger them; with the host in process they pause its calls).
        gc.collect()
        gc.freeze()
        deadline = time.monotonic() + plan.seconds if plan.seconds is not None else None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as self._http:
            await asyncio.gather(*(self._target(t, deadline, SLOWLORIS_WORKERS if t == "slowloris" else 1)
                                   for t in plan.targets))
        gc.unfreeze()
        health = await healthy.stop()
        await asyncio.sleep(0.5)  # lines the host logs just after a socket closes
        checks = await post_checks(self.stack)
        checks["media internal errors"] = await self._internal_errors()
        logs = self.stack.logs
        self.tally.pin(logs.unexpected())
        self.save_findings()
        return Result(self.tally, health, checks, logs.expected_counts(), logs.warnings)

    async def _internal_errors(self) -> str:
        """`switchboard_errors_total` for handler faults (kind internal / pipeline_start): must stay 0."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.stack.media_url}/metrics") as response:
            text = await response.text()
        found = re.findall(r'^switchboard_errors_total\{kind="(?:internal|pipeline_start)"[^}]*\} (\S+)', text, re.M)
        total = sum(float(v) for v in found)
        return "0" if total == 0 else f"FAILED ({total:g})"

    def save_findings(self, per_finding: int = 3) -> None:
        for finding in self.tally.findings.values():
            for target, index in finding.inputs[:per_finding]:
                item = self.generate(target, index)
                finding.reproducers.append(save_reproducer(target, index, self.plan.seed, finding.what,
                                                           item.to_json()))


def load_input(doc: dict[str, Any]) -> FuzzInput:
    target, item = doc["target"], doc["input"]
    if target in WS_TARGETS:
        return WsScript.from_json(item)
    if target in ("media_http", "slowloris"):
        return RawInput.from_json(item)
    return HttpInput.from_json(item)


async def replay(stack: Stack, doc: dict[str, Any]) -> tuple[Outcome, list[LogEvent]]:
    """One saved input against a fresh stack: its outcome, and the unexpected ERROR lines it caused."""
    runner = Runner(stack, Plan(seed=doc.get("seed", 0)))
    await runner._answer_pool()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as runner._http:
        outcome = await runner.execute(load_input(doc))
    await asyncio.sleep(0.5)
    return outcome, stack.logs.unexpected()


def summary(result: Result, plan: Plan, mode: str, elapsed: float) -> dict[str, Any]:
    """The figures as JSON (out/fuzz/summary-<seed>.json), for notes and comparisons between runs."""
    tally = result.tally
    return {"seed": plan.seed, "media_host": mode, "seconds": round(elapsed, 1), "ok": result.ok,
            "targets": {t: {"inputs": tally.inputs(t), "outcomes": dict(tally.counts(t).most_common())}
                        for t in tally.tried},
            "findings": [{"what": f.what, "count": f.count, "inputs": f.inputs,
                          "reproducers": [str(p) for p in f.reproducers]} for f in tally.findings.values()],
            "healthy_call": None if result.health is None else result.health.render(),
            "checks": result.checks, "expected_errors": result.expected_errors}

