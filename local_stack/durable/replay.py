"""The Durable extension's part for orchestration tests: an orchestrator on the real replay engine, driven
step by step on fabricated times from EPOCH.

`Replay` keeps one Execution (execution.py, the replay step the local runtime uses too): `run()` replays
the history and checks the orchestrator decided as before (determinism), recording its new activities and
timers with the SDK's sequence ids. The test then says what happened next (an event was raised, an
activity completed or failed, a timer fired) and runs again. Happenings between two runs share an episode.

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
from typing import Any

from local_stack.durable.execution import Activity, Execution, Timer
from local_stack.durable.history import ACTIVITY_ACTIONS, ActionType, History, orchestrator_handle, parse_time

EPOCH = datetime(2025, 6, 1, 10, 0, 0, tzinfo=UTC)


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
        self.handle = orchestrator_handle(orchestrator)
        self.orchestrator = orchestrator
        self.execution = Execution(name, instance_id, input_, start)
        self.pending: list[Activity | Timer] = []  # scheduled activities and timers not yet completed or fired
        self._episode_open = True

    @property
    def history(self) -> History:
        return self.execution.history

    @property
    def now(self) -> datetime:
        return self.execution.now

    def run(self) -> Step:
        replayed = self.execution.replay(self.handle)
        if replayed.nondeterministic:
            raise AssertionError(f"the replay decided differently: {replayed.failure}")
        if replayed.failure is not None:
            raise AssertionError(replayed.failure)
        self.pending += replayed.scheduled
        self._episode_open = False
        return Step(replayed.state, [a for a in replayed.new if a["actionType"] != ActionType.WAIT_FOR_EXTERNAL_EVENT])

    # --- what happens next --------------------------------------------------------------------------
    def raise_event(self, name: str, data: Any = None, *, after: float = 1.0) -> None:
        self._episode(self.now + timedelta(seconds=after))
        self.execution.event_raised(name, data)

    def complete(self, name: str, result: Any = None, *, after: float = 0.5) -> None:
        """The oldest pending activity `name` returned `result`."""
        activity = self._activity(name)
        self._episode(self.now + timedelta(seconds=after))
        activity.result = json.dumps(result)
        activity.completed(self.execution)
        self.pending.remove(activity)

    def fail(self, name: str, reason: str = "boom", *, attempts: int | None = None, after: float = 0.5) -> None:
        """The oldest pending activity `name` failed `attempts` times (default: every attempt it has).

        An activity with retry options then waits on a retry timer and is scheduled again, as the
        extension records it; once its attempts are used up, its last retry timer fires and it fails.
        """
        activity = self._activity(name)
        allowed = activity.retry["maxNumberOfAttempts"] if activity.retry else 1
        for n in range(attempts or allowed):
            self._episode(self.now + timedelta(seconds=after), new=n > 0)
            activity.reason = activity.details = reason
            activity.failed(self.execution)
            if activity.fire_at is None or activity.retry is None:
                break
            self._episode(activity.fire_at, new=True)
            last = activity.last
            activity.retry_fired(self.execution)
            if last:
                break
        else:
            return  # attempts left: still pending under its new id
        self.pending.remove(activity)

    def fire_timer(self, fire_at: datetime | None = None) -> datetime:
        """Fire the pending timer due at `fire_at` (default: the earliest one not cancelled)."""
        timers = sorted((p for p in self.pending if isinstance(p, Timer) and (fire_at is None or p.fire_at == fire_at)
                         and (fire_at is not None or not p.action.get("isCanceled"))), key=lambda p: p.fire_at)
        assert timers, f"no pending timer at {fire_at}" if fire_at else "no pending timer"
        timer = timers[0]
        self._episode(timer.fire_at)
        self.execution.timer_fired(timer)
        self.pending.remove(timer)
        return timer.fire_at

    def pending_activities(self) -> list[str]:
        return [p.name for p in self.pending if isinstance(p, Activity)]

    # --- helpers ------------------------------------------------------------------------------------
    def _episode(self, at: datetime, *, new: bool = False) -> None:
        if new or not self._episode_open:
            self.history.episode(at)
            self._episode_open = True

    def _activity(self, name: str) -> Activity:
        found = [p for p in self.pending if isinstance(p, Activity) and p.name == name]
        assert found, f"{name} is not pending (pending: {self.pending_activities()})"
        return found[0]
