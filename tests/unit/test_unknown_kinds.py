"""WireAdapter.ignore_unknown: every unknown message is counted, and a peer that invents kinds costs the
call bounded memory and bounded log lines."""

from __future__ import annotations

import logging
from collections import Counter
from types import SimpleNamespace
from typing import ClassVar, cast

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from media_host.channel import CallChannel, CallInfo
from media_host.events import Outbound
from media_host.transports.base import MAX_KIND_CHARS, MAX_UNKNOWN_KINDS, Admission, HostServices, WireAdapter


class _Errors:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.counts[labels["transport"], labels["kind"]] += int(amount)


class _Adapter(WireAdapter):
    transport: ClassVar[str] = "test"
    path: ClassVar[str] = "/test"

    @classmethod
    async def authorize(cls, request: Request, host: HostServices) -> Admission:
        raise NotImplementedError

    async def open(self) -> CallInfo:
        raise NotImplementedError

    async def on_message(self, message: str | bytes, channel: CallChannel) -> None:
        raise NotImplementedError

    async def send_audio(self, frame: bytes) -> None:
        raise NotImplementedError

    async def send_control(self, event: Outbound, channel: CallChannel) -> None:
        raise NotImplementedError


def _adapter() -> tuple[_Adapter, _Errors]:
    errors = _Errors()
    host = cast(HostServices, SimpleNamespace(metrics=SimpleNamespace(errors=errors)))
    return _Adapter(cast(ServerConnection, None), host, Admission()), errors


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "media_host.transports.base"]


def test_ten_thousand_invented_kinds_cost_bounded_memory_and_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    adapter, errors = _adapter()
    caplog.set_level(logging.INFO, logger="media_host.transports.base")
    for i in range(10_000):
        adapter.ignore_unknown(f"kind-{i}-" + "x" * 1000)  # long, and each one new
    assert errors.counts == {("test", "unknown_type"): 10_000}  # the metric shows the volume
    remembered = adapter._unknown_kinds  # the bound is what this test is about
    assert len(remembered) == MAX_UNKNOWN_KINDS
    assert all(len(kind) <= MAX_KIND_CHARS for _what, kind in remembered)
    lines = _lines(caplog)
    assert len(lines) == MAX_UNKNOWN_KINDS + 1  # one per remembered kind, then one saying logging stopped
    assert "no longer logging" in lines[-1]


def test_a_repeated_kind_is_counted_every_time_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    adapter, errors = _adapter()
    caplog.set_level(logging.INFO, logger="media_host.transports.base")
    for _ in range(5):
        adapter.ignore_unknown("video")
        adapter.ignore_unknown("video", "activity event")  # another level of the protocol: its own line
    assert errors.counts[("test", "unknown_type")] == 10
    assert _lines(caplog) == ["ignoring message type 'video'", "ignoring activity event 'video'"]
