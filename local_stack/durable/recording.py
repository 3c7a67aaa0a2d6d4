"""The Durable extension's HTTP API on a port of its own, recording every request: what the tests (and the
control-plane bench) check the Function App asks of Durable.

The routes are webhook.py's, the same the local runtime serves; here they answer from instances that run
nothing (`RecordedInstances`): a start records one, an event raised to it is kept on it, and a test sets
its status. Every request is recorded with its body decoded, and a test can make the next ones fail.

    async with DurableWebhook() as durable:
        await functions()["acs_callbacks"].get_user_function()(req=req, client=durable.binding)
        [call] = durable.raised("call-1")             # DurableRequest(operation, instance_id, name, body, status)
        durable.fail_next("raise_event", 500)         # the next raise_event is answered 500

Instances exist once started (or `add_instance`): raising an event to, or reading the status of, an
unknown instance is a 404, as with the extension.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from aiohttp import web

from local_stack.durable.engine import RUNNING, InstanceGone, UnknownInstance
from local_stack.durable.webhook import PREFIX, add_durable_routes, binding, decode_body, operation

Operation = Literal["start_new", "raise_event", "get_status", "terminate"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class DurableRequest:
    """One request to the webhook; `body` decoded (the orchestration input, or the event data)."""

    operation: Operation
    instance_id: str
    name: str | None  # the orchestrator (start_new) or the event (raise_event)
    body: Any
    status: int


@dataclass
class Instance:
    instance_id: str
    name: str
    input: Any
    runtime_status: str = "Pending"
    custom_status: Any = None
    output: Any = None
    created_time: str = field(default_factory=_now)
    last_updated_time: str = field(default_factory=_now)
    events: list[tuple[str, Any]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "instanceId": self.instance_id, "runtimeStatus": self.runtime_status,
                "input": self.input, "customStatus": self.custom_status, "output": self.output,
                "createdTime": self.created_time, "lastUpdatedTime": self.last_updated_time}


class RecordedInstances:
    """Instances that run nothing (webhook.Instances): what happens to them is up to the test."""

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}

    def _get(self, instance_id: str) -> Instance:
        if (instance := self.instances.get(instance_id)) is None:
            raise UnknownInstance(instance_id)
        return instance

    async def start_new(self, name: str, instance_id: str | None = None, input: Any = None) -> str:
        """As the extension: starting an existing instance id replaces it (a new execution)."""
        instance_id = instance_id or uuid.uuid4().hex
        self.instances[instance_id] = Instance(instance_id, name, input)
        return instance_id

    async def raise_event(self, instance_id: str, name: str, data: Any = None) -> None:
        instance = self._get(instance_id)
        if instance.runtime_status not in RUNNING:
            raise InstanceGone(instance_id)
        instance.events.append((name, data))

    def status(self, instance_id: str) -> dict[str, Any]:
        return self._get(instance_id).status()

    async def terminate(self, instance_id: str, reason: str) -> None:
        instance = self._get(instance_id)
        if instance.runtime_status not in RUNNING:
            raise InstanceGone(instance_id)
        instance.runtime_status, instance.output, instance.last_updated_time = "Terminated", reason, _now()


class DurableWebhook:
    def __init__(self, task_hub: str = "TestHubName") -> None:
        self.task_hub = task_hub
        self.requests: list[DurableRequest] = []
        self.recorded = RecordedInstances()
        self.instances = self.recorded.instances
        self._faults: dict[str, list[int]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""  # http://127.0.0.1:PORT/runtime/webhooks/durabletask/

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(middlewares=[self._observe])
        add_durable_routes(app, self.recorded, self.task_hub)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{PREFIX}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DurableWebhook:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def binding(self) -> str:
        """The durable-client binding JSON the Functions host passes to a `durable_client_input` function."""
        return binding(self.base_url, self.task_hub)

    # --- test controls ---------------------------------------------------------------------------
    def add_instance(self, instance_id: str, name: str = "call_session", client_input: Any = None,
                     runtime_status: str = "Running") -> Instance:
        """An instance that exists without a recorded start_new (started by an earlier worker)."""
        instance = self.instances[instance_id] = Instance(instance_id, name, client_input, runtime_status)
        return instance

    def fail_next(self, operation: Operation, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` requests for `operation` with `status` (recorded, no effect)."""
        self._faults.setdefault(operation, []).extend([status] * times)

    def of(self, operation: Operation, instance_id: str | None = None) -> list[DurableRequest]:
        return [r for r in self.requests
                if r.operation == operation and (instance_id is None or r.instance_id == instance_id)]

    def started(self, instance_id: str | None = None) -> list[DurableRequest]:
        return self.of("start_new", instance_id)

    def raised(self, instance_id: str | None = None) -> list[DurableRequest]:
        """raise_event requests that were accepted (202), in the order received."""
        return [r for r in self.of("raise_event", instance_id) if r.status == 202]

    async def wait_for(self, operation: Operation, *, count: int = 1, timeout: float = 5.0) -> DurableRequest:
        def nth() -> DurableRequest | None:
            found = self.of(operation)
            return found[count - 1] if len(found) >= count else None

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: nth() is not None)
        except TimeoutError:
            raise TimeoutError(f"no {operation} #{count} within {timeout:g} s: {self.requests}") from None
        found = nth()
        assert found is not None
        return found

    # --- HTTP ------------------------------------------------------------------------------------
    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer an injected fault instead of the route, and record every request with its answer."""
        kind = operation(request)
        if kind is None:
            return await handler(request)
        try:
            body = decode_body(await request.read())
        except ValueError:
            body = None  # the route answers it 400
        pending = self._faults.get(kind)
        response = _fault(kind, pending.pop(0)) if pending else await handler(request)
        instance_id = request.match_info.get("instance_id") or _started(response) or uuid.uuid4().hex
        async with self._changed:
            self.requests.append(DurableRequest(cast("Operation", kind), instance_id, request.match_info.get("name"),
                                                body, response.status))
            self._changed.notify_all()
        return response


def _fault(kind: str, status: int) -> web.Response:
    if kind == "start_new":  # the extension's error body
        return web.json_response({"Message": "Injected fault.", "ExceptionMessage": "Injected fault."}, status=status)
    return web.Response(status=status)


def _started(response: web.StreamResponse) -> str | None:
    """The instance id a start_new answered with (the management payload's `id`)."""
    if response.status != 202 or not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return None
    links = json.loads(response.body)
    return links.get("id") if isinstance(links, dict) else None
