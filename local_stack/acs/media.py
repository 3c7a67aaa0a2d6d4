"""The media leg of each local ACS call: when streaming starts, ACS opens the WebSocket to the app's
`transportUrl` with its upgrade headers; when the call or the stream ends, it closes it.

LocalAcs does not speak audio itself. It hands a `MediaOffer` to a connector (the scripted caller of
the local stack, or a test) and sets `offer.ended` when ACS would close the socket. A connector whose
socket could not open, or was closed by the app's side while the call was up (a media host that died
or drained), raises `MediaLost`: ACS then posts MediaStreamingFailed, as the real service does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from local_stack.acs.calls import AcsCallConnection

log = logging.getLogger(__name__)

ENDS_MEDIA = ("CallDisconnected", "MediaStreamingStopped", "MediaStreamingFailed")
# mediaStreamingStatusDetails of MediaStreamingFailed
UNSUCCESSFUL = "streamConnectionUnsuccessful"  # the socket never opened (refused, 503 ...)
INTERRUPTED = "streamConnectionInterrupted"  # it opened, then broke without ACS ending it


class MediaLost(Exception):
    """Raised by a connector: the app's end of the media socket failed (`details`, as ACS reports it)."""

    def __init__(self, details: str, reason: str = "") -> None:
        super().__init__(f"{details}: {reason}" if reason else details)
        self.details = details
        self.reason = reason


@dataclass
class MediaOffer:
    call: AcsCallConnection
    url: str
    headers: dict[str, str]  # x-ms-call-connection-id, x-ms-call-correlation-id, Authorization when ACS signs
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # ACS closes the socket: the connector must too
    opened_at: float = field(default_factory=time.monotonic)
    lost: MediaLost | None = None  # how the app's side failed, when it did


MediaConnector = Callable[[MediaOffer], Awaitable[None]]
OnLost = Callable[[AcsCallConnection, MediaLost], None]


class MediaLegs:
    def __init__(self, connector: MediaConnector | None, bearer: Callable[[], str] | None,
                 on_lost: OnLost | None = None) -> None:
        self.connector = connector
        self.bearer = bearer
        self.on_lost = on_lost  # LocalAcs posts MediaStreamingFailed
        self.offers: list[MediaOffer] = []  # every socket opened, in order (a restart opens another)
        self._live: dict[str, tuple[MediaOffer, asyncio.Task[None]]] = {}

    def on_event(self, call: AcsCallConnection, event_type: str) -> None:
        """Open or end the call's media leg as the callback event `event_type` says."""
        if self.connector is None:
            return
        if event_type == "MediaStreamingStarted":
            self._open(call)
        elif event_type in ENDS_MEDIA:
            self.end(call.call_connection_id)

    def end(self, call_connection_id: str) -> None:
        live = self._live.pop(call_connection_id, None)
        if live is not None:
            live[0].ended.set()

    async def close(self, grace_s: float = 2.0) -> None:
        """End every leg, give connectors `grace_s` to close their sockets, then cancel them."""
        tasks = [task for offer, task in self._live.values()]
        for key in list(self._live):
            self.end(key)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _open(self, call: AcsCallConnection) -> None:
        url = call.media_transport_url
        if not url or call.call_connection_id in self._live or self.connector is None:
            return
        headers = {"x-ms-call-connection-id": call.call_connection_id,
                   "x-ms-call-correlation-id": call.correlation_id}
        if self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer()}"
        offer = MediaOffer(call, url, headers)
        self.offers.append(offer)
        task = asyncio.get_running_loop().create_task(self._run(offer), name=f"media {call.call_connection_id}")
        self._live[call.call_connection_id] = (offer, task)

    async def _run(self, offer: MediaOffer) -> None:
        assert self.connector is not None
        try:
            await self.connector(offer)
        except asyncio.CancelledError:
            raise
        except MediaLost as lost:
            if not offer.ended.is_set():  # once ACS has ended the leg, how the socket closed is moot
                offer.lost = lost
        except Exception:  # one caller's failure is its own; the local ACS carries on
            log.exception("media connector failed for call %s", offer.call.call_connection_id)
        finally:
            live = self._live.get(offer.call.call_connection_id)
            if live is not None and live[0] is offer:
                del self._live[offer.call.call_connection_id]
            with contextlib.suppress(Exception):
                offer.ended.set()
        if offer.lost is not None and self.on_lost is not None:
            log.info("media socket lost for call %s: %s", offer.call.call_connection_id, offer.lost)
            self.on_lost(offer.call, offer.lost)
