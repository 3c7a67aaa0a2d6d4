"""A caller on the AudioCodes Bot API: VoiceAI Connect's side of one call, with the same caller interface as
the ACS media client (live.py), for the benchmarks' mixed loads.

It opens /ws with the bot token, sends session.initiate (one media format), starts the user stream and
streams the caller at real-time pace, 20 ms a chunk, silence between the lines (as VAIC streams the whole
call). Agent audio arrives as playStream chunks. `stops` keeps the playStream.stop messages that arrive
while the caller is saying a line: on this wire a barge-in stops the agent's play stream, and so does every
utterance's natural end (`all_stops`), but a scripted caller only ever speaks over the agent to barge in.
Hanging up sends userStream.stop and session.end, as VAIC does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from typing import Any, Self

from local_stack.callers import audiocodes
from local_stack.callers.live import LiveCaller

HANDSHAKE_S = 10.0
HANG_UP_S = 5.0  # how long VAIC waits for the bot to close after session.end


class AudioCodesCaller(LiveCaller):
    def __init__(self, port: int, bot_token: str, conversation_id: str, media_format: str = "raw/lpcm16",
                 bot_name: str = "banking") -> None:
        super().__init__(audiocodes.RATES[media_format])
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.bot_token = bot_token
        self.conversation_id = conversation_id
        self.media_format = media_format
        self.bot_name = bot_name
        self.all_stops: list[float] = []  # every playStream.stop
        self.replies: list[dict[str, Any]] = []  # the bot's session.accepted / session.error

    async def __aenter__(self) -> Self:
        ws = await self._connect(self.url, {"Authorization": f"Bearer {self.bot_token}"})
        await self._send(audiocodes.session_initiate(self.conversation_id, [self.media_format], self.bot_name))
        with contextlib.suppress(AssertionError):  # closed instead of answering: not accepted either
            await self._until(lambda: bool(self.replies), HANDSHAKE_S)
        reply = self.replies[0] if self.replies else {"closed": [self.close_code, self.close_reason]}
        if reply.get("type") != "session.accepted" or reply.get("mediaFormat") != self.media_format:
            await self.disconnect()
            raise OSError(f"session not accepted: {str(reply)[:200]}")
        await self._send(audiocodes.message("userStream.start", self.conversation_id))
        self._start_speaking(ws)
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Hang up as VAIC does: the user stream stops, session.end; then the host closes the socket."""
        await self._stop_speaking()
        if self.ws is not None and not self.closed.is_set():
            await self._send(audiocodes.message("userStream.stop", self.conversation_id))
            await self._send(audiocodes.session_end(self.conversation_id, "bench done"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), HANG_UP_S)
        await self.disconnect()

    def _frame_message(self, frame: bytes, silent: bool) -> str:
        return audiocodes.message("userStream.chunk", self.conversation_id, audioChunk=base64.b64encode(frame).decode())

    async def send_dtmf(self, digits: str) -> None:
        await self._send(audiocodes.dtmf(self.conversation_id, digits))

    def _on_message(self, message: str | bytes) -> None:
        doc = json.loads(message)
        kind = doc.get("type")
        if kind == "playStream.chunk":
            self._heard(base64.b64decode(doc["audioChunk"]))
        elif kind == "playStream.stop":
            now = time.monotonic()
            self.all_stops.append(now)
            if self.speaking:
                self.stops.append(now)
        elif kind in ("session.accepted", "session.error"):
            self.replies.append(doc)
