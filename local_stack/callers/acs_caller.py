"""The caller's end of a local ACS call's media socket: opens it to the media host as ACS does, streams the
caller at real-time pace (silence when they say nothing) and records both directions (see live.py).

`for_offer` streams as the call's mediaStreamingOptions asked (the ACS audio streaming quickstart,
learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart):
the sample rate of audioFormat (PCM 16K mono unless 24K was asked), DtmfData only with enableDtmfTones,
and the app's AudioData played to the caller only with enableBidirectional. A client built directly
(no local ACS call behind it) streams as this app's own answer asks: 24 kHz, DTMF and bidirectional.
"""

from __future__ import annotations

import asyncio
import time
from typing import Self

from local_stack.acs.media import MediaOffer
from local_stack.callers import acs
from local_stack.callers.live import LiveCaller


class DtmfNotStreamed(RuntimeError):
    """A key pressed on a call whose media streaming did not ask for DTMF: ACS would send nothing."""


class AcsMediaClient(LiveCaller):
    def __init__(self, url: str, *, rate: int = 24000, headers: dict[str, str] | None = None,
                 participant: str = acs.CALLER, over: asyncio.Event | None = None,
                 dtmf_tones: bool = True, bidirectional: bool = True, subscription_id: str = "local") -> None:
        super().__init__(rate, over)
        self.url = url
        self.headers = headers or {}
        self.participant = participant
        self.dtmf_tones = dtmf_tones
        self.bidirectional = bidirectional
        self.subscription_id = subscription_id
        self.unplayed = 0  # the app's audio messages dropped because the call is not bidirectional

    @classmethod
    def for_offer(cls, offer: MediaOffer) -> AcsMediaClient:
        """The caller's end of the socket the local ACS offers, streaming as the call asked."""
        call, options = offer.call, offer.call.media_streaming
        assert options is not None, "ACS offers a media socket only to a call with mediaStreamingOptions"
        participant = call.targets[0].get("rawId", "") if call.targets else ""
        return cls(offer.url, rate=options.sample_rate, headers=offer.headers, participant=participant or "",
                   over=call.over, dtmf_tones=options.dtmf_tones, bidirectional=options.bidirectional,
                   subscription_id=call.subscription_id)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def connect(self, url: str | None = None, headers: dict[str, str] | None = None) -> None:
        """Open the socket (after a drop: the next one, e.g. to `url`); raises what `connect` raises."""
        self.url, self.headers = url or self.url, self.headers if headers is None else headers
        ws = await self._connect(self.url, self.headers)
        await ws.send(acs.metadata(self.rate, self.subscription_id))
        self._start_speaking(ws)

    def _frame_message(self, frame: bytes, silent: bool) -> str:
        return acs.audio(frame, self.participant, silent, _iso_now())

    async def send_dtmf(self, digits: str) -> None:
        """Press keys: one DtmfData per digit. DtmfNotStreamed when the call did not ask for DTMF (ACS
        would stream none, and a test pressing keys there would wait for nothing)."""
        if not self.dtmf_tones:
            raise DtmfNotStreamed("the call's mediaStreamingOptions did not set enableDtmfTones: "
                                  "ACS streams no DtmfData on this socket")
        if self.ws is None:
            return  # keys pressed with no media socket reach nobody
        for digit in digits:
            await self._send(acs.dtmf(digit))

    def _on_message(self, message: str | bytes) -> None:
        got = acs.from_app(message)
        if got.kind in ("AudioData", "StopAudio") and not self.bidirectional:
            self.unplayed += 1  # ACS plays the app's audio only with enableBidirectional
        elif got.kind == "AudioData":
            self._heard(got.audio)
        elif got.kind == "StopAudio":
            self.stops.append(time.monotonic())


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
