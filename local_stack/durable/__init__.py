"""A small in-process Durable Functions runtime, for local mode only (see `engine.LocalDurable`).

Hand-written: the Durable runtime ships only inside the Functions host (Core Tools), not installable here.

It runs the app's real orchestrator generators on the real azure-functions-durable replay engine, and
serves the extension's HTTP API (`webhook.add_durable_routes`) so the real `DurableOrchestrationClient`
can start instances, raise events, read their status and terminate them. In Azure, Durable Functions
itself runs the orchestrations; this stands in for it on one machine. The tests use the same pieces:
`replay.Replay` drives an orchestrator step by step with the runtime's replay step (execution.py), and
`recording.DurableWebhook` serves the same routes from instances that run nothing, recording requests.
Its limits, plainly:

- in memory only: every instance is lost when the process exits; no durable storage, so no replay
  after a restart and nothing is shared between processes (one process, one event loop);
- activities, timers, external events, retries (RetryOptions) and continue_as_new only: no
  sub-orchestrations, entities, durable HTTP calls (with their polling), suspend/resume, rewind,
  purge or instance queries;
- timers run on the wall clock of this process; instances are not rate limited or load balanced.
"""

from local_stack.durable.engine import (
    ActivityFunction,
    InstanceGone,
    LocalDurable,
    OrchestratorFunction,
    UnknownInstance,
    UnknownOrchestrator,
)
from local_stack.durable.history import ActionType, EventType, History, flatten, parse_time, timestamp
from local_stack.durable.webhook import PREFIX, add_durable_routes, binding, decode_body, management_payload

__all__ = ["PREFIX", "ActionType", "ActivityFunction", "EventType", "History", "InstanceGone", "LocalDurable",
           "OrchestratorFunction", "UnknownInstance", "UnknownOrchestrator", "add_durable_routes", "binding",
           "decode_body", "flatten", "management_payload", "parse_time", "timestamp"]
