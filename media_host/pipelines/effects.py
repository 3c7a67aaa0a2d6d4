"""Running one tool call for the current agent and applying what it asked for.

The rules every pipeline (cascade and realtime) shares, free of any speaking: only the agent's own
tools run; every call is reported (`ToolCalled`) and recorded;
`Authenticated` sets the customer, `HandoffRequested` switches agent within the scenario's
`max_handoffs` (recorded in Redis, announced with `AgentChanged`, notified to the control plane),
and `TransferRequested` / `HangupRequested` are noted in `Ending`, to be carried out once the caller
has heard the reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents import Agent, ToolResult, default_registry
from agents.tools import Authenticated, Effect, HandoffRequested, ToolFailure
from media_host.channel import CallChannel
from media_host.control_plane import ControlPlane
from media_host.events import AgentChanged, ToolCalled

if TYPE_CHECKING:  # the cascade package imports this module
    from media_host.pipelines.cascade.conversation import Conversation


@dataclass
class Ending:
    """What the conversation asked for once the caller has heard the reply."""

    transfer: str | None = None  # reason
    hangup: str | None = None

    @property
    def requested(self) -> bool:
        return self.transfer is not None or self.hangup is not None


async def run_tool(call: CallChannel, conv: Conversation, agent: Agent, name: str,
                   arguments: dict[str, Any] | str | None) -> ToolResult:
    """Run `name` as `agent` (never another agent's tool); report and record it. Never raises."""
    spec = agent.tool(name)
    if spec is None:  # a model may name a tool this agent does not have
        result = ToolResult(tool=name, ok=False, error=ToolFailure(
            code="unknown_tool", message=f"{name} is not available to this agent"))
    else:
        result = await default_registry.execute(name, arguments, conv.tool_context(), spec=spec)
    call.send(ToolCalled(name, result.ok, result.arguments, result.elapsed_ms))
    await conv.record_event("tool_call", name=name, ok=result.ok, arguments=result.arguments,
                            elapsed_ms=result.elapsed_ms, error=result.error.code if result.error else None)
    return result


async def apply_effects(effects: list[Effect], call: CallChannel, conv: Conversation, control_plane: ControlPlane,
                        ending: Ending) -> Agent | None:
    """Apply a tool's effects in order. Returns the previous agent if the agent changed."""
    previous: Agent | None = None
    for effect in effects:
        if isinstance(effect, Authenticated):
            conv.customer = effect.customer
            await conv.record_event("authenticated", customer_id=str(effect.customer.get("id", "")))
        elif isinstance(effect, HandoffRequested):
            before = conv.agent
            if await hand_over(effect, call, conv, control_plane, ending):
                previous = previous or before
        elif effect.kind == "transfer":
            ending.transfer = effect.reason or "transfer requested"
        else:
            ending.hangup = effect.reason or "hang-up requested"
    return previous


async def hand_over(request: HandoffRequested, call: CallChannel, conv: Conversation, control_plane: ControlPlane,
                    ending: Ending) -> bool:
    """Switch to the requested agent if the policy allows; True if the agent changed."""
    target = conv.scenario.agents.get(request.target)
    if target is None or target is conv.agent:
        return False
    if conv.handoffs >= conv.scenario.spec.policy.max_handoffs:
        ending.transfer = "too many handoffs"  # bounced around too often: a person is the better help
        await conv.record_event("handoff_refused", target=target.name, reason="max_handoffs")
        return False
    previous = conv.agent
    await conv.switch_agent(target, request.reason, request.summary)
    call.send(AgentChanged(target.name, previous.name, request.reason))
    # Whether the caller is verified comes from the call itself: no session read (Redis may be down).
    await control_plane.notify_handoff(conv.call_id, previous.name, target.name, request.reason,
                                       authenticated=conv.customer is not None)
    return True
