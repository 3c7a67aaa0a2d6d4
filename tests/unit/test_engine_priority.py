"""Engine threads yield the CPU to the event loop: the loop's frames are due every 20 ms, a decode can
wait a few milliseconds (media_host/engines/embedded/workers.py)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from media_host.engines.embedded import workers

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")


def nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def lowered(base: int) -> int:
    return min(19, base + workers.ENGINE_NICE)


async def test_pool_threads_run_below_the_event_loop_which_keeps_its_priority() -> None:
    base = nice()
    for name in ("stt", "tts", "aux"):
        assert await workers.run_in(name, nice) == lowered(base)
    assert nice() == base  # the loop's own thread is untouched


async def test_threads_a_model_starts_while_loading_inherit_the_low_priority() -> None:
    base = nice()
    seen: dict[str, int] = {}

    def load() -> str:  # as a library does: its compute threads start while the model loads
        seen["loader"] = nice()
        worker = threading.Thread(target=lambda: seen.setdefault("started", nice()))
        worker.start()
        worker.join()
        return "model"

    assert await workers.load_in_background(load) == "model"
    assert seen == {"loader": lowered(base), "started": lowered(base)}
    assert nice() == base


async def test_a_thread_started_from_an_engine_thread_is_not_lowered_twice() -> None:
    base = nice()

    def nested() -> int:  # a loader thread (already lowered) starts a thread that lowers itself, as a pool's does
        inner: dict[str, int] = {}

        def child() -> None:
            workers.lower_priority()
            inner["nice"] = nice()

        worker = threading.Thread(target=child)
        worker.start()
        worker.join()
        return inner["nice"]

    assert await workers.load_in_background(nested) == lowered(base)
