"""A fake of the Durable Functions extension's HTTP API, for the real `DurableOrchestrationClient`.

The Functions host hands a durable-client function a JSON binding; its `rpcBaseUrl` is where the
client sends start_new, raise_event and get_status. This server answers those on 127.0.0.1 the way
the extension does, and records every request with its body decoded (the client JSON-encodes inputs
and event data twice: `json=json.dumps(value)`).

    async with DurableWebhook() as durable:
        await functions()["acs_callbacks"].get_user_function()(req=req, client=durable.binding)
        [call] = durable.raised("call-1")             # DurableRequest(operation, instance_id, name, body)
        durable.fail_next("raise_event", 500)         # the next raise_event is answered 500

Instances exist once started (or `add_instance`): raising an event to, or reading the status of, an
unknown instance is a 404, as with the extension.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from aiohttp import web

from local_stack.durable.webhook import PREFIX, decode_body, management_payload
from local_stack.durable.webhook import binding as binding_json

Operation = Literal["start_new", "raise_event", "get_status"]
T = TypeVar("T")
RUNNING = {"Pending", "Running", "Suspended"}  # answered 202 by get_status; finished states are 200


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


class DurableWebhook:
    def __init__(self, task_hub: str = "TestHubName") -> None:
        self.task_hub = task_hub
        self.requests: list[DurableRequest] = []
        self.instances: dict[str, Instance] = {}
        self._faults: dict[str, list[int]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""  # http://127.0.0.1:PORT/runtime/webhooks/durabletask/

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(PREFIX + "orchestrators/{name}", self._start_new)
        app.router.add_post(PREFIX + "orchestrators/{name}/{instance_id}", self._start_new)
        app.router.add_post(PREFIX + "instances/{instance_id}/raiseEvent/{name}", self._raise_event)
        app.router.add_get(PREFIX + "instances/{instance_id}", self._get_status)
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
        return binding_json(self.base_url, self.task_hub)

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
    async def _record(self, request: DurableRequest) -> None:
        async with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    def _fault(self, operation: Operation) -> int | None:
        pending = self._faults.get(operation)
        return pending.pop(0) if pending else None

    async def _start_new(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        instance_id = request.match_info.get("instance_id") or uuid.uuid4().hex
        body = decode_body(await request.read())
        status = self._fault("start_new")
        if status is None:
            status = 202
            # As the extension: starting an existing instance id replaces it (a new execution).
            self.instances[instance_id] = Instance(instance_id, name, body)
        await self._record(DurableRequest("start_new", instance_id, name, body, status))
        if status != 202:
            return web.json_response({"Message": "Injected fault.", "ExceptionMessage": "Injected fault."},
                                     status=status)
        links = management_payload(self.base_url, self.task_hub, instance_id)
        return web.json_response(links, status=202, headers={"Location": links["statusQueryGetUri"]})

    async def _raise_event(self, request: web.Request) -> web.Response:
        instance_id, name = request.match_info["instance_id"], request.match_info["name"]
        body = decode_body(await request.read())
        status = self._fault("raise_event")
        instance = self.instances.get(instance_id)
        if status is None:
            if instance is None:
                status = 404
            elif instance.runtime_status not in RUNNING:
                status = 410
            else:
                status = 202
                instance.events.append((name, body))
        await self._record(DurableRequest("raise_event", instance_id, name, body, status))
        return web.Response(status=status)

    async def _get_status(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        status = self._fault("get_status")
        instance = self.instances.get(instance_id)
        if status is None:
            status = 404 if instance is None else 202 if instance.runtime_status in RUNNING else 200
        await self._record(DurableRequest("get_status", instance_id, None, None, status))
        if instance is None or status >= 300:
            return web.Response(status=status)  # the extension answers an unknown instance with no body
        return web.json_response(instance.status(), status=status)
