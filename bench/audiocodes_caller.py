"""A caller on the AudioCodes Bot API for the benchmarks: VoiceAI Connect's side of one call, with the
caller interface bench.turn_calls.drive_call uses (bench.turn_calls.CallerSocket, as
local_stack.acs_media.AcsMediaClient has it for ACS).

It opens /ws with the bot token, sends session.initiate (botName `banking`, one media format), starts
the user stream and streams the caller at real-time pace, 20 ms a chunk, silence between the lines (as
VAIC streams the whole call). Agent audio arrives as playStream chunks. `stops` keeps the playStream.stop
messages that arrive while the caller is saying a line: on this wire a barge-in stops the agent's play
stream, and so does every utterance's natural end (`all_stops`), but the scripted caller only ever
speaks over the agent to barge in. Hanging up sends userStream.stop and session.end, as VAIC does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from local_stack.caller_speech import CallerSpeech, Track

RATES = {"raw/lpcm16": 16000, "raw/lpcm16_24": 24000}


class AudioCodesCaller:
    def __init__(self, port: int, bot_token: str, conversation_id: str, media_format: str = "raw/lpcm16") -> None:
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.bot_token = bot_token
        self.conversation_id = conversation_id
        self.media_format = media_format
        self.rate = RATES[media_format]
        self.speech = CallerSpeech(self.rate)
        self.caller = self.speech.track
        self.agent = Track()
        self.stops: list[float] = []  # playStream.stop while the caller spoke (barge-ins)
        self.all_stops: list[float] = []  # every playStream.stop
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._ws: ClientConnection | None = None
        self._sender: asyncio.Task[None] | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._agent_audio = asyncio.Event()

    def _msg(self, kind: str, **fields: Any) -> str:
        return json.dumps({"type": kind, "conversationId": self.conversation_id, **fields})

    async def __aenter__(self) -> AudioCodesCaller:
        self._ws = ws = await connect(self.url, additional_headers={"Authorization": f"Bearer {self.bot_token}"},
                                      max_size=None, compression=None)
        await ws.send(self._msg("session.initiate", botName="banking", caller="+14255550123",
                                expectAudioMessages=True, supportedMediaFormats=[self.media_format]))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10.0))
        if reply.get("type") != "session.accepted" or reply.get("mediaFormat") != self.media_format:
            await ws.close()
            raise OSError(f"session not accepted: {str(reply)[:200]}")
        await ws.send(self._msg("userStream.start"))
        self._sender = asyncio.create_task(self._send(ws))
        self._receiver = asyncio.create_task(self._receive(ws))
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Hang up as VAIC does: the user stream stops, session.end; then the host closes the socket."""
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._ws is not None and not self.closed.is_set():
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(self._msg("userStream.stop"))
                await self._ws.send(self._msg("session.end", reasonCode="client-disconnected", reason="bench done"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), 5.0)
        if self._receiver is not None:
            self._receiver.cancel()
            await asyncio.gather(self._receiver, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()

    # --- caller -> host ---------------------------------------------------------------------------
    def say(self, pcm: bytes) -> float:
        """Queue the caller's speech (PCM16 at `rate`); returns how long it lasts, in seconds."""
        return self.speech.say(pcm)

    async def spoken(self) -> None:
        await self.speech.spoken()

    @property
    def speaking(self) -> bool:
        return self.speech.speaking

    async def _send(self, ws: ClientConnection) -> None:
        async def send(frame: bytes, _silent: bool) -> None:
            await ws.send(self._msg("userStream.chunk", audioChunk=base64.b64encode(frame).decode()))

        with contextlib.suppress(ConnectionClosed):
            await self.speech.stream(send)

    # --- host -> caller ---------------------------------------------------------------------------
    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                doc = json.loads(message)
                kind = doc.get("type")
                if kind == "playStream.chunk":
                    self.agent.frames.append((time.monotonic(), base64.b64decode(doc["audioChunk"])))
                    self._agent_audio.set()
                elif kind == "playStream.stop":
                    now = time.monotonic()
                    self.all_stops.append(now)
                    if self.speaking:
                        self.stops.append(now)
        except ConnectionClosed:
            pass
        finally:
            self.close_code, self.close_reason = ws.close_code, ws.close_reason
            self.speech.cut()
            self.closed.set()
            self._agent_audio.set()

    async def agent_finished(
        self, quiet_s: float = 0.8, timeout: float = 30.0, since: float = 0.0,  # noqa: ASYNC109 - AcsMediaClient's API
    ) -> None:
        """Until the agent has spoken (after `since`) and then been quiet for `quiet_s`, or the call closed."""
        async with asyncio.timeout(timeout):
            while not self.closed.is_set():
                frames = self.agent.frames
                if frames and frames[-1][0] > since and time.monotonic() - frames[-1][0] >= quiet_s:
                    return
                self._agent_audio.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._agent_audio.wait(), quiet_s / 4)

    async def agent_speaking(self, after: float, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - ditto
        """Until agent audio arrives that was received after `after` (a monotonic time)."""
        async with asyncio.timeout(timeout):
            while not (self.agent.frames and self.agent.frames[-1][0] > after):
                if self.closed.is_set():
                    raise TimeoutError("the socket closed")  # no more audio will come
                self._agent_audio.clear()
                await self._agent_audio.wait()
