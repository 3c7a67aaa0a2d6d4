"""Run an orchestrator on the real azure-functions-durable replay engine with a fabricated history.

`History` (local_stack/durable/history.py, shared with the local Durable runtime) builds the JSON the
Durable extension hands the Python worker, episode by episode (OrchestratorStarted ... OrchestratorCompleted),
at fixed fabricated times from EPOCH. `Replay` plays the extension's part: it runs the
orchestrator (`Orchestrator.create(fn)(context_json)`), checks that the replay decided the same
actions as before (determinism), and records the new ones as TaskScheduled / TimerCreated events with
the sequence ids the SDK gives them. The test then says what happened next (an event was raised, an
activity completed or failed, a timer fired) and runs again.

    call = Replay(call_session, {...input...})
    call.run()                                   # waits for events
    call.raise_event("CallConnected", {...})
    step = call.run()
    call.complete("hang_up_call", {"ok": True})
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.durable_functions.orchestrator import Orchestrator

from local_stack.durable.history import (
    ACTIVITY_ACTIONS,
    ActionType,
    EventType,
    History,
    flatten,
    parse_time,
    replay_mismatch,
    retry_delay,
    timestamp,
)

if TYPE_CHECKING:
    import azure.functions  # noqa: F401 - lets mypy resolve the "azure" namespace (see orchestrations/__init__.py)

__all__ = ["EPOCH", "ActionType", "EventType", "History", "Pending", "Replay", "Step", "flatten", "parse_time",
           "timestamp"]

EPOCH = datetime(2025, 6, 1, 10, 0, 0, tzinfo=UTC)


@dataclass
class Pending:
    id: int
    action: dict[str, Any]

    @property
    def is_timer(self) -> bool:
        return bool(self.action["actionType"] == ActionType.CREATE_TIMER)

    @property
    def name(self) -> str | None:
        return self.action.get("functionName")

    @property
    def fire_at(self) -> datetime:
        return parse_time(self.action["fireAt"])


@dataclass
class Step:
    """One run of the orchestrator: its state JSON and the actions it newly decided."""

    state: dict[str, Any]
    new: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return bool(self.state["isDone"])

    @property
    def output(self) -> Any:
        return self.state.get("output")

    @property
    def status(self) -> dict[str, Any]:
        return self.state.get("customStatus") or {}

    @property
    def activities(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, input) of each activity scheduled in this run, in order."""
        return [(a["functionName"], json.loads(a["input"])) for a in self.new if a["actionType"] in ACTIVITY_ACTIONS]

    @property
    def activity_names(self) -> list[str]:
        return [name for name, _ in self.activities]

    @property
    def timers(self) -> list[datetime]:
        return [parse_time(a["fireAt"]) for a in self.new if a["actionType"] == ActionType.CREATE_TIMER]

    @property
    def continued_as_new(self) -> dict[str, Any] | None:
        found = [a for a in self.new if a["actionType"] == ActionType.CONTINUE_AS_NEW]
        return json.loads(found[0]["input"]) if found else None


class Replay:
    """A minimal Durable host around the real replay engine (see the module docstring)."""

    def __init__(self, orchestrator: Any, input_: Any, *, name: str = "call_session",
                 instance_id: str = "call-1", start: datetime = EPOCH) -> None:
        self.handle = Orchestrator.create(orchestrator)
        self.orchestrator = orchestrator
        self.history = History(name, instance_id, input_, start)
        self.decided: list[dict[str, Any]] = []  # every atomic action so far, in order
        self.pending: list[Pending] = []  # scheduled activities and timers not yet completed or fired
        self._next_id = 0  # the SDK numbers activities and timers (also retry timers) in creation order
        self._episode_open = True

    @property
    def now(self) -> datetime:
        return self.history.now

    def run(self) -> Step:
        state = json.loads(self.handle(self.history.context_json()))
        actions = flatten(state["actions"])
        mismatch = replay_mismatch(self.decided, actions)
        assert mismatch is None, f"the replay decided differently: {mismatch}"
        new = actions[len(self.decided):]
        self.decided = actions
        for action in new:
            kind = action["actionType"]
            if kind in ACTIVITY_ACTIONS:
                self._schedule(Pending(self._take_id(), action))
            elif kind == ActionType.CREATE_TIMER:
                pending = Pending(self._take_id(), action)
                self.history.add(EventType.TIMER_CREATED, pending.id, FireAt=action["fireAt"])
                self.pending.append(pending)
        self._episode_open = False
        return Step(state, [a for a in new if a["actionType"] != ActionType.WAIT_FOR_EXTERNAL_EVENT])

    # --- what happens next --------------------------------------------------------------------------
    def raise_event(self, name: str, data: Any = None, *, after: float = 1.0) -> None:
        self._episode(self.now + timedelta(seconds=after))
        self.history.add(EventType.EVENT_RAISED, Name=name, Input=json.dumps(data))

    def complete(self, name: str, result: Any = None, *, after: float = 0.5) -> None:
        """The oldest pending activity `name` returned `result`."""
        pending = self._activity(name)
        self._episode(self.now + timedelta(seconds=after))
        self.history.add(EventType.TASK_COMPLETED, TaskScheduledId=pending.id, Result=json.dumps(result))
        self.pending.remove(pending)

    def fail(self, name: str, reason: str = "boom", *, attempts: int | None = None, after: float = 0.5) -> None:
        """The oldest pending activity `name` failed `attempts` times (default: every attempt it has).

        An activity with retry options then waits on a retry timer and is scheduled again, as the
        extension records it; once its attempts are used up, its last retry timer fires and it fails.
        """
        pending = self._activity(name)
        retry = pending.action.get("retryOptions")
        allowed = retry["maxNumberOfAttempts"] if retry else 1
        for attempt in range(1, (attempts or allowed) + 1):
            self._episode(self.now + timedelta(seconds=after), new=attempt > 1)
            self.history.add(EventType.TASK_FAILED, TaskScheduledId=pending.id, Reason=reason, Details=reason)
            if retry is None:
                break
            timer_id, fire_at = self._take_id(), self.now + retry_delay(retry, attempt)
            self.history.add(EventType.TIMER_CREATED, timer_id, FireAt=timestamp(fire_at))
            self._episode(fire_at, new=True)
            self.history.add(EventType.TIMER_FIRED, TimerId=timer_id, FireAt=timestamp(fire_at))
            if attempt == allowed:
                break
            pending.id = self._take_id()
            self.history.scheduled(pending.id, pending.action)
        else:
            return  # attempts left: still pending under its new id
        self.pending.remove(pending)

    def fire_timer(self, fire_at: datetime | None = None) -> datetime:
        """Fire the pending timer due at `fire_at` (default: the earliest one not cancelled)."""
        timers = sorted((p for p in self.pending if p.is_timer and (fire_at is None or p.fire_at == fire_at)
                         and (fire_at is not None or not p.action.get("isCanceled"))), key=lambda p: p.fire_at)
        assert timers, f"no pending timer at {fire_at}" if fire_at else "no pending timer"
        timer = timers[0]
        self._episode(timer.fire_at)
        self.history.add(EventType.TIMER_FIRED, TimerId=timer.id, FireAt=timer.action["fireAt"])
        self.pending.remove(timer)
        return timer.fire_at

    def pending_activities(self) -> list[str]:
        return [p.name for p in self.pending if p.name is not None]

    # --- helpers ------------------------------------------------------------------------------------
    def _episode(self, at: datetime, *, new: bool = False) -> None:
        if new or not self._episode_open:
            self.history.episode(at)
            self._episode_open = True

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _schedule(self, pending: Pending) -> None:
        self.history.scheduled(pending.id, pending.action)
        self.pending.append(pending)

    def _activity(self, name: str) -> Pending:
        found = [p for p in self.pending if p.name == name]
        assert found, f"{name} is not pending (pending: {self.pending_activities()})"
        return found[0]
