"""What a transport adapter is: a translator between one wire protocol and the internal call model.

An adapter authorizes the upgrade request, reads the opening messages until it knows which call the
socket carries (`open`), then turns each wire message into channel input (`on_message`) and each
outbound frame or event into wire messages. It never decides anything about the conversation.

Bad input raises `ProtocolViolation`; the runner closes only that socket, with the code and reason.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qs

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from agents import AgentLibrary
from media_host.channel import CallChannel, CallInfo
from media_host.control_plane import ControlPlane
from media_host.events import Outbound
from media_host.http import request_query
from media_host.metrics import MediaMetrics
from media_host.pipelines import Pipeline
from media_host.playout import UtteranceEnd
from media_host.session_writer import SessionWriter
from switchboard.session_store import SessionStore
from switchboard.settings import Settings
from switchboard.tokens import Purpose, TokenClaims, TokenError

log = logging.getLogger(__name__)


class CloseCode(IntEnum):
    NORMAL = 1000  # the call ended
    GOING_AWAY = 1001  # host draining, idle timeout
    UNSUPPORTED_DATA = 1003  # e.g. a binary frame where JSON is expected
    INVALID_PAYLOAD = 1007  # malformed JSON, bad base64, odd byte count, unsupported audio format
    POLICY = 1008  # messages out of order, unknown call
    TOO_BIG = 1009  # oversized message or audio frame
    INTERNAL = 1011
    TRY_AGAIN_LATER = 1013  # over capacity


MAX_UNKNOWN_KINDS = 32  # distinct unknown kinds remembered, and logged, per call
MAX_KIND_CHARS = 40  # the peer chooses a kind's name: only this much of it is kept
MAX_CLOSE_REASON = 123  # bytes: a close frame's payload is at most 125, two of them the code


def close_reason(reason: str) -> str:
    """A close reason that fits a close frame (websockets refuses a longer one instead of closing)."""
    encoded = reason.encode()
    return reason if len(encoded) <= MAX_CLOSE_REASON else encoded[:MAX_CLOSE_REASON].decode(errors="ignore")


class ProtocolViolation(Exception):
    """Input that ends this socket. `kind` labels the error metric; `reason` goes to the peer."""

    def __init__(self, code: CloseCode, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.code, self.reason, self.kind = code, close_reason(reason), kind


class NotACall(Exception):
    """Raised by `open()` when the socket turned out not to carry a call (a connectivity probe that was
    answered): the runner ends it quietly, with no call and no error recorded."""


class Rejected(Exception):
    """The upgrade request is refused with an HTTP status and a JSON body (before any WebSocket)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def query_token_claims(request: Request, host: HostServices, purpose: Purpose) -> TokenClaims:
    """The claims of the per-call token in the upgrade URL's `?token=`, or an HTTP 401 with the reason."""
    token = parse_qs(request_query(request.path)).get("token", [None])[0]
    try:
        return host.store.verify_token(token, purpose)
    except TokenError as exc:
        raise Rejected(401, "unauthorized", str(exc)) from None


@dataclass
class Admission:
    """What `authorize` learned from the upgrade request (e.g. the call id a token is bound to)."""

    claims: dict[str, Any] = field(default_factory=dict)


class HostServices(Protocol):
    """The parts of the media host an adapter may use."""

    settings: Settings
    agents: AgentLibrary
    metrics: MediaMetrics
    control_plane: ControlPlane
    writer: SessionWriter  # the session writes of calls (write-behind: see media_host/session_writer.py)

    @property
    def store(self) -> SessionStore: ...

    def at_capacity(self) -> bool: ...

    def pipeline_for(self, info: CallInfo) -> Pipeline: ...


class WireAdapter(ABC):
    transport: ClassVar[str]  # metrics label and log field: "acs", "audiocodes", "browser"
    path: ClassVar[str]  # the WebSocket route

    def __init__(self, ws: ServerConnection, host: HostServices, admission: Admission) -> None:
        self.ws = ws
        self.host = host
        self.admission = admission
        self._unknown_kinds: set[tuple[str, str]] = set()
        self._unknown_kinds_full = False

    @classmethod
    @abstractmethod
    async def authorize(cls, request: Request, host: HostServices) -> Admission:
        """Check the upgrade request; raise Rejected to answer it with an HTTP error instead."""

    @abstractmethod
    async def open(self) -> CallInfo:
        """Read the opening messages until the call is known; reply to them as the protocol wants."""

    @abstractmethod
    async def on_message(self, message: str | bytes, channel: CallChannel) -> None:
        """One wire message: feed the channel, or answer the peer, or raise ProtocolViolation."""

    @abstractmethod
    async def send_audio(self, frame: bytes) -> None:
        """One outbound frame: PCM16 at the wire rate, exactly one frame long."""

    async def send_utterance_end(self, marker: UtteranceEnd) -> None:  # noqa: B027 - optional hook
        """The agent's utterance ended (protocols with play streams close theirs)."""

    @abstractmethod
    async def send_control(self, event: Outbound, channel: CallChannel) -> None:
        """One outbound event; ignore those the protocol cannot express."""

    def ignore_unknown(self, kind: str, what: str = "message type") -> None:
        """Skip a message of a kind this adapter does not know (a newer peer's): never an error for the call.

        Every one is counted (`errors{kind="unknown_type"}`), so the metric shows how many a peer sends;
        the log gets one line per new kind per call, for the first MAX_UNKNOWN_KINDS kinds, so a peer that
        invents kinds costs bounded memory and bounded log lines.
        """
        self.host.metrics.errors.inc(transport=self.transport, kind="unknown_type")
        key = (what, kind[:MAX_KIND_CHARS])
        if key in self._unknown_kinds or self._unknown_kinds_full:
            return
        if len(self._unknown_kinds) >= MAX_UNKNOWN_KINDS:
            self._unknown_kinds_full = True
            log.info("more than %d unknown kinds on this call: no longer logging new ones", MAX_UNKNOWN_KINDS,
                     extra={"transport": self.transport})
            return
        self._unknown_kinds.add(key)
        log.info("ignoring %s %r", *key, extra={"transport": self.transport})

    def call_finished(self) -> None:  # noqa: B027 - optional hook
        """The call on this socket is over: its pipeline has returned and its control events are sent or dropped
        (the runner calls it last). An adapter that tracks its calls lets go of this one here."""

    def idle_timeout(self) -> float:
        """Seconds of silence from the far end after which the call is considered dead."""
        return self.host.settings.media_idle_timeout_seconds

    async def refuse(self, reason: str) -> None:
        """Turn the call away after the upgrade (over capacity) the way the protocol expects."""
        await self.ws.close(CloseCode.TRY_AGAIN_LATER, close_reason(reason))

    async def finish(self, code: CloseCode, reason: str) -> None:
        """End the socket; protocols that announce the end first (session.error...) override this."""
        await self.ws.close(code, close_reason(reason))
