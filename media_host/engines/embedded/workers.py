"""The thread pools the embedded engines compute in, so no model call ever runs on the event loop.

One pool per kind of work, shared by every call of the process:

- **stt** (2 workers by default): Whisper transcriptions. CTranslate2 releases the GIL, and the
  model is loaded with `num_workers` equal to this pool's size (each worker may encode at once) and
  `cpu_threads=2`: the fastest of the sizes tried for one caller alone and for several queued (the
  figures are in docs/performance.md, "Engines"). A lone caller gets both cores; two callers
  finishing at once share them instead of one waiting a whole decode for the other.
- **tts** (1 worker): one *sentence* per job (the engines yield one chunk per sentence), so calls
  interleave sentence by sentence and the wait behind another call is one sentence (hibari on 1
  onnxruntime thread, piper on 2: docs/performance.md), while one worker keeps piper's
  espeak-ng (global state, not thread-safe) single-threaded.
- **aux** (1 worker): everything else that must not block the loop: building spare silero models.

Engine threads run at a lower CPU priority than the event loop (nice +10, Linux): the loop's work is
small but due every 20 ms, the engines' is large but can wait a few milliseconds. With equal priority,
Whisper's decode threads kept the loop waiting for a core and agent frames went out late under load;
`make bench-load` measures the late frames (before and after: docs/performance.md).
Threads a library starts inherit the nice value of the thread that starts them, so the models are also
loaded in low-priority threads (`load_in_background`).

Pools are created on first use. `configure()` may change the sizes before that (e.g. from
settings); `shutdown()` at process exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Final, Literal, TypeVar, cast

T = TypeVar("T")

PoolName = Literal["stt", "tts", "aux"]

DEFAULT_SIZES: Final[dict[PoolName, int]] = {"stt": 2, "tts": 1, "aux": 1}
ENGINE_NICE: Final = 10  # added to the process's nice value for engine threads (Linux; 19 at most)

_lock = threading.Lock()
_sizes: dict[PoolName, int] = dict(DEFAULT_SIZES)
_pools: dict[PoolName, ThreadPoolExecutor] = {}
_END: Final = object()


def configure(*, stt: int | None = None, tts: int | None = None, aux: int | None = None) -> None:
    """Set pool sizes. Only pools not yet created are affected (raises if one already is)."""
    wanted: dict[PoolName, int | None] = {"stt": stt, "tts": tts, "aux": aux}
    with _lock:
        for name, size in wanted.items():
            if size is None:
                continue
            if size < 1:
                raise ValueError(f"{name} pool size must be at least 1, not {size}")
            if name in _pools and _sizes[name] != size:
                raise RuntimeError(f"the {name} pool already runs with {_sizes[name]} workers")
            _sizes[name] = size


def lower_priority() -> None:
    """Give the calling thread (and the threads it will start) a lower CPU priority than the event loop.
    Linux keeps a nice value per thread; elsewhere this does nothing (it would renice the whole process)."""
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # not allowed here: engines then share the loop's priority
        # Relative to the main thread's (the process id's), so a pool started from a loader thread is not lowered twice.
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + ENGINE_NICE)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)


async def load_in_background(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """`fn(*args, **kwargs)` in a new low-priority thread, for loading a model: the compute threads the
    library starts while loading inherit that priority."""
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-load", initializer=lower_priority)
    try:
        return await asyncio.get_running_loop().run_in_executor(loader, lambda: fn(*args, **kwargs))
    finally:
        loader.shutdown(wait=False)  # never waits on the loop (a cancelled load finishes in its thread)


def size(name: PoolName) -> int:
    with _lock:
        return _sizes[name]


def pool(name: PoolName) -> ThreadPoolExecutor:
    """The process-wide pool `name`, created on first use."""
    with _lock:
        executor = _pools.get(name)
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=_sizes[name], thread_name_prefix=f"engine-{name}",
                                          initializer=lower_priority)
            _pools[name] = executor
        return executor


def shutdown(wait: bool = True) -> None:
    """Stop every pool (queued jobs are cancelled). Pools are re-created if used again."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for executor in pools:
        executor.shutdown(wait=wait, cancel_futures=True)


async def run_in(name: PoolName, fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` in pool `name`. Cancelling the await cancels the job if it has not started yet
    (a running model call cannot be interrupted: it finishes and its result is dropped)."""
    return await asyncio.wrap_future(pool(name).submit(fn, *args))


async def iterate_in(name: PoolName, make: Callable[[], Iterator[T]]) -> AsyncGenerator[T, None]:
    """Drive a blocking iterator in pool `name`: one `next()` per job, items handed to the loop as
    they are produced.

    One item is computed ahead: while the consumer handles item n, item n+1 is already being made.
    When the consumer stops early (barge-in: `aclose()` or cancellation), nothing further is
    scheduled; the item in flight finishes in its thread and the iterator is closed after it.
    """
    executor = pool(name)
    state: dict[str, Iterator[T]] = {}

    def step() -> T | object:
        it = state.get("it")
        if it is None:
            it = state["it"] = make()
        return next(it, _END)

    def close() -> None:
        it = state.pop("it", None)
        close_it = getattr(it, "close", None)
        if close_it is not None:
            close_it()

    def close_after(_: concurrent.futures.Future[T | object]) -> None:
        try:
            executor.submit(close)
        except RuntimeError:  # the pool is shutting down: close here (we are in its thread or after it)
            close()

    pending = executor.submit(step)
    try:
        while True:
            item = await asyncio.wrap_future(pending)
            if item is _END:
                break
            pending = executor.submit(step)  # prefetch the next item while this one is consumed
            yield cast(T, item)
    finally:
        # Runs on normal end, aclose() and cancellation alike. Closing must wait for the job in flight:
        # a generator cannot be closed while another thread is inside it.
        if pending.cancel():
            close_after(pending)
        else:
            pending.add_done_callback(close_after)
