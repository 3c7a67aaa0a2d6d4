"""`IncomingCall` from Event Grid: the trigger (one event per invocation, handshake done by the host) and
its HTTP twin for plain webhook delivery (validation handshake, CloudEvents abuse protection, batches in
which each event is answered or rejected on its own)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from callbacks.incoming import Answered, Orchestrations, answer_incoming
from callbacks.replies import Reply, error, refused
from callbacks.runtime import worker
from callbacks.wire import INCOMING_CALL, MAX_EVENTS, VALIDATION, GridEvent, WireError, incoming_call, json_body

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


@dataclass(frozen=True)
class Rejected:
    """One event of a delivery that can never be answered: its place, its id, and why (no caller data)."""

    index: int
    event_id: str | None
    reason: str


def _delivery(body: bytes) -> list[GridEvent | Rejected]:
    """Each event of a delivery parsed on its own, so one bad event does not sink the others."""
    doc = json_body(body)
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise WireError("no events in the body")
    if len(items) > MAX_EVENTS:
        raise WireError(f"more than {MAX_EVENTS} events in one body")
    events: list[GridEvent | Rejected] = []
    for index, item in enumerate(items):
        raw_id = item.get("id") if isinstance(item, dict) else None
        event_id = raw_id[:200] if isinstance(raw_id, str) else None
        try:
            event = GridEvent.model_validate(item)
            if event.kind == INCOMING_CALL:
                incoming_call(event.data)  # parsed again below; here only to reject it early
            events.append(event)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            events.append(Rejected(index, event_id, f"invalid event: {where}: {first['msg']}"))
        except WireError as exc:
            events.append(Rejected(index, event_id, str(exc)))
    return events


async def on_incoming_http(body: bytes, client: Orchestrations) -> Reply:
    """A webhook delivery: an array of events (batched delivery), or one CloudEvent.

    Event Grid takes 200-204 as delivered, does not retry a 400 (it dead-letters the delivery, or drops
    it), and retries anything else; a batch succeeds or fails as a whole (learn.microsoft.com/azure/
    event-grid/delivery-and-retry: retry schedule, output batching, success codes). So each event is
    judged on its own: malformed ones are rejected (a log line each, listed in the reply), the others
    answered, and the delivery is 200. Only a delivery of nothing but malformed events is a 400, and a
    good call that failed for a passing reason (Redis, ACS) makes it a 500 so Event Grid delivers it
    again: the calls already answered are then duplicates (claimed on correlationId) and cost nothing.
    """
    received_at = time.perf_counter()
    try:
        parsed = _delivery(body)
    except WireError as exc:
        return refused(exc)
    events = [e for e in parsed if isinstance(e, GridEvent)]
    rejected = [e for e in parsed if isinstance(e, Rejected)]
    for event in events:
        if event.kind == VALIDATION:
            code = event.data.get("validationCode")
            if not isinstance(code, str) or not code:
                return error(400, "bad_request", "validation event without a code")
            return Reply(200, {"validationResponse": code})
    for bad in rejected:
        log.warning("rejecting a malformed event of an Event Grid delivery",
                    extra={"event_index": bad.index, "event_id": bad.event_id, "reason": bad.reason[:200]})
    listed = [{"index": r.index, "id": r.event_id, "reason": r.reason} for r in rejected]
    if not events:  # nothing in it could ever be answered: let Event Grid dead-letter it
        return Reply(400, {"error": {"code": "bad_request", "message": rejected[0].reason}, "rejected": listed})
    calls = [(incoming_call(e.data), e.sent_at) for e in events if e.kind == INCOMING_CALL]
    current = await worker()
    results = await asyncio.gather(*(answer_incoming(current, client, c, received_at, sent) for c, sent in calls),
                                   return_exceptions=True)
    if any(isinstance(r, BaseException) for r in results):
        return error(500, "unavailable", "answering failed; deliver again")
    return Reply(200, {"calls": [{"call_id": r.call_id, "outcome": r.outcome}
                                 for r in results if isinstance(r, Answered)],
                       "ignored": len(events) - len(calls), "rejected": listed})
