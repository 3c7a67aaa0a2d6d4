"""The browser softphone adapter at /api/v1/realtime/conversation, and the route that issues its tokens.

A web page asks `POST /api/v1/realtime/sessions` for a call (a fresh session in Redis and a short-lived
browser token), opens the WebSocket with `?token=`, sends `start` with its audio format, then streams
raw PCM16 microphone audio in binary frames. It receives the agent's audio the same way, and JSON
events for everything a page can show: transcripts, agent handoffs, tool calls, per-turn latency.
The protocol is documented in docs/browser-protocol.md; its messages live in browser_models.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

import pydantic_core
from pydantic import ValidationError
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from media_host.channel import CallChannel, CallInfo
from media_host.events import (
    AgentChanged,
    CallerHungUp,
    DtmfReceived,
    HangUp,
    Hypothesis,
    Outbound,
    Recognition,
    SpeechStarted,
    SpeechStopped,
    StopPlayback,
    ToolCalled,
    TranscriptLine,
    Transfer,
    TurnCommitted,
    TurnLatency,
)
from media_host.http import body_of, json_response, method_of, respond
from media_host.playout import UtteranceEnd
from media_host.transports import browser_models as wire
from media_host.transports.base import (
    Admission,
    CloseCode,
    HostServices,
    ProtocolViolation,
    WireAdapter,
    close_reason,
    query_token_claims,
)
from switchboard.session_models import CallPhase, CallSession
from switchboard.tokens import Purpose

if TYPE_CHECKING:
    from media_host.server import MediaHost

log = logging.getLogger(__name__)

SESSIONS_PATH = "/api/v1/realtime/sessions"
MAX_BODY_BYTES = 4096
ERROR_SEND_TIMEOUT_S = 1.0  # the `error` message before a close is best effort: never wait long for it
_ENDED = (CallPhase.ENDED, CallPhase.TRANSFERRED)
_FIXED_MESSAGES: dict[type[Outbound], str] = {StopPlayback: wire.STOP_AUDIO, SpeechStarted: wire.SPEECH_STARTED,
                                              SpeechStopped: wire.SPEECH_STOPPED, TurnCommitted: wire.TURN_COMMITTED}


def _parse(text: str) -> wire.ClientMessage | wire.UnknownMessage:
    if len(text) > wire.MAX_TEXT_CHARS:
        raise ProtocolViolation(CloseCode.TOO_BIG, f"text message larger than {wire.MAX_TEXT_CHARS} characters",
                                "message_too_large")
    try:
        return wire.parse_client_message(text)
    except wire.ClientMessageError as exc:
        raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, exc.reason, exc.kind) from None


class BrowserAdapter(WireAdapter):
    transport: ClassVar[str] = "browser"
    path: ClassVar[str] = "/api/v1/realtime/conversation"

    def __init__(self, ws: ServerConnection, host: HostServices, admission: Admission) -> None:
        super().__init__(ws, host, admission)
        self._max_audio_bytes = 0  # one second at the wire rate, set by `start`
        self._caller_final: str | None = None  # the last Recognition sent, to drop its TranscriptLine twin

    @classmethod
    async def authorize(cls, request: Request, host: HostServices) -> Admission:
        claims = query_token_claims(request, host, Purpose.BROWSER)
        return Admission(claims={"call_id": claims.call_id})

    # --- opening -------------------------------------------------------------------------------
    async def open(self) -> CallInfo:
        while True:  # `start` comes first; pings are answered and unknown types skipped before it
            message = await self.ws.recv()
            if isinstance(message, bytes):
                raise ProtocolViolation(CloseCode.POLICY, "audio before start", "audio_before_start")
            parsed = _parse(message)
            if isinstance(parsed, wire.Start):
                return await self._start(parsed)
            if isinstance(parsed, wire.Ping):
                await self.ws.send(wire.pong(parsed.id))
            elif isinstance(parsed, wire.UnknownMessage):
                self.ignore_unknown(parsed.type)
            else:
                raise ProtocolViolation(CloseCode.POLICY, f"{parsed.type} before start", "out_of_order")

    async def _start(self, start: wire.Start) -> CallInfo:
        fmt = start.format
        if not fmt.supported:
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, f"unsupported audio format: {fmt.encoding[:16]} "
                                    f"{fmt.sample_rate} Hz x{fmt.channels}", "unsupported_format")
        rate = fmt.sample_rate
        self._max_audio_bytes = rate * 2  # one second of PCM16 mono
        call_id = str(self.admission.claims["call_id"])
        try:
            state = await self.host.store.load(call_id)
        except RedisError:
            log.warning("session store unavailable", exc_info=True, extra={"transport": self.transport})
            raise ProtocolViolation(CloseCode.INTERNAL, "session store unavailable", "store_unavailable") from None
        if state is None:
            raise ProtocolViolation(CloseCode.POLICY, "unknown call", "unknown_call")
        session = state.session
        if session.status in _ENDED:
            raise ProtocolViolation(CloseCode.POLICY, "call has ended", "call_ended")
        await self.ws.send(wire.ready(call_id, session.scenario, session.current_agent, rate, resumed=session.greeted))
        return CallInfo(call_id=call_id, transport=self.transport, wire_rate=rate,
                        correlation_id=session.correlation_id, state=state, resumed=session.greeted)

    # --- page to channel -----------------------------------------------------------------------
    async def on_message(self, message: str | bytes, channel: CallChannel) -> None:
        if isinstance(message, bytes):
            if len(message) > self._max_audio_bytes:
                raise ProtocolViolation(CloseCode.TOO_BIG, "audio frame longer than 1 s", "frame_too_large")
            if len(message) % 2:
                raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "audio frame has an odd number of bytes",
                                        "odd_length")
            channel.feed_audio(message, time.monotonic())  # counts as life, like touch()
            return
        parsed = _parse(message)
        channel.touch()
        if isinstance(parsed, wire.Dtmf):
            channel.feed_event(DtmfReceived(parsed.digits.upper()))
        elif isinstance(parsed, wire.Hangup):
            channel.feed_event(CallerHungUp("caller hung up"))
        elif isinstance(parsed, wire.Ping):
            await self.ws.send(wire.pong(parsed.id))
        elif isinstance(parsed, wire.Start):
            raise ProtocolViolation(CloseCode.POLICY, "start sent twice", "duplicate_start")
        else:
            self.ignore_unknown(parsed.type)

    # --- channel to page -----------------------------------------------------------------------
    async def send_audio(self, frame: bytes) -> None:
        await self.ws.send(frame)

    async def send_utterance_end(self, marker: UtteranceEnd) -> None:
        await self.ws.send(wire.audio_end(marker.utterance))

    async def send_control(self, event: Outbound, channel: CallChannel) -> None:
        text = self._render(event)
        if text is not None:
            await self.ws.send(text)
        if isinstance(event, HangUp):  # the call is over: close even if the pipeline has not returned yet
            await self.ws.close(CloseCode.NORMAL, "call ended")

    def _render(self, event: Outbound) -> str | None:
        """The page's message for an event, or None for those it has no use for (SendDtmf)."""
        fixed = _FIXED_MESSAGES.get(type(event))
        if fixed is not None:
            return fixed
        if isinstance(event, Hypothesis):
            return wire.transcript("caller", event.text, agent=None, final=False)
        if isinstance(event, Recognition):
            self._caller_final = event.text
            return wire.transcript("caller", event.text, agent=None, final=True)
        if isinstance(event, TranscriptLine):
            if event.speaker == "caller" and event.text == self._caller_final:
                self._caller_final = None  # the same turn, already shown from its Recognition
                return None
            return wire.transcript(event.speaker, event.text, agent=event.agent, final=True,
                                   interrupted=event.interrupted)
        if isinstance(event, AgentChanged):
            return wire.agent_changed(event.agent, event.previous, event.reason)
        if isinstance(event, ToolCalled):
            return wire.tool_called(event.name, ok=event.ok, elapsed_ms=event.elapsed_ms)
        if isinstance(event, TurnLatency):
            return wire.latency(event.marks)
        if isinstance(event, Transfer):
            return wire.transfer(event.target, event.reason)
        if isinstance(event, HangUp):
            return wire.hangup(event.reason)
        return None

    # --- ending --------------------------------------------------------------------------------
    async def _close_with_error(self, code: CloseCode, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(ERROR_SEND_TIMEOUT_S):
                await self.ws.send(wire.error(int(code), reason))
        await self.ws.close(code, close_reason(reason))

    async def refuse(self, reason: str) -> None:
        await self._close_with_error(CloseCode.TRY_AGAIN_LATER, reason)

    async def finish(self, code: CloseCode, reason: str) -> None:
        if code == CloseCode.NORMAL:
            await self.ws.close(code, close_reason(reason))
        else:
            await self._close_with_error(code, reason)


# --- the token route -----------------------------------------------------------------------------


def register_routes(host: MediaHost) -> None:
    """Add POST /api/v1/realtime/sessions to the host (call once, before `host.run`)."""

    async def sessions(request: Request) -> Response:
        return await handle_sessions_request(host, request)

    host.add_http_route(SESSIONS_PATH, sessions)


def _access_refused(host: MediaHost, request: Request) -> Response | None:
    """Creating calls costs money: open only in the embedded default, else behind BROWSER_ACCESS_KEY."""
    key = host.settings.browser_access_key
    if key is None:
        if host.settings.embedded:
            return None
        return json_response(403, {"error": "disabled",
                                   "detail": "browser calls are disabled: set BROWSER_ACCESS_KEY to enable them"})
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        host.metrics.errors.inc(transport=BrowserAdapter.transport, kind="unauthorized")
        return json_response(401, {"error": "unauthorized", "detail": "a valid access key is required"})
    return None


async def handle_sessions_request(host: MediaHost, request: Request) -> Response:
    if method_of(request).upper() != "POST":
        return respond(405, b'{"error": "method_not_allowed", "detail": "use POST"}', "application/json",
                       {"Allow": "POST"})
    refused = _access_refused(host, request)
    if refused is not None:
        return refused
    return await create_session(host, body_of(request))


def _bad_request(host: MediaHost, error: str, detail: str) -> Response:
    host.metrics.errors.inc(transport=BrowserAdapter.transport, kind=f"session_{error}")
    log.info("session request refused: %s", error, extra={"transport": BrowserAdapter.transport})
    return json_response(400, {"error": error, "detail": detail})


async def create_session(host: MediaHost, body: bytes) -> Response:
    """Create a browser call: a session in Redis and a token for its socket. 201, or a JSON error."""
    if len(body) > MAX_BODY_BYTES:
        return _bad_request(host, "body_too_large", f"the request body must be at most {MAX_BODY_BYTES} bytes")
    try:
        raw = pydantic_core.from_json(body) if body.strip() else {}
    except ValueError:
        return _bad_request(host, "malformed_json", "the request body is not valid JSON")
    if not isinstance(raw, dict):
        return _bad_request(host, "invalid_request", "the request body must be a JSON object")
    try:
        wanted = wire.SessionRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False, include_context=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return _bad_request(host, "invalid_request", f"{where}: {first['msg']}")
    catalog = host.agents.current
    name = wanted.scenario or host.settings.default_scenario
    scenario = catalog.scenarios.get(name)
    if scenario is None:
        if wanted.scenario is None:  # our configuration, not the client's request, is wrong
            log.error("default scenario %r is not loaded", name)
            return json_response(500, {"error": "misconfigured", "detail": "the default scenario is not loaded"})
        return _bad_request(host, "unknown_scenario", f"unknown scenario {name!r}")
    call_id = f"web-{uuid.uuid4()}"
    session = CallSession(call_id=call_id, scenario=scenario.name, current_agent=scenario.entry_agent.name,
                          caller=None)
    try:
        created = await host.store.create(session)
    except RedisError:
        log.warning("session store unavailable", exc_info=True)
        return json_response(503, {"error": "unavailable", "detail": "the session store is unavailable"})
    if not created:  # a v4 uuid collision: practically never, but never hand out someone else's call
        return json_response(500, {"error": "conflict", "detail": "call id already in use"})
    ttl = host.settings.browser_token_ttl_seconds
    token = host.store.issue_token(call_id, Purpose.BROWSER, ttl)
    log.info("browser session created", extra={"transport": BrowserAdapter.transport, "call_id": call_id,
                                               "scenario": scenario.name})
    return json_response(201, {"call_id": call_id, "scenario": scenario.name, "agent": session.current_agent,
                               "token": token, "expires_in": ttl,
                               "ws_url": f"{BrowserAdapter.path}?token={quote(token, safe='')}"})
