"""Durable orchestrations: one call_session per call, with activities for all I/O.

    import orchestrations
    orchestrations.register(app, services)  # in function_app.py: the orchestrator and its six activities

The contract (names, input, events, activities, output) is in orchestrations/models.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import azure.durable_functions as df

from orchestrations.activities import ACTIVITIES, ActivityFunction, ActivityServices
from orchestrations.call_session import call_session
from orchestrations.models import Activity, CallSessionInput, Event, Notice

if TYPE_CHECKING:
    # azure-functions ships py.typed, azure-functions-durable does not: importing the former lets mypy
    # resolve the "azure" namespace package (the pyproject override only covers azure.durable_functions).
    import azure.functions  # noqa: F401

ServicesFactory = Callable[[], ActivityServices | Awaitable[ActivityServices]]

__all__ = ["Activity", "ActivityServices", "CallSessionInput", "Event", "Notice", "ServicesFactory", "call_session",
           "register"]


def register(app: df.DFApp, services: ServicesFactory) -> None:
    """Register `call_session` and its activities. `services` is called per activity run (it may be async)."""
    app.orchestration_trigger(context_name="context")(call_session)
    for name, run in ACTIVITIES.items():
        app.activity_trigger(input_name="payload")(_activity(name, run, services))


def _activity(name: Activity, run: ActivityFunction, services: ServicesFactory) -> Callable[..., Any]:
    # The Python worker refuses a parameterised builtin on a binding ("invalid non-type annotation
    # dict[str, typing.Any]": azure-functions-runtime 1.3.0, functions.py Registry.validate_function_params),
    # so `payload` is the bare type. The return annotation is not checked: activityTrigger is implicit output.
    async def activity(payload: dict) -> dict[str, Any]:  # type: ignore[type-arg]
        provided = services()
        ready = await provided if inspect.isawaitable(provided) else provided
        return await run(payload, ready)

    # The Functions host names the function after the Python function: it must be the activity name.
    activity.__name__ = activity.__qualname__ = name.value
    return activity
