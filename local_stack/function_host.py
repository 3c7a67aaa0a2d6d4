"""A local Functions host for `function_app.py`: the HTTP surface `func start` serves, on one aiohttp app.

- `/api/<route>` for every httpTrigger, called with a `func.HttpRequest` as the host builds it.
  Function keys are not checked, as under `func start`.
- `/runtime/webhooks/eventgrid?functionName=<name>` for eventGridTriggers: the subscription validation
  handshake, CloudEvents abuse protection (OPTIONS), and one invocation per event in a delivery.
- `/runtime/webhooks/durabletask/...`: the Durable extension's HTTP API, served by `LocalDurable`
  (in-process orchestrations: see local_stack/durable). Durable-client bindings point here.

Functions are indexed by the Python worker's own code (local_stack/worker_index.py): an app the worker
refuses does not start here either, with the worker's FunctionLoadError. Activities are invoked as the
worker invokes them: the input decoded and the result encoded by azure.functions' ActivityTriggerConverter.

It is for local mode only: one process, everything in memory. In Azure the Functions host and the
Durable extension do all of this.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter
from azure.functions.eventgrid import EventGridEventInConverter

from local_stack import worker_index

log = logging.getLogger("local_stack.function_host")

EVENTGRID_PATH = "/runtime/webhooks/eventgrid"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


@dataclass(frozen=True)
class Function:
    """One indexed function: its name, trigger binding, every binding, and the Python callable."""

    name: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    user: Any

    @property
    def kind(self) -> str:
        return str(self.trigger["type"])


def index(functions: Iterable[Any], directory: Path | None = None) -> dict[str, Function]:
    """The functions of an app (`app.get_functions()`, which may only be called once per app object), once the
    worker's indexing has accepted every one: raises its FunctionLoadError as the worker's start-up would.
    `directory` is the function app's (the working directory, as under `func start`)."""
    functions = list(functions)
    worker_index.index(functions, directory or Path.cwd())
    indexed = {}
    for function in functions:
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next(b for b in bindings if b["direction"] == "IN" and b["type"].endswith("Trigger"))
        indexed[function.get_function_name()] = Function(function.get_function_name(), trigger, bindings,
                                                         function.get_user_function())
    return indexed


def _error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


class FunctionHost:
    def __init__(self, functions: Mapping[str, Function], durable_binding: str) -> None:
        self.functions = functions
        self.durable_binding = durable_binding  # the JSON a durableClient binding receives

    def of_kind(self, kind: str) -> dict[str, Function]:
        return {name: f for name, f in self.functions.items() if f.kind == kind}

    async def invoke(self, name: str, **kwargs: Any) -> Any:
        """Call a function as the host does: durable clients arrive as binding JSON; sync or async alike."""
        function = self.functions[name]
        for binding in function.bindings:
            if binding["type"] == "durableClient":
                kwargs[binding["name"]] = self.durable_binding
        result = function.user(**kwargs)
        return await result if inspect.isawaitable(result) else result

    async def invoke_activity(self, name: str, payload: Any) -> Any:
        """Run an activity as the worker does: the Durable extension's JSON input through the activity trigger's
        converter (azure.functions.durable_functions.ActivityTriggerConverter.decode), the result back through
        its encode, so a value that is not JSON fails the activity here as it would in Azure."""
        function = self.functions[name]
        data = meta.Datum(type="json", value=json.dumps(payload))
        arg = ActivityTriggerConverter.decode(data, trigger_metadata={})
        result = await self.invoke(name, **{function.trigger["name"]: arg})
        return json.loads(ActivityTriggerConverter.encode(result, expected_type=None).value)

    def orchestrators(self) -> dict[str, Any]:
        """The orchestrator functions, for the local Durable runtime."""
        return {name: f.user for name, f in self.of_kind("orchestrationTrigger").items()}

    def activities(self) -> dict[str, Callable[[Any], Awaitable[Any]]]:
        """The activity functions for the local Durable runtime, each invoked through `invoke_activity`."""
        def activity(name: str) -> Callable[[Any], Awaitable[Any]]:
            async def run(payload: Any) -> Any:
                return await self.invoke_activity(name, payload)
            return run

        return {name: activity(name) for name in self.of_kind("activityTrigger")}

    def add_routes(self, app: web.Application) -> None:
        for function in self.of_kind("httpTrigger").values():
            async def handle(request: web.Request, function: Function = function) -> web.StreamResponse:
                return await self._http(function, request)

            for method in function.trigger.get("methods") or ["GET", "POST"]:
                app.router.add_route(method.upper(), f"/api/{function.trigger['route']}", handle)
        app.router.add_route("POST", EVENTGRID_PATH, self._eventgrid)
        app.router.add_route("OPTIONS", EVENTGRID_PATH, self._abuse_protection)

    # --- HTTP triggers -----------------------------------------------------------------------------
    async def _http(self, function: Function, request: web.Request) -> web.StreamResponse:
        req = func.HttpRequest(method=request.method, url=str(request.url), headers=dict(request.headers),
                               params=dict(request.query), route_params=dict(request.match_info),
                               body=await request.read())
        try:
            response: func.HttpResponse = await self.invoke(function.name, **{function.trigger["name"]: req})
        except Exception:
            log.exception("function %s failed", function.name)
            return _error(500, "internal", f"function {function.name} failed")
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        return web.Response(status=response.status_code, body=response.get_body(), headers=headers,
                            content_type=response.mimetype)

    # --- Event Grid triggers -----------------------------------------------------------------------
    async def _abuse_protection(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("WebHook-Request-Origin", "*")
        return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin})

    async def _eventgrid(self, request: web.Request) -> web.StreamResponse:
        name = request.query.get("functionName", "")
        function = self.of_kind("eventGridTrigger").get(name)
        if function is None:
            return _error(404, "unknown_function", f"no Event Grid trigger named {name[:64]!r}")
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):  # nesting past the parser's limit is malformed too
            return _error(400, "malformed_json", "the delivery is not JSON")
        events = body if isinstance(body, list) else [body]
        if not all(isinstance(e, dict) for e in events):
            return _error(400, "invalid_events", "a delivery is an event or an array of events")
        kind = request.headers.get("aeg-event-type", "")
        if kind == "SubscriptionValidation":
            code = next((data.get("validationCode") for e in events
                         if e.get("eventType") == VALIDATION_EVENT and isinstance(data := e.get("data"), dict)), None)
            if not isinstance(code, str):
                return _error(400, "no_validation_code", "a validation delivery carries a validation event")
            return web.json_response({"validationResponse": code})
        if kind != "Notification":
            return _error(400, "unknown_delivery", "aeg-event-type must be Notification or SubscriptionValidation")
        for event in events:  # invoked once per event, as the Event Grid extension does
            try:
                decoded = EventGridEventInConverter.decode(meta.Datum(type="json", value=json.dumps(event)),
                                                           trigger_metadata={})
            except (ValueError, TypeError, KeyError, AttributeError) as exc:  # e.g. an eventTime that is not a time
                return _error(400, "invalid_event", f"the worker cannot convert this event ({type(exc).__name__})")
            try:
                await self.invoke(name, **{function.trigger["name"]: decoded})
            except Exception:  # Event Grid retries a failed delivery
                log.exception("function %s failed", name)
                return _error(500, "internal", f"function {name} failed")
        return web.Response(status=202)
