"""What the caller hears of the agent, and what of it goes into the transcript.

One assistant audio item is one playout utterance and one agent turn. Its audio is played as it
arrives and the turn is written once the caller has heard all of it. When the caller speaks over the
agent, playout stops at once and every item not fully heard is truncated at what the caller heard
(`conversation.item.truncate`), so the model's conversation holds only that, and the turn is written
with the heard part of its text.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

from media_host.channel import CallChannel
from media_host.pipelines.realtime.link import FRAME_MS, Event, RealtimeLink
from media_host.pipelines.realtime.protocol import Dialect
from media_host.pipelines.realtime.turns import AgentItem, Journal, Said
from switchboard.session_models import Speaker


class Playback:
    def __init__(self, call: CallChannel, journal: Journal, link: RealtimeLink, dialect: Dialect,
                 on_started: Callable[[AgentItem], None]) -> None:
        self.call, self.journal, self.link, self.dialect = call, journal, link, dialect
        self.on_started = on_started  # an item's first audio is about to play
        self.items: dict[str, AgentItem] = {}  # assistant items not yet written
        self.ignored: set[str] = set()  # responses and items cut off or written: anything late about them is dropped
        self.watcher: asyncio.Task[None] | None = None

    @property
    def incomplete(self) -> bool:
        """An answer of the model's is still coming in (cut off, if the socket went away now)."""
        return any(not i.done and not i.local for i in self.items.values())

    @property
    def audible(self) -> bool:
        """The agent is being heard, or has started an item that will be."""
        return self.call.playing or any(i.utterance is not None for i in self.items.values())

    # --- server events ----------------------------------------------------------------------------
    def item(self, event: Event) -> AgentItem | None:
        """The item an event is about (new ones take their place in the journal); None if cut off."""
        response_id, item_id = str(event.get("response_id") or ""), str(event.get("item_id") or "")
        if response_id in self.ignored or item_id in self.ignored:
            return None
        item = self.items.get(item_id)
        if item is None:
            item = self.items[item_id] = AgentItem(item_id, response_id, self.journal.add(Speaker.AGENT, item_id))
        return item

    def on_audio(self, event: Event) -> None:
        item = self.item(event)
        if item is None or item.done:
            return
        pcm = base64.b64decode(str(event.get("delta") or ""))
        if item.utterance is None:
            item.utterance = self.call.start_utterance()
            item.start = self.call.stream_position
            self.on_started(item)
        item.audio_bytes += len(pcm)
        self.call.play(pcm)

    def play_local(self, label: str, pcm: bytes, text: str) -> None:
        """Play audio the model did not send (the holding phrase): a turn, written like an item once heard."""
        item = AgentItem(label, "", self.journal.add(Speaker.AGENT, label), final=text, local=True)
        self.items[label] = item
        item.utterance = self.call.start_utterance()
        item.start = self.call.stream_position
        item.audio_bytes = len(pcm)
        self.call.play(pcm)
        self.end(item)

    def on_audio_done(self, event: Event) -> None:
        item = self.item(event)
        if item is not None:
            self.end(item)

    def on_transcript(self, event: Event) -> None:
        item = self.item(event)
        if item is None:
            return
        if event["type"].endswith(".done"):
            item.final = str(event.get("transcript") or "")
        else:
            item.parts.append(str(event.get("delta") or ""))

    def response_done(self, response_id: str, output: list[dict[str, Any]]) -> None:
        """A response is over: its items' transcripts are final and their audio complete."""
        for out in output:
            item = self.items.get(str(out.get("id")))
            if item is not None and item.final is None:
                transcripts = [c.get("transcript") for c in out.get("content") or [] if c.get("transcript")]
                item.final = " ".join(transcripts) if transcripts else None
        for item in [i for i in self.items.values() if i.response_id == response_id]:
            self.end(item)

    def end(self, item: AgentItem) -> None:
        """The item's audio is complete: it is written once played."""
        if item.done:
            return
        if item.utterance is None:  # nothing was played: not a turn
            self.write(item, None)
            return
        self.call.end_utterance()
        item.end = self.call.stream_position
        if self.watcher is None or self.watcher.done():
            self.watcher = asyncio.create_task(self._write_played(), name="realtime-played")

    # --- the caller speaks over the agent, the socket drops, the call ends -------------------------
    def barge_in(self) -> tuple[str, float]:
        """Stop the agent now; truncate what the caller did not hear. Returns what they did hear, and when
        playout stopped."""
        position, pushed = self.call.heard_position(), self.call.stream_position
        self.call.stop_playback()
        stopped_at = time.monotonic()
        heard_all = []
        for item in sorted(self.items.values(), key=lambda i: (i.utterance is None, i.start)):
            heard_ms = 0.0
            if item.utterance is not None:
                end = item.end if item.end is not None else pushed
                heard_ms = min(item.audio_ms, max(0.0, (min(position, end) - item.start) * FRAME_MS))
            if (not item.done or heard_ms < item.audio_ms) and not item.local:
                self.link.send(self.dialect.truncate(item.item_id, int(heard_ms)))
            self.ignored.add(item.item_id)
            heard = item.heard_text(heard_ms)
            heard_all.append(heard)
            self.write(item, Said(heard, interrupted=True))
        if self.watcher is not None:  # it waits for audio that will never play: the next item starts anew
            self.watcher.cancel()
            self.watcher = None
        return " ".join(h for h in heard_all if h), stopped_at

    def cut_off(self) -> None:
        """The socket dropped: what was received still plays, and is written as it is."""
        for item in sorted(self.items.values(), key=lambda i: i.start):
            complete = item.done
            self.end(item)
            self.write(item, Said(item.text, interrupted=not complete) if item.utterance is not None else None)

    def close(self) -> None:
        """The call is over: write what was heard of what is left."""
        position = self.call.heard_position()
        for item in sorted(self.items.values(), key=lambda i: i.start):
            heard_ms = min(item.audio_ms, max(0.0, (position - item.start) * FRAME_MS)) if item.utterance else 0.0
            self.write(item, Said(item.heard_text(heard_ms), interrupted=heard_ms < item.audio_ms))
        if self.watcher is not None:
            self.watcher.cancel()

    # --- into the transcript ----------------------------------------------------------------------
    def write(self, item: AgentItem, said: Said | None) -> None:
        self.items.pop(item.item_id, None)
        self.ignored.add(item.item_id)  # written: anything late about it is dropped
        if said is not None and item.clock is not None:
            first_out = self.call.first_sent_at(item.utterance) if item.utterance is not None else None
            if first_out is not None:
                item.clock.mark("first_audio_out", first_out)
            said.latency = item.clock.summary()
        item.entry.resolve(said)

    async def _write_played(self) -> None:
        while True:
            done = [i for i in self.items.values() if i.end is not None]
            if not done:
                return
            item = min(done, key=lambda i: i.start)
            assert item.end is not None
            remaining = item.end - self.call.heard_position()
            if remaining > 0:
                await asyncio.sleep(max(remaining * FRAME_MS / 1000, 0.01))
                continue
            self.write(item, Said(item.text))
