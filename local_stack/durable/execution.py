"""One execution of an orchestration instance as the Durable extension keeps it, and its replay step.

`Execution.replay(handle)` runs the orchestrator on the history (the real azure-functions-durable replay
engine, history.run_orchestrator), checks that it decided what it decided before (determinism), and
records each new activity (TaskScheduled) and timer (TimerCreated) with the sequence id the SDK gives it.
What happens next is recorded through the same objects: `Activity.completed`, `.failed` (with the retry
timer the extension waits on), `.retry_fired`; `Execution.timer_fired`, `.event_raised`.

Both drivers build on it: the local Durable runtime (engine.LocalDurable, on the wall clock) and the
orchestration tests' Replay (replay.py, on fabricated times), so both record the same history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local_stack.durable.history import (
    ACTIVITY_ACTIONS,
    ActionType,
    EventType,
    Handle,
    History,
    flatten,
    parse_time,
    replay_mismatch,
    retry_delay,
    run_orchestrator,
    timestamp,
)


@dataclass
class Timer:
    """A durable timer the orchestrator created (action `index` in its decisions)."""

    id: int
    index: int
    action: dict[str, Any]

    def cancelled(self, execution: Execution) -> bool:
        """Whether the orchestrator has since cancelled it (a timer of a when_any that lost)."""
        return bool(execution.decided[self.index].get("isCanceled"))

    @property
    def fire_at(self) -> datetime:
        return parse_time(self.action["fireAt"])


@dataclass
class Activity:
    """One scheduled activity across its attempts: records each outcome as the extension does."""

    action: dict[str, Any]
    task_id: int
    attempt: int = 1
    result: str = "null"  # JSON of what the last attempt returned
    reason: str = ""  # why the last attempt failed
    details: str = ""
    timer_id: int = -1  # the retry timer after a failed attempt
    fire_at: datetime | None = None

    @property
    def name(self) -> str:
        return str(self.action["functionName"])

    @property
    def retry(self) -> dict[str, Any] | None:
        return self.action.get("retryOptions")

    @property
    def last(self) -> bool:
        return self.retry is None or self.attempt >= int(self.retry["maxNumberOfAttempts"])

    def completed(self, execution: Execution) -> None:
        execution.history.add(EventType.TASK_COMPLETED, TaskScheduledId=self.task_id, Result=self.result)

    def failed(self, execution: Execution) -> None:
        history = execution.history
        history.add(EventType.TASK_FAILED, TaskScheduledId=self.task_id, Reason=self.reason, Details=self.details)
        if self.retry is not None:  # the extension waits on a retry timer, even after the last attempt
            self.timer_id, self.fire_at = execution.take_id(), history.now + retry_delay(self.retry, self.attempt)
            history.add(EventType.TIMER_CREATED, self.timer_id, FireAt=timestamp(self.fire_at))

    def retry_fired(self, execution: Execution) -> None:
        assert self.fire_at is not None, "no retry timer: the attempt has not failed"
        execution.history.add(EventType.TIMER_FIRED, TimerId=self.timer_id, FireAt=timestamp(self.fire_at))
        if not self.last:
            self.task_id, self.attempt = execution.take_id(), self.attempt + 1
            execution.history.scheduled(self.task_id, self.action)


@dataclass(frozen=True)
class ContinueAsNew:
    input: Any


@dataclass
class Replayed:
    """What one replay decided. `failure` says why the instance fails (the orchestrator raised, decided
    differently from before, or asked for what is not supported); the activities and timers decided before
    an unsupported action are scheduled all the same, as the extension would have."""

    state: dict[str, Any]  # the orchestrator state: actions, isDone, output, customStatus
    new: list[dict[str, Any]] = field(default_factory=list)  # the atomic actions decided this time, in order
    scheduled: list[Activity | Timer] = field(default_factory=list)
    continue_as_new: ContinueAsNew | None = None
    failure: str | None = None
    raised: bool = False  # the failure is the orchestrator's own exception
    nondeterministic: bool = False  # the failure is a decision unlike the one before


class Execution:
    """One execution (a start, or a continue_as_new): its history and what its orchestrator decided so far."""

    def __init__(self, name: str, instance_id: str, input_: Any, start: datetime) -> None:
        self.name = name
        self.history = History(name, instance_id, input_, start)
        self.decided: list[dict[str, Any]] = []  # every atomic action so far, in order
        self.next_id = 0  # the SDK numbers activities and timers as they are awaited (retry timers too)

    @property
    def now(self) -> datetime:
        return self.history.now

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def replay(self, handle: Handle) -> Replayed:
        state = run_orchestrator(handle, self.history)
        if "error" in state:
            return Replayed(state, failure=f"Orchestrator function '{self.name}' failed: {state['error']}", raised=True)
        actions = flatten(state["actions"])
        mismatch = replay_mismatch(self.decided, actions)
        if mismatch is not None:
            return Replayed(state, failure=f"Non-deterministic workflow detected: {mismatch}", nondeterministic=True)
        start = len(self.decided)
        self.decided = actions
        replayed = Replayed(state, actions[start:])
        for index, action in enumerate(replayed.new, start):
            kind = action["actionType"]
            if kind in ACTIVITY_ACTIONS:
                activity = Activity(action, self.take_id())
                self.history.scheduled(activity.task_id, action)
                replayed.scheduled.append(activity)
            elif kind == ActionType.CREATE_TIMER:
                timer = Timer(self.take_id(), index, action)
                self.history.add(EventType.TIMER_CREATED, timer.id, FireAt=action["fireAt"])
                replayed.scheduled.append(timer)
            elif kind == ActionType.CONTINUE_AS_NEW:
                replayed.continue_as_new = ContinueAsNew(json.loads(action.get("input") or "null"))
            elif kind != ActionType.WAIT_FOR_EXTERNAL_EVENT:
                replayed.failure = f"action type {kind} is not supported by the local Durable runtime"
                break
        return replayed

    # --- what happened next -------------------------------------------------------------------------
    def event_raised(self, name: str, data: Any) -> None:
        self.history.add(EventType.EVENT_RAISED, Name=name, Input=json.dumps(data))

    def timer_fired(self, timer: Timer) -> None:
        self.history.add(EventType.TIMER_FIRED, TimerId=timer.id, FireAt=timer.action["fireAt"])
