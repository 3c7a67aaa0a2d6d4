"""The engine interfaces of the speech cascade: VAD, speech-to-text, chat model, text-to-speech.

Small and async, so the embedded engines (silero, whisper, the offline brain, hibari) and the cloud
ones (Azure Speech, Azure OpenAI, any OpenAI-compatible endpoint) are interchangeable by settings.
Audio crosses these interfaces as PCM16 mono `bytes` at the rate the engine declares.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agents import Agent, ToolSpec
from agents.schema import Voice

if TYPE_CHECKING:
    from media_host.engines.health import EngineHealth
    from media_host.engines.last_resort import LastResort


class EnginesExhausted(RuntimeError):
    """Every engine of a stage failed (`stage`: "stt", "tts" or "chat"): nothing is left to try, so the
    pipeline gives up on the turn and plays its last resort (media_host/engines/last_resort.py)."""

    def __init__(self, stage: str, detail: str = "") -> None:
        super().__init__(f"{stage}: {detail}" if detail else stage)
        self.stage = stage


# --- voice activity detection ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VadEvent:
    """`start`: the caller started speaking; `end`: they stopped (after the end-of-speech silence);
    `pause`: they have been quiet for a moment inside speech (a detector may emit it so the pipeline
    can start transcribing before the turn is certain to be over).

    `at_ms` is the position in the caller's audio stream where speech started, or where the last
    voiced audio ended (for `pause` and `end`: not when it was detected, which is later).
    """

    kind: Literal["start", "pause", "end"]
    at_ms: float


class VoiceActivityDetector(Protocol):
    """Per call. Frames in (20 ms at `sample_rate`), speech start/end events out."""

    sample_rate: int
    end_of_speech_ms: int  # the silence that ends a turn; set per agent, may change on a handoff

    def process(self, frame: bytes) -> list[VadEvent]: ...

    def reset(self) -> None: ...


class VadFactory(Protocol):
    def __call__(self, end_of_speech_ms: int) -> VoiceActivityDetector:
        """A new detector for one call."""


# --- speech to text ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    confidence: float = 1.0
    engine_ms: float = 0.0  # compute time spent by the engine on this utterance


class SttStream(Protocol):
    """One caller utterance (or a continuous recognition, for streaming engines)."""

    def push(self, pcm: bytes) -> None:
        """Caller audio at the engine's `sample_rate`."""

    def partial(self) -> str | None:
        """The latest partial text, if the engine produces any."""

    async def finish(self) -> Transcript:
        """The caller stopped speaking: the final text of what they said since the stream began."""

    async def aclose(self) -> None: ...


class SpeechToText(Protocol):
    sample_rate: int

    def stream(self, language: str) -> SttStream: ...


# --- chat model ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as models produce it


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # for role "tool": the call this answers
    name: str | None = None  # for role "tool": the tool's name


@dataclass
class ChatRequest:
    """Everything a chat model needs for one reply. `agent` and `tools` carry more than a JSON
    schema (examples, reply templates), which the offline brain uses; cloud models ignore them."""

    messages: list[ChatMessage]
    agent: Agent
    tools: Sequence[ToolSpec]
    customer: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=dict)  # per-call engine state, kept in the session


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A complete tool call (engines assemble streamed argument fragments before yielding it)."""

    call: ToolCall


ChatDelta = TextDelta | ToolCallDelta


class ChatModel(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """The reply, as it is produced: text deltas and complete tool calls."""


# --- text to speech -------------------------------------------------------------------------------------


class TextToSpeech(Protocol):
    sample_rate: int

    def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncIterator[bytes]:
        """PCM16 at `sample_rate`, streamed as it is produced (for a sentence, usually one chunk)."""


# --- fallbacks ------------------------------------------------------------------------------------------

Stage = Literal["stt", "chat", "tts"]


@dataclass(frozen=True, slots=True)
class EngineFallback:
    """A request left an engine for the next one of its chain (media_host/engines/chain.py).

    `reason`: "error", "timeout" (past the stage's deadline), or "down" (skipped: it failed recently and is
    cooling down). `to`: the engine that takes over (None: none was left). `mid_sentence` (TTS): the engine
    failed after part of the sentence was played; the rest of it is not said, the next sentence goes to `to`.
    Never holds what was said or synthesized.
    """

    stage: Stage
    engine: str
    to: str | None
    reason: str
    error: str = ""  # the exception's type name
    mid_sentence: bool = False

    def event_data(self) -> dict[str, Any]:
        """The data of the session's `engine_fallback` event (switchboard/call_records/build.py reads it)."""
        data: dict[str, Any] = {"stage": self.stage, "from": self.engine, "to": self.to, "reason": self.reason}
        if self.error:
            data["error"] = self.error
        if self.mid_sentence:
            data["mid_sentence"] = True
        return data


def fallbacks_of(request: object) -> Sequence[EngineFallback]:
    """The fallbacks an STT stream or a synthesis went through (its `fallbacks`; none for a plain engine)."""
    notes: Sequence[EngineFallback] = getattr(request, "fallbacks", ())
    return notes


@dataclass
class Engines:
    """The engines of one process, loaded once and shared by every call."""

    vad: VadFactory
    stt: SpeechToText
    chat: ChatModel
    tts: TextToSpeech
    fallback_chat: ChatModel | None = None  # used when `chat` fails mid-call (the offline brain)
    last_resort: LastResort | None = None  # the apology played when no engine can answer (synthesized at start)
    description: dict[str, str] = field(default_factory=dict)
    health: EngineHealth | None = None  # the STT/TTS chains' engine health, with its background probes

    async def aclose(self) -> None:
        """At shutdown: stop the health probes (the engines themselves live as long as the process)."""
        if self.health is not None:
            await self.health.aclose()
