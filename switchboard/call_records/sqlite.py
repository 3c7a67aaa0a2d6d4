"""Call records in a local SQLite file: the embedded default when Cosmos DB is not configured.

One connection, opened on first use. Every call runs in a worker thread (`asyncio.to_thread`) under a
threading lock: the lock is held by the thread itself, so a cancelled caller cannot let a second thread
onto the connection while the first is still inside SQLite. WAL mode lets readers of the file (an
operator's sqlite3 shell) work alongside the writer.

Expiry mirrors Cosmos DB's TTL: a record expires `ttl` seconds after its last write. Expired rows are
invisible at once and deleted by an occasional purge during upserts.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from switchboard.call_records.model import CallRecord
from switchboard.call_records.store import RecordStoreError

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS call_records (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS call_records_expires_at ON call_records (expires_at);
"""

_UPSERT = """
INSERT INTO call_records (id, doc, expires_at) VALUES (?, ?, ?)
ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, expires_at = excluded.expires_at
"""


class SqliteRecordStore:
    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time,
                 purge_interval_seconds: float = 3600.0) -> None:
        self.path = Path(path)
        self.clock = clock
        self.purge_interval = purge_interval_seconds
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._last_purge: float | None = None

    # --- the connection ------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RecordStoreError("call record store is closed")
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def _run(self, what: str, operation: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return operation(self._connection())

        try:
            return await asyncio.to_thread(locked)
        except sqlite3.Error as exc:
            raise RecordStoreError(f"call record {what} failed (sqlite {self.path.name}): {exc}") from exc

    # --- RecordStore ---------------------------------------------------------------------------
    async def upsert(self, record: CallRecord) -> None:
        doc, now = record.to_json(), self.clock()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT, (record.id, doc, now + record.ttl))
            if self._last_purge is None or now - self._last_purge >= self.purge_interval:
                conn.execute("DELETE FROM call_records WHERE expires_at <= ?", (now,))
                self._last_purge = now

        await self._run("upsert", write)

    async def get(self, call_id: str) -> CallRecord | None:
        now = self.clock()

        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT doc FROM call_records WHERE id = ? AND expires_at > ?",
                               (call_id, now)).fetchone()
            return str(row[0]) if row else None

        doc = await self._run("get", read)
        return CallRecord.from_json(doc) if doc is not None else None

    async def recent(self, limit: int = 20) -> list[CallRecord]:
        now = self.clock()

        def read(conn: sqlite3.Connection) -> list[str]:
            # startedAt is fixed-width UTC text, so text order is time order.
            rows = conn.execute("SELECT doc FROM call_records WHERE expires_at > ? "
                                "ORDER BY json_extract(doc, '$.startedAt') DESC, id LIMIT ?", (now, limit))
            return [str(row[0]) for row in rows]

        return [CallRecord.from_json(doc) for doc in await self._run("recent", read)]

    async def close(self) -> None:
        def shut() -> None:
            with self._lock:
                self._closed = True
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(shut)
