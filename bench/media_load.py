"""How many concurrent calls the media host carries in real time: `python -m bench.media_load`.

Starts an embedded Redis and the host (`python -m media_host`, PIPELINE=echo) as a separate process,
then for each step N opens N simulated calls (ACS at 24 kHz, AudioCodes raw/lpcm16 at 16 kHz) from
a few client processes (bench/media_clients.py), sends 20 ms frames of caller audio at real-time pace
and times every echo. Per step it reports:

- added latency, p50/p99/max: frame sent -> the same frame echoed back, over loopback;
- late frames: the host's own count (switchboard_late_frames_total, delta over the window), and
  client-side gaps (an echo arriving > 40 ms after the previous echo of the same call) as a cross-check;
- frames the host's playout queues hold at the end (a backlog a stall left behind) and call set-up
  time under load (connect -> first echo);
- host CPU (% of one core, /proc/<pid>/stat) and RSS per call ((RSS at N - RSS idle) / N);
- the clients' scheduling lag (how late the clients themselves sent), their CPU, and the CPU other
  processes used meanwhile, so a reader can tell whether the host, the clients or a neighbour
  limited the result. Before each step the bench waits (briefly) for the machine to go quiet, and a
  step that misses the budget while other processes were busy is run a second time.

Speed is measured, not asserted: the script always exits 0 once it has run, and says plainly which
steps missed the budget (p99 <= 5 ms and no late frames). Results also go to out/bench/media_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import multiprocessing as mp
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import wave
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from bench.media_clients import FRAME_MS, CallSpec, WorkerSpec, worker_entry
from switchboard.redis_server import EmbeddedRedis, free_port
from switchboard.session_models import CallSession
from switchboard.session_store import SessionStore, connect_redis
from switchboard.tokens import Purpose, TokenSigner

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "out" / "bench"
CALLER_WAV = OUT_DIR / "caller.wav"
WAV_RATE = 24000
BUDGET_P99_MS = 5.0
DESIGN_CALLS = 200
SETTLE_S = 1.0  # after the ramp: discarded, the host settles after the burst of openings
DRAIN_S = 0.5  # after the window: the last echoes come back before the calls close
QUIET_PCT = 15.0  # before a step, wait for the machine to be less busy than this (% of one core)
SATURATED_PCT = 90.0  # host CPU (% of a core) beyond which per-frame cost is no longer meaningful
DISTURBED_PCT = 20.0  # other processes used more than this during a step: say its figures are skewed
STEAL_NOTE_PCT = 5.0  # the hypervisor took more than this (% of a core): the host was stalled for it, say so
TRANSPORTS = {
    # transport: (wire rate, media format offered, label)
    "acs": (24000, "", "ACS, 24 kHz PCM16"),
    "audiocodes": (16000, "raw/lpcm16", "AudioCodes, raw/lpcm16 (16 kHz PCM16)"),
}


# --- caller audio -----------------------------------------------------------------------------------


def make_caller_wav(path: Path, seconds: float = 4.0, rate: int = WAV_RATE) -> None:
    """A speech-like signal: a voiced buzz whose pitch glides 110-220 Hz, formant-ish harmonics,
    syllable-rate amplitude modulation and a little breath noise."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 110 + 55 * (1 + np.sin(2 * np.pi * 0.35 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k * (1.5 if k in (3, 4, 9) else 1.0) for k in range(1, 16))
    syllables = np.clip(np.sin(2 * np.pi * 3.7 * t) * 0.8 + 0.4, 0, 1) ** 1.5
    noise = np.random.default_rng(7).standard_normal(t.size) * 0.03
    signal_ = (voice / 4 + noise) * syllables
    pcm = np.clip(signal_ * 0.3 * 32767, -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


def read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2 or wav.getframerate() != WAV_RATE:
            raise SystemExit(f"{path}: need a {WAV_RATE} Hz mono PCM16 WAV, not {wav.getframerate()} Hz "
                             f"x{wav.getnchannels()} {8 * wav.getsampwidth()}-bit")
        return wav.readframes(wav.getnframes())


def frames_at(pcm24: bytes, rate: int) -> list[bytes]:
    pcm = pcm24
    if rate != WAV_RATE:
        import soxr  # noqa: PLC0415  (only the 16 kHz transport needs it)

        samples = np.frombuffer(pcm24, dtype="<i2")
        pcm = soxr.resample(samples, WAV_RATE, rate).astype("<i2").tobytes()
    size = rate // 50 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


# --- the host process -------------------------------------------------------------------------------


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def proc_ticks(pid: int | None, kernel_only: bool = False) -> int:
    """utime + stime (or stime alone) of a process, in clock ticks (0 if it is gone)."""
    if pid is None:
        return 0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of /proc/<pid>/stat
    return stime if kernel_only else utime + stime


def machine_jiffies() -> tuple[int, int, int, int]:
    """(busy, total, steal, softirq) jiffies summed over all CPUs since boot; idle and iowait are not busy.
    Steal is time the hypervisor gave this VM's CPUs to someone else; softirq is mostly loopback networking
    (our own sockets): neither is another process's work, though both count as busy."""
    jiffies = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = jiffies[3] + jiffies[4]
    return sum(jiffies) - idle, sum(jiffies), jiffies[7], jiffies[6]


def machine_busy_pct(seconds: float) -> float:
    """How busy the whole machine is over `seconds`, in % of one core."""
    busy0, total0, *_ = machine_jiffies()
    time.sleep(seconds)
    busy1, total1, *_ = machine_jiffies()
    return 100 * (busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1)


def wait_quiet(max_wait: float, threshold_pct: float = QUIET_PCT) -> tuple[float, float]:
    """Wait (up to max_wait s) until the machine is nearly idle: other work would skew the step.
    Returns (seconds waited, the last busy % seen)."""
    start = time.monotonic()
    busy = machine_busy_pct(0.5)
    while busy > threshold_pct and time.monotonic() - start < max_wait:
        busy = machine_busy_pct(0.5)
    return time.monotonic() - start, busy


@dataclass
class CpuSample:
    at: float
    host_ticks: int  # utime + stime of the host process
    host_sys_ticks: int  # stime alone: the kernel's share (socket reads and writes, epoll)
    redis_ticks: int
    self_ticks: int  # this process
    machine_busy: int  # all CPUs, jiffies not idle/iowait
    machine_total: int
    machine_steal: int = 0  # taken by the hypervisor
    machine_softirq: int = 0


class HostProcess:
    def __init__(self, redis_url: str, secret: str, bot_token: str, log_path: Path) -> None:
        self.port = free_port()
        self.secret = secret
        self.bot_token = bot_token
        self.log_path = log_path
        self.env = {**os.environ, "REDIS_URL": redis_url, "SIGNING_SECRET": secret, "PIPELINE": "echo",
                    "ECHO_PROMPT_MS": "0", "MEDIA_HOST_PORT": str(self.port), "MEDIA_MAX_CALLS": "100000",
                    "MEDIA_IDLE_TIMEOUT_SECONDS": "60", "LOG_LEVEL": "WARNING", "AUDIOCODES_BOT_TOKEN": bot_token}
        self.env.pop("ACS_RESOURCE_ID", None)  # the simulated ACS sends no JWT
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "media_host"], cwd=ROOT, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"media host exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if _get(f"{self.base_url}/health", timeout=1.0)[0] == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"media host not healthy after {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def health(self) -> dict[str, Any]:
        status, body = _get(f"{self.base_url}/health")
        return json.loads(body) if status == 200 else {}

    def metrics(self) -> dict[str, float]:
        """Every sample of the exposition, keyed by its name and labels as printed."""
        _, body = _get(f"{self.base_url}/metrics", timeout=10.0)
        samples = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    samples[key] = float(value)
        return samples

    def wait_idle(self, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if self.health().get("active_calls") == 0:
                    return True
            time.sleep(0.2)
        return False

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else math.nan

    def cpu(self, redis_pid: int | None) -> CpuSample:
        busy, total, steal, softirq = machine_jiffies()
        return CpuSample(time.monotonic(), proc_ticks(self.pid), proc_ticks(self.pid, kernel_only=True),
                         proc_ticks(redis_pid), proc_ticks(os.getpid()), busy, total, steal, softirq)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
        return self.proc.returncode


# --- one step ---------------------------------------------------------------------------------------


@dataclass
class Config:
    calls: list[int]
    seconds: float
    ramp: float
    workers: int
    stop_p99_ms: float
    json_path: Path
    wav: Path
    quiet_wait: float


@dataclass
class Step:
    n: int
    opened: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    closed_early: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    sent: int = 0
    received: int = 0
    lost: int = 0
    late_host: int = 0
    held_frames: int = 0  # frames the host's playout queues held back at the end of the window
    dropped_host: int = 0
    frames_in_host: int = 0
    frames_out_host: int = 0
    gaps: int = 0
    mismatched: int = 0
    host_cpu_pct: float = math.nan
    host_sys_pct: float = math.nan  # the kernel's part of host_cpu_pct
    redis_cpu_pct: float = math.nan
    other_cpu_pct: float = math.nan  # processes that are not the host, Redis or the bench (other work)
    steal_pct: float = math.nan  # CPU the hypervisor took from this VM
    quiet_wait_s: float = 0.0
    host_rss_mb: float = math.nan
    rss_per_call_mb: float = math.nan
    client_cpu_pct: float = math.nan
    machine_busy_pct: float = math.nan
    open_p50_ms: float = math.nan  # connect -> first echo (call set-up under load)
    open_p99_ms: float = math.nan
    retried: str | None = None  # why the step was run a second time
    lag_p50_ms: float = math.nan
    lag_p99_ms: float = math.nan
    lag_max_ms: float = math.nan
    host_errors: dict[str, float] = field(default_factory=dict)

    def within_budget(self) -> bool:
        return (self.opened == self.n and self.received > 0 and self.lost == 0 and self.p99_ms <= BUDGET_P99_MS
                and self.late_host == 0)

    def misses(self) -> str:
        """What broke the budget, in words."""
        why = []
        if self.opened < self.n:
            why.append(f"{self.n - self.opened} calls failed to open")
        if not self.p99_ms <= BUDGET_P99_MS:
            why.append(f"p99 {self.p99_ms:.1f} ms > {BUDGET_P99_MS:g} ms")
        if self.late_host:
            why.append(f"{self.late_host} late frames (host)")
        if self.lost:
            why.append(f"{self.lost} echoes lost")
        return ", ".join(why) or "none"


async def _seed_acs(redis_url: str, secret: str, n: int) -> list[tuple[str, str]]:
    """Store a session per call as the incoming-call handler would (tests/support/media_harness.seed_call)."""
    store = SessionStore(connect_redis(redis_url), TokenSigner(secret), ttl_seconds=3600)
    try:
        ids = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(n)]
        sem = asyncio.Semaphore(32)

        async def one(call_id: str) -> None:
            async with sem:
                await store.create(CallSession(call_id=call_id, scenario="banking", current_agent="auth",
                                               caller="+14255550123", callee="+18005550100"))
        await asyncio.gather(*(one(i) for i in ids))
        return [(i, store.issue_token(i, Purpose.MEDIA, 3600)) for i in ids]
    finally:
        await store.close()


def _metric(samples: dict[str, float], name: str, transport: str) -> float:
    return samples.get(f'{name}{{transport="{transport}"}}', 0.0)


@dataclass
class Env:
    """What every step of one transport runs against."""

    host: HostProcess
    redis: EmbeddedRedis
    transport: str
    frames: list[bytes]
    idle_rss: float


def call_specs(env: Env, n: int, cfg: Config) -> list[CallSpec]:
    """N calls opening evenly over the ramp; ACS calls get a seeded session and a media token each."""
    opening = [int(i * cfg.ramp * 1000 / n) for i in range(n)]
    if env.transport == "acs":
        seeded = asyncio.run(_seed_acs(env.redis.url, env.host.secret, n))
        return [CallSpec(i, opening[i], cid, tok) for i, (cid, tok) in enumerate(seeded)]
    tag = uuid.uuid4().hex[:8]
    return [CallSpec(i, opening[i], f"bench-{tag}-{i}", None) for i in range(n)]


@dataclass
class Observed:
    """What the bench process read from the host around the measured window."""

    cpu0: CpuSample
    cpu1: CpuSample
    metrics0: dict[str, float]
    metrics1: dict[str, float]
    rss_mb: float


def run_step(env: Env, n: int, cfg: Config) -> Step:
    host, transport = env.host, env.transport
    rate, media_format, _ = TRANSPORTS[transport]
    step = Step(n)
    step.quiet_wait_s, _ = wait_quiet(cfg.quiet_wait)
    specs = call_specs(env, n, cfg)
    window_start = cfg.ramp + SETTLE_S
    window_end = window_start + cfg.seconds
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: nothing inherited from this process
    pipes: list[Connection] = []
    procs = []
    for w in range(cfg.workers):
        spec = WorkerSpec(worker=w, transport=transport, port=host.port, rate=rate, calls=specs[w :: cfg.workers],
                          frames=env.frames, window_start_s=window_start, window_end_s=window_end, drain_s=DRAIN_S,
                          bot_token=host.bot_token, media_format=media_format)
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker_entry, args=(child, spec), name=f"bench-client-{w}", daemon=True)
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    results: list[dict[str, Any]] = []
    try:
        for pipe in pipes:
            if not pipe.poll(60):
                raise RuntimeError("a client worker did not start")
            pipe.recv()
        base = time.monotonic() + 0.2  # CLOCK_MONOTONIC is shared by every process on the machine
        for pipe in pipes:
            pipe.send(base)
        _sleep_until(base + window_start)
        cpu0, metrics0 = host.cpu(env.redis.pid), host.metrics()
        _sleep_until(base + window_end)
        observed = Observed(cpu0, host.cpu(env.redis.pid), metrics0, host.metrics(), host.rss_mb())
        for pipe in pipes:
            if not pipe.poll(60):
                raise RuntimeError("a client worker did not report")
            kind, payload = pipe.recv()
            if kind != "result":
                raise RuntimeError(str(payload))
            results.append(payload)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        for pipe in pipes:
            pipe.close()
    host.wait_idle()
    summarize(step, env, cfg, observed, results)
    return step


def _sleep_until(at: float) -> None:
    time.sleep(max(0.0, at - time.monotonic()))


def summarize(step: Step, env: Env, cfg: Config, seen: Observed, results: list[dict[str, Any]]) -> None:
    transport = env.transport
    cpu0, cpu1 = seen.cpu0, seen.cpu1
    per_core = 100 / os.sysconf("SC_CLK_TCK") / (cpu1.at - cpu0.at)  # clock ticks in the window -> % of a core
    step.host_cpu_pct = (cpu1.host_ticks - cpu0.host_ticks) * per_core
    step.host_sys_pct = (cpu1.host_sys_ticks - cpu0.host_sys_ticks) * per_core
    step.redis_cpu_pct = (cpu1.redis_ticks - cpu0.redis_ticks) * per_core
    total = max(cpu1.machine_total - cpu0.machine_total, 1)
    step.machine_busy_pct = 100 * (cpu1.machine_busy - cpu0.machine_busy) / total * (os.cpu_count() or 1)
    step.steal_pct = 100 * (cpu1.machine_steal - cpu0.machine_steal) / total * (os.cpu_count() or 1)
    softirq_pct = 100 * (cpu1.machine_softirq - cpu0.machine_softirq) / total * (os.cpu_count() or 1)
    step.host_rss_mb = seen.rss_mb
    step.rss_per_call_mb = (seen.rss_mb - env.idle_rss) / step.n
    for name, attr in (("switchboard_late_frames_total", "late_host"), ("switchboard_dropped_frames_total",
                       "dropped_host"), ("switchboard_frames_in_total", "frames_in_host"),
                       ("switchboard_frames_out_total", "frames_out_host")):
        setattr(step, attr, int(_metric(seen.metrics1, name, transport) - _metric(seen.metrics0, name, transport)))
    step.held_frames = int(seen.metrics1.get("switchboard_playout_queue_frames", 0.0))
    step.host_errors = {k: v - seen.metrics0.get(k, 0.0) for k, v in seen.metrics1.items()
                        if k.startswith("switchboard_errors_total") and v - seen.metrics0.get(k, 0.0) > 0}

    latency = np.concatenate([r["latency"] for r in results]) * 1000
    lag = np.concatenate([r["lag"] for r in results]) * 1000
    step.opened = sum(r["opened"] for r in results)
    step.failed = sum(r["failed"] for r in results)
    step.errors = [e for r in results for e in r["errors"]][:5]
    step.closed_early = sum(r["closed_early"] for r in results)
    step.sent = sum(r["sent"] for r in results)
    step.received = sum(r["received"] for r in results)
    step.lost = step.sent - step.received
    step.gaps = sum(r["gaps"] for r in results)
    step.mismatched = sum(r["mismatched"] for r in results)
    step.client_cpu_pct = 100 * sum(r["cpu_s"] for r in results) / cfg.seconds
    ours = step.host_cpu_pct + step.redis_cpu_pct + step.client_cpu_pct + (cpu1.self_ticks - cpu0.self_ticks) * per_core
    step.other_cpu_pct = max(0.0, step.machine_busy_pct - ours - step.steal_pct - softirq_pct)
    if latency.size:
        step.p50_ms, step.p99_ms, step.max_ms = (float(x) for x in np.percentile(latency, [50, 99, 100]))
    setup = np.concatenate([r["setup"] for r in results]) * 1000
    if setup.size:
        step.open_p50_ms, step.open_p99_ms = (float(x) for x in np.percentile(setup, [50, 99]))
    if lag.size:
        step.lag_p50_ms, step.lag_p99_ms, step.lag_max_ms = (float(x) for x in np.percentile(lag, [50, 99, 100]))


# --- reporting --------------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def header_lines(cfg: Config) -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        "media host load: passthrough (echo) pipeline, 20 ms frames at real-time pace, loopback",
        f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs ({usable} usable); host, Redis and the load "
        "clients all share them",
        f"Python {platform.python_version()}, websockets {importlib.metadata.version('websockets')}, "
        f"numpy {np.__version__}, {platform.system()} {platform.release()}",
        f"caller audio: {_display(cfg.wav)} ({WAV_RATE} Hz mono PCM16, looped); every frame's first 3 "
        "samples carry a sequence number",
        f"load: {cfg.workers} client processes (raw asyncio WebSocket clients), absolute 20 ms schedule; per step "
        f"ramp {cfg.ramp:g} s + settle {SETTLE_S:g} s (discarded) + {cfg.seconds:g} s measured",
        f"budget: p99 added latency <= {BUDGET_P99_MS:g} ms and 0 late frames (design: >= {DESIGN_CALLS} calls)",
    ]


def _display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(ROOT))
    return str(path)


COLUMNS = [("N", 4), ("p50 ms", 6), ("p99 ms", 6), ("max ms", 6), ("late", 5), ("gaps", 5), ("lost", 4),
           ("held", 4), ("open p99", 8), ("host CPU%", 9), ("MB/call", 7), ("cli lag p99", 11), ("cli CPU%", 8),
           ("other%", 6), ("steal%", 6), ("", 4)]


LEGEND = """columns:
  p50/p99/max ms  added latency: frame sent -> the same frame echoed back (loopback), over the measured window
  late            frames the host counted late (switchboard_late_frames_total, delta over the window)
  gaps            client cross-check: an echo arriving > 40 ms after the previous echo of the same call
                  (more precisely: the host stretched the spacing of two consecutive frames by > 20 ms)
  lost            frames sent in the window whose echo never came back
  held            frames held in the host's playout queues at the end of the window: a backlog left by a stall;
                  with a real-time source (the echo) it never drains and adds latency for the rest of the call
  open p99        call set-up under load: connect -> first echo, ms
  host CPU%       the host process, % of one core (it is one asyncio thread: 100% is its ceiling)
  MB/call         (host RSS at N - idle RSS) / N
  cli lag p99     how late the clients themselves sent (ms after each frame's scheduled time)
  cli CPU%        all client processes, % of one core
  other%          CPU used meanwhile by processes that are not the host, Redis or the bench, % of one core
  steal%          CPU the hypervisor took from this VM meanwhile (/proc/stat steal), % of one core: the host
                  cannot run when it wants to, whatever its own load"""


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def table_row(step: Step) -> str:
    cells = [str(step.n), _fmt(step.p50_ms), _fmt(step.p99_ms), _fmt(step.max_ms), str(step.late_host),
             str(step.gaps), str(step.lost), str(step.held_frames), _fmt(step.open_p99_ms, 1),
             _fmt(step.host_cpu_pct, 1), _fmt(step.rss_per_call_mb, 3), _fmt(step.lag_p99_ms),
             _fmt(step.client_cpu_pct, 1), _fmt(step.other_cpu_pct, 0), _fmt(step.steal_pct, 0),
             "ok" if step.within_budget() else "MISS"]
    return "  ".join(c.rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True))


def table_header() -> str:
    return "  ".join(name.rjust(w) for name, w in COLUMNS)


def verdict(steps: list[Step]) -> list[str]:
    held = [s for s in steps if s.within_budget()]
    if held:
        best = max(held, key=lambda s: s.n)
        lines = [f"largest N within budget (p99 <= {BUDGET_P99_MS:g} ms, 0 late frames): {best.n}"]
        first_miss = next((s for s in steps if s.n > best.n and not s.within_budget()), None)
        if first_miss is not None:
            lines.append(f"first step over budget: N={first_miss.n}: {first_miss.misses()}")
        elif best.n == max(s.n for s in steps):
            lines.append("(every step held the budget: the ceiling is above the largest step measured)")
    else:
        worst = steps[0]
        lines = [f"none of the steps held the budget; already at N={worst.n}: {worst.misses()}"]
        best = None
    target = "met" if best is not None and best.n >= DESIGN_CALLS else "MISSED"
    lines.append(f"design target >= {DESIGN_CALLS} calls within budget: {target}")
    unsaturated = [s for s in steps if s.host_cpu_pct < SATURATED_PCT and s.received]
    if unsaturated:
        ref = max(unsaturated, key=lambda s: s.n)
        per_frame_us = ref.host_cpu_pct / 100 / (ref.n * 1000 / FRAME_MS) * 1e6
        kernel = 100 * ref.host_sys_pct / ref.host_cpu_pct if ref.host_cpu_pct else math.nan
        lines.append(f"host CPU per call-frame (one frame in + its echo out) at N={ref.n}: {per_frame_us:.0f} us, "
                     f"{kernel:.0f}% of it in the kernel;")
        lines.append(f"  the host is one asyncio thread, so one core is its ceiling: saturated at "
                     f"~{1e6 / per_frame_us / (1000 / FRAME_MS):.0f} calls")
    return lines


def notes(steps: list[Step]) -> list[str]:
    out = []
    for s in steps:
        if s.failed or s.errors:
            out.append(f"N={s.n}: {s.failed} calls failed to open, e.g. {s.errors[:1]}")
        if s.closed_early:
            out.append(f"N={s.n}: {s.closed_early} calls were closed by the host before the end")
        if s.mismatched:
            out.append(f"N={s.n}: {s.mismatched} echoes did not match what the call sent")
        if s.dropped_host:
            out.append(f"N={s.n}: the host dropped {s.dropped_host} inbound frames (pipeline behind)")
        if s.host_errors:
            out.append(f"N={s.n}: host error counters rose: {s.host_errors}")
        if s.steal_pct > STEAL_NOTE_PCT:
            out.append(f"N={s.n}: the hypervisor took {s.steal_pct:.0f}% of a core (steal) during the step")
        if s.retried:
            out.append(f"N={s.n}: measured twice; {s.retried}")
        if s.other_cpu_pct > DISTURBED_PCT:
            out.append(f"N={s.n}: other processes on this machine used {s.other_cpu_pct:.0f}% of a core during "
                       "the step: its figures are pessimistic")
        if s.lag_p99_ms > BUDGET_P99_MS:
            out.append(f"N={s.n}: the clients themselves sent late (lag p99 {s.lag_p99_ms:.1f} ms): "
                       "client-side scheduling was a limit at this step")
    return out


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[Config, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m bench.media_load", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="50,100,150,200,250,300", help="comma-separated steps of N")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per step")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which a step's calls open")
    parser.add_argument("--transport", choices=["acs", "audiocodes", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--stop-p99-ms", type=float, default=50.0,
                        help="stop stepping up once a step's p99 exceeds this (or it loses echoes)")
    parser.add_argument("--wav", type=Path, default=None, help=f"caller audio: {WAV_RATE} Hz mono PCM16 WAV")
    parser.add_argument("--json", type=Path, default=OUT_DIR / "media_load.json")
    parser.add_argument("--quiet-wait", type=float, default=10.0,
                        help="before each step, wait up to this many seconds for other load on the machine to stop")
    args = parser.parse_args(argv)
    calls = sorted({int(x) for x in args.calls.split(",") if x.strip()})
    if not calls or calls[0] < 1:
        parser.error("--calls needs positive integers")
    transports = ["acs", "audiocodes"] if args.transport == "both" else [args.transport]
    wav = args.wav or CALLER_WAV
    cfg = Config(calls=calls, seconds=args.seconds, ramp=args.ramp, workers=max(1, args.workers),
                 stop_p99_ms=args.stop_p99_ms, json_path=args.json, wav=wav, quiet_wait=args.quiet_wait)
    return cfg, transports


def blown(step: Step, cfg: Config) -> bool:
    return (not step.p99_ms <= cfg.stop_p99_ms or step.lost > 0.05 * max(step.sent, 1)
            or step.opened < 0.9 * step.n)


def run_transport(transport: str, redis: EmbeddedRedis, pcm24: bytes, cfg: Config) -> dict[str, Any]:
    _, _, label = TRANSPORTS[transport]
    frames = frames_at(pcm24, TRANSPORTS[transport][0])
    host = HostProcess(redis.url, secret=secrets.token_urlsafe(32), bot_token=secrets.token_urlsafe(24),
                       log_path=OUT_DIR / "media_host.log")
    host.start()
    steps: list[Step] = []
    stopped_early: str | None = None
    print(f"\n{label}: host pid {host.pid} on port {host.port}", flush=True)
    try:
        time.sleep(0.5)
        idle_rss = host.rss_mb()
        print(f"  host idle RSS {idle_rss:.1f} MB", flush=True)
        print("  " + table_header(), flush=True)
        env = Env(host, redis, transport, frames, idle_rss)
        for n in cfg.calls:
            step = run_step(env, n, cfg)
            if not step.within_budget() and step.other_cpu_pct > DISTURBED_PCT:
                print("  " + table_row(step) + f"  (other processes used {step.other_cpu_pct:.0f}% of a core: "
                      "running it again)", flush=True)
                first = step
                step = run_step(env, n, cfg)
                step.retried = (f"first run disturbed (other processes {first.other_cpu_pct:.0f}% of a core; "
                                f"p99 {first.p99_ms:.1f} ms, {first.late_host} late)")
            steps.append(step)
            print("  " + table_row(step), flush=True)
            if blown(step, cfg) and n != cfg.calls[-1]:
                stopped_early = (f"stopped stepping up after N={n} (p99 {_fmt(step.p99_ms, 1)} ms, "
                                 f"{step.lost} lost, {step.opened}/{n} opened)")
                break
    finally:
        code = host.stop()
    if code not in (0, None):
        print(f"  note: the host exited with {code}; see {_display(host.log_path)}")
    return {"label": label, "idle_rss_mb": idle_rss, "steps": steps, "stopped_early": stopped_early,
            "host_exit_code": code}


def print_report(cfg: Config, results: dict[str, dict[str, Any]]) -> None:
    print("\n" + "=" * 100)
    for line in header_lines(cfg):
        print(line)
    print(LEGEND)
    for transport, res in results.items():
        steps: list[Step] = res["steps"]
        print(f"\n{res['label']} (host idle RSS {res['idle_rss_mb']:.1f} MB)")
        print("  " + table_header())
        for step in steps:
            print("  " + table_row(step))
        for line in verdict(steps):
            print("  " + line)
        if res["stopped_early"]:
            print("  " + res["stopped_early"])
        for line in notes(steps):
            print("  note: " + line)
        _ = transport


def write_json(cfg: Config, results: dict[str, dict[str, Any]]) -> None:
    doc = {
        "header": header_lines(cfg),
        "config": {"calls": cfg.calls, "seconds": cfg.seconds, "ramp_s": cfg.ramp, "settle_s": SETTLE_S,
                   "workers": cfg.workers, "frame_ms": FRAME_MS, "wav": _display(cfg.wav),
                   "budget": {"p99_ms": BUDGET_P99_MS, "late_frames": 0}},
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "transports": {
            t: {"label": r["label"], "idle_rss_mb": r["idle_rss_mb"], "stopped_early": r["stopped_early"],
                "host_exit_code": r["host_exit_code"],
                "largest_n_within_budget": max((s.n for s in r["steps"] if s.within_budget()), default=None),
                "steps": [{**{k: (None if isinstance(v, float) and math.isnan(v) else v)
                              for k, v in vars(s).items()}, "within_budget": s.within_budget()}
                          for s in r["steps"]]}
            for t, r in results.items()
        },
    }
    cfg.json_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.json_path.write_text(json.dumps(doc, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    cfg, transports = parse_args(argv)
    if not cfg.wav.exists():
        if cfg.wav != CALLER_WAV:
            raise SystemExit(f"{cfg.wav}: no such file")
        make_caller_wav(cfg.wav)
    pcm24 = read_wav(cfg.wav)
    (OUT_DIR / "media_host.log").unlink(missing_ok=True)  # the host log of this run only
    for line in header_lines(cfg):
        print(line)
    started = time.monotonic()
    redis = EmbeddedRedis()
    redis.start()
    results: dict[str, dict[str, Any]] = {}
    try:
        for transport in transports:
            results[transport] = run_transport(transport, redis, pcm24, cfg)
    finally:
        redis.stop()
    print_report(cfg, results)
    write_json(cfg, results)
    print(f"\nresults: {_display(cfg.json_path)}; host log: {_display(OUT_DIR / 'media_host.log')}; "
          f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
