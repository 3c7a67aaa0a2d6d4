"""A clock the test moves by hand (media_host/engines/health.py's `Clock`): sleepers wake when it passes their time."""

from __future__ import annotations

import asyncio


class ManualClock:
    def __init__(self) -> None:
        self.time = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.time + seconds, future))
        await future

    @property
    def sleeping(self) -> int:
        """Sleepers not yet woken."""
        return sum(1 for _, future in self._sleepers if not future.done())

    def advance(self, seconds: float) -> None:
        """Move time on and wake every sleeper whose time has come (they run at the test's next await)."""
        self.time += seconds
        due = [(at, future) for at, future in self._sleepers if at <= self.time]
        self._sleepers = [(at, future) for at, future in self._sleepers if at > self.time]
        for _, future in due:
            if not future.done():
                future.set_result(None)
