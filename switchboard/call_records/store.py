"""Where call records are kept: Cosmos DB when configured, else a local SQLite file.

Both stores behave the same behind `RecordStore`: `upsert` is idempotent (a retried activity writes
the same document again, never a second one), `get` of a missing or expired record is None, and a
record expires `record.ttl` seconds after its last write.
"""

from __future__ import annotations

from typing import Protocol

from switchboard.call_records.model import CallRecord
from switchboard.settings import Settings


class RecordStoreError(Exception):
    """The record store failed (unreachable, refused, misconfigured). The message names the operation."""


class RecordStore(Protocol):
    async def upsert(self, record: CallRecord) -> None:
        """Write the record; a record with the same id is replaced (one document per call)."""

    async def get(self, call_id: str) -> CallRecord | None:
        """The record, or None when there is none (or it expired)."""

    async def recent(self, limit: int = 20) -> list[CallRecord]:
        """The most recent records by start time, newest first."""

    async def close(self) -> None: ...


def open_record_store(settings: Settings, *, enable_endpoint_discovery: bool | None = None,
                      connection_verify: bool | str | None = None) -> RecordStore:
    """Cosmos DB when COSMOS_ENDPOINT is set, else SQLite at RECORDS_DB_PATH. Nothing connects yet.

    `enable_endpoint_discovery` and `connection_verify` are for local Cosmos servers (off, and a CA
    bundle or False); they are ignored for SQLite.
    """
    if settings.cosmos_configured:
        # The SDK is loaded only when Cosmos DB is configured.
        from switchboard.call_records.cosmos import CosmosRecordStore  # noqa: PLC0415

        return CosmosRecordStore.from_settings(settings, enable_endpoint_discovery=enable_endpoint_discovery,
                                               connection_verify=connection_verify)
    from switchboard.call_records.sqlite import SqliteRecordStore  # noqa: PLC0415 - it imports this module

    settings.records_db_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteRecordStore(settings.records_db_path)
