"""The state of one conversation, and writing it to the call session as it happens.

The current agent, the chat history the model sees, the verified customer and the engines' working
state live here. Every turn and event is appended to Redis when it happens, so a socket that
reconnects (or a host that restarts) resumes the same conversation.
"""

from __future__ import annotations

from typing import Any

from agents import Agent, PromptVariables, Scenario, ToolContext
from media_host.channel import CallChannel
from media_host.engines.base import ChatMessage
from switchboard.session_models import CallEvent, CallSession, CallState, HandoffRecord, Speaker, Turn

RESUMED = "Sorry, you were cut off."  # said when a call comes back on a new socket; `replies.resumed` overrides it
# Said while the caller waits (a slow model or tool in the cascade, a Realtime outage); `replies.holding` overrides it.
HOLDING_PHRASE = "One moment while I check that."
# Said when a Realtime call carries on on the cascade engines (the Realtime service is gone); `replies.degraded`
# overrides it. The voice changes with the engines: the caller is told.
DEGRADED = "Sorry, I'm having some technical trouble, so I may sound a little different. Let's carry on."


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

    def resumed(self) -> bool:
        """The caller already heard this call (a media host restarted, a socket broke): say sorry, not hello."""
        return self.greeted and bool(self.history)

    def unanswered(self) -> bool:
        """The caller's last words (or a tool's result) never got an answer they heard. The holding phrase
        is no answer."""
        holding = self.holding_phrase()
        last = next((m for m in reversed(self.history) if not (m.role == "assistant" and m.content == holding)), None)
        return last is not None and last.role in ("user", "tool")

    def reply(self, name: str, default: str) -> str:
        """The agent's `replies.<name>` template rendered, else `default`."""
        template = self.agent.reply_templates.get(name)
        return template.render() if template is not None else default

    def apology(self) -> str:
        return self.reply("resumed", RESUMED)

    def holding_phrase(self) -> str:
        return self.reply("holding", HOLDING_PHRASE)

    def degraded_apology(self) -> str:
        return self.reply("degraded", DEGRADED)

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
    # Through the host's write-behind writer: never raises, and never waits on a Redis that is down
    # (what is written then is kept, in order, until Redis is back: media_host/session_writer.py).
    async def record_turn(self, speaker: Speaker, text: str, *, interrupted: bool = False,
                          latency: dict[str, float] | None = None) -> None:
        turn = Turn(speaker=speaker, text=text, agent=self.agent.name if speaker is Speaker.AGENT else None,
                    interrupted=interrupted, latency_ms=latency or {})
        await self.call.append_turn(turn)

    async def record_event(self, kind: str, **data: Any) -> None:
        await self.call.append_event(CallEvent(kind=kind, agent=self.agent.name, data=data))

    async def save(self) -> None:
        """Persist the mutable state: customer, greeting, engine and tool state."""
        customer, greeted, context = self.customer, self.greeted, dict(self.context)

        def apply(session: CallSession) -> None:
            session.customer = customer
            session.greeted = greeted
            session.context = context

        await self.call.update_session(apply)

    async def switch_agent(self, target: Agent, reason: str, summary: str) -> None:
        previous = self.agent
        self.agent = target
        self.handoffs += 1
        self.handoff = {"from_agent": previous.name, "reason": reason, "summary": summary}
        record = HandoffRecord(from_agent=previous.name, to_agent=target.name, reason=reason, summary=summary)
        await self.call.record_handoff(record)
