"""An agent's hang-up or transfer reaches the control plane even when the call ends while it is in flight.

On ACS a hang-up or transfer is an HTTP request to the Function App, made by the call's control sender.
The pipeline returns right after asking (or the caller's socket closes): the runner must let the request
in hand finish before the call's tasks end, bounded, and say so in the log when it gives up. The
Function App's control plane retries a failed request with backoff. Real host, sockets and Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from local_stack.callers.acs import dtmf
from local_stack.callers.acs_client import AcsClient
from media_host.control_plane import FunctionsControlPlane
from media_host.transports import runner
from media_host.transports.acs import AcsAdapter
from switchboard.redis_server import free_port
from switchboard.session_store import SessionStore
from tests.support.media_harness import running_host, seed_call
from tests.support.waits import first_done

RUNNER = "media_host.transports.runner"


class GatedControlPlane:
    """Each request waits for the test's `gate`; `requests` says where each one got to."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.finished = asyncio.Event()  # a request completed or was cancelled
        self.requests: list[list[str]] = []  # [kind, "in flight" | "done" | "cancelled"]

    async def _request(self, kind: str) -> None:
        state = [kind, "in flight"]
        self.requests.append(state)
        self.started.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            state[1] = "cancelled"
            self.finished.set()
            raise
        state[1] = "done"
        self.finished.set()

    async def request_hangup(self, call_id: str, reason: str) -> None:
        await self._request("hangup")

    async def request_transfer(self, call_id: str, target: str, reason: str) -> None:
        await self._request("transfer")

    async def notify_handoff(self, call_id: str, from_agent: str, to_agent: str, reason: str,
                             authenticated: bool | None = None) -> None:
        pass


class RunnerLog(logging.Handler):
    """The runner's log records, with an event per message prefix a test waits for."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._seen: dict[str, asyncio.Event] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for prefix, event in self._seen.items():
            if record.getMessage().startswith(prefix):
                event.set()

    def seen(self, prefix: str) -> asyncio.Event:
        event = self._seen.setdefault(prefix, asyncio.Event())
        if any(r.getMessage().startswith(prefix) for r in self.records):
            event.set()
        return event


@pytest.fixture
def runner_log(caplog: pytest.LogCaptureFixture) -> Iterator[RunnerLog]:
    caplog.set_level(logging.INFO, logger=RUNNER)
    handler = RunnerLog()
    logging.getLogger(RUNNER).addHandler(handler)
    yield handler
    logging.getLogger(RUNNER).removeHandler(handler)


async def settled(plane: GatedControlPlane, log: RunnerLog) -> None:
    """Until the runner has either cancelled the request in flight (the defect) or said it waits for it."""
    await first_done(plane.finished.wait(), log.seen("call ending").wait(), timeout=10)


async def test_a_hang_up_in_flight_when_the_pipeline_returns_completes_before_the_socket_closes(
        redis_url: str, runner_log: RunnerLog) -> None:
    plane = GatedControlPlane()
    async with running_host(redis_url, adapters=[AcsAdapter]) as host:
        host.control_plane = plane
        _, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            await acs.send(dtmf("#"))  # the echo pipeline sends HangUp and returns at once
            await plane.started.wait()
            await settled(plane, runner_log)
            assert plane.requests == [["hangup", "in flight"]]  # not cancelled
            assert acs.close_code is None  # the call stays up while its hang-up is on its way
            plane.gate.set()
            assert await acs.closed() == (1000, "call ended")
            await runner_log.seen("call ended").wait()
    assert plane.requests == [["hangup", "done"]]
    assert not [r for r in runner_log.records if r.levelno >= logging.ERROR]


async def test_a_transfer_in_flight_when_the_caller_hangs_up_completes_before_the_call_ends(
        redis_url: str, runner_log: RunnerLog) -> None:
    plane = GatedControlPlane()
    async with running_host(redis_url, adapters=[AcsAdapter]) as host:
        host.control_plane = plane
        _, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            await acs.send(dtmf("0"))  # the echo pipeline asks for a transfer and carries on
            await plane.started.wait()
        # The caller's socket is closed: the reader ends the call with the transfer still in flight.
        await settled(plane, runner_log)
        assert plane.requests == [["transfer", "in flight"]]
        plane.gate.set()
        await runner_log.seen("call ended").wait()
    assert plane.requests == [["transfer", "done"]]
    [ended] = [r for r in runner_log.records if r.getMessage() == "call ended"]
    assert ended.__dict__["outcome"] == "transfer_requested"


async def test_a_request_that_never_completes_is_cancelled_after_the_bound_with_an_error(
        redis_url: str, runner_log: RunnerLog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "CONTROL_DRAIN_S", 0.2, raising=False)
    plane = GatedControlPlane()  # the gate is never opened
    async with running_host(redis_url, adapters=[AcsAdapter]) as host:
        host.control_plane = plane
        call_id, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            await acs.send(dtmf("#"))
            assert await acs.closed() == (1000, "call ended")
        await runner_log.seen("call ended").wait()
    assert plane.requests == [["hangup", "cancelled"]]
    [error] = [r for r in runner_log.records if r.levelno >= logging.ERROR]
    assert error.getMessage().startswith("control requests still in flight")
    assert (error.__dict__["call_id"], error.__dict__["pending"]) == (call_id, "HangUp")


# --- the Function App's control plane retries ---------------------------------------------------


@dataclass
class FunctionApp:
    """A stand-in for `POST /api/calls/{id}/events/{name}`: answers each request with the next status."""

    statuses: list[int]
    seen: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.match_info["name"])
        status = self.statuses.pop(0) if self.statuses else 202
        return web.json_response({"status": status}, status=status)


@pytest.fixture
async def function_app() -> AsyncIterator[FunctionApp]:
    app = FunctionApp([])
    web_app = web.Application()
    web_app.router.add_post("/api/calls/{call_id}/events/{name}", app.handle)
    web_runner = web.AppRunner(web_app, access_log=None)
    await web_runner.setup()
    port = free_port()
    await web.TCPSite(web_runner, "127.0.0.1", port).start()
    app.url = f"http://127.0.0.1:{port}"
    yield app
    await web_runner.cleanup()


@pytest.mark.parametrize("case", [
    ([503, 500], 3, 0),  # the Function App could not raise the event twice: the third attempt lands
    ([429], 2, 0),
    ([503, 503, 503, 503], 4, 1),  # four attempts, then given up, loudly
    ([401], 1, 1),  # refused: another attempt would be refused too
    ([409], 1, 0),  # the call has ended already (the caller hung up first): nothing to do
])
async def test_the_control_plane_retries_a_hang_up_the_function_app_failed(
        store: SessionStore, function_app: FunctionApp, caplog: pytest.LogCaptureFixture,
        case: tuple[list[int], int, int]) -> None:
    statuses, posts, failures = case  # what the Function App answers; POSTs made; requests given up
    function_app.statuses = list(statuses)
    plane = FunctionsControlPlane(store, function_app.url, retry_delays_s=(0.0, 0.0, 0.0))
    caplog.set_level(logging.INFO, logger="media_host.control_plane")
    try:
        await plane.request_hangup("call-1", "bye")
    finally:
        await plane.aclose()
    assert function_app.seen == ["HangupRequested"] * posts
    assert plane.failures == failures
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == failures
    assert all(r.__dict__["attempts"] == posts for r in errors)


async def test_an_unreachable_function_app_is_retried_then_given_up(
        store: SessionStore, caplog: pytest.LogCaptureFixture) -> None:
    plane = FunctionsControlPlane(store, f"http://127.0.0.1:{free_port()}", retry_delays_s=(0.0, 0.0))
    caplog.set_level(logging.INFO, logger="media_host.control_plane")
    try:
        await plane.request_transfer("call-1", "+18005550199", "to a person")
    finally:
        await plane.aclose()
    assert plane.failures == 1
    retries = [r for r in caplog.records if r.getMessage().startswith("retrying TransferRequested")]
    assert len(retries) == 2
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.getMessage() == "raising TransferRequested to the orchestration failed"
    assert error.__dict__["attempts"] == 3


async def test_a_handoff_notice_is_tried_once_so_a_turn_never_waits_on_retries(
        store: SessionStore, function_app: FunctionApp) -> None:
    function_app.statuses = [503]
    plane = FunctionsControlPlane(store, function_app.url, retry_delays_s=(0.0, 0.0))
    try:
        await plane.notify_handoff("call-1", "a", "b", "c", authenticated=False)
    finally:
        await plane.aclose()
    assert function_app.seen == ["AgentHandoff"]
    assert plane.failures == 1
