"""The Durable extension's HTTP API, answered from a LocalDurable (or the tests' recorded instances,
recording.py), for the real `DurableOrchestrationClient`.

The Functions host hands a durable-client function a binding JSON; its `rpcBaseUrl` is where the client
sends start_new, raise_event, get_status and terminate. These routes answer them with the extension's
statuses and bodies (start 202 with the management payload; raise_event 202, 404 unknown, 410 finished;
get_status 200 finished, 202 running, 404 with no body; terminate 202, 404, 410):

    app = web.Application()
    add_durable_routes(app, durable)                        # durable: a LocalDurable
    ... serve app on 127.0.0.1:PORT ...
    client = df.DurableOrchestrationClient(binding(f"http://127.0.0.1:{PORT}{PREFIX}"))
    await client.start_new("call_session", "call-1", {...})

The client JSON-encodes inputs and event data twice (`json=json.dumps(value)`): `decode_body` undoes it.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from local_stack.durable.engine import RUNNING, InstanceGone, UnknownInstance, UnknownOrchestrator

PREFIX = "/runtime/webhooks/durabletask/"
TASK_HUB = "LocalHub"


class Instances(Protocol):
    """What the routes answer from: LocalDurable, or recording.RecordedInstances. Unknown instances raise
    UnknownInstance, finished ones InstanceGone, unknown orchestrators UnknownOrchestrator."""

    async def start_new(self, name: str, instance_id: str | None = None, input: Any = None) -> str: ...
    async def raise_event(self, instance_id: str, name: str, data: Any = None) -> None: ...
    def status(self, instance_id: str) -> dict[str, Any]: ...
    async def terminate(self, instance_id: str, reason: str) -> None: ...


def binding(base_url: str, task_hub: str = TASK_HUB) -> str:
    """The durable-client binding JSON the Functions host passes to a `durable_client_input` function."""
    return json.dumps({"taskHubName": task_hub, "creationUrls": {}, "managementUrls": {}, "rpcBaseUrl": base_url})


def management_payload(base_url: str, task_hub: str, instance_id: str) -> dict[str, str]:
    """The status-query payload the extension answers a start with (`base_url` ends with the PREFIX)."""
    base = f"{base_url}instances/{instance_id}"
    query = f"?taskHub={task_hub}&connection=Storage&code=local"
    return {"id": instance_id, "statusQueryGetUri": base + query,
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}{query}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{query[1:]}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{query[1:]}",
            "purgeHistoryDeleteUri": base + query,
            "restartPostUri": f"{base}/restart{query}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{query[1:]}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{query[1:]}"}


def decode_body(raw: bytes) -> Any:
    """The body the client sent: JSON of a JSON string (None when it sent no input)."""
    if not raw:
        return None
    outer = json.loads(raw)
    return json.loads(outer) if isinstance(outer, str) else outer


def add_durable_routes(app: web.Application, durable: Instances, task_hub: str = TASK_HUB,
                       prefix: str = PREFIX) -> None:
    """Serve the extension's instance-management webhooks under `prefix` from `durable`. Each route's
    handler is named for the client operation it answers (`operation`)."""
    routes = _Routes(durable, task_hub, prefix)
    app.router.add_post(prefix + "orchestrators/{name}", routes.start_new)
    app.router.add_post(prefix + "orchestrators/{name}/{instance_id}", routes.start_new)
    app.router.add_post(prefix + "instances/{instance_id}/raiseEvent/{name}", routes.raise_event)
    app.router.add_post(prefix + "instances/{instance_id}/terminate", routes.terminate)
    app.router.add_get(prefix + "instances/{instance_id}", routes.get_status)


def _error(status: int, message: str) -> web.Response:
    # The extension's error body; the client raises its ExceptionMessage on a 400.
    return web.json_response({"Message": message, "ExceptionMessage": message}, status=status)


def operation(request: web.Request) -> str | None:
    """The client operation a request routed here is (start_new, raise_event, get_status, terminate)."""
    handler = request.match_info.route.handler
    return handler.__name__ if isinstance(getattr(handler, "__self__", None), _Routes) else None


class _Routes:
    def __init__(self, durable: Instances, task_hub: str, prefix: str) -> None:
        self.durable, self.task_hub, self.prefix = durable, task_hub, prefix

    async def start_new(self, request: web.Request) -> web.Response:
        try:
            body = decode_body(await request.read())
        except ValueError:
            return _error(400, "Invalid JSON content")
        try:
            instance_id = await self.durable.start_new(request.match_info["name"],
                                                       request.match_info.get("instance_id"), body)
        except UnknownOrchestrator as error:
            return _error(400, str(error))
        # As the extension: the links point at the host the request came to.
        links = management_payload(f"{request.scheme}://{request.host}{self.prefix}", self.task_hub, instance_id)
        return web.json_response(links, status=202, headers={"Location": links["statusQueryGetUri"]})

    async def raise_event(self, request: web.Request) -> web.Response:
        instance_id, name = request.match_info["instance_id"], request.match_info["name"]
        try:
            if self.durable.status(instance_id)["runtimeStatus"] not in RUNNING:
                return web.Response(status=410)
        except UnknownInstance:
            return web.Response(status=404)
        if request.content_type != "application/json":
            return _error(400, "Only application/json request content is supported")
        try:
            data = decode_body(await request.read())
        except ValueError:
            return _error(400, "Invalid JSON content")
        try:
            await self.durable.raise_event(instance_id, name, data)
        except UnknownInstance:
            return web.Response(status=404)
        except InstanceGone:
            return web.Response(status=410)
        return web.Response(status=202)

    async def get_status(self, request: web.Request) -> web.Response:
        try:
            status = self.durable.status(request.match_info["instance_id"])
        except UnknownInstance:
            return web.Response(status=404)  # the extension answers an unknown instance with no body
        return web.json_response(status, status=202 if status["runtimeStatus"] in RUNNING else 200)

    async def terminate(self, request: web.Request) -> web.Response:
        try:
            await self.durable.terminate(request.match_info["instance_id"], request.query.get("reason", ""))
        except UnknownInstance:
            return web.Response(status=404)
        except InstanceGone:
            return web.Response(status=410)
        return web.Response(status=202)
