"""One VAIC socket per conversation on this host.

VAIC opens a new socket and sends `session.resume` when it believes the old one dropped; the old one may
still be open here (a half-open TCP connection, a network path that recovered). Both would then carry the
same conversation: two pipelines answering the caller, two writers of one session. So the new socket
supersedes the old: it is closed with a normal close and a reason (no `session.error`: VAIC disconnects
the call on one, protocols.md § 4.3), and the new socket waits for the old call to end and its session
writes to land before it loads the session, so it resumes from where the old one left off.

Only this host's sockets are known here: an old socket on another replica stays open until VAIC closes it
or the AudioCodes idle timeout does (AUDIOCODES_IDLE_TIMEOUT_SECONDS), its pipeline idle meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from typing import Final

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from media_host.session_writer import SessionWriter
from media_host.transports.base import CloseCode, HostServices

log = logging.getLogger(__name__)

SUPERSEDED: Final = "superseded: session.resume on a new socket"
STALE_CLOSE_S: Final = 1.0  # the stale socket's closing handshake: VAIC may have left it without a word
STALE_END_S: Final = 5.0  # its call's end (its last session writes), before the new socket loads the session


@dataclass(eq=False)
class Attached:
    """A socket that carries an accepted conversation; `finished` once its call is over."""

    ws: ServerConnection
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class Conversations:
    """The sockets of one host's accepted conversations, by conversation id, until their call is over."""

    def __init__(self) -> None:
        self._sockets: dict[str, Attached] = {}

    def get(self, conversation_id: str) -> Attached | None:
        return self._sockets.get(conversation_id)

    def attach(self, conversation_id: str, socket: Attached) -> None:
        """`socket` carries the conversation from now on (a later resume supersedes it in turn)."""
        self._sockets[conversation_id] = socket

    def detach(self, conversation_id: str, socket: Attached) -> None:
        socket.finished.set()
        if self._sockets.get(conversation_id) is socket:
            del self._sockets[conversation_id]


_HOSTS: weakref.WeakKeyDictionary[HostServices, Conversations] = weakref.WeakKeyDictionary()


def conversations(host: HostServices) -> Conversations:
    """The host's conversations (per host: tests run several hosts in one process)."""
    return _HOSTS.setdefault(host, Conversations())


async def supersede(stale: Attached, conversation_id: str, writer: SessionWriter) -> bool:
    """Close `stale` if it is still open (True if it was), then wait, bounded, for its call to end and the
    conversation's session writes to land."""
    was_open = stale.ws.state is State.OPEN
    if was_open:
        stale.ws.close_timeout = STALE_CLOSE_S
        await stale.ws.close(CloseCode.NORMAL, SUPERSEDED)
    try:
        async with asyncio.timeout(STALE_END_S):
            await stale.finished.wait()
            await writer.flushed([conversation_id])
    except TimeoutError:
        log.warning("the old socket's call has not ended after %g s; resuming anyway", STALE_END_S)
    return was_open
