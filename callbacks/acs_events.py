"""Call Automation callbacks and media-host events, turned into `call_session` orchestration events.

Every request proves which call it is for: the per-call token in its URL (and, for ACS, the ACS JWT
when `ACS_RESOURCE_ID` is set). Events are raised once per event id, so ACS retries and replays are
harmless; the orchestration copes with events out of order. The answer is a fast 2xx: the work
happens in the orchestration.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from callbacks.incoming import Orchestrations
from callbacks.replies import Reply, error, refused
from callbacks.runtime import Worker
from callbacks.wire import WireError, callback_events, check_event_data, json_body
from switchboard.acs_auth import AcsAuthError
from switchboard.logs import bind_call
from switchboard.session_models import CallSession
from switchboard.tokens import Purpose, TokenError

log = logging.getLogger(__name__)

# ACS callbacks the orchestration acts on; others (play, recognize...) are acknowledged and dropped.
ORCHESTRATION_EVENTS = frozenset({
    "CallConnected", "CallDisconnected", "MediaStreamingStarted", "MediaStreamingStopped", "MediaStreamingFailed",
    "CallTransferAccepted", "CallTransferFailed", "ParticipantsUpdated",
})
# What the media host may tell the orchestration about a call it carries.
MEDIA_HOST_EVENTS = frozenset({"AgentHandoff", "Authenticated", "TransferRequested", "HangupRequested"})
MAX_EVENT_DATA = 16 * 1024
# A callback can overtake the start of its orchestration (ACS calls back as soon as the answer is made):
# raising is retried briefly before the sender is told to retry.
RAISE_RETRIES_S = (0.1, 0.25, 0.5)


# Durable's runtime statuses of an instance that takes no more events.
FINISHED = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


class CallEnded(Exception):
    """The call's orchestration has finished: an event for it is late, and dropping it is the answer."""


async def finished(client: Orchestrations, call_id: str) -> bool:
    """Whether the call's orchestration has finished (False when unknown, or unreachable)."""
    try:
        status = await client.get_status(call_id)
    except Exception:
        return False
    runtime = getattr(status, "runtime_status", None)
    return runtime is not None and str(getattr(runtime, "value", runtime)) in FINISHED


async def raise_event(client: Orchestrations, call_id: str, name: str, data: Any) -> None:
    """Raise `name` to the call's orchestration: CallEnded if it has finished (Durable answers 410, which
    no retry changes), the last error if it cannot be reached."""
    for delay in (*RAISE_RETRIES_S, None):
        try:
            await client.raise_event(call_id, name, data)
            return
        except Exception:
            if await finished(client, call_id):  # asked only on failure: the common path is one request
                raise CallEnded(call_id) from None
            if delay is None:
                raise
            await asyncio.sleep(delay)


async def _authorize(worker: Worker, call_id: str, token: str | None, authorization: str | None,
                     acs: bool) -> Reply | CallSession:
    """The call's session, or the refusal."""
    try:
        worker.store.verify_token(token, Purpose.CALLBACK, call_id)
    except TokenError as exc:
        return error(401, "unauthorized", f"callback token: {exc}")
    if acs and worker.jwt is not None:
        try:
            await worker.jwt.verify(authorization)
        except AcsAuthError as exc:
            return error(401, "unauthorized", f"ACS token: {exc}")
    session = await worker.store.get(call_id)
    if session is None:
        return error(404, "unknown_call", "no such call in progress")
    return session


async def handle_callbacks(worker: Worker, client: Orchestrations, call_id: str, *, token: str | None,
                           authorization: str | None, body: bytes) -> Reply:
    with bind_call(call_id, call_id):
        session = await _authorize(worker, call_id, token, authorization, acs=True)
        if isinstance(session, Reply):
            log.warning("callback refused", extra={"status": session.status, "reason": session.body["error"]["code"]})
            return session
        # ACS's correlation id: the call id for an answered call; ACS's own for a placed one (stored once
        # create_call returns: until then the token alone says which call it is).
        correlation_id = session.correlation_id
        try:
            events = callback_events(body)
        except WireError as exc:
            return refused(exc)
        counts, ended = {"raised": 0, "duplicates": 0, "ignored": 0}, False
        for event in events:
            details = event.details
            if details.correlation_id and correlation_id and details.correlation_id != correlation_id:
                return error(400, "bad_request", "event for another call")
            if event.name not in ORCHESTRATION_EVENTS:
                counts["ignored"] += 1
                continue
            if not await worker.store.claim("callback", event.id, worker.settings.dedupe_ttl_seconds):
                counts["duplicates"] += 1
                continue
            try:
                await raise_event(client, call_id, event.name, event.data)
            except CallEnded:  # a late or reordered callback: acknowledged (a retry would fare no better)
                log.info("callback for a call that has ended: dropped", extra={"event": event.name})
                counts["ignored"], ended = counts["ignored"] + 1, True
                continue
            except Exception:
                await worker.store.release("callback", event.id)  # ACS retries; the retry must get through
                log.exception("raising %s failed", event.name)
                return error(503, "unavailable", "the call's orchestration could not be reached; retry")
            counts["raised"] += 1
            log.info("callback", extra={"event": event.name,
                                        "result_code": details.result_information.code
                                        if details.result_information else None})
        return Reply(200, {**counts, "call_ended": True} if ended else counts)


async def handle_media_host_event(worker: Worker, client: Orchestrations, call_id: str, name: str, *,
                                  token: str | None, body: bytes) -> Reply:
    """`POST /api/calls/{id}/events/{name}` from the media host (handoffs, transfer and hang-up requests)."""
    with bind_call(call_id, call_id):
        if name not in MEDIA_HOST_EVENTS:
            return error(400, "bad_request", f"unknown event {name[:40]!r}")
        denied = await _authorize(worker, call_id, token, None, acs=False)
        if isinstance(denied, Reply):
            return denied
        try:
            data = json_body(body) if body else {}
            check_event_data(data)
        except WireError as exc:
            return refused(exc)
        if not isinstance(data, dict) or len(body) > MAX_EVENT_DATA:
            return error(400, "bad_request", "event data must be a JSON object under 16 kB")
        try:
            await raise_event(client, call_id, name, data)
        except CallEnded:
            log.info("media host event for a call that has ended: dropped", extra={"event": name})
            return error(409, "call_ended", "the call has ended")
        except Exception:
            log.exception("raising %s failed", name)
            return error(503, "unavailable", "the call's orchestration could not be reached; retry")
        log.info("media host event", extra={"event": name})
        return Reply(202, {"raised": name})
