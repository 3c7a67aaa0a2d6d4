"""The interface between a call's transport and the conversation: one `run()` per call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from media_host.channel import CallChannel, CallInfo


class Pipeline(Protocol):
    # The rates the pipeline wants its audio at; None means the transport's own rate (no resampling).
    inbound_rate: int | None
    outbound_rate: int | None

    async def run(self, call: CallChannel) -> None:
        """Hold the conversation. Return when the call is over (after a hang-up or transfer)."""


PipelineFactory = Callable[[CallInfo], Pipeline]
