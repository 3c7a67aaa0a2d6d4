"""A local OpenAI Realtime API server for tests, speaking the GA or the beta (Azure preview) dialect.

    async with RealtimeServer("ga", [Speak("Hello.", 300), CallTool("lookup", {"order": "42"})],
                              heard=["where is my order"]) as server:
        # REALTIME_WEBSOCKET_URL=server.url: the openai SDK connects to {url}/realtime
        server.events("conversation.item.truncate")   # the client events received, in order
        await server.emit(rate_limits())               # any server event (GA-named; renamed for beta)
        await server.emit_malformed({"type": "error"})  # as it is, unchecked
        await server.drop()                            # the socket dies, mid-response or not

Paths: `/v1/realtime?model=M` (OpenAI; beta clients add `OpenAI-Beta: realtime=v1`), `/openai/v1/realtime
?model=D` (Azure GA), `/openai/realtime?api-version=V&deployment=D` (Azure preview). A client of the
other flavor is refused (400), every client while `refusing` (503). On connect: `session.created`.

Strict as the service is: every event sent is a server event of the dialect as the openai SDK models it
(tests/support/realtime_events.py; a test server that breaks this raises NonConformingEvent, in the send and again
when the server closes); every client event received is validated against the SDK's client-event models
and then checked as the service would (tests/support/realtime_wire.py `Checks`): a bad one gets an `error` event,
as the service answers it, and is listed in `problems`. Responses follow the documented event order,
cancellation included (tests/support/realtime_responses.py).

Caller audio goes through an energy VAD in 20 ms frames: `start_frames` loud frames make `speech_started`
(`audio_start_ms` = the first of them); `silence_ms` of quiet then makes `speech_stopped`, `committed`,
the user item (`conversation.item.added`, beta `.created`: InputAudioBufferCommittedEvent's docstring)
and, if the session transcribes, with the next of `heard` as the transcript,
`conversation.item.input_audio_transcription.completed`: sent after the answer's first audio, as the
service often does ("may come before or after the Response events", its docstring). On Azure paths the
transcription model must name one of `deployments` (or the Realtime deployment connected to): Azure
takes a deployment name there (https://learn.microsoft.com/azure/foundry/openai/realtime-audio-reference,
"Azure deviation"); with a model name it accepts the session and fails every transcription
(`conversation.item.input_audio_transcription.failed`, as reported in openai/openai-agents-js#297).
As the session's turn detection says (`create_response`, `interrupt_response`) the answer starts by
itself and speech cancels a response.

Each response (`response.create`, or a turn) serves the next script item:
- `Speak(text, audio_ms)`: an assistant audio item, PCM16 24 kHz, each 20 ms frame starting with the
  response's `marker` (so a test counts what the caller got of it), the transcript spread over the
  chunks; sent `pace` x real time (0: at once); `drop_after_ms` kills the socket once that much is sent.
- `CallTool(name, arguments)`: a function call item (beta: the name is on the item only); with `hold`, it
  stops partway through the arguments (`hold_at`) until cancelled; `outcome` incomplete / failed ends
  the response so instead.
`response.cancel` ends the response in flight (status cancelled), else it is the error
`response_cancel_not_active`. With `lock_voice`, a voice change once assistant audio exists is refused.
An out-of-band `response.create` (`conversation: none`) gets `holding_ms` of audio marked `HOLD_MARKER`
at once; it is listed in `out_of_band`, not in `events()`. A transcript a dropped socket never delivered
goes back to `heard`, for the next socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections import deque
from collections.abc import Callable, Iterable
from http import HTTPStatus

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.realtime_events import NonConformingEvent, check_server_event, client_problems
from tests.support.realtime_responses import ResponseStream
from tests.support.realtime_wire import (
    BETA_NAMES,
    FRAME_BYTES,
    HOLD_MARKER,
    CallTool,
    Checks,
    Event,
    Served,
    Speak,
    error,
    initial_session,
    merge,
    transcription_of,
    turn_detection_of,
    voice_of,
)

__all__ = ["CallTool", "NonConformingEvent", "RealtimeServer", "Served", "Speak"]

LOUD = 500  # mean |sample| of a frame with speech


class Connection:
    """One client socket: what it sent, and the session and conversation on it."""

    def __init__(self, server: RealtimeServer, ws: ServerConnection, request: Request, number: int) -> None:
        self.server, self.ws, self.ga = server, ws, server.ga
        self.path, _, query = request.path.partition("?")
        self.query = dict(p.partition("=")[::2] for p in query.split("&") if p)
        self.headers = {k.lower(): v for k, v in request.headers.raw_items()}
        self.azure = self.path.startswith("/openai/")
        self.deployments = {*server.deployments, self.query.get("model") or self.query.get("deployment") or ""}
        self.events: list[Event] = []
        self.sent: list[Event] = []  # the server events sent, as sent (beta: beta names)
        self.audio = bytearray()  # all the caller audio appended
        self.session = initial_session(self.ga, f"sess_{number}")
        self.stream: ResponseStream | None = None  # the response in the conversation, while in progress
        self.asides: set[asyncio.Task[None]] = set()  # out-of-band responses being streamed
        self.items: dict[str, Served] = {}  # assistant items with audio, by id
        self.calls: set[str] = set()
        self.checks = Checks(self.ga, self.calls, lambda item: s.audio_ms if (s := self.items.get(item)) else None)
        self._rest = bytearray()
        self._ms = 0  # position in the appended audio
        self._loud = self._quiet = 0
        self._speech: tuple[str, int, int] | None = None  # (item id, start ms, end ms of the last loud frame)
        self._transcript: Event | None = None  # due after the answer's first audio

    @property
    def response(self) -> Served | None:
        """The response in progress (None once its response.done is sent, or the socket dropped)."""
        stream = self.stream
        active = stream is not None and stream.served.status == "in_progress" and not stream.dropped
        return stream.served if active and stream is not None else None

    async def send(self, event: Event) -> None:
        kind = event["type"]
        event = {**event, "type": kind if self.ga else BETA_NAMES.get(kind, kind),
                 "event_id": f"event_{next(self.server.ids)}"}
        try:
            check_server_event(event, self.ga)
        except NonConformingEvent as exc:
            self.server.nonconforming.append(str(exc))
            raise
        self.sent.append(event)
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(json.dumps(event))

    async def transcribed(self) -> None:
        event, self._transcript = self._transcript, None
        if event is not None:
            await self.send(event)

    def drop(self) -> None:
        self.ws.transport.abort()

    def changed(self) -> None:
        self.server.changed()

    # --- client events ---------------------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        aside = event.get("type") == "response.create" and (event.get("response") or {}).get("conversation") == "none"
        (self.server.out_of_band if aside else self.events).append(event)
        self.server.changed()
        schema = client_problems(event, self.ga)
        if schema:  # the service's answer: the first problem, with its param
            self.server.problems += [f"{event.get('type')}: {p.message}" for p in schema]
            await self.send(error(schema[0].code, schema[0].message, param=schema[0].param,
                                  event_id=event.get("event_id")))
            return
        problems = self.checks.problems(event)
        if problems:
            self.server.problems += problems
            await self.send(error("invalid_value", "; ".join(problems), event_id=event.get("event_id")))
            return
        kind = event["type"]
        if kind == "session.update":
            await self._update(event)
        elif kind == "input_audio_buffer.append":
            pcm = base64.b64decode(event["audio"])
            self.audio += pcm
            await self._hear(pcm)
        elif kind == "conversation.item.create":
            item = {"id": f"item_{next(self.server.ids)}", "object": "realtime.item", "status": "completed",
                    **event["item"]}
            await self.send({"type": "conversation.item.added", "previous_item_id": None, "item": item})
        elif kind == "conversation.item.truncate":
            await self.send({"type": "conversation.item.truncated", **{k: event[k] for k in (
                "item_id", "content_index", "audio_end_ms")}})
        elif kind == "response.create":
            await self._create(event, aside)
        elif kind == "response.cancel":
            response = self.response
            if response is None or event.get("response_id", response.id) != response.id:
                await self.send(error("response_cancel_not_active", "Cancellation failed: no active response found",
                                      event_id=event.get("event_id")))
            else:
                await self.cancel("client_cancelled")

    async def _create(self, event: Event, aside: bool) -> None:
        if aside:  # answered at once, beside any response in flight; no script item, nothing served
            body = event["response"]
            served = Served(f"resp_oob_{next(self.server.ids)}", f"item_{next(self.server.ids)}",
                            Speak("", self.server.holding_ms), marker=HOLD_MARKER, metadata=body.get("metadata"))
            stream = ResponseStream(self, served, conversation=False)
            await stream.start()
            assert stream.task is not None
            self.asides.add(stream.task)
            stream.task.add_done_callback(self.asides.discard)
        elif self.response is not None:
            await self.send(error("conversation_already_has_active_response", "a response is in progress",
                                  event_id=event.get("event_id")))
        else:
            await self.respond(event.get("response") or {})

    async def _update(self, event: Event) -> None:
        voice = voice_of(event["session"], self.ga)
        if self.server.lock_voice and self.items and voice not in (None, voice_of(self.session, self.ga)):
            param = "session.audio.output.voice" if self.ga else "session.voice"
            await self.send(error("cannot_update_voice", "Cannot update a conversation's voice if assistant audio "
                                  "is present.", param=param, event_id=event.get("event_id")))
            return
        merge(self.session, event["session"])
        await self.send({"type": "session.updated", "session": self.session})

    async def _hear(self, pcm: bytes) -> None:
        """The VAD, frame by frame."""
        self._rest += pcm
        while len(self._rest) >= FRAME_BYTES:
            frame = np.frombuffer(bytes(self._rest[:FRAME_BYTES]), dtype="<i2")
            del self._rest[:FRAME_BYTES]
            self._ms += 20
            if np.abs(frame.astype(np.int32)).mean() > LOUD:
                self._loud, self._quiet = self._loud + 1, 0
                if self._speech is not None:
                    self._speech = (self._speech[0], self._speech[1], self._ms)
                elif self._loud >= self.server.start_frames:
                    await self._speech_started(self._ms - 20 * self._loud)
            else:
                self._loud, self._quiet = 0, self._quiet + 1
                if self._speech is not None and self._quiet * 20 >= self.server.silence_ms:
                    await self._speech_stopped()

    async def _speech_started(self, start_ms: int) -> None:
        item_id = f"item_{next(self.server.ids)}"
        self._speech = (item_id, start_ms, self._ms)
        await self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": start_ms, "item_id": item_id})
        if self.response is not None and self._detection().get("interrupt_response", True):
            await self.cancel("turn_detected")

    async def _speech_stopped(self) -> None:
        assert self._speech is not None
        (item_id, _, end_ms), self._speech = self._speech, None
        await self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms, "item_id": item_id})
        await self.send({"type": "input_audio_buffer.committed", "previous_item_id": None, "item_id": item_id})
        await self.send({"type": "conversation.item.added", "previous_item_id": None, "item": {
            "id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}]}})
        transcription = transcription_of(self.session, self.ga)
        if transcription is not None:
            heard = self.server.heard.popleft() if self.server.heard else ""
            where = {"item_id": item_id, "content_index": 0}
            if self.azure and transcription.get("model") not in self.deployments:
                self._transcript = {"type": "conversation.item.input_audio_transcription.failed", **where, "error": {
                    "type": "server_error", "code": None, "param": None,
                    "message": f"Input transcription failed for item '{item_id}'."}}
            else:
                self._transcript = {"type": "conversation.item.input_audio_transcription.completed", **where,
                                    "transcript": heard, "usage": {"type": "tokens", "input_tokens": 13,
                                                                   "output_tokens": 9, "total_tokens": 22}}
        await self._respond_to_turn()

    async def _respond_to_turn(self) -> None:
        if self._detection().get("create_response", True) and self.response is None:
            await self.respond()
        else:
            await self.transcribed()

    def _detection(self) -> Event:
        return turn_detection_of(self.session, self.ga)

    # --- responses (tests/support/realtime_responses.py streams them) --------------------------------------
    async def respond(self, overrides: Event | None = None) -> None:
        server = self.server
        number = next(server.responses)
        script = server.script.popleft() if server.script else None
        if script is None:
            server.problems.append("script exhausted: the test expected fewer responses")
        served = Served(f"resp_{number}", f"item_{next(server.ids)}", script, marker=1000 + number)
        if isinstance(script, CallTool):
            served.call_id = f"call_{next(server.ids)}"
            self.calls.add(served.call_id)
        elif isinstance(script, Speak):
            self.items[served.item_id] = served
        tools = (overrides or {}).get("tools") or self.session.get("tools") or []
        served.tools = [str(t.get("name")) for t in tools]
        server.served.append(served)
        self.stream = ResponseStream(self, served)
        await self.stream.start()

    async def cancel(self, reason: str) -> None:
        stream = self.stream
        assert stream is not None
        await stream.cancel(reason)

    def close(self) -> None:
        for task in [*self.asides, *([self.stream.task] if self.stream and self.stream.task else [])]:
            task.cancel()
        if self._transcript is not None and "transcript" in self._transcript:  # never delivered: the next
            self.server.heard.appendleft(self._transcript["transcript"])  # socket's turn gets it


class RealtimeServer:
    def __init__(self, flavor: str, script: Iterable[Speak | CallTool] = (), *, heard: Iterable[str] = (),
                 start_frames: int = 2, silence_ms: int = 200, lock_voice: bool = False,
                 deployments: Iterable[str] = ()) -> None:
        self.flavor = str(getattr(flavor, "value", flavor))
        self.ga = self.flavor == "ga"
        self.script: deque[Speak | CallTool] = deque(script)
        self.heard: deque[str] = deque(heard)
        self.start_frames, self.silence_ms, self.lock_voice = start_frames, silence_ms, lock_voice
        self.deployments = set(deployments)  # of the Azure resource, besides the Realtime one connected to
        self.connections: list[Connection] = []
        self.refusing = False  # set: every new connection is refused (503), as by a service that is down
        self.refused: list[str] = []  # why handshakes were refused
        self.problems: list[str] = []  # client events the service would have rejected
        self.nonconforming: list[str] = []  # events this server sent that the SDK's models reject (its own bug)
        self.served: list[Served] = []
        self.out_of_band: list[Event] = []  # out-of-band response.creates (not in `events()`)
        self.holding_ms = 600  # the audio each of them gets
        self.ids = itertools.count(1)
        self.responses = itertools.count(1)
        self._changed = asyncio.Event()
        self._server: Server | None = None
        self.port = 0

    async def __aenter__(self) -> RealtimeServer:
        self._server = await serve(self._serve, "127.0.0.1", 0, process_request=self._check, max_size=None,
                                   compression=None)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.nonconforming and exc[0] is None:
            raise NonConformingEvent("the test server sent events the SDK's models reject: "
                                     + " | ".join(self.nonconforming))

    @property
    def url(self) -> str:
        """The `websocket_base_url` of the OpenAI clients (REALTIME_WEBSOCKET_URL)."""
        return f"ws://127.0.0.1:{self.port}/v1"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self, kind: str | None = None) -> list[Event]:
        """Client events of every connection, in order (of one `kind` if given)."""
        return [e for c in self.connections for e in c.events if kind is None or e["type"] == kind]

    def changed(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[RealtimeServer], object], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def emit(self, event: Event, connection: int = -1) -> None:
        await self.connections[connection].send(event)

    async def emit_malformed(self, event: Event, connection: int = -1) -> None:
        """Send `event` as it is, past the SDK models' check: what a misbehaving service could send."""
        await self.connections[connection].ws.send(json.dumps(event))

    async def drop(self, connection: int = -1) -> None:
        self.connections[connection].drop()

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        beta = request.headers.get("OpenAI-Beta") == "realtime=v1"
        azure_preview = path == "/openai/realtime"
        reason = None
        if not path.endswith("/realtime"):
            reason = f"no such path {path}"
        elif azure_preview and not ("api-version=" in query and "deployment=" in query):
            reason = "the Azure preview path needs api-version and deployment"
        elif not azure_preview and "model=" not in query:
            reason = "model is required"
        elif beta == self.ga:
            reason = f"a {'beta' if beta else 'GA'} client on a {self.flavor} server"
        if reason is not None:
            self.refused.append(reason)
            return connection.respond(HTTPStatus.BAD_REQUEST, reason)
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "down") if self.refusing else None

    async def _serve(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        conn = Connection(self, ws, ws.request, len(self.connections) + 1)
        self.connections.append(conn)
        self.changed()
        await conn.send({"type": "session.created", "session": conn.session})
        try:
            async for message in ws:
                await conn.handle(json.loads(message))
        except ConnectionClosed:
            pass
        finally:
            conn.close()
            self.changed()
