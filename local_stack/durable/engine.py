"""An in-process Durable Functions runtime: the app's real orchestrators on the real replay engine, in asyncio.

    durable = LocalDurable({"call_session": call_session}, {"hang_up_call": hang_up, ...})
    await durable.start_new("call_session", "call-1", {...input...})
    await durable.raise_event("call-1", "CallConnected", {...})
    status = await durable.wait_for_completion("call-1", timeout=30)  # the extension's status JSON
    await durable.close()

It plays the Durable extension's part on the wall clock, with the replay step the tests' Replay uses
(execution.py): every happening (start, event raised, activity completed or failed, timer fired) opens a
new episode of the instance's History, the orchestrator replays it (`Orchestrator.create(fn)`), and its
new actions are carried out: activities run as asyncio tasks and are retried as the extension retries them (TaskFailed,
a retry timer, TaskScheduled again), timers fire unless cancelled, continue_as_new starts a fresh history.
An instance's episodes run one at a time under its lock, so events raised meanwhile wait their turn, in
order. The limits are in the package docstring.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from local_stack.durable.execution import Activity, ContinueAsNew, Execution, Timer
from local_stack.durable.history import Handle, orchestrator_handle

log = logging.getLogger("local_stack.durable")

# The generator function, or the handle DFApp registers for it (`Orchestrator.create(fn)`, what the
# function's get_user_function() returns): both run on the replay engine the same way.
OrchestratorFunction = Callable[[Any], Generator[Any, Any, Any]] | Callable[[Any], str]
ActivityFunction = Callable[[Any], Awaitable[Any]]
Record = Callable[["_Execution"], None]  # appends a happening to an execution's history

# The extension still accepts events (Suspended: only ever set by a test on a recorded instance, recording.py).
RUNNING = frozenset({"Pending", "Running", "ContinuedAsNew", "Suspended"})
_STATUS_TIME = "%Y-%m-%dT%H:%M:%SZ"  # the extension's createdTime / lastUpdatedTime


class UnknownInstance(KeyError):
    """No instance with this id (the extension answers 404)."""


class InstanceGone(RuntimeError):
    """The instance has completed, failed or been terminated (the extension answers 410)."""


class UnknownOrchestrator(ValueError):
    """No orchestrator function by this name (the extension answers 400)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Execution(Execution):
    """An execution as it runs here: its timers' tasks, and whether it has ended."""

    def __init__(self, name: str, instance_id: str, input_: Any) -> None:
        super().__init__(name, instance_id, input_, _utcnow())
        self.timers: dict[int, tuple[Timer, asyncio.Task[None]]] = {}
        self.ended = asyncio.Event()


@dataclass
class _Instance:
    name: str
    instance_id: str
    handle: Handle
    execution: _Execution
    input: Any
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    runtime_status: str = "Pending"
    custom_status: Any = None
    output: Any = None
    created: datetime = field(default_factory=_utcnow)
    updated: datetime = field(default_factory=_utcnow)


class LocalDurable:
    """Orchestration instances in memory, driven by the real azure-functions-durable replay engine."""

    def __init__(self, orchestrators: Mapping[str, OrchestratorFunction],
                 activities: Mapping[str, ActivityFunction]) -> None:
        self._orchestrators = dict(orchestrators)
        self._activities = dict(activities)
        self._instances: dict[str, _Instance] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self._closed = False

    async def __aenter__(self) -> LocalDurable:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    # --- the client API -----------------------------------------------------------------------------
    async def start_new(self, name: str, instance_id: str | None = None, input: Any = None) -> str:
        """Start `name`; an existing instance with this id is replaced (as the extension does)."""
        if self._closed:
            raise RuntimeError("LocalDurable is closed")
        fn = self._orchestrators.get(name)
        if fn is None:
            raise UnknownOrchestrator(f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                                      "function.")
        instance_id = instance_id or uuid.uuid4().hex
        old = self._instances.get(instance_id)
        if old is not None:
            async with old.lock:
                self._end(old.execution)
        execution = _Execution(name, instance_id, input)
        instance = _Instance(name, instance_id, orchestrator_handle(fn), execution, input)
        self._instances[instance_id] = instance
        log.info("orchestration started", extra={"instance_id": instance_id, "orchestration": name})
        async with instance.lock:
            instance.runtime_status = "Running"
            self._play(instance)
        await self._notify()
        return instance_id

    async def raise_event(self, instance_id: str, name: str, data: Any = None) -> None:
        """Deliver an external event; returns once the orchestrator has replayed it."""
        instance = self._get(instance_id)
        if instance.runtime_status not in RUNNING:
            raise InstanceGone(instance_id)
        await self._apply(instance, None, lambda e: e.event_raised(name, data))

    def status(self, instance_id: str) -> dict[str, Any]:
        """The instance's status, shaped as the extension's HTTP API answers it."""
        i = self._get(instance_id)
        return {"name": i.name, "instanceId": i.instance_id, "runtimeStatus": i.runtime_status, "input": i.input,
                "customStatus": i.custom_status, "output": i.output,
                "createdTime": i.created.strftime(_STATUS_TIME), "lastUpdatedTime": i.updated.strftime(_STATUS_TIME)}

    async def terminate(self, instance_id: str, reason: str) -> None:
        instance = self._get(instance_id)
        async with instance.lock:
            if instance.runtime_status not in RUNNING:
                raise InstanceGone(instance_id)
            self._finish(instance, "Terminated", reason)
        await self._notify()

    async def wait_for_completion(self, instance_id: str, timeout: float) -> dict[str, Any]:
        """The status once the instance has completed, failed or been terminated (TimeoutError before)."""
        return await self.wait_for(instance_id, lambda status: status["runtimeStatus"] not in RUNNING, timeout)

    async def wait_for(self, instance_id: str, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float) -> dict[str, Any]:
        """The status once `predicate(status)` holds; checked after every episode (TimeoutError if it never does)."""
        self._get(instance_id)
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.status(instance_id)))
        return self.status(instance_id)

    async def close(self) -> None:
        """Stop every timer and running activity; instances are lost (in memory only)."""
        self._closed = True
        for instance in self._instances.values():
            self._end(instance.execution)
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # --- episodes -----------------------------------------------------------------------------------
    def _get(self, instance_id: str) -> _Instance:
        if (instance := self._instances.get(instance_id)) is None:
            raise UnknownInstance(instance_id)
        return instance

    def _live(self, instance: _Instance, execution: _Execution | None) -> bool:
        """Whether a happening still concerns the instance (not replaced, finished, or a past execution)."""
        return (self._instances.get(instance.instance_id) is instance and instance.runtime_status in RUNNING
                and (execution is None or execution is instance.execution))

    async def _apply(self, instance: _Instance, execution: _Execution | None, record: Record,
                     wanted: Callable[[], bool] | None = None) -> bool:
        """Record a happening in a new episode of `execution` (None: the current one) and replay it."""
        async with instance.lock:
            if self._closed or not self._live(instance, execution) or (wanted is not None and not wanted()):
                return False
            instance.execution.history.episode(_utcnow())
            record(instance.execution)
            self._play(instance)
        await self._notify()
        return True

    def _play(self, instance: _Instance) -> None:
        """Replay the open episode, and the first episode of each execution continue_as_new starts."""
        while isinstance(carried := self._replay(instance), ContinueAsNew):
            self._end(instance.execution)
            instance.execution = _Execution(instance.name, instance.instance_id, carried.input)
            instance.input = carried.input
            log.info("orchestration continued as new",
                     extra={"instance_id": instance.instance_id, "orchestration": instance.name})

    def _replay(self, instance: _Instance) -> ContinueAsNew | None:
        execution = instance.execution
        replayed = execution.replay(instance.handle)
        state = replayed.state
        if replayed.raised:
            instance.custom_status = state.get("customStatus", instance.custom_status)
        elif not replayed.nondeterministic:
            instance.custom_status = state.get("customStatus")
            instance.updated = _utcnow()
        for scheduled in replayed.scheduled:
            if isinstance(scheduled, Activity):
                self._spawn(self._run_activity(instance, execution, scheduled), f"durable-activity-{scheduled.name}")
            else:
                task = self._spawn(self._fire(instance, execution, scheduled),
                                   f"durable-timer-{instance.instance_id}-{scheduled.id}")
                execution.timers[scheduled.id] = (scheduled, task)
        if replayed.failure is not None:
            self._finish(instance, "Failed", replayed.failure)
            return None
        self._drop_cancelled_timers(execution)
        if replayed.continue_as_new is None and state["isDone"]:
            self._finish(instance, "Completed", state.get("output"))
        return replayed.continue_as_new

    def _finish(self, instance: _Instance, runtime_status: str, output: Any) -> None:
        instance.runtime_status, instance.output, instance.updated = runtime_status, output, _utcnow()
        self._end(instance.execution)
        extra = {"instance_id": instance.instance_id, "orchestration": instance.name}
        if runtime_status == "Failed":  # the reason is in its status: it may quote personal data
            log.warning("orchestration failed", extra=extra)
        else:
            log.info("orchestration %s", runtime_status.lower(), extra=extra)

    @staticmethod
    def _end(execution: _Execution) -> None:
        """No more happenings for this execution: its timers stop, activities in a retry wait give up."""
        execution.ended.set()
        current = asyncio.current_task()
        for _, task in execution.timers.values():
            if task is not current:
                task.cancel()
        execution.timers.clear()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- actions ------------------------------------------------------------------------------------
    @staticmethod
    def _drop_cancelled_timers(execution: _Execution) -> None:
        """Timers the orchestrator cancelled never fire: their tasks stop now, not at fireAt."""
        current = asyncio.current_task()
        for timer_id in [t for t, (timer, _) in execution.timers.items() if timer.cancelled(execution)]:
            _, task = execution.timers.pop(timer_id)
            if task is not current:
                task.cancel()

    async def _fire(self, instance: _Instance, execution: _Execution, timer: Timer) -> None:
        if not await _sleep_until(execution, timer.fire_at):
            return
        await self._apply(instance, execution, lambda e: e.timer_fired(timer),
                          wanted=lambda: not timer.cancelled(execution))
        execution.timers.pop(timer.id, None)

    async def _run_activity(self, instance: _Instance, execution: _Execution, activity: Activity) -> None:
        while True:
            if await self._invoke(instance, activity):
                await self._apply(instance, execution, activity.completed)
                return
            if not await self._apply(instance, execution, activity.failed) or activity.retry is None:
                return
            if activity.fire_at is None or not await _sleep_until(execution, activity.fire_at):
                return
            last = activity.last
            if not await self._apply(instance, execution, activity.retry_fired) or last:
                return

    async def _invoke(self, instance: _Instance, activity: Activity) -> bool:
        """Run one attempt; its result (True) or failure (False) is left on `activity`."""
        run = self._activities.get(activity.name)
        try:
            if run is None:
                raise LookupError(f"The function '{activity.name}' doesn't exist, is disabled, or is not an "
                                  "activity function.")
            activity.result = json.dumps(await run(json.loads(activity.action.get("input") or "null")))
        except Exception as error:
            activity.reason = f"Activity function '{activity.name}' failed: {type(error).__name__}: {error}"
            activity.details = "".join(traceback.format_exception(error))
            log.warning("activity failed", extra={"instance_id": instance.instance_id, "activity": activity.name,
                                                  "attempt": activity.attempt, "error": type(error).__name__})
            return False
        return True

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("local durable task crashed", exc_info=error, extra={"task": task.get_name()})


async def _sleep_until(execution: _Execution, moment: datetime) -> bool:
    """Wait for `moment` on the wall clock; False if the execution ended first."""
    delay = (moment - _utcnow()).total_seconds()
    try:
        async with asyncio.timeout(max(delay, 0.0)):
            await execution.ended.wait()
    except TimeoutError:
        return True
    return False

