"""Digits the caller types: collected until '#' or a pause, then handed over as one caller turn.

Both conversation pipelines (cascade and Realtime) take DTMF through it; the echo pipeline reads
single keys as commands instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

DTMF_PAUSE_S = 2.0  # digits typed without '#' count as said after this pause


class Keypad:
    """Collects digits across DtmfReceived events; `on_digits` gets them once '#' or a pause ends them."""

    def __init__(self, on_digits: Callable[[str], None], pause_s: float = DTMF_PAUSE_S) -> None:
        self.on_digits = on_digits
        self.pause_s = pause_s
        self.digits = ""
        self.timer: asyncio.Task[None] | None = None

    def press(self, digits: str) -> None:
        self.digits += digits.replace("#", "")
        if self.timer is not None:
            self.timer.cancel()
        if "#" in digits:
            self.flush()
        else:
            self.timer = asyncio.create_task(self._pause())

    async def _pause(self) -> None:
        await asyncio.sleep(self.pause_s)
        self.flush()

    def flush(self) -> None:
        digits, self.digits = self.digits, ""
        if digits:
            self.on_digits(digits)

    def close(self) -> None:
        """The call is over: digits still waiting for a pause are dropped."""
        if self.timer is not None:
            self.timer.cancel()
