"""The orchestration history the Durable extension hands the Python worker, built episode by episode.

Each episode is OrchestratorStarted ... OrchestratorCompleted: what happened (an event was raised, an
activity completed or failed, a timer fired), then what the orchestrator decided about it (TaskScheduled,
TimerCreated, numbered with the sequence ids the SDK gives them). `context_json()` is the payload the real
replay engine takes: `Orchestrator.create(fn)(history.context_json())`, which `run_orchestrator` wraps.

    history = History("call_session", "call-1", {...input...}, start=datetime.now(UTC))
    state = run_orchestrator(orchestrator_handle(call_session), history)  # actions, isDone, output, error
    history.episode(datetime.now(UTC))
    history.add(EventType.EVENT_RAISED, Name="CallConnected", Input=json.dumps({...}))

Used through execution.py, the replay step of the local Durable runtime (engine.py) and of the tests' Replay.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING, Any, cast

from azure.durable_functions.orchestrator import Orchestrator

if TYPE_CHECKING:
    import azure.functions  # noqa: F401 - lets mypy resolve the "azure" namespace (see orchestrations/__init__.py)

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the SDK's DATETIME_STRING_FORMAT
_STATE_LABEL = "\n\n$OutOfProcData$:"  # the SDK appends the orchestrator state to the error it raises

Handle = Callable[[str], str]  # Orchestrator.create(fn): context JSON in, orchestrator state JSON out


class EventType(IntEnum):
    EXECUTION_STARTED = 0
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_RAISED = 15


class ActionType(IntEnum):
    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    WHEN_ANY = 11
    WHEN_ALL = 12


ACTIVITY_ACTIONS = (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY)


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_FORMAT)


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, _FORMAT).replace(tzinfo=UTC)


class History:
    """The history of one execution. New events go into the open episode; `episode()` starts the next one."""

    def __init__(self, name: str, instance_id: str, input_: Any, start: datetime) -> None:
        self.instance_id = instance_id
        self.input_json = json.dumps(input_)
        self.now = start
        self.events: list[dict[str, Any]] = []
        self.add(EventType.ORCHESTRATOR_STARTED)
        self.add(EventType.EXECUTION_STARTED, Name=name, Version="",  # "Version" is required by 1.7.0
                 Input=self.input_json,
                 OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": f"{instance_id}-execution"})

    def add(self, event_type: EventType, event_id: int = -1, **fields: Any) -> None:
        self.events.append({"EventType": int(event_type), "EventId": event_id, "IsPlayed": False,
                            "Timestamp": timestamp(self.now), **fields})

    def scheduled(self, event_id: int, action: dict[str, Any]) -> None:
        """TaskScheduled for an activity action (CallActivity or CallActivityWithRetry)."""
        self.add(EventType.TASK_SCHEDULED, event_id, Name=action["functionName"], Input=action.get("input"))

    def episode(self, at: datetime) -> None:
        """Close the open episode (what the orchestrator decided is in it) and open the next at `at`."""
        self.add(EventType.ORCHESTRATOR_COMPLETED)
        for event in self.events:
            event["IsPlayed"] = True
        self.now = max(self.now, at)
        self.add(EventType.ORCHESTRATOR_STARTED)

    def context_json(self) -> str:
        # What the Durable extension sends today: replay schema V3, with the Azure Storage timer limits.
        return json.dumps({
            "instanceId": self.instance_id, "isReplaying": False, "parentInstanceId": None,
            "input": self.input_json, "history": self.events,
            "upperSchemaVersion": 1, "upperSchemaVersionNew": 2,
            "maximumShortTimerDuration": "6.00:00:00", "longRunningTimerIntervalDuration": "3.00:00:00",
        })


def flatten(actions: list[Any]) -> list[dict[str, Any]]:
    """The atomic actions in decision order (compound WhenAny / WhenAll actions opened up)."""
    out: list[dict[str, Any]] = []
    for action in actions:
        if isinstance(action, list):
            out.extend(flatten(action))
        elif action["actionType"] in (ActionType.WHEN_ANY, ActionType.WHEN_ALL):
            out.extend(flatten(action["compoundActions"]))
        else:
            out.append(action)
    return out


def same_decision(action: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in action.items() if k != "isCanceled"}  # a timer may be cancelled later


def replay_mismatch(decided: list[dict[str, Any]], actions: list[dict[str, Any]]) -> str | None:
    """Why a replay's atomic `actions` do not start with what was `decided` before (None: they do).

    Names the differing action by its type and function or event name only: inputs may hold personal data.
    """
    for index, before in enumerate(decided):
        now = actions[index] if index < len(actions) else None
        if now is None or same_decision(now) != same_decision(before):
            return f"action {index} was {_describe(before)}, the replay decided {_describe(now)}"
    return None


def _describe(action: dict[str, Any] | None) -> str:
    if action is None:
        return "nothing"
    try:
        kind = ActionType(action["actionType"]).name
    except ValueError:
        kind = f"action type {action['actionType']}"
    return f"{kind} {action.get('functionName') or action.get('externalEventName') or ''}".strip()


def retry_delay(retry: dict[str, Any], attempt: int) -> timedelta:
    """The wait after failed attempt number `attempt` (1-based) of an activity with these retryOptions."""
    first = float(retry["firstRetryIntervalInMilliseconds"])
    wait = first * float(retry.get("backoffCoefficient") or 1.0) ** (attempt - 1)
    cap = retry.get("maxRetryIntervalInMilliseconds")
    return timedelta(milliseconds=min(wait, float(cap)) if cap else wait)


def orchestrator_handle(fn: Callable[..., Any]) -> Handle:
    """The replay entry point for a generator function, or `fn` itself if it already is one (what DFApp
    registers for an orchestrator, and its get_user_function() returns, is `Orchestrator.create(fn)`)."""
    if hasattr(fn, "orchestrator_function"):
        return cast("Handle", fn)
    return cast("Handle", Orchestrator.create(fn))


def run_orchestrator(handle: Handle, history: History) -> dict[str, Any]:
    """Replay `history`: the orchestrator state (actions, isDone, output, customStatus; `error` if it raised).

    When the orchestrator raises, the SDK raises too, with the state appended to the message: it is
    decoded here so that a failure reads like any other state.
    """
    try:
        return cast("dict[str, Any]", json.loads(handle(history.context_json())))
    except Exception as error:
        message, _, state_json = str(error).partition(_STATE_LABEL)
        try:
            state = cast("dict[str, Any]", json.loads(state_json))
        except ValueError:
            state = {"isDone": False, "actions": []}
        return {**state, "error": message}
