"""The state of one conversation, and writing it to the call session as it happens.

The current agent, the chat history the model sees, the verified customer and the engines' working
state live here. Every turn and event is appended to Redis when it happens, so a socket that
reconnects (or a host that restarts) resumes the same conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from agents import Agent, PromptVariables, Scenario, ToolContext
from media_host.channel import CallChannel
from media_host.engines.base import ChatMessage
from switchboard.session_models import CallEvent, CallSession, CallState, HandoffRecord, Speaker, Turn

log = logging.getLogger(__name__)


class Conversation:
    def __init__(self, call: CallChannel, state: CallState) -> None:
        self.call = call
        self.call_id = call.call_id
        session = state.session
        self.scenario: Scenario = call.catalog.scenario(session.scenario)
        self.agent: Agent = self.scenario.agents.get(session.current_agent) or self.scenario.entry_agent
        self.customer = session.customer
        self.caller = session.caller
        self.context: dict[str, Any] = dict(session.context)
        self.greeted = session.greeted
        self.handoffs = len(state.handoffs)
        last = state.handoffs[-1] if state.handoffs else None
        self.handoff: dict[str, Any] | None = (
            {"from_agent": last.from_agent, "reason": last.reason, "summary": last.summary} if last else None)
        # A resumed call keeps what was said: the model sees it again as plain text turns.
        self.history: list[ChatMessage] = [
            ChatMessage(role="user" if t.speaker is Speaker.CALLER else "assistant", content=t.text)
            for t in state.turns if t.speaker is not Speaker.SYSTEM and t.text]

    # --- what the model and the tools see --------------------------------------------------------
    def variables(self) -> PromptVariables:
        return PromptVariables(agent=self.agent.name, scenario=self.scenario.name, caller=self.caller,
                               customer=self.customer, handoff=self.handoff, locale=self.agent.spec.locale,
                               now=self.scenario.now())

    def system_message(self) -> ChatMessage:
        return ChatMessage(role="system", content=self.agent.render_prompt(self.variables()))

    def messages(self) -> list[ChatMessage]:
        return [self.system_message(), *self.history]

    def chat_state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.context.setdefault("chat", {})
        return state

    def tool_context(self) -> ToolContext:
        return ToolContext(call_id=self.call_id, scenario=self.scenario.name, agent=self.agent.name,
                           caller=self.caller, customer=self.customer, locale=self.agent.spec.locale,
                           state=self.context.setdefault("tools", {}))

    # --- writing it down as it happens ---------------------------------------------------------
    async def _write(self, what: str, operation: Callable[[], Any]) -> None:
        try:
            await operation()
        except RedisError:
            # The conversation goes on; the call record misses this entry (logged, never silent).
            log.warning("session write failed: %s", what, exc_info=True)

    async def record_turn(self, speaker: Speaker, text: str, *, interrupted: bool = False,
                          latency: dict[str, float] | None = None) -> None:
        turn = Turn(speaker=speaker, text=text, agent=self.agent.name if speaker is Speaker.AGENT else None,
                    interrupted=interrupted, latency_ms=latency or {})
        await self._write("turn", lambda: self.call.store.append_turn(self.call_id, turn))

    async def record_event(self, kind: str, **data: Any) -> None:
        event = CallEvent(kind=kind, agent=self.agent.name, data=data)
        await self._write(kind, lambda: self.call.store.append_event(self.call_id, event))

    async def save(self) -> None:
        """Persist the mutable state: customer, greeting, engine and tool state."""
        customer, greeted, context = self.customer, self.greeted, dict(self.context)

        def apply(session: CallSession) -> None:
            session.customer = customer
            session.greeted = greeted
            session.context = context

        await self._write("session", lambda: self.call.store.update(self.call_id, apply))

    async def switch_agent(self, target: Agent, reason: str, summary: str) -> None:
        previous = self.agent
        self.agent = target
        self.handoffs += 1
        self.handoff = {"from_agent": previous.name, "reason": reason, "summary": summary}
        record = HandoffRecord(from_agent=previous.name, to_agent=target.name, reason=reason, summary=summary)
        await self._write("handoff", lambda: self.call.store.record_handoff(self.call_id, record))
