"""A healthy call beside the fuzzer: an ACS call on the echo pipeline, streaming at real-time pace.

It runs in its own process (`python -m tests.fuzz.healthy <port> <token> <max gap s>`), so the
fuzzer's own work cannot stall its sending: what it measures is the host. Every frame carries its
number; at the end every one must have come back, in order, with no stall, and the call must end
normally (DTMF `#`: the echo pipeline hangs up, 1000).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
from dataclasses import asdict, dataclass

from local_stack.callers.acs import dtmf
from local_stack.callers.acs_client import AcsClient
from local_stack.callers.speech import Pacer
from switchboard.settings import PROJECT_ROOT


def pattern(n: int) -> bytes:
    """Frame `n` of the healthy caller: one recognisable 20 ms frame at 24 kHz."""
    return (n % 30000 + 1000).to_bytes(2, "little", signed=True) * 480


@dataclass
class HealthReport:
    sent: int = 0
    echoed: int = 0
    in_order: bool = False
    p99_gap_ms: float = 0.0  # between two echoed frames
    max_gap_ms: float = 0.0
    max_send_lag_ms: float = 0.0
    close_code: int | None = None
    close_reason: str | None = None
    error: str | None = None
    max_gap_s: float = 0.5

    @property
    def ok(self) -> bool:
        return (self.error is None and self.sent > 0 and self.echoed == self.sent and self.in_order
                and self.max_gap_ms < self.max_gap_s * 1000 and self.close_code == 1000)

    def render(self) -> str:
        state = "unaffected" if self.ok else "AFFECTED"
        return (f"healthy call: {state}: {self.sent} frames sent, {self.echoed} echoed "
                f"{'in order' if self.in_order else 'OUT OF ORDER OR MISSING'}, gap between frames p99 "
                f"{self.p99_gap_ms:.0f} ms, max {self.max_gap_ms:.0f} ms (limit {self.max_gap_s * 1000:.0f}), "
                f"send lag max {self.max_send_lag_ms:.0f} ms, ended {self.close_code} {self.close_reason!r}"
                + (f", error: {self.error}" if self.error else ""))


class HealthyStream:
    """The caller's side, run in the child process: stream until told to stop, then check and hang up."""

    def __init__(self, port: int, token: str, max_gap_s: float) -> None:
        self.port, self.token = port, token
        self.report = HealthReport(max_gap_s=max_gap_s)
        self.stop = asyncio.Event()
        self.started = asyncio.Event()

    async def run(self) -> HealthReport:
        report = self.report
        try:
            async with AcsClient(self.port, self.token) as client:
                await self._stream(client)
                sent = report.sent
                await client.wait_for(lambda r: len(r.audio) >= sent, timeout=10)
                frames = client.received.audio
                expected = [pattern(n) for n in range(sent)]
                report.echoed = sum(1 for f in frames if f in set(expected))
                report.in_order = frames == expected
                arrival = client.received.arrival
                gaps = [(b - a) * 1000 for a, b in itertools.pairwise(arrival)]
                report.max_gap_ms = max(gaps, default=0.0)
                report.p99_gap_ms = statistics.quantiles(gaps, n=100)[98] if len(gaps) >= 100 else report.max_gap_ms
                await client.send(dtmf("#"))
                report.close_code, report.close_reason = await client.closed(timeout=10)
        except Exception as exc:  # the report says what went wrong; the runner fails on it
            report.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.started.set()
        return report

    async def _stream(self, client: AcsClient) -> None:
        report = self.report
        pacer = Pacer()
        while not self.stop.is_set():
            report.max_send_lag_ms = max(report.max_send_lag_ms, pacer.lateness() * 1000)
            await client.send_frame(pattern(report.sent))
            report.sent += 1
            if report.sent == 3:
                await client.wait_for(lambda r: len(r.audio) >= 1, timeout=10)  # the call is up
                self.started.set()
            await pacer.next()


class HealthyCall:
    """The runner's handle on the healthy call, which runs in its own process: the fuzzer's work (and its
    hold on the GIL) cannot delay the caller, so what the call measures is the host."""

    def __init__(self, port: int, token: str, max_gap_s: float = 0.5) -> None:
        self.args = [str(port), token, str(max_gap_s)]
        self.max_gap_s = max_gap_s
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fuzz.healthy", *self.args, cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert self._proc.stdout is not None
        await asyncio.wait_for(self._proc.stdout.readline(), timeout=30)  # "started"

    async def stop(self) -> HealthReport:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(b"stop\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=40)
            await proc.wait()
            return HealthReport(**json.loads(line))
        except (TimeoutError, ValueError, TypeError, ConnectionError) as exc:
            if proc.returncode is None:
                proc.kill()
            why = f"the healthy call did not report: {type(exc).__name__}"
            return HealthReport(error=why, max_gap_s=self.max_gap_s)


async def _child(port: int, token: str, max_gap_s: float) -> None:
    stream = HealthyStream(port, token, max_gap_s)
    running = asyncio.create_task(stream.run())
    await stream.started.wait()
    print("started", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "stop", or the runner went away
    stream.stop.set()
    print(json.dumps(asdict(await running)), flush=True)


if __name__ == "__main__":
    asyncio.run(_child(int(sys.argv[1]), sys.argv[2], float(sys.argv[3])))
