"""`IncomingCall` from Event Grid: the trigger (one event per invocation, handshake done by the host) and
its HTTP twin for plain webhook delivery (validation handshake, CloudEvents abuse protection, arrays)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from callbacks.incoming import Answered, Orchestrations, answer_incoming
from callbacks.replies import Reply, error, refused
from callbacks.runtime import worker
from callbacks.wire import INCOMING_CALL, VALIDATION, WireError, grid_events, incoming_call

log = logging.getLogger(__name__)

ALLOWED_ORIGIN = "eventgrid.azure.net"


async def on_incoming_event(event_type: str, data: Any, client: Orchestrations,
                            sent_at: datetime | None = None) -> Answered | None:
    """One Event Grid event (either schema; `sent_at` its eventTime / time). Raises on failure, so Event
    Grid delivers it again."""
    received_at = time.perf_counter()
    if event_type != INCOMING_CALL:
        log.info("ignoring an Event Grid event", extra={"event_type": event_type[:100]})
        return None
    try:
        call = incoming_call(data)
    except WireError as exc:  # raising would make Event Grid redeliver what can never succeed
        log.warning("dropping a malformed IncomingCall", extra={"reason": str(exc)[:200]})
        return None
    return await answer_incoming(await worker(), client, call, received_at, sent_at)


def abuse_protection(origin: str | None) -> tuple[int, dict[str, str]]:
    """CloudEvents webhook validation (HTTP OPTIONS): allow Event Grid only."""
    if origin is None or origin.strip().lower() != ALLOWED_ORIGIN:
        return 400, {}
    return 200, {"WebHook-Allowed-Origin": ALLOWED_ORIGIN, "WebHook-Allowed-Rate": "*"}


async def on_incoming_http(body: bytes, client: Orchestrations) -> Reply:
    """A webhook delivery: an array of events, or one CloudEvent."""
    received_at = time.perf_counter()
    try:
        events = grid_events(body)
    except WireError as exc:
        return refused(exc)
    for event in events:
        if event.kind == VALIDATION:
            code = event.data.get("validationCode")
            if not isinstance(code, str) or not code:
                return error(400, "bad_request", "validation event without a code")
            return Reply(200, {"validationResponse": code})
    calls = []
    try:
        calls = [(incoming_call(e.data), e.sent_at) for e in events if e.kind == INCOMING_CALL]
    except WireError as exc:
        return refused(exc)
    current = await worker()
    results = await asyncio.gather(*(answer_incoming(current, client, c, received_at, sent) for c, sent in calls),
                                   return_exceptions=True)
    if any(isinstance(r, BaseException) for r in results):
        return error(500, "unavailable", "answering failed; deliver again")
    return Reply(200, {"calls": [{"call_id": r.call_id, "outcome": r.outcome}
                                 for r in results if isinstance(r, Answered)],
                       "ignored": len(events) - len(calls)})
