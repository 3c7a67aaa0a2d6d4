"""The call_session's activities: all of its I/O, each a plain async function of one JSON dict.

They reach ACS, Redis and the record store through `ActivityServices`, so tests pass fakes and the
Function App passes the real clients. Errors propagate: Durable retries the activity (per the
orchestrator's RetryOptions) and the orchestrator decides what a final failure means.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from orchestrations.models import AcsCall, Activity, CallRef, NotifyMediaHost, TransferCall, WriteCallRecord
from switchboard.session_models import CallEvent

log = logging.getLogger(__name__)


class AcsActions(Protocol):
    """The Call Automation actions the orchestration takes on a call."""

    async def transfer(self, call_connection_id: str, target: str, operation_context: str) -> None: ...

    async def hang_up(self, call_connection_id: str) -> None: ...

    async def start_media_streaming(self, call_connection_id: str) -> None: ...


class SessionEvents(Protocol):
    """The part of switchboard.session_store.SessionStore the activities use."""

    async def notify(self, call_id: str, event: CallEvent) -> None:
        """Record the event and publish it to the media host carrying the call."""

    async def delete(self, call_id: str) -> None: ...


class RecordWriter(Protocol):
    """Writes the final call record (Cosmos DB in Azure, SQLite embedded)."""

    async def write(self, call_id: str, outcome: dict[str, Any]) -> None: ...


class ActivityServices(Protocol):
    @property
    def acs(self) -> AcsActions: ...

    @property
    def sessions(self) -> SessionEvents: ...

    @property
    def records(self) -> RecordWriter: ...


async def transfer_call(payload: dict[str, Any], services: ActivityServices) -> dict[str, Any]:
    """Ask ACS to transfer the call; CallTransferAccepted / CallTransferFailed follow as callbacks."""
    request = TransferCall.model_validate(payload)
    await services.acs.transfer(request.call_connection_id, request.target, request.operation_context)
    log.info("transfer requested", extra={"call_id": request.call_id, "operation_context": request.operation_context})
    return {"ok": True, "operation_context": request.operation_context}


async def hang_up_call(payload: dict[str, Any], services: ActivityServices) -> dict[str, Any]:
    ref = AcsCall.model_validate(payload)
    await services.acs.hang_up(ref.call_connection_id)
    log.info("call hung up", extra={"call_id": ref.call_id})
    return {"ok": True}


async def start_media_streaming(payload: dict[str, Any], services: ActivityServices) -> dict[str, Any]:
    """Restart media streaming: the media host's new socket resumes the session from Redis."""
    ref = AcsCall.model_validate(payload)
    await services.acs.start_media_streaming(ref.call_connection_id)
    log.info("media streaming restarted", extra={"call_id": ref.call_id})
    return {"ok": True}


async def notify_media_host(payload: dict[str, Any], services: ActivityServices) -> dict[str, Any]:
    """Append a CallEvent (e.g. handoff_denied, transfer_failed) that the media host's agent reacts to."""
    notice = NotifyMediaHost.model_validate(payload)
    await services.sessions.notify(notice.call_id, CallEvent(kind=notice.kind, agent=notice.agent,
                                                             data=notice.data))
    return {"ok": True, "kind": notice.kind}


async def write_call_record(payload: dict[str, Any], services: ActivityServices) -> dict[str, Any]:
    record = WriteCallRecord.model_validate(payload)
    await services.records.write(record.call_id, record.outcome)
    return {"ok": True}


async def clean_session(payload: dict[str, Any], services: ActivityServices) -> dict[str, Any]:
    """Delete the call's Redis session: the record has been written."""
    ref = CallRef.model_validate(payload)
    await services.sessions.delete(ref.call_id)
    return {"ok": True}


ActivityFunction = Callable[[dict[str, Any], ActivityServices], Awaitable[dict[str, Any]]]

ACTIVITIES: dict[Activity, ActivityFunction] = {
    Activity.TRANSFER_CALL: transfer_call,
    Activity.HANG_UP_CALL: hang_up_call,
    Activity.START_MEDIA_STREAMING: start_media_streaming,
    Activity.NOTIFY_MEDIA_HOST: notify_media_host,
    Activity.WRITE_CALL_RECORD: write_call_record,
    Activity.CLEAN_SESSION: clean_session,
}
