"""Call records: one document per call, in Cosmos DB or (embedded default) a local SQLite file."""

from switchboard.call_records.build import build_record, caller_salt, hash_caller, record_from_session
from switchboard.call_records.model import CallRecord
from switchboard.call_records.store import RecordStore, RecordStoreError, open_record_store

__all__ = [
    "CallRecord",
    "RecordStore",
    "RecordStoreError",
    "build_record",
    "caller_salt",
    "hash_caller",
    "open_record_store",
    "record_from_session",
]
