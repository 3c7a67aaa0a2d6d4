"""The one internal model of a call's traffic. Transports translate their wire format to and from it;
pipelines see nothing else.

Inbound (transport to pipeline): audio frames and control events, in arrival order.
Outbound (pipeline to transport): audio goes through the playout queue; everything else is one of the
`Outbound` events below. A transport ignores what its protocol cannot express (ACS has no place for a
transcript line; a browser shows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --- inbound -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """20 ms of PCM16 mono at the pipeline's inbound rate."""

    pcm: bytes
    received_at: float  # time.monotonic() when the wire message arrived (for latency accounting)


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The transport is ready and the caller is connected. `parameters` are protocol extras (locale...)."""

    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    digits: str


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TransferStatusReceived:
    """The outcome of a transfer the transport carried out (AudioCodes reports it on the socket)."""

    status: str  # "answered" | "failed"
    reason: str = ""


InboundEvent = CallStarted | DtmfReceived | CallerHungUp | TransferStatusReceived
Inbound = AudioFrame | InboundEvent

# --- outbound: call control ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopPlayback:
    """Barge-in: the transport must stop what the caller hears now (ACS StopAudio, playStream.stop)."""


@dataclass(frozen=True, slots=True)
class HangUp:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Transfer:
    target: str  # E.164 number or SIP URI
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SendDtmf:
    digits: str


# --- outbound: what the pipeline heard and did (for transports that can show or use it) -------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking (VAD). AudioCodes uses it for barge-in on its side."""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    pass


@dataclass(frozen=True, slots=True)
class TurnCommitted:
    """The caller's turn ended and is being answered."""


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """A partial transcript of the caller."""

    text: str


@dataclass(frozen=True, slots=True)
class Recognition:
    """The final transcript of a caller's turn."""

    text: str
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    speaker: str  # "caller" | "agent"
    text: str
    agent: str | None = None
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class AgentChanged:
    agent: str
    previous: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ToolCalled:
    name: str
    ok: bool
    arguments: dict[str, Any] = field(default_factory=dict)
    elapsed_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class TurnLatency:
    """Per-turn timing marks in milliseconds since the end of the caller's speech."""

    marks: dict[str, float]


Outbound = (
    StopPlayback | HangUp | Transfer | SendDtmf | SpeechStarted | SpeechStopped | TurnCommitted | Hypothesis
    | Recognition | TranscriptLine | AgentChanged | ToolCalled | TurnLatency
)
