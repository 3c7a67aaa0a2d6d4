"""How the media host asks the call control plane to act on a call it cannot act on itself.

ACS media sockets carry audio only: hanging up or transferring an ACS call is a Call Automation
request, made by the `call_session` orchestration. The media host therefore records the request in
the session and tells the control plane. (AudioCodes and browser calls carry those actions on their
own socket and never come here.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from media_host.session_writer import SessionWriter
from switchboard.session_models import CallEvent
from switchboard.session_store import SessionStore
from switchboard.tokens import Purpose

log = logging.getLogger(__name__)

# Backoff between attempts: four attempts of at most 3 s each, ~16 s in all (runner.CONTROL_DRAIN_S is more).
RETRY_DELAYS_S = (0.5, 1.0, 2.0)
# Worth another attempt: the Function App answers 503 when it could not raise the event (acs_events.py).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ControlPlane(Protocol):
    async def request_transfer(self, call_id: str, target: str, reason: str) -> None: ...

    async def request_hangup(self, call_id: str, reason: str) -> None: ...

    async def notify_handoff(self, call_id: str, from_agent: str, to_agent: str, reason: str,
                             authenticated: bool | None = None) -> None:
        """The media host switched agent (already recorded in the session); the orchestration keeps
        the durable history and enforces its policy. `authenticated`: whether the caller is verified
        (None: look it up in the session)."""


class SessionControlPlane:
    """Records requests in the call session; the control plane picks them up from there.

    With a `writer` (the media host's) the records are written behind: a Redis outage delays them but
    neither loses them nor holds up the call's control events (StopAudio goes out on the same task)."""

    def __init__(self, store: SessionStore, writer: SessionWriter | None = None) -> None:
        self.store = store
        self.writer = writer

    async def _record(self, call_id: str, event: CallEvent) -> None:
        if self.writer is not None:
            await self.writer.append_event(call_id, event)
        else:
            await self.store.append_event(call_id, event)

    async def request_transfer(self, call_id: str, target: str, reason: str) -> None:
        await self._record(call_id, CallEvent(kind="transfer_requested", data={"target": target, "reason": reason}))
        log.info("transfer requested", extra={"reason": reason})

    async def request_hangup(self, call_id: str, reason: str) -> None:
        await self._record(call_id, CallEvent(kind="hangup_requested", data={"reason": reason}))
        log.info("hang-up requested", extra={"reason": reason})

    async def notify_handoff(self, call_id: str, from_agent: str, to_agent: str, reason: str,
                             authenticated: bool | None = None) -> None:
        log.info("agent handoff", extra={"from_agent": from_agent, "to_agent": to_agent})


class FunctionsControlPlane(SessionControlPlane):
    """Also raises each request to the call's `call_session` orchestration through the Function App
    (`POST /api/calls/{id}/events/{name}`, authorized by a per-call callback token).

    A hang-up or transfer that fails (unreachable, timed out, 5xx, 429) is tried again with backoff: it
    is the only way the orchestration learns of it. A repeat is harmless if an earlier attempt did land
    (call_session ignores a hang-up while ending and a transfer while transferring). A handoff notice is
    tried once: a turn waits on it, and the orchestration only keeps it for the record. What still
    fails is logged as an error and counted; the session keeps the request whatever happens.
    """

    def __init__(self, store: SessionStore, base_url: str, *, timeout_s: float = 3.0,
                 retry_delays_s: Sequence[float] = RETRY_DELAYS_S, writer: SessionWriter | None = None) -> None:
        super().__init__(store, writer)
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry_delays = tuple(retry_delays_s)
        self._client: aiohttp.ClientSession | None = None
        self.failures = 0

    async def _raise(self, call_id: str, name: str, data: dict[str, Any], *, retry: bool = True) -> None:
        url = f"{self.base_url}/api/calls/{quote(call_id, safe='')}/events/{name}"
        delays = self.retry_delays if retry else ()
        for attempt in range(1, len(delays) + 2):
            failure = await self._post(call_id, url, data)
            if failure is None:
                return
            error, retryable = failure
            if not retryable or attempt > len(delays):
                self.failures += 1
                log.error("raising %s to the orchestration failed", name, extra={"error": error, "attempts": attempt})
                return
            log.info("retrying %s: attempt %d failed", name, attempt, extra={"error": error})
            await asyncio.sleep(delays[attempt - 1])

    async def _post(self, call_id: str, url: str, data: dict[str, Any]) -> tuple[str, bool] | None:
        """None once the Function App took the event; else what failed, and whether to try again."""
        if self._client is None:  # created on the running loop, on first use
            self._client = aiohttp.ClientSession(timeout=self.timeout)
        token = self.store.issue_token(call_id, Purpose.CALLBACK, 300)
        try:
            async with self._client.post(url, params={"token": token}, json=data) as response:
                if response.status == 409:  # callbacks/acs_events.py: the call has ended (the caller hung up first)
                    log.info("the orchestration has ended: event dropped")
                    return None
                if response.status >= 400:
                    return f"HTTP {response.status}", response.status in RETRY_STATUSES
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__, True
        return None

    async def request_transfer(self, call_id: str, target: str, reason: str) -> None:
        await super().request_transfer(call_id, target, reason)
        await self._raise(call_id, "TransferRequested", {"target": target or None, "reason": reason})

    async def request_hangup(self, call_id: str, reason: str) -> None:
        await super().request_hangup(call_id, reason)
        await self._raise(call_id, "HangupRequested", {"reason": reason})

    async def notify_handoff(self, call_id: str, from_agent: str, to_agent: str, reason: str,
                             authenticated: bool | None = None) -> None:
        await super().notify_handoff(call_id, from_agent, to_agent, reason, authenticated)
        if authenticated is None:  # the pipelines say; only other callers need the session read
            session = await self.store.get(call_id)
            authenticated = session is not None and session.customer is not None
        await self._raise(call_id, "AgentHandoff", {"from_agent": from_agent, "to_agent": to_agent,
                                                    "reason": reason, "authenticated": authenticated}, retry=False)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
