"""Run a real MediaHost in the test's event loop on a loopback port, against the session's Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from agents import AgentLibrary
from media_host.channel import CallInfo
from media_host.pipelines import Pipeline, PipelineFactory
from media_host.pipelines.echo import EchoPipeline
from media_host.server import MediaHost
from media_host.transports.base import WireAdapter
from switchboard.services import SharedServices
from switchboard.session_models import CallSession
from switchboard.session_store import SessionStore, connect_redis
from switchboard.settings import load_settings
from switchboard.tokens import Purpose, TokenSigner
from tests.conftest import TEST_SECRET
from tests.support.waits import first_done

AUDIOCODES_TOKEN = "test-audiocodes-bot-token-0123456789"


def echo_pipelines(prompt_ms: int = 0, max_backlog_ms: float | None = None) -> PipelineFactory:
    """Echo pipelines for tests. Tests send audio in bursts to check it comes back byte for byte, so by
    default nothing is dropped (the production echo drops a backlog a live source could never drain)."""
    def make(_info: CallInfo) -> Pipeline:
        return EchoPipeline(prompt_ms=prompt_ms, max_backlog_ms=max_backlog_ms)
    return make


def all_adapters() -> list[type[WireAdapter]]:
    from media_host.main import ADAPTERS  # late: not every test needs every adapter

    return list(ADAPTERS)


@contextlib.asynccontextmanager
async def running_host(redis_url: str, *, pipelines: PipelineFactory | None = None,
                       adapters: list[type[WireAdapter]] | None = None, **overrides: Any) -> AsyncIterator[MediaHost]:
    """A media host on 127.0.0.1:<free port>, stopped (drained) on exit. `overrides` are Settings fields."""
    settings = load_settings(**{"redis_url": redis_url, "media_host_port": 0, "signing_secret": TEST_SECRET,
                                "audiocodes_bot_token": AUDIOCODES_TOKEN, "shutdown_grace_seconds": 2.0,
                                "pipeline": "echo", **overrides})
    store = SessionStore(connect_redis(redis_url), TokenSigner(TEST_SECRET), ttl_seconds=600,
                         prefix=f"test:{uuid.uuid4().hex[:8]}:")
    host = MediaHost(settings, SharedServices(store=store), AgentLibrary.load(settings.agents_dir),
                     pipelines=pipelines or echo_pipelines(),
                     adapters=adapters if adapters is not None else all_adapters())
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(host.run(stop, on_ready=lambda _port: ready.set()))
    await first_done(task, ready.wait())
    if task.done():
        task.result()  # raise the start-up error
    try:
        yield host
    finally:
        stop.set()
        await task
        keys = [k async for k in store.redis.scan_iter(match=f"{store.prefix}*")]
        if keys:
            await store.redis.delete(*keys)
        await store.close()


async def seed_call(host: MediaHost, call_id: str | None = None, scenario: str = "banking",
                    agent: str = "auth", **fields: Any) -> tuple[str, str]:
    """Store a session as the incoming-call handler would; returns (call_id, media token)."""
    call_id = call_id or f"call-{uuid.uuid4().hex[:12]}"
    await host.store.create(CallSession(call_id=call_id, scenario=scenario, current_agent=agent,
                                        caller="+14255550123", callee="+18005550100", **fields))
    return call_id, host.store.issue_token(call_id, Purpose.MEDIA, 600)
