"""The media side of a local ACS: opens the media WebSocket to the media host as ACS does, streams the
caller's audio at real-time pace (silence when they say nothing), and records both directions.

Given the call's `over` event, the client outlives its socket: after a drop, `connect` opens the next
one (a media restart) and the same caller carries on, with both recordings continuing. Without it, the
socket closing is the end of the call.

`for_offer` streams as the call's mediaStreamingOptions asked (the ACS audio streaming quickstart,
learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart):
the sample rate of audioFormat (PCM 16K mono unless 24K was asked), DtmfData only with enableDtmfTones,
and the app's AudioData played to the caller only with enableBidirectional. A client built directly
(no local ACS call behind it) streams as this app's own answer asks: 24 kHz, DTMF and bidirectional.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from local_stack.acs.media import MediaOffer
from local_stack.caller_speech import CallerSpeech, Track


class DtmfNotStreamed(RuntimeError):
    """A key pressed on a call whose media streaming did not ask for DTMF: ACS would send nothing."""


class AcsMediaClient:
    def __init__(self, url: str, *, rate: int = 24000, headers: dict[str, str] | None = None,
                 participant: str = "4:+14255550123", over: asyncio.Event | None = None,
                 dtmf_tones: bool = True, bidirectional: bool = True, subscription_id: str = "local") -> None:
        self.url = url
        self.dtmf_tones = dtmf_tones
        self.bidirectional = bidirectional
        self.subscription_id = subscription_id
        self.unplayed = 0  # the app's audio messages dropped because the call is not bidirectional
        self.rate = rate
        self.frame_bytes = rate // 50 * 2
        self.headers = headers or {}
        self.participant = participant
        self.speech = CallerSpeech(rate)
        self.caller = self.speech.track
        self.agent = Track()
        self.stops: list[float] = []  # when each StopAudio arrived
        self.closed = asyncio.Event()  # the current socket closed (cleared by the next `connect`)
        self.over = over or asyncio.Event()  # the call is over: no more agent audio will come
        self.reconnects = over is not None
        self.sockets = 0  # how many sockets this caller has talked over
        self.connected_at = 0.0  # when the current socket opened (monotonic)
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._agent_audio = asyncio.Event()

    @classmethod
    def for_offer(cls, offer: MediaOffer) -> AcsMediaClient:
        """The caller's end of the socket the local ACS offers, streaming as the call asked."""
        call, options = offer.call, offer.call.media_streaming
        assert options is not None, "ACS offers a media socket only to a call with mediaStreamingOptions"
        participant = call.targets[0].get("rawId", "") if call.targets else ""
        return cls(offer.url, rate=options.sample_rate, headers=offer.headers, participant=participant or "",
                   over=call.over, dtmf_tones=options.dtmf_tones, bidirectional=options.bidirectional,
                   subscription_id=call.subscription_id)

    async def __aenter__(self) -> AcsMediaClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
        self.over.set()

    async def connect(self, url: str | None = None, headers: dict[str, str] | None = None) -> None:
        """Open the socket (after a drop: the next one, e.g. to `url`); raises what `connect` raises."""
        await self.disconnect()
        self.url, self.headers = url or self.url, self.headers if headers is None else headers
        ws = await connect(self.url, additional_headers=self.headers, max_size=None, compression=None)
        self._ws = ws
        self.connected_at = time.monotonic()
        self.closed.clear()
        self.close_code = self.close_reason = None
        self.sockets += 1
        await ws.send(json.dumps({"kind": "AudioMetadata", "audioMetadata": {
            "subscriptionId": self.subscription_id, "encoding": "PCM", "sampleRate": self.rate, "channels": 1,
            "length": self.frame_bytes}}))
        self._tasks = [asyncio.create_task(self._send(ws)), asyncio.create_task(self._receive(ws))]

    async def disconnect(self) -> None:
        """Close the current socket, if any (the caller stays on the line when it `reconnects`)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    # --- caller -> host ---------------------------------------------------------------------------
    def say(self, pcm: bytes) -> float:
        """Queue the caller's speech (PCM16 at `rate`); returns how long it lasts, in seconds."""
        if self.closed.is_set():
            return self.speech.seconds(pcm)  # said into a dead line: nobody hears it
        return self.speech.say(pcm)

    async def spoken(self) -> None:
        """Until everything queued with `say` has gone out."""
        await self.speech.spoken()

    @property
    def speaking(self) -> bool:
        return self.speech.speaking

    async def send_dtmf(self, digits: str) -> None:
        """Press keys: one DtmfData per digit. DtmfNotStreamed when the call did not ask for DTMF (ACS
        would stream none, and a test pressing keys there would wait for nothing)."""
        if not self.dtmf_tones:
            raise DtmfNotStreamed("the call's mediaStreamingOptions did not set enableDtmfTones: "
                                  "ACS streams no DtmfData on this socket")
        if self._ws is None:
            return  # keys pressed with no media socket reach nobody
        with contextlib.suppress(ConnectionClosed):
            for digit in digits:
                await self._ws.send(json.dumps({"kind": "DtmfData", "dtmfData": {"data": digit}}))

    async def _send(self, ws: ClientConnection) -> None:
        async def send(frame: bytes, silent: bool) -> None:
            await ws.send(json.dumps({"kind": "AudioData", "audioData": {
                "data": base64.b64encode(frame).decode(), "timestamp": _iso_now(),
                "participantRawID": self.participant, "silent": silent}}))

        with contextlib.suppress(ConnectionClosed):
            await self.speech.stream(send)

    # --- host -> caller ---------------------------------------------------------------------------
    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                doc = json.loads(message)
                if doc.get("Kind") in ("AudioData", "StopAudio") and not self.bidirectional:
                    self.unplayed += 1  # ACS plays the app's audio only with enableBidirectional
                elif doc.get("Kind") == "AudioData":
                    self.agent.frames.append((time.monotonic(), base64.b64decode(doc["AudioData"]["Data"])))
                    self._agent_audio.set()
                elif doc.get("Kind") == "StopAudio":
                    self.stops.append(time.monotonic())
        except ConnectionClosed:
            pass
        finally:
            self.close_code, self.close_reason = ws.close_code, ws.close_reason
            self.speech.cut()  # what the caller was still saying went down the dead line
            self.closed.set()
            if not self.reconnects:
                self.over.set()
            self._agent_audio.set()  # wakes whoever waits for the agent

    def agent_quiet_for(self) -> float:
        """Seconds since the agent's last audio frame arrived (infinite if it never spoke)."""
        if not self.agent.frames:
            return float("inf")
        return time.monotonic() - self.agent.frames[-1][0]

    async def agent_finished(self, quiet_s: float = 0.8, timeout: float = 30.0, since: float = 0.0) -> None:
        """Until the agent has spoken (after `since`, a monotonic time) and then been quiet for `quiet_s`,
        or the call is over. After a drop the agent must be heard on the new socket first: someone whose
        line went silent waits for the other end to come back before talking again."""
        async with asyncio.timeout(timeout):
            while not self.over.is_set():
                heard = self.agent.frames[-1][0] if self.agent.frames else 0.0
                spoke = heard > since and heard > self.connected_at and not self.closed.is_set()
                if spoke and self.agent_quiet_for() >= quiet_s:
                    return
                self._agent_audio.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._agent_audio.wait(), quiet_s / 4)

    async def agent_speaking(self, after: float, timeout: float = 30.0) -> None:
        """Until agent audio arrives that was received after `after` (a monotonic time)."""
        async with asyncio.timeout(timeout):
            while not (self.agent.frames and self.agent.frames[-1][0] > after):
                self._agent_audio.clear()
                await self._agent_audio.wait()

    def agent_audio_since(self, since: float) -> bytes:
        return self.agent_audio_between(since, float("inf"))

    def agent_audio_between(self, since: float, until: float) -> bytes:
        """Agent audio received in [since, until) (monotonic times)."""
        return b"".join(pcm for t, pcm in self.agent.frames if since <= t < until)


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
