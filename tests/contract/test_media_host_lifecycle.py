"""Readiness, health, metrics format and graceful drain of a real media host."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from local_stack.callers.acs_client import AcsClient
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from tests.support.media_harness import running_host, seed_call


async def _http(host: MediaHost, path: str) -> tuple[int, str]:
    assert host.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = (await reader.read()).decode()
    writer.close()
    head, body = data.split("\r\n\r\n", 1)
    return int(head.split()[1]), body


async def test_ready_health_and_metrics(redis_url: str) -> None:
    async with running_host(redis_url, adapters=[AcsAdapter]) as host:
        status, body = await _http(host, "/ready")
        assert status == 200
        assert json.loads(body)["redis"] == "ok"
        status, body = await _http(host, "/health")
        assert (status, json.loads(body)["status"]) == (200, "ok")
        status, body = await _http(host, "/metrics")
        assert status == 200
        assert "# TYPE switchboard_active_calls gauge" in body
        assert "# TYPE switchboard_frames_in_total counter" in body


async def test_ready_reports_redis_outage(redis_url: str) -> None:
    async with running_host(redis_url, adapters=[AcsAdapter]) as host:
        real = host.services.store
        await real.redis.aclose()

        async def down() -> bool:
            raise ConnectionError("redis down")

        host.services.store.ping = down  # type: ignore[method-assign]
        status, body = await _http(host, "/ready")
        assert status == 503
        assert json.loads(body) == {"status": "not_ready", "redis": "unreachable",
                                    "agents_version": host.agents.current.version, "draining": False}


async def test_drain_refuses_new_calls_and_lets_current_ones_finish(redis_url: str) -> None:
    async with running_host(redis_url, adapters=[AcsAdapter], shutdown_grace_seconds=5.0) as host:
        _, token = await seed_call(host)
        _, late_token = await seed_call(host)
        assert host.port is not None
        stop_task: asyncio.Task[None] | None = None
        async with AcsClient(host.port, token) as acs:
            await acs.send_frame(bytes(960))
            await acs.wait_for(lambda r: len(r.audio) == 1)
            # Ask the host to stop while the call is in progress (what SIGTERM does).
            stop_task = asyncio.create_task(_stop(host))
            await asyncio.sleep(0.2)
            assert host.draining
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token={late_token}"):
                    pass
            assert refused.value.response.status_code == 503
            assert json.loads(refused.value.response.body)["error"] == "draining"
            status, body = await _http(host, "/ready")  # still answering, so the load balancer sees it go
            assert (status, json.loads(body)["draining"]) == (503, True)
            await acs.send_frame(bytes(960))  # the call in progress carries on
            await acs.wait_for(lambda r: len(r.audio) == 2)
        await asyncio.wait_for(stop_task, 5)  # the host finished as soon as the last call ended


async def test_drain_deadline_closes_remaining_calls_with_a_reason(redis_url: str) -> None:
    async with running_host(redis_url, adapters=[AcsAdapter], shutdown_grace_seconds=0.3) as host:
        _, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            await acs.send_frame(bytes(960))
            await acs.wait_for(lambda r: len(r.audio) == 1)
            stop_task = asyncio.create_task(_stop(host))
            assert await acs.closed() == (1001, "server shutting down")
            await asyncio.wait_for(stop_task, 5)


async def _stop(host: MediaHost) -> None:
    """Trigger the drain SIGTERM triggers, and wait for the host to finish it."""
    host.request_stop()
    await host.stopped.wait()
