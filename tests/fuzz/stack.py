"""Everything the fuzzer attacks, started on loopback: the media host (in this process, or as a
subprocess) and the Function App on the local function host with a local ACS and a fake Durable webhook
(tests/support/functions_harness.py), against one Redis, with a log watch over all of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from media_host.transports.browser import register_routes
from switchboard.session_store import SessionStore, connect_redis
from switchboard.settings import PROJECT_ROOT
from switchboard.tokens import TokenSigner
from tests.conftest import TEST_SECRET
from tests.fuzz.logwatch import LogWatch
from tests.support.functions_harness import Harness, open_harness
from tests.support.media_harness import AUDIOCODES_TOKEN, running_host

HostHandle = tuple[int, SessionStore, Callable[[], bool]]


@dataclass
class Stack:
    media_port: int
    store: SessionStore  # the media host's own store: same Redis, key prefix and signing secret
    harness: Harness
    logs: LogWatch
    mode: str  # inprocess | subprocess
    alive: Callable[[], bool]

    @property
    def media_url(self) -> str:
        return f"http://127.0.0.1:{self.media_port}"


@contextlib.asynccontextmanager
async def _inprocess(redis_url: str) -> AsyncIterator[HostHandle]:
    async with running_host(redis_url) as host:
        register_routes(host)
        assert host.port is not None
        yield host.port, host.store, lambda: not host.stopped.is_set()


@contextlib.asynccontextmanager
async def _subprocess(redis_url: str, logs: LogWatch, echo: bool) -> AsyncIterator[HostHandle]:
    prefix = f"fuzz:{uuid.uuid4().hex[:8]}:"
    env = {**os.environ, "REDIS_URL": redis_url, "SIGNING_SECRET": TEST_SECRET, "MEDIA_HOST_PORT": "0",
           "AUDIOCODES_BOT_TOKEN": AUDIOCODES_TOKEN, "FUZZ_STORE_PREFIX": prefix, "SHUTDOWN_GRACE_SECONDS": "2"}
    # A Popen, not an asyncio subprocess: a thread reads its log stream, which asyncio's pipes cannot serve.
    proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz.host_process"], cwd=PROJECT_ROOT, env=env,  # noqa: ASYNC220
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    logs.follow(proc.stderr, sys.stderr if echo else None)
    store = SessionStore(connect_redis(redis_url), TokenSigner(TEST_SECRET), ttl_seconds=600, prefix=prefix)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=60)
        if not line:
            raise RuntimeError(f"the media host exited with {proc.wait()} before listening")
        yield int(json.loads(line)["port"]), store, lambda: proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        keys = [k async for k in store.redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await store.redis.delete(*keys)
        await store.close()
        logs.join()


@contextlib.asynccontextmanager
async def open_stack(redis_url: str, work_dir: Path, *, media_host: str = "inprocess",
                     echo_logs: bool = False) -> AsyncIterator[Stack]:
    logs = LogWatch()
    logs.install()
    try:
        host = _inprocess(redis_url) if media_host == "inprocess" else _subprocess(redis_url, logs, echo_logs)
        async with host as (port, store, alive), open_harness(redis_url, work_dir) as harness:
            yield Stack(port, store, harness, logs, media_host, alive)
    finally:
        logs.remove()


async def get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, session.get(url) as response:
        return response.status, await response.json(content_type=None)


async def post_checks(stack: Stack) -> dict[str, str]:
    """After the run: every part still answers, and a fresh incoming call is still answered end to end."""
    checks: dict[str, str] = {"media host process": "alive" if stack.alive() else "DEAD"}
    for name, url in (("media /health", f"{stack.media_url}/health"), ("media /ready", f"{stack.media_url}/ready"),
                      ("functions /api/health", f"{stack.harness.host_url}/api/health")):
        try:
            status, _ = await get(url)
            checks[name] = str(status)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            checks[name] = f"FAILED ({type(exc).__name__})"
    event = stack.harness.incoming()
    async with aiohttp.ClientSession() as session, session.post(
            f"{stack.harness.host_url}/api/eventgrid/incoming-call", json=[event]) as response:
        answer = await response.json(content_type=None)
    outcomes = [c.get("outcome") for c in answer.get("calls", [])] if isinstance(answer, dict) else []
    checks["a new incoming call"] = "answered" if outcomes == ["answered"] else f"FAILED ({response.status} {answer})"
    return checks


def checks_ok(checks: dict[str, str]) -> bool:
    return all(v in ("alive", "200", "answered", "0") for v in checks.values())
