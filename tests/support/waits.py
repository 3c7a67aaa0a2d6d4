"""Waiting for the first of several things without leaving the others pending.

The suite runs on one session-wide event loop: a task left waiting on an Event that is later dropped is
garbage-collected mid-run as "Task was destroyed but it is pending!", an ERROR log that lands in
whichever test happens to be running then (the fuzz smoke fails on any ERROR line).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def first_done(*waits: Awaitable[object], timeout: float | None = None) -> None:
    """Until the first of `waits` is done (tasks passed in are left running; the others are cancelled)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    ours = [t for t, w in zip(tasks, waits, strict=True) if t is not w]
    try:
        async with asyncio.timeout(timeout):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in ours:
            task.cancel()
        await asyncio.gather(*ours, return_exceptions=True)
