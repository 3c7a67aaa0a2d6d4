"""A transport adapter at the edge, without a socket: the frames a peer sends go through the adapter's
own `open()` and `on_message()` against an in-memory store and channel, so a property test can try
thousands of inputs a second and see exactly what the adapter made of each.

The outcome is the adapter's verdict: the call it opened and what it fed the channel, or the
`ProtocolViolation` (close code, reason, metric kind) that would close the socket. Any other
exception escapes: that is a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close

from agents import AgentLibrary
from media_host.channel import CallChannel, CallInfo
from media_host.metrics import MediaMetrics
from media_host.pipelines import Pipeline
from media_host.transports.base import Admission, CloseCode, HostServices, NotACall, ProtocolViolation, WireAdapter
from switchboard.session_models import CallSession, CallState
from switchboard.session_store import SessionNotFoundError, SessionStore
from switchboard.settings import Settings, load_settings
from tests.conftest import TEST_SECRET
from tests.support.media_harness import AUDIOCODES_TOKEN

MAX_REASON_BYTES = 123  # what fits a close frame


class FakeSocket:
    """Hands the adapter the peer's frames in order, then reports the peer gone; keeps what was sent."""

    def __init__(self, frames: Sequence[str | bytes]) -> None:
        self._frames = list(frames)
        self.sent: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None

    async def recv(self) -> str | bytes:
        if not self._frames:
            raise ConnectionClosedOK(Close(1000, ""), Close(1000, ""), rcvd_then_sent=True)
        return self._frames.pop(0)

    def next_frame(self) -> str | bytes | None:
        return self._frames.pop(0) if self._frames else None

    async def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


class FakeStore:
    """The session-store calls adapters make, on a dict."""

    def __init__(self, sessions: dict[str, CallSession] | None = None) -> None:
        self.sessions = dict(sessions or {})

    async def load(self, call_id: str) -> CallState | None:
        session = self.sessions.get(call_id)
        return None if session is None else CallState(session=session.model_copy(deep=True))

    async def create(self, session: CallSession) -> bool:
        if session.call_id in self.sessions:
            return False
        self.sessions[session.call_id] = session
        return True

    async def update(self, call_id: str, apply: Callable[[CallSession], None]) -> CallSession:
        if call_id not in self.sessions:
            raise SessionNotFoundError(call_id)
        apply(self.sessions[call_id])
        return self.sessions[call_id]


class FakeWriter:
    """The host's session writer (write-behind): applied at once to the fake store."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def update(self, call_id: str, mutate: Callable[[CallSession], None]) -> None:
        with contextlib.suppress(SessionNotFoundError):  # the real writer never raises either
            await self._store.update(call_id, mutate)


class FakeControlPlane:
    async def request_transfer(self, call_id: str, target: str, reason: str) -> None:
        return None

    async def request_hangup(self, call_id: str, reason: str) -> None:
        return None


@cache
def _agents(agents_dir: Path) -> AgentLibrary:
    return AgentLibrary.load(agents_dir)


@cache
def _settings() -> Settings:
    """Built once: validating settings costs ~10 ms, far more than one example."""
    return load_settings(signing_secret=TEST_SECRET, audiocodes_bot_token=AUDIOCODES_TOKEN,
                         redis_url="redis://127.0.0.1:1")


class FakeHost:
    """The `HostServices` an adapter sees, with real settings, agents and metrics."""

    def __init__(self, store: FakeStore) -> None:
        self.settings = _settings()
        self.agents = _agents(self.settings.agents_dir)
        self.metrics = MediaMetrics(dict, dict, lambda _stat: {})
        self.control_plane = FakeControlPlane()
        self.writer = FakeWriter(store)
        self._store = store

    @property
    def store(self) -> SessionStore:
        return cast(SessionStore, self._store)

    def at_capacity(self) -> bool:
        return False

    def pipeline_for(self, info: CallInfo) -> Pipeline:
        raise NotImplementedError


@dataclass
class FakeChannel:
    """Records what the adapter feeds the pipeline side, and checks the audio is whole PCM16 samples."""

    call_id: str
    wire_rate: int
    writer: FakeWriter
    audio_bytes: int = 0
    events: list[Any] = field(default_factory=list)

    def feed_audio(self, pcm: bytes, received_at: float) -> None:
        assert isinstance(pcm, bytes)
        assert len(pcm) % 2 == 0, f"fed {len(pcm)} bytes: not whole samples"
        assert len(pcm) <= self.wire_rate * 2, f"fed {len(pcm)} bytes: more than one second"
        self.audio_bytes += len(pcm)

    def feed_event(self, event: Any) -> None:
        self.events.append(event)

    def touch(self) -> None:
        return None

    async def update_session(self, mutate: Callable[[CallSession], None]) -> None:
        await self.writer.update(self.call_id, mutate)


@dataclass
class EdgeOutcome:
    """What the adapter did with the frames: `closed` is the violation, if one ended the socket."""

    opened: CallInfo | None = None
    closed: ProtocolViolation | None = None
    probe: bool = False  # a connectivity probe answered (AudioCodes connection.validate)
    consumed: int = 0  # frames the adapter read
    channel: FakeChannel | None = None

    @property
    def label(self) -> str:
        if self.closed is not None:
            return f"closed {int(self.closed.code)} {self.closed.kind}"
        if self.probe:
            return "probe"
        return "open" if self.opened is None else "accepted"


def check_violation(violation: ProtocolViolation) -> None:
    """A violation the runner can turn into a close frame: a known code, a short reason, a metric kind."""
    assert violation.code in CloseCode.__members__.values()
    assert violation.reason
    assert len(violation.reason.encode()) <= MAX_REASON_BYTES
    assert violation.kind.isidentifier()


async def drive(adapter_type: type[WireAdapter], frames: Sequence[str | bytes], *,
                admission: dict[str, Any] | None = None, sessions: dict[str, CallSession] | None = None) -> EdgeOutcome:
    """Feed `frames` to a fresh adapter: `open()` reads the first ones, `on_message()` the rest."""
    ws = FakeSocket(frames)
    host = FakeHost(FakeStore(sessions))
    adapter = adapter_type(cast(ServerConnection, ws), cast(HostServices, host), Admission(claims=admission or {}))
    outcome = EdgeOutcome()
    try:
        outcome.opened = await adapter.open()
    except ProtocolViolation as violation:
        outcome.closed = violation
    except NotACall:
        outcome.probe = True
    except ConnectionClosedOK:  # the peer sent everything it had before the call started
        pass
    outcome.consumed = len(frames) - len(ws._frames)
    if outcome.opened is None:
        return outcome
    channel = FakeChannel(outcome.opened.call_id, outcome.opened.wire_rate, host.writer)
    outcome.channel = channel
    while (message := ws.next_frame()) is not None:
        outcome.consumed += 1
        try:
            await adapter.on_message(message, cast(CallChannel, channel))
        except ProtocolViolation as violation:
            outcome.closed = violation
            break
    return outcome


def run(coro: Any) -> EdgeOutcome:
    """Run one `drive(...)` to completion from synchronous (hypothesis) code."""
    return cast(EdgeOutcome, asyncio.run(coro))
