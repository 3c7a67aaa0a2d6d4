"""The holding phrase of a Realtime call: what the caller hears while the Realtime service is unreachable.

The model is the only voice a Realtime call has, so when its socket is down or silent nothing can be
synthesized. The phrase (Conversation.holding_phrase, the same as the cascade's) is therefore rendered
ahead of time by the model itself, in the session's own voice: once the session is configured, an
out-of-band response (`conversation: "none"`, no input: it leaves no trace in the conversation) asks the
model to say it, and its audio is kept in `HoldingClips`, shared by the process's calls, per voice and
text: one short render serves every later call. This needs no TTS engine (a Realtime host may have
none, and a cloud TTS is likely down with the rest) and the caller hears the agent's voice. Until the
first render is in (the first seconds of a process's first call with a voice), an outage has no phrase
to play: logged and counted (`holding_missing`).

When it plays (`Outage`): the path went silent (`stalled`: no pong) or the socket dropped and is not back
within `hold_after_s`, while the caller waits for the agent (they had finished a turn, a response was
under way or being played) or once the caller, talking into the outage, goes quiet. Once per outage,
never over the agent's own audio. It is a turn of the transcript like any other.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from media_host.pipelines.realtime.link import (
    DEAD_AFTER_S,
    FRAME_BYTES,
    PING_EVERY_S,
    STALL_AFTER_S,
    Event,
    RealtimeLink,
)
from media_host.pipelines.realtime.playback import Playback
from media_host.pipelines.realtime.protocol import Dialect, ServerError

if TYPE_CHECKING:
    from media_host.pipelines.cascade.conversation import Conversation

log = logging.getLogger(__name__)

METADATA = {"switchboard": "holding"}
HOLD_AFTER_S = 1.0  # a socket that drops and is back this soon needs no phrase (the apology follows)
LOUD = 500  # mean |sample| of a caller frame with speech, to notice speech while the server cannot
QUIET_FRAMES = 30  # 600 ms of quiet after it: the caller waits
RETRY_S = 0.2  # the agent's audio still plays: look again this much later
MAX_CLIPS = 32


@dataclass(frozen=True)
class Liveness:
    """How soon a silent Realtime path is noticed (link.py) and the caller hears the holding phrase (here)."""

    ping_every_s: float = PING_EVERY_S
    stall_after_s: float = STALL_AFTER_S
    dead_after_s: float = DEAD_AFTER_S
    hold_after_s: float = HOLD_AFTER_S


class HoldingClips:
    """Rendered phrases (PCM16, 24 kHz) by (voice, text), shared by every call of the pipeline."""

    def __init__(self) -> None:
        self._clips: dict[tuple[str, str], bytes] = {}

    def get(self, voice: str, text: str) -> bytes | None:
        return self._clips.get((voice, text))

    def put(self, voice: str, text: str, pcm: bytes) -> None:
        if len(self._clips) >= MAX_CLIPS:
            self._clips.pop(next(iter(self._clips)))
        self._clips[(voice, text)] = pcm


class HoldingLine:
    """One call's holding phrase: rendered once the session is up, played during an outage."""

    def __init__(self, clips: HoldingClips, conv: Conversation, link: RealtimeLink, dialect: Dialect,
                 playback: Playback, *, count: Callable[[str], None], hold_after_s: float = HOLD_AFTER_S) -> None:
        self.clips, self.conv, self.link, self.dialect, self.playback = clips, conv, link, dialect, playback
        self.count, self.hold_after_s = count, hold_after_s
        self.voice = ""
        self.rendering: tuple[str, str] | None = None  # (voice, text) asked for
        self.render_id: str | None = None  # its response, once created
        self.audio = bytearray()
        self.requests = 0
        self.plays = 0
        self.awaiting = False  # the caller waits for the agent
        self.outage = False
        self.played = False  # in this outage
        self.spoke = False  # the caller talked during this outage
        self.quiet = 0
        self.timer: asyncio.TimerHandle | None = None
        self.played_at: float | None = None  # when the phrase last started

    def started_after(self, onset: float | None) -> bool:
        """Whether the phrase began after speech that started at `onset`: speech the server reports late
        (held by the outage) is not the caller talking over the phrase."""
        return onset is not None and self.played_at is not None and onset < self.played_at

    @property
    def text(self) -> str:
        return self.conv.holding_phrase()

    # --- rendering -------------------------------------------------------------------------------
    def prepare(self, voice: str) -> None:
        """The session speaks with `voice`: have the phrase rendered in it, unless it is already."""
        self.voice = voice
        key = (voice, self.text)
        if self.clips.get(*key) is not None or self.rendering is not None or not self.link.connected:
            return
        self.rendering, self.audio = key, bytearray()
        self.requests += 1
        self.link.send(self.dialect.response_out_of_band(
            f"Say exactly this, word for word, in a calm and friendly tone, and nothing else: \"{key[1]}\"",
            METADATA, event_id=f"sw_holding_{self.requests}"))

    def claims(self, event: Event) -> bool:
        """True if `event` belongs to the render (it is not part of the conversation)."""
        if self.rendering is None:
            return False
        kind = event["type"]
        if kind == "response.created":
            response = event.get("response") or {}
            if response.get("metadata") == METADATA:
                self.render_id = str(response.get("id") or "")
                return True
            return False
        if self.render_id is None:
            return False
        if kind == "response.done" and (event.get("response") or {}).get("id") == self.render_id:
            status = (event.get("response") or {}).get("status")
            if status == "completed" and self.audio:
                self.clips.put(*self.rendering, bytes(self.audio))
                self.count("holding_rendered")
            self.rendering = self.render_id = None
            return True
        if event.get("response_id") != self.render_id:
            return False
        if kind == "response.output_audio.delta":
            self.audio += base64.b64decode(str(event.get("delta") or ""))
        return True

    def refused(self, error: ServerError) -> bool:
        """True if `error` refuses the render (it is not the conversation's)."""
        if self.rendering is None or not (error.event_id or "").startswith("sw_holding_"):
            return False
        log.warning("realtime: the holding phrase could not be rendered", extra={"code": error.label})
        self.count("holding_refused")
        self.rendering = None
        return True

    # --- the conversation, as far as waiting goes -----------------------------------------------
    def observe(self, kind: str) -> None:
        if kind == "input_audio_buffer.speech_started":
            self.awaiting = False
        elif kind in ("input_audio_buffer.speech_stopped", "response.created"):
            self.awaiting = True
        elif kind == "response.done":
            self.awaiting = False

    # --- outages ---------------------------------------------------------------------------------
    def stalled(self, stalled: bool) -> None:
        """The link's pings go unanswered (True), or are answered again (False)."""
        if stalled:
            self._begin(0.0)
        elif self.link.connected:
            self._end()

    def lost(self) -> None:
        self.rendering = self.render_id = None  # a render cut short is asked for again on the new socket
        self._begin(self.hold_after_s)

    def restored(self) -> None:
        self._end()

    def frame(self, pcm: bytes) -> None:
        """A caller frame during an outage (only then: this costs an allocation per frame)."""
        if not self.outage or self.played:
            return
        if np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)).mean() > LOUD:
            self.spoke, self.quiet = True, 0
        elif self.spoke:
            self.quiet += 1
            if self.quiet == QUIET_FRAMES:
                self._play()

    def _begin(self, delay_s: float) -> None:
        if self.outage:
            return
        self.outage, self.played, self.spoke, self.quiet = True, False, False, 0
        if self.awaiting or self.playback.incomplete:  # an answer was due, or is cut off
            self.timer = asyncio.get_running_loop().call_later(delay_s, self._play)
            return
        # The outage is noticed late (a pong overdue): did the caller speak into it already?
        audio = self.link.unconfirmed_audio()
        frames = len(audio) // FRAME_BYTES
        if frames:
            levels = np.abs(np.frombuffer(audio, dtype="<i2", count=frames * FRAME_BYTES // 2).astype(np.int32))
            loud = np.flatnonzero(levels.reshape(frames, -1).mean(axis=1) > LOUD)
            if loud.size:
                self.spoke, self.quiet = True, frames - 1 - int(loud[-1])
                if self.quiet >= QUIET_FRAMES:
                    self.timer = asyncio.get_running_loop().call_later(0.0, self._play)

    def close(self) -> None:
        """The call is over here (or goes on on the cascade, at its own rates): no phrase is due any more."""
        self._end()

    def _end(self) -> None:
        self.outage = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _play(self) -> None:
        self.timer = None
        if not self.outage or self.played:
            return
        if self.playback.audible:  # what had arrived of the agent's answer plays first
            self.timer = asyncio.get_running_loop().call_later(RETRY_S, self._play)
            return
        self.played = True
        clip = self.clips.get(self.voice, self.text)
        if clip is None:
            log.warning("realtime: no holding phrase rendered yet for this voice", extra={"voice": self.voice})
            self.count("holding_missing")
            return
        log.info("realtime: playing the holding phrase")
        self.count("holding_played")
        self.plays += 1
        self.played_at = time.monotonic()
        self.playback.play_local(f"holding_{self.plays}", clip, self.text)
