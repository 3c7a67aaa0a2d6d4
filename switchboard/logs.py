"""Structured logging with call and correlation ids, and helpers that keep PII out of logs.

Components log through the standard `logging` module. `bind_call()` puts the call id and
correlation id in context variables; every record logged inside that context carries them, in the
readable text format and in JSON. Caller numbers must go through `mask_phone()` before logging.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from switchboard.settings import LogFormat

_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)
_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

# Attributes every LogRecord has; anything else was passed through `extra=` and is emitted as a field.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def bind_call(call_id: str | None, correlation_id: str | None = None) -> Iterator[None]:
    """Tag every log record in this (async) context with the call's ids."""
    t1 = _call_id.set(call_id)
    t2 = _correlation_id.set(correlation_id)
    try:
        yield
    finally:
        _call_id.reset(t1)
        _correlation_id.reset(t2)


def mask_phone(number: str | None) -> str:
    """A caller number safe for logs: country prefix and last two digits only."""
    if not number:
        return ""
    digits = number.removeprefix("4:")
    if len(digits) <= 4:
        return "***"
    return f"{digits[:2]}***{digits[-2:]}"


def pseudonymise(value: str, salt: str = "switchboard") -> str:
    """A stable, non-reversible id for a caller (for joining logs and records without the number)."""
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:16]


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = getattr(record, "call_id", None) or _call_id.get()
        record.correlation_id = getattr(record, "correlation_id", None) or _correlation_id.get()
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """One readable line: time, level, logger, [call] message key=value..."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        extras = _extras(record)
        call = extras.pop("call_id", None)
        extras.pop("correlation_id", None)
        tag = f" [{call[:8]}]" if call else ""
        fields = " ".join(f"{k}={v}" for k, v in extras.items() if v is not None)
        line = f"{stamp} {record.levelname:<7} {record.name}{tag} {record.getMessage()}"
        if fields:
            line += f"  {fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", fmt: LogFormat = LogFormat.TEXT) -> None:
    """Configure the root logger once per process. Safe to call again (replaces the handler)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_switchboard", False):
            root.removeHandler(old)
    handler._switchboard = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party loggers that log request bodies or headers at INFO stay quiet.
    for noisy in ("azure", "azure.core.pipeline.policies.http_logging_policy", "websockets", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
