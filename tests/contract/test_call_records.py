"""Both call record stores against one suite: SQLite in a temp dir, Cosmos DB on a local cosmosdb-server
with the real azure-cosmos aio client. Plus build_record against a real Redis session."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos.aio import ContainerProxy, CosmosClient

from switchboard.call_records import (
    CallRecord,
    RecordStore,
    RecordStoreError,
    build_record,
    open_record_store,
    record_from_session,
)
from switchboard.call_records.cosmos import CosmosRecordStore
from switchboard.call_records.sqlite import SqliteRecordStore
from switchboard.session_models import CallEvent, CallSession, CallState, HandoffRecord, Speaker, Turn
from switchboard.session_store import SessionStore
from switchboard.settings import load_settings
from tests.support.cosmos_server import COSMOS_KEY, cosmos_endpoint  # noqa: F401  (a fixture, used by name)

CALLER = "+14255550123"
TTL_DAYS = 30
T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """A store plus a back door to what it actually wrote."""

    name: str
    store: RecordStore
    clock: Clock | None = None
    db_path: Path | None = None
    container: ContainerProxy | None = None

    async def raw(self, call_id: str) -> list[str]:
        """The stored documents for a call id, as raw JSON text."""
        if self.db_path is not None:
            with sqlite3.connect(self.db_path) as conn:
                return [str(r[0]) for r in conn.execute("SELECT doc FROM call_records WHERE id = ?", (call_id,))]
        assert self.container is not None
        query = "SELECT * FROM c WHERE c.callId = @id"
        docs = self.container.query_items(query, parameters=[{"name": "@id", "value": call_id}],
                                          partition_key=call_id)
        return [json.dumps(doc) async for doc in docs]

    async def count(self) -> int:
        """Documents in the whole store."""
        if self.db_path is not None:
            with sqlite3.connect(self.db_path) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM call_records").fetchone()[0])
        assert self.container is not None
        counts: list[Any] = [n async for n in self.container.query_items("SELECT VALUE COUNT(1) FROM c")]
        return int(counts[0])  # SELECT VALUE yields bare numbers, not documents


@pytest.fixture(params=["sqlite", "cosmos"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        clock = Clock()
        path = tmp_path / "records.sqlite3"
        sqlite_store = SqliteRecordStore(path, clock=clock)
        yield Backend("sqlite", sqlite_store, clock=clock, db_path=path)
        await sqlite_store.close()
        return
    endpoint: str = request.getfixturevalue("cosmos_endpoint")
    container_name = f"calls-{uuid.uuid4().hex[:8]}"  # a container per test: counts see only this test
    cosmos_store = CosmosRecordStore(endpoint, key=COSMOS_KEY, database="switchboard-test", container=container_name,
                                     default_ttl_seconds=TTL_DAYS * 86400, enable_endpoint_discovery=False)
    async with CosmosClient(endpoint, credential=COSMOS_KEY, enable_endpoint_discovery=False) as client:
        await cosmos_store.get("warm-up")  # creates the database and container
        container = client.get_database_client("switchboard-test").get_container_client(container_name)
        yield Backend("cosmos", cosmos_store, container=container)
        await cosmos_store.close()


def _record(call_id: str = "call-1", *, started: float = T0, end_reason: str = "ended") -> CallRecord:
    at = datetime.fromtimestamp(started, UTC)
    return CallRecord.from_document({
        "id": call_id, "callId": call_id, "scenario": "banking",
        "caller": {"masked": "+1***23", "hash": "ab" * 32}, "calledNumber": "+18005550100",
        "startedAt": at.isoformat(), "endedAt": (at + timedelta(seconds=61.25)).isoformat(),
        "durationSeconds": 61.25, "agentsVisited": ["auth", "cards"],
        "transcript": [{"speaker": "agent", "text": "Hello", "agent": "auth", "at": at.isoformat()},
                       {"speaker": "caller", "text": "Hi", "at": (at + timedelta(seconds=2.5)).isoformat()}],
        "toolCalls": [{"name": "verify_customer", "ok": True, "elapsedMs": 12.5, "arguments": {"pin": "***"},
                       "at": at.isoformat()}],
        "handoffs": [{"fromAgent": "auth", "toAgent": "cards", "reason": "lost card", "at": at.isoformat()}],
        "transfer": {"status": "none"}, "endReason": end_reason, "outcome": {"reason": end_reason},
        "latency": {"turns": [{"turn": 0, "agent": "auth", "ms": {"eos_detected": 300.0, "total": 712.3}}],
                    "p50": {"eos_detected": 300.0, "total": 712.3}, "replies": 1},
        "ttl": TTL_DAYS * 86400,
    })


# --- the shared suite ------------------------------------------------------------------------------
async def test_upsert_then_get_round_trips(backend: Backend) -> None:
    record = _record()
    await backend.store.upsert(record)
    assert await backend.store.get("call-1") == record


async def test_upsert_is_idempotent_and_keeps_the_latest(backend: Backend) -> None:
    await backend.store.upsert(_record(end_reason="first"))
    await backend.store.upsert(_record(end_reason="second"))
    await backend.store.upsert(_record("call-2"))
    raw = await backend.raw("call-1")
    assert len(raw) == 1
    assert json.loads(raw[0])["endReason"] == "second"
    assert await backend.count() == 2
    got = await backend.store.get("call-1")
    assert got is not None
    assert got.end_reason == "second"


async def test_get_missing_is_none(backend: Backend) -> None:
    assert await backend.store.get("no-such-call") is None
    await backend.store.upsert(_record())
    assert await backend.store.get("call-1x") is None


async def test_recent_is_newest_first(backend: Backend) -> None:
    for i in range(3):
        await backend.store.upsert(_record(f"call-{i}", started=T0 + i * 60 + 0.5 * i))
    assert [r.id for r in await backend.store.recent(2)] == ["call-2", "call-1"]
    assert [r.id for r in await backend.store.recent(10)] == ["call-2", "call-1", "call-0"]


async def test_ttl_is_stored(backend: Backend) -> None:
    await backend.store.upsert(_record())
    [raw] = await backend.raw("call-1")
    assert json.loads(raw)["ttl"] == TTL_DAYS * 86400
    if backend.container is not None:  # expiry is on for the container; each document's ttl applies
        assert (await backend.container.read())["defaultTtl"] == TTL_DAYS * 86400


async def test_caller_number_is_never_stored_raw(backend: Backend) -> None:
    state = CallState(
        session=CallSession(call_id="call-pii", scenario="banking", current_agent="auth", caller=CALLER,
                            created_at=T0),
        turns=[Turn(speaker=Speaker.CALLER, text="my number is 425-555-0123", at=T0 + 1)],
        events=[CallEvent(kind="tool_call", data={"name": "lookup", "ok": True, "arguments": {"phone": CALLER}})],
    )
    record = record_from_session(state, outcome={"reason": f"{CALLER} hung up"}, ended_at=datetime.now(UTC),
                                 ttl_days=TTL_DAYS, salt=b"salt")
    await backend.store.upsert(record)
    [raw] = await backend.raw("call-pii")
    assert "4255550123" not in re.sub(r"[\s().+-]", "", raw)
    assert json.loads(raw)["caller"]["masked"] == "+1***23"


# --- per store -------------------------------------------------------------------------------------
async def test_sqlite_expired_records_are_invisible_then_purged(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "records.sqlite3"
    store = SqliteRecordStore(path, clock=clock, purge_interval_seconds=3600)
    try:
        await store.upsert(_record("old"))  # expires at now + 30 days
        clock.now += TTL_DAYS * 86400 - 1
        assert await store.get("old") is not None
        clock.now += 2
        assert await store.get("old") is None
        assert await store.recent() == []
        await store.upsert(_record("new"))  # an upsert purges (at most once an interval)
        with sqlite3.connect(path) as conn:
            assert [r[0] for r in conn.execute("SELECT id FROM call_records")] == ["new"]
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.close()
    with pytest.raises(RecordStoreError, match="closed"):
        await store.get("new")


async def test_cosmos_errors_are_record_store_errors(cosmos_endpoint: str) -> None:  # noqa: F811
    # Entra-style: nothing is created, so a missing container is an error, not a silent create.
    store = CosmosRecordStore(cosmos_endpoint, key=COSMOS_KEY, database="nope", container="nope",
                              create_if_missing=False, enable_endpoint_discovery=False)
    try:
        with pytest.raises(RecordStoreError, match="upsert failed: Cosmos DB answered 404"):
            await store.upsert(_record())
    finally:
        await store.close()


async def test_open_record_store_without_cosmos_is_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "records.sqlite3"
    sqlite_store = open_record_store(load_settings(cosmos_endpoint=None, records_db_path=path))
    try:
        assert isinstance(sqlite_store, SqliteRecordStore)
        assert path.parent.is_dir()
        await sqlite_store.upsert(_record())
        assert await sqlite_store.get("call-1") == _record()
    finally:
        await sqlite_store.close()


async def test_open_record_store_with_cosmos_endpoint_is_cosmos(cosmos_endpoint: str) -> None:  # noqa: F811
    settings = load_settings(cosmos_endpoint=cosmos_endpoint, cosmos_key=COSMOS_KEY,
                             cosmos_database="switchboard-test", cosmos_container=f"calls-{uuid.uuid4().hex[:8]}")
    cosmos_store = open_record_store(settings, enable_endpoint_discovery=False)
    try:
        assert isinstance(cosmos_store, CosmosRecordStore)
        await cosmos_store.upsert(_record())
        assert await cosmos_store.get("call-1") == _record()
    finally:
        await cosmos_store.close()


# --- from the Redis session to a stored record -----------------------------------------------------
async def test_build_record_from_redis_and_store_it(store: SessionStore, tmp_path: Path) -> None:
    assert await build_record(store, "gone", outcome=None, ended_at=None, ttl_days=TTL_DAYS, salt=b"s") is None
    await store.create(CallSession(call_id="call-r", scenario="banking", current_agent="auth", caller=CALLER))
    await store.append_turn("call-r", Turn(speaker=Speaker.AGENT, text="Hello", agent="auth"))
    await store.append_turn("call-r", Turn(speaker=Speaker.CALLER, text="my card", latency_ms={}))
    await store.append_event("call-r", CallEvent(kind="tool_call", agent="auth",
                                                 data={"name": "verify_customer", "ok": True, "elapsed_ms": 5}))
    await store.record_handoff("call-r", HandoffRecord(from_agent="auth", to_agent="cards", reason="card"))
    await store.append_event("call-r", CallEvent(kind="transfer", data={"target": "+18005550199"}))
    record = await build_record(store, "call-r", outcome={"reason": "CallDisconnected"}, ended_at=None,
                                ttl_days=TTL_DAYS, salt=b"s")
    assert record is not None
    assert [t.text for t in record.transcript] == ["Hello", "my card"]
    assert record.agents_visited == ["auth", "cards"]
    assert [c.name for c in record.tool_calls] == ["verify_customer"]
    assert (record.transfer.status, record.end_reason) == ("requested", "CallDisconnected")
    assert record.duration_seconds >= 0
    records = SqliteRecordStore(tmp_path / "r.sqlite3")
    try:
        await records.upsert(record)
        assert await records.get("call-r") == record
    finally:
        await records.close()
