"""The transcript of a Realtime call, written in the order things were said.

Caller transcripts arrive asynchronously (often after the agent has started answering) and an agent
turn is only known once it has been played or cut off, so each turn takes its place in the `Journal`
when it starts (`input_audio_buffer.committed`, the first audio of an assistant item) and is written
to the session, the history and the transport once its text is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from media_host.channel import CallChannel
from media_host.engines.base import ChatMessage
from media_host.events import TranscriptLine, TurnLatency
from media_host.pipelines.cascade.conversation import Conversation
from media_host.pipelines.cascade.latency import TurnClock
from switchboard.session_models import Speaker

log = logging.getLogger(__name__)

CALLER_TRANSCRIPT_WAIT_S = 10.0  # a caller turn whose transcript never comes is skipped after this
BYTES_PER_MS = 48  # PCM16 mono at 24 kHz


@dataclass
class Said:
    """A turn's text, once known."""

    text: str
    interrupted: bool = False
    latency: dict[str, float] | None = None


class Entry:
    def __init__(self, speaker: Speaker, label: str, messages: tuple[ChatMessage, ...] = ()) -> None:
        self.speaker, self.label = speaker, label
        self.messages = messages  # for the history only, in this place (a note: no turn)
        self.future: asyncio.Future[Said | None] = asyncio.get_running_loop().create_future()

    def resolve(self, said: Said | None) -> None:
        if not self.future.done():
            self.future.set_result(said)

    @property
    def resolved(self) -> bool:
        return self.future.done()


@dataclass
class AgentItem:
    """One assistant audio item: one playout utterance, one agent turn."""

    item_id: str
    response_id: str
    entry: Entry
    start: int = 0  # outbound stream position (frames) of its first frame
    end: int | None = None  # position after its last frame, once its audio is complete
    utterance: int | None = None  # its playout utterance number
    audio_bytes: int = 0
    parts: list[str] = field(default_factory=list)
    final: str | None = None
    clock: TurnClock | None = None
    local: bool = False  # played by the media host (the holding phrase), not an item of the model's

    @property
    def audio_ms(self) -> float:
        return self.audio_bytes / BYTES_PER_MS

    @property
    def done(self) -> bool:
        return self.end is not None

    @property
    def text(self) -> str:
        return " ".join((self.final if self.final is not None else "".join(self.parts)).split())

    def heard_text(self, heard_ms: float) -> str:
        """The words the caller heard: proportional to the audio heard (no word timings are given)."""
        words = self.text.split()
        if not words or self.audio_ms <= 0:
            return ""
        if heard_ms >= self.audio_ms:
            return " ".join(words)
        return " ".join(words[:int(len(words) * max(0.0, heard_ms) / self.audio_ms)])

class Journal:
    """Turns in the order they started; each is written once its text is known."""

    def __init__(self, call: CallChannel, conv: Conversation,
                 on_latency: Callable[[dict[str, float]], None] | None = None) -> None:
        self.call, self.conv, self.on_latency = call, conv, on_latency
        self._entries: deque[Entry] = deque()
        self._wake = asyncio.Event()
        self._written = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="realtime-journal")

    def add(self, speaker: Speaker, label: str = "") -> Entry:
        entry = Entry(speaker, label)
        self._entries.append(entry)
        self._wake.set()
        return entry

    def note(self, messages: tuple[ChatMessage, ...]) -> None:
        """Messages the model's history needs and the transcript does not (a tool's call and its result), in
        their place: after the caller's words that led to them, whose transcript may come later."""
        entry = Entry(Speaker.SYSTEM, "note", messages)
        entry.resolve(None)
        self._entries.append(entry)
        self._wake.set()

    def pending(self, speaker: Speaker) -> list[Entry]:
        return [e for e in self._entries if e.speaker is speaker and not e.resolved]

    async def idle(self) -> None:
        """Until every turn whose text is known, and that nothing unknown precedes, is written."""
        while self._entries and self._entries[0].resolved:
            self._written.clear()
            await self._written.wait()

    async def close(self, grace_s: float = 2.0) -> None:
        """Write what is known, drop what never will be, and stop."""
        for entry in self._entries:
            entry.resolve(None)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await self.idle()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            if not self._entries:
                self._wake.clear()
                await self._wake.wait()
                continue
            entry = self._entries[0]
            wait = CALLER_TRANSCRIPT_WAIT_S if entry.speaker is Speaker.CALLER else None
            try:
                said = await asyncio.wait_for(asyncio.shield(entry.future), wait)
            except TimeoutError:
                log.warning("realtime: no transcript for a caller turn", extra={"item": entry.label})
                said = None
            self.conv.history.extend(entry.messages)
            if said is not None and said.text:
                try:
                    await self._write(entry.speaker, said)
                except Exception:  # a line missing from the record must never stop the call
                    log.exception("realtime: writing a turn failed")
            entry.resolve(None)
            self._entries.popleft()
            self._written.set()

    async def _write(self, speaker: Speaker, said: Said) -> None:
        conv = self.conv
        await conv.record_turn(speaker, said.text, interrupted=said.interrupted, latency=said.latency)
        if speaker is Speaker.CALLER:
            conv.history.append(ChatMessage(role="user", content=said.text))
            return
        conv.history.append(ChatMessage(role="assistant", content=said.text + (" …" if said.interrupted else "")))
        self.call.send(TranscriptLine("agent", said.text, conv.agent.name, interrupted=said.interrupted))
        if said.latency:
            self.call.send(TurnLatency(said.latency))
            if self.on_latency is not None and "eos_detected" in said.latency:
                self.on_latency(said.latency)
