"""Every external event a call can receive: awaited at all times, queued in arrival order.

Why not a plain `wait_for_external_event` per loop turn: azure-functions-durable 1.7.0 parks an event
that arrives while nothing waits for it in a dict keyed by event name and never clears it, so a second
such event overwrites the first and the survivor is replayed into every later waiter of that name
(checked against the replay engine). So one waiter per event name stays open, and whatever the
orchestrator awaits (an activity, a backoff timer) is raced against the waiters; what arrives
meanwhile is queued here and handled next, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType
from azure.durable_functions.models.Task import TaskBase


@dataclass(frozen=True)
class Received:
    name: str
    data: dict[str, Any] = field(default_factory=dict)


class Inbox:
    def __init__(self, context: df.DurableOrchestrationContext, names: Iterable[str]) -> None:
        self._context = context
        self._waiters: dict[str, TaskBase] = {name: context.wait_for_external_event(name) for name in names}
        self._queue: deque[Received] = deque()
        self.received = 0  # events taken in this execution

    def wait(self, task: TaskBase) -> Generator[Any, Any, TaskBase]:
        """Await `task` (an activity or a timer) while still receiving events. Returns it, completed."""
        while True:
            winner = yield self._context.task_any([task, *self._waiters.values()])
            if winner is task:
                return task
            self._take(winner)

    def next(self, timers: Sequence[TaskBase]) -> Generator[Any, Any, Received | TaskBase]:
        """The oldest queued event; if there is none, the next event or whichever of `timers` fires first."""
        while not self._queue:
            winner = yield self._context.task_any([*timers, *self._waiters.values()])
            if any(winner is timer for timer in timers):
                return winner
            self._take(winner)
        return self._queue.popleft()

    def pending(self, *names: str) -> bool:
        return any(event.name in names for event in self._queue)

    @property
    def empty(self) -> bool:
        return not self._queue

    def unread_in_history(self) -> bool:
        """Whether this batch still holds events we have not taken yet (continue_as_new would drop them).

        Deterministic: history only grows, so a replay sees at least as many events as the first run did.
        """
        raised = sum(1 for event in self._context.histories
                     if event.event_type == HistoryEventType.EVENT_RAISED and event.Name in self._waiters)
        return raised > self.received

    def _take(self, waiter: TaskBase) -> None:
        name = next(name for name, task in self._waiters.items() if task is waiter)
        data = waiter.result if isinstance(waiter.result, dict) else {}
        self._queue.append(Received(name, data))
        self.received += 1
        self._waiters[name] = self._context.wait_for_external_event(name)  # the next one of this name
