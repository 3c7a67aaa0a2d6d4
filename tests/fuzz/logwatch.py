"""The log oracle: a handler crashed if it logged an ERROR it did not mean to.

Rejections are logged at INFO or WARNING with a reason, so any ERROR line during a fuzz run is a
finding, except the few the design logs on purpose when a dependency refuses (listed in `EXPECTED`).
Lines come from this process (a logging handler) and, when the media host runs as a subprocess, from
its JSON log lines on stderr.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

# Exception classes (in an ERROR line's chain) that are a dependency's answer, not our crash: a fuzzed
# IncomingCall with a mangled `incomingCallContext` is answered at ACS, which refuses it; the handler
# logs that with its traceback and raises so Event Grid delivers again, as designed.
EXPECTED = {"HttpResponseError": "ACS refused the request"}
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


@dataclass(frozen=True)
class LogEvent:
    at: float
    level: str
    logger: str
    message: str
    exc_types: tuple[str, ...] = ()  # class names of the exception chain and their bases
    traceback: str = ""

    @property
    def expected(self) -> str | None:
        return next((why for name, why in EXPECTED.items() if name in self.exc_types), None)

    @property
    def summary(self) -> str:
        exc = f" ({self.exc_types[0]})" if self.exc_types else ""
        return f"{self.logger}: {self.message[:160]}{exc}"


def _chain_names(exc: BaseException | None) -> tuple[str, ...]:
    names: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names += [cls.__name__ for cls in type(exc).__mro__]
        exc = exc.__cause__ or exc.__context__
    return tuple(names)


def _names_from_traceback(text: str) -> tuple[str, ...]:
    """Exception class names from a formatted traceback (a subprocess's JSON `exc` field)."""
    names = []
    for line in text.splitlines():
        match = _EXC_LINE.match(line)
        if match and not line.startswith(("Traceback", "The above", "During handling")):
            names.append(match.group(1).rsplit(".", 1)[-1])
    return tuple(names)


class LogWatch(logging.Handler):
    """Collects WARNING and above from this process, and from any JSON log stream fed to it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lock = threading.Lock()
        self.events: list[LogEvent] = []
        self.warnings = 0
        self._threads: list[threading.Thread] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        text = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self._add(LogEvent(record.created, record.levelname, record.name, record.getMessage(), _chain_names(exc),
                           text))

    def _add(self, event: LogEvent) -> None:
        with self._lock:
            if event.level in ("ERROR", "CRITICAL"):
                self.events.append(event)
            else:
                self.warnings += 1

    def follow(self, stream: IO[bytes], echo: IO[str] | None = None) -> None:
        """Read a subprocess's JSON log lines in a thread (until it closes the stream)."""
        thread = threading.Thread(target=self._read, args=(stream, echo), daemon=True, name="logwatch")
        thread.start()
        self._threads.append(thread)

    def _read(self, stream: IO[bytes], echo: IO[str] | None) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            try:
                doc = json.loads(line)
            except ValueError:  # not a log line (a crash dump, a print): an error if it looks like one
                doc = {"level": "ERROR" if "Traceback" in line else "INFO", "logger": "stderr", "msg": line}
            if echo is not None:
                print(line, file=echo)
            if isinstance(doc, dict) and doc.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                exc = str(doc.get("exc") or "")
                self._add(LogEvent(float(doc.get("ts") or time.time()), str(doc["level"]), str(doc.get("logger")),
                                   str(doc.get("msg")), _names_from_traceback(exc), exc))

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)

    def unexpected(self) -> list[LogEvent]:
        with self._lock:
            return [e for e in self.events if e.expected is None]

    def expected_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for event in self.events:
                if (why := event.expected) is not None:
                    counts[why] = counts.get(why, 0) + 1
        return counts

    def join(self, timeout: float = 2.0) -> None:
        for thread in self._threads:
            thread.join(timeout)


def lines(events: Iterable[LogEvent]) -> list[str]:
    return [f"{e.level} {e.summary}" for e in events]
