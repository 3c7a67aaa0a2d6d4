"""The Function App's ingress on the test loop, wired to local services, invoked through azure-functions.

`open_harness(...)` starts, on 127.0.0.1:
- a LocalAcs (the ACS REST API the real Call Automation SDK talks to, HMAC-verified);
- a DurableWebhook (the Durable extension's HTTP API the real DurableOrchestrationClient talks to);
- the local function host (local_stack/function_host.py): each httpTrigger of `function_app` at
  `/api/<route>`, called with the durable-client binding JSON, as the Functions host would. Its URL is
  CALLBACK_BASE_URL, so LocalAcs callbacks and the media host's control plane reach the real functions;
- with `local_durable=True`, the local Durable runtime instead of the fake webhook: the app's real
  call_session on the replay engine, its activities invoked through the host (as `make run` does);
and builds a `callbacks.runtime.Worker` for test settings (Redis from `redis_url` under its own key
prefix, records in SQLite under `tmp_path`), installed with `runtime.use()` and closed on exit.

Settings: the Worker takes them directly (`load_settings(**overrides)`), and the request path only ever
reads `worker.settings`; `runtime.settings()` (the process-wide cached `get_settings()`) is only used by
`startup()`, `/api/health` and the agent library, so no environment variable or cache is touched.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
from aiohttp import web
from azure.durable_functions.models.utils.http_utils import _close_session
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from callbacks import runtime
from callbacks.runtime import Worker
from local_stack.acs import LocalAcs, incoming_call_event
from local_stack.durable import PREFIX, LocalDurable, add_durable_routes, binding
from local_stack.durable.recording import DurableWebhook
from local_stack.function_host import FunctionHost
from switchboard.acs_auth import AcsJwtVerifier
from switchboard.call_records import open_record_store
from switchboard.services import SharedServices, token_signer
from switchboard.session_store import SessionStore, connect_redis
from switchboard.settings import Settings, load_settings
from switchboard.tokens import Purpose
from tests.conftest import TEST_SECRET
from tests.support.functions_index import indexed

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"  # copies of ../shared/reference/payloads
ACS_KEY = base64.b64encode(b"functions-harness-acs-key-012345").decode()
MEDIA_URL = "wss://media.example.test"
BANKING, CLINIC, UNKNOWN = "+18005550100", "+18005550200", "+18005550999"
CALLER = "+14255550123"
AGENT = "+15551230000"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def query_token(url: str) -> str:
    [token] = parse_qs(urlsplit(url).query)["token"]
    return token


def http_request(method: str, route: str, *, body: bytes | Any = b"", params: Mapping[str, str] | None = None,
                 route_params: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> func.HttpRequest:
    """A request as the Functions host builds it; a non-bytes body is sent as JSON."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return func.HttpRequest(method=method, url=f"http://localhost/api/{route}", body=raw,
                            params=dict(params or {}), route_params=dict(route_params or {}),
                            headers={"Content-Type": "application/json", **(headers or {})})


def grid_event(event: Mapping[str, Any]) -> func.EventGridEvent | func.CloudEvent:
    """One event decoded exactly as the Python worker decodes an eventGridTrigger's input."""
    decoded: func.EventGridEvent | func.CloudEvent = EventGridEventInConverter.decode(
        meta.Datum(type="json", value=json.dumps(event)), trigger_metadata={})
    return decoded


def reply_json(response: func.HttpResponse) -> Any:
    assert response.mimetype == "application/json"
    return json.loads(response.get_body())


@dataclass
class Harness:
    settings: Settings
    worker: Worker
    acs: LocalAcs
    durable: DurableWebhook
    host_url: str
    host: FunctionHost
    engine: LocalDurable | None = None  # the local Durable runtime, when the harness runs one

    @property
    def store(self) -> SessionStore:
        return self.worker.store

    def token(self, call_id: str, purpose: Purpose = Purpose.CALLBACK) -> str:
        return self.store.issue_token(call_id, purpose)

    async def call(self, name: str, **kwargs: Any) -> Any:
        """Invoke a registered function as the host does (the durable client arrives as binding JSON)."""
        return await self.host.invoke(name, **kwargs)

    async def http(self, name: str, method: str, route: str, **request: Any) -> func.HttpResponse:
        response: func.HttpResponse = await self.call(name, req=http_request(method, route, **request))
        return response

    async def deliver(self, event: Mapping[str, Any]) -> None:
        """Event Grid delivers one event to the `on_incoming_call` trigger."""
        await self.call("on_incoming_call", event=grid_event(event))

    def incoming(self, to: str = BANKING, caller: str = CALLER, *, schema: str = "eventgrid") -> dict[str, Any]:
        """The captured IncomingCall payload (either schema) with fresh ids LocalAcs can answer."""
        fresh = incoming_call_event(to, caller, correlation_id=str(uuid.uuid4()))
        if schema == "cloudevents":
            event = payload("eventgrid_incoming_call_cloudevent")
        else:
            [event] = payload("eventgrid_incoming_call")
        event["id"] = fresh["id"]
        event["subject"] = fresh["subject"]
        event["time" if schema == "cloudevents" else "eventTime"] = fresh["eventTime"]  # an event this old rings
        for key in ("to", "from", "serverCallId", "incomingCallContext", "correlationId"):
            event["data"][key] = fresh["data"][key]
        return dict(event)

    async def answered_call(self, to: str = BANKING, caller: str = CALLER) -> tuple[str, str]:
        """An incoming call answered through the trigger: (call id, call connection id)."""
        event = self.incoming(to, caller)
        call_id = event["data"]["correlationId"]
        await self.deliver(event)
        answer = next(r for r in self.acs.requests if r.operation == "answer"
                      and r.body["incomingCallContext"] == event["data"]["incomingCallContext"])
        assert answer.call_connection_id is not None
        return call_id, answer.call_connection_id


@asynccontextmanager
async def open_harness(redis_url: str, tmp_path: Path, *, local_durable: bool = False,
                       **overrides: Any) -> AsyncIterator[Harness]:
    acs = LocalAcs(ACS_KEY)
    durable = DurableWebhook()
    await acs.start()
    await durable.start()
    host = FunctionHost(indexed(), durable.binding)
    app = web.Application()
    host.add_routes(app)
    # The app's orchestrators on the local Durable runtime; activities run through the host, as deployed.
    engine = LocalDurable(host.orchestrators(), host.activities()) if local_durable else None
    if engine is not None:
        add_durable_routes(app, engine)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    if engine is not None:  # the durable client now talks to the runtime on this host
        host.durable_binding = binding(f"{host_url}{PREFIX}")
    settings = load_settings(**{
        "redis_url": redis_url, "signing_secret": TEST_SECRET, "acs_endpoint": acs.endpoint,
        "acs_access_key": ACS_KEY, "callback_base_url": host_url, "media_host_public_url": MEDIA_URL,
        "records_db_path": tmp_path / "records.sqlite3", "cosmos_endpoint": None, **overrides})
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    store = SessionStore(connect_redis(redis_url), token_signer(settings), ttl_seconds=settings.session_ttl_seconds,
                         prefix=prefix)
    jwt = (AcsJwtVerifier(settings.acs_jwks_url, settings.acs_jwt_issuer, settings.acs_resource_id)
           if settings.acs_resource_id else None)
    worker = Worker(settings, runtime.agents(), SharedServices(store), open_record_store(settings), jwt)
    runtime.use(worker)
    try:
        yield Harness(settings, worker, acs, durable, host_url, host, engine)
    finally:
        if engine is not None:
            await engine.close()
        await acs.idle()
        keys = [k async for k in store.redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await store.redis.delete(*keys)
        await runtime.shutdown()  # closes the worker: ACS client, record store, Redis
        await store.redis.connection_pool.disconnect()  # aclose() leaves a pool passed in open
        await runner.cleanup()
        await acs.stop()
        await durable.stop()
        await _close_session()  # the Durable SDK's process-wide aiohttp session
