"""A local ACS Call Automation service: the REST API the real SDK speaks, HMAC-verified, plus callbacks.

    async with LocalAcs(access_key, auto_callbacks=True) as acs:
        client = CallAutomationClient(acs.endpoint, AzureKeyCredential(access_key))  # http:// is kept
        ...
        answer = await acs.wait_for("answer")          # AcsRequest(operation, method, path, query, body, ...)
        acs.fail_next("transfer", status=429)          # the next transfer gets an ACS-style 429
        await acs.post_callback(answer.call_connection_id, "PlayCompleted", {"operationContext": "p1"})

Operations (the names used by `wait_for`/`fail_next`): answer, reject, redirect, create, get_call, hang_up
(DELETE), terminate, transfer, play, recognize, cancel_all_media_operations, start_media_streaming,
stop_media_streaming, list_participants. Other `{id}:action` paths are recorded and answered 501.

Bodies are parsed with the SDK's own request models (`models.py`): what ACS would refuse gets its 400.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import aiohttp
from aiohttp import web

from local_stack.acs.calls import (
    AcsCallConnection,
    Delivery,
    Json,
    bot_identity,
    cloud_event,
    event_name,
    media_failed,
    streaming_started,
    transferee,
)
from local_stack.acs.eventgrid import EventGridSubscription
from local_stack.acs.hmac_auth import HmacError, decode_key, new_access_key, verify_hmac
from local_stack.acs.incoming import (
    identifier,
    incoming_call_event,
    new_server_call_id,
    parse_incoming_call_context,
    with_kind,
)
from local_stack.acs.media import MediaConnector, MediaLegs, MediaLost
from local_stack.acs.models import StreamingOptions, parse_request
from local_stack.acs.rest import (
    ACTIONS,
    FAULT_CODES,
    AcsFailure,
    AcsRequest,
    error_response,
    parse_json,
    route,
    valid_context,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


Result = tuple[int, Json | None]


def _answers(request: AcsRequest, correlation_id: str) -> bool:
    context = parse_incoming_call_context(str((request.body or {}).get("incomingCallContext", "")))
    return context is not None and context.correlation_id == correlation_id


class LocalAcs:
    """ACS on 127.0.0.1: `endpoint`, `requests` (verified, in order), `calls` (by call connection id),
    `callbacks` (deliveries), `rejected` (HMAC failures). Set `transfer_outcome = "failed"` to fail transfers.
    """

    def __init__(self, access_key: str | None = None, *, port: int = 0, auto_callbacks: bool = False,
                 max_skew_s: float = 300, callback_token: Callable[[], str] | None = None,
                 media: MediaConnector | None = None) -> None:
        self.access_key = access_key or new_access_key()
        decode_key(self.access_key)  # a bad key is a setup error: fail now, not on every request
        self.auto_callbacks = auto_callbacks
        self.transfer_outcome: Literal["accepted", "failed"] = "accepted"
        self.max_skew_s = max_skew_s
        self.callback_token = callback_token  # mints `Authorization: Bearer` for callbacks, as ACS sends a JWT
        self.identity = bot_identity(str(uuid.uuid4()))
        self.requests: list[AcsRequest] = []
        self.rejected: list[tuple[str, str]] = []  # (path, reason) of requests that failed HMAC
        self.callbacks: list[Delivery] = []
        self.calls: dict[str, AcsCallConnection] = {}
        # ACS signs media upgrades as it signs callbacks
        self.media = MediaLegs(media, callback_token, on_lost=self._media_lost)
        self._port = port
        self._faults: dict[str, list[AcsFailure]] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._call_locks: dict[str, asyncio.Lock] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.endpoint = ""

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port).start()
        self.endpoint = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        await self.media.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> LocalAcs:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- test controls -----------------------------------------------------------------------------
    def fail_next(self, operation: str, status: int = 500, times: int = 1, *, retry_after: float | None = None,
                  message: str = "Injected fault.") -> None:
        """Answer the next `times` requests for `operation` with an ACS error (after HMAC, before any effect)."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        fault = AcsFailure(status, FAULT_CODES.get(status, str(status)), message, headers)
        self._faults.setdefault(operation, []).extend([fault] * times)

    async def wait_for(self, operation: str, *, count: int = 1, timeout: float = 5.0) -> AcsRequest:
        """The `count`-th recorded request for `operation` (faulted attempts included), once it has arrived."""
        def nth() -> AcsRequest | None:
            found = [r for r in self.requests if r.operation == operation]
            return found[count - 1] if len(found) >= count else None
        return await self._until(nth, timeout, f"{operation!r} request #{count}")

    async def wait_for_answer(self, correlation_id: str, *, timeout: float = 5.0) -> AcsRequest:
        """The answer request for the incoming call with this correlation id (calls may overlap)."""
        def find() -> AcsRequest | None:
            return next((r for r in self.requests if r.operation == "answer" and _answers(r, correlation_id)), None)
        return await self._until(find, timeout, f"answer to call {correlation_id}")

    async def wait_for_callback(self, event_type: str, *, count: int = 1, timeout: float = 5.0) -> Delivery:
        def nth() -> Delivery | None:
            found = [d for d in self.callbacks if d.event_type == event_name(event_type)]
            return found[count - 1] if len(found) >= count else None
        return await self._until(nth, timeout, f"{event_type!r} callback #{count}")

    async def idle(self) -> None:
        """Until every automatic callback scheduled so far has been delivered."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def post_callback(self, call_connection_id: str, event_type: str,
                            data_overrides: Mapping[str, Any] | None = None, *, url: str | None = None) -> int:
        """POST one callback event for the call to its callback URL (or `url`); returns the app's HTTP status.

        The event also moves the call's state (CallConnected -> connected, CallDisconnected -> disconnected,
        MediaStreamingStarted -> media active, ...). KeyError for an unknown call; aiohttp.ClientError when the
        app cannot be reached.
        """
        call = self.calls[call_connection_id]
        name = event_name(event_type)
        body = [cloud_event(call, name, data_overrides)]
        call.apply(name)
        self.media.on_event(call, name)
        target = url or call.callback_url
        headers = {"Authorization": f"Bearer {self.callback_token()}"} if self.callback_token else {}
        assert self._session is not None, "LocalAcs is not started"
        try:
            async with self._session.post(target, json=body, headers=headers) as response:
                status = response.status
        except aiohttp.ClientError:
            await self._record(lambda: self.callbacks.append(Delivery(name, target, body, None)))
            raise
        await self._record(lambda: self.callbacks.append(Delivery(name, target, body, status)))
        return status

    async def ring(self, subscription: EventGridSubscription, to: str, caller: str, *,
                   correlation_id: str | None = None) -> str:
        """A caller dials `to`: publish its IncomingCall event to the subscription. Returns the correlation id."""
        event = incoming_call_event(to, caller, correlation_id=correlation_id)
        await subscription.deliver(event)
        return str(event["data"]["correlationId"])

    def caller_hangs_up(self, call_connection_id: str) -> None:
        """The far end hangs up: the media socket closes and CallDisconnected follows."""
        call = self.calls[call_connection_id]
        if call.state != "disconnected":
            call.disconnect()
            self.media.end(call_connection_id)
            self._auto(call, ["CallDisconnected"])

    def subscription(self, url: str) -> EventGridSubscription:
        """An Event Grid webhook subscription for IncomingCall events (validate it before delivering)."""
        assert self._session is not None, "LocalAcs is not started"
        return EventGridSubscription(self._session, url)

    # --- HTTP --------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            verify_hmac(request.method, request.raw_path, request.headers, raw, self.access_key,
                        now=datetime.now(UTC), max_skew_s=self.max_skew_s)
        except HmacError as exc:
            self.rejected.append((request.path, exc.reason))
            return error_response(AcsFailure(401, "Unauthorized", exc.reason))
        operation, call_id = route(request.method, request.path)
        body: Any = None
        try:
            if "api-version" not in request.query:
                raise AcsFailure(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
            body = parse_json(raw)
            typed = parse_request(operation, body)  # the SDK's own model of the body, or ACS's 400
            if self._faults.get(operation):
                raise self._faults[operation].pop(0)
            status, payload = await self._dispatch(operation, call_id, body or {}, typed)
        except AcsFailure as failure:  # its message names fields and ids, never what a caller said or dialled
            log.info("%s refused: %d %s %s", operation, failure.status, failure.code, failure.message)
            status, payload = failure.status, None
            response = error_response(failure)
        else:
            response = web.Response(status=status) if payload is None else web.json_response(payload, status=status)
            call_id = call_id or (payload or {}).get("callConnectionId")
        record = AcsRequest(operation, request.method, request.path, dict(request.query), body,
                            {k.lower(): v for k, v in request.headers.items()}, call_id, status)
        await self._record(lambda: self.requests.append(record))
        return response

    async def _dispatch(self, operation: str, call_id: str | None, body: Json, typed: Any) -> Result:
        handler: Callable[[Json, Any], Awaitable[Result]] | None = {
            "answer": self._answer, "create": self._create, "reject": self._reject, "redirect": self._redirect,
        }.get(operation)
        if handler is not None:
            return await handler(body, typed)
        if operation == "unknown" or call_id is None:
            raise AcsFailure(404, "NotFound", "The requested resource was not found.")
        call = self.calls.get(call_id)
        if call is None or call.state == "disconnected":
            raise AcsFailure(404, "8522", f"Call connection {call_id} was not found.")
        return await self._call_operation(operation, call, body, typed)

    async def _call_operation(self, operation: str, call: AcsCallConnection, body: Json, typed: Any) -> Result:
        if operation == "get_call":
            return 200, call.properties()
        if operation == "list_participants":
            return 200, {"value": [{"identifier": p, "isMuted": False, "isOnHold": False} for p in call.participants]}
        if operation in ("hang_up", "terminate"):
            call.disconnect()  # at once: a second hang-up already finds no call
            self.media.end(call.call_connection_id)
            self._auto(call, ["CallDisconnected"])
            return 204, None
        if operation not in ACTIONS.values():
            raise AcsFailure(501, "NotImplemented", f"The local ACS does not implement {operation!r}.")
        if call.state != "connected":
            raise AcsFailure(400, "8501", "Action is invalid when call is not in Established state.")
        operation_context = getattr(typed, "operation_context", None)
        context = {} if operation_context is None else {"operationContext": operation_context}
        url = getattr(typed, "operation_callback_uri", None)
        if operation == "transfer":
            target = with_kind(body["targetParticipant"])
            if self.transfer_outcome == "failed":
                self._auto(call, [("CallTransferFailed", context)], url)
            else:  # once the far end takes the call, this app's leg of it ends
                accepted = {**context, "transferTarget": target, "transferee": transferee(call)}
                self._auto(call, [("CallTransferAccepted", accepted), ("CallDisconnected", {})], url)
            call.state = "transferring"
            return 202, context
        if operation in ("start_media_streaming", "stop_media_streaming"):
            if call.media_streaming is None:
                raise AcsFailure(400, "BadRequest", "Media streaming is not configured for this call.")
            if operation == "start_media_streaming":
                self._auto(call, [streaming_started(call.media_streaming, context)], url)
            else:
                self._auto(call, [("MediaStreamingStopped", context)], url)
        return 202, None

    async def _answer(self, body: Json, typed: Any) -> Result:
        token: str = typed.incoming_call_context
        ctx = valid_context(token)
        if any(c.incoming_call_context == token for c in self.calls.values()):
            # As ACS: a context answers one call once; after that it is dead (answered, then ended).
            raise AcsFailure(400, "BadRequest", "The incoming call can no longer be answered.")
        caller = identifier(ctx.caller)
        callee = identifier(ctx.to)
        call = self._new_call(body, typed, ctx.server_call_id, ctx.correlation_id, [caller])
        call.incoming_call_context = token
        call.answered_by = self.identity["rawId"]
        call.answered_for = {"value": callee["phoneNumber"]["value"]} if "phoneNumber" in callee else None
        return 200, call.properties()

    async def _create(self, body: Json, typed: Any) -> Result:
        if not typed.targets:
            raise AcsFailure(400, "BadRequest", "At least one target is required.")
        call = self._new_call(body, typed, None, str(uuid.uuid4()), [with_kind(t) for t in body["targets"]])
        call.source_caller_id_number = body.get("sourceCallerIdNumber")
        return 201, call.properties()

    async def _reject(self, body: Json, typed: Any) -> Result:
        valid_context(typed.incoming_call_context)
        return 204, None

    async def _redirect(self, body: Json, typed: Any) -> Result:
        valid_context(typed.incoming_call_context)
        return 204, None

    def _new_call(self, body: Json, typed: Any, server_call_id: str | None, correlation_id: str,
                  targets: list[Json]) -> AcsCallConnection:
        options = typed.media_streaming_options
        call = AcsCallConnection(str(uuid.uuid4()), server_call_id or new_server_call_id(), correlation_id,
                                 typed.callback_uri, targets, self.identity, operation_context=typed.operation_context,
                                 media_streaming=None if options is None else StreamingOptions.of(options),
                                 transcription=body.get("transcriptionOptions"))
        self.calls[call.call_connection_id] = call
        events: list[str | tuple[str, Json]] = ["CallConnected"]
        if call.media_streaming is not None and call.media_streaming.start:
            events.append(streaming_started(call.media_streaming, {}))
        self._auto(call, events)
        return call

    # --- automatic callbacks -----------------------------------------------------------------------
    def _media_lost(self, call: AcsCallConnection, lost: MediaLost) -> None:
        """The media socket did not open, or broke, while the call was up: tell the app, as ACS does."""
        if call.state != "disconnected":
            self._auto(call, [("MediaStreamingFailed", media_failed(lost.details))])

    def _auto(self, call: AcsCallConnection, events: list[str | tuple[str, Json]], url: str | None = None) -> None:
        """Post these events in order, after the REST response has gone (as ACS does), when auto_callbacks."""
        if not self.auto_callbacks:
            return
        lock = self._call_locks.setdefault(call.call_connection_id, asyncio.Lock())

        async def deliver() -> None:
            async with lock:  # one call's events arrive in the order they were caused
                for event in events:
                    name, overrides = (event, {}) if isinstance(event, str) else event
                    try:
                        await self.post_callback(call.call_connection_id, name, overrides, url=url)
                    except aiohttp.ClientError as exc:
                        log.warning("callback %s to %s failed: %s", name, url or call.callback_url, exc)

        task = asyncio.get_running_loop().create_task(deliver())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, append: Callable[[], None]) -> None:
        async with self._changed:
            append()
            self._changed.notify_all()

    async def _until(self, find: Callable[[], T | None], timeout: float, what: str) -> T:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: find() is not None)
        except TimeoutError:
            seen = [r.operation for r in self.requests], [d.event_type for d in self.callbacks]
            raise TimeoutError(f"no {what} within {timeout:g} s (requests, callbacks so far: {seen})") from None
        found = find()
        assert found is not None
        return found
