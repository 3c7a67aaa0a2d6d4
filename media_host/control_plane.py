"""How the media host asks the call control plane to act on a call it cannot act on itself.

ACS media sockets carry audio only: hanging up or transferring an ACS call is a Call Automation
request, made by the `call_session` orchestration. The media host therefore records the request in
the session and tells the control plane. (AudioCodes and browser calls carry those actions on their
own socket and never come here.)
"""

from __future__ import annotations

import logging
from typing import Protocol

from switchboard.session_models import CallEvent
from switchboard.session_store import SessionStore

log = logging.getLogger(__name__)


class ControlPlane(Protocol):
    async def request_transfer(self, call_id: str, target: str, reason: str) -> None: ...

    async def request_hangup(self, call_id: str, reason: str) -> None: ...

    async def notify_handoff(self, call_id: str, from_agent: str, to_agent: str, reason: str) -> None:
        """The media host switched agent (already recorded in the session); the orchestration keeps
        the durable history and enforces its policy."""


class SessionControlPlane:
    """Records requests in the call session; the control plane picks them up from there."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def request_transfer(self, call_id: str, target: str, reason: str) -> None:
        await self.store.append_event(call_id, CallEvent(kind="transfer_requested",
                                                         data={"target": target, "reason": reason}))
        log.info("transfer requested", extra={"reason": reason})

    async def request_hangup(self, call_id: str, reason: str) -> None:
        await self.store.append_event(call_id, CallEvent(kind="hangup_requested", data={"reason": reason}))
        log.info("hang-up requested", extra={"reason": reason})

    async def notify_handoff(self, call_id: str, from_agent: str, to_agent: str, reason: str) -> None:
        log.info("agent handoff", extra={"from_agent": from_agent, "to_agent": to_agent})
