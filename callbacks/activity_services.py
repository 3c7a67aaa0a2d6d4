"""The real services behind the call_session activities: ACS actions, the Redis session, the record store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from callbacks.runtime import Worker, worker
from switchboard.call_records import build_record, caller_salt
from switchboard.session_store import SessionStore


@dataclass
class AcsActions:
    """Call Automation actions on a live call, through the worker's SDK client."""

    worker: Worker

    async def transfer(self, call_connection_id: str, target: str, operation_context: str) -> None:
        from azure.communication.callautomation import PhoneNumberIdentifier  # noqa: PLC0415

        connection = self.worker.acs.get_call_connection(call_connection_id)
        await connection.transfer_call_to_participant(PhoneNumberIdentifier(target),
                                                      operation_context=operation_context)

    async def hang_up(self, call_connection_id: str) -> None:
        await self.worker.acs.get_call_connection(call_connection_id).hang_up(is_for_everyone=True)

    async def start_media_streaming(self, call_connection_id: str) -> None:
        await self.worker.acs.get_call_connection(call_connection_id).start_media_streaming(
            operation_context="media-restart")


@dataclass
class RecordWriter:
    """Builds the call record from the Redis session and the orchestration's outcome, and upserts it."""

    worker: Worker

    async def write(self, call_id: str, outcome: dict[str, Any]) -> None:
        settings = self.worker.settings
        record = await build_record(self.worker.store, call_id, outcome=outcome, ended_at=datetime.now(UTC),
                                    ttl_days=settings.call_record_ttl_days, salt=caller_salt(settings))
        if record is not None:  # the session is gone (a retried activity after cleaning): nothing to add
            await self.worker.records.upsert(record)


@dataclass
class Services:
    acs: AcsActions
    sessions: SessionStore
    records: RecordWriter


async def activity_services() -> Services:
    current = await worker()
    return Services(AcsActions(current), current.store, RecordWriter(current))
