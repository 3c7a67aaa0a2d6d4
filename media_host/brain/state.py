"""The offline brain's per-call dialogue state, and what it reads back from the chat history.

The engine object is shared by every call, so everything a call needs between turns lives in
`ChatRequest.state["offline_brain"]` as plain JSON (the pipeline stores it in the call session):

- `agent`: the agent that answered last (a different one now means a handoff happened);
- `pending`: a tool being prepared: `{"tool", "args", "awaiting", "confirm", "text"}`, where
  `awaiting` is the argument just asked for and `confirm` says its confirmation question was asked;
- `retry`: a tool that just failed with a tool error (`{"tool", "call_id"}`): new details the caller
  gives next are merged with the failed call's arguments (read back from the history, not stored);
- `intent`: what the caller asked for before they were verified (`{"text", "tool"}`), continued
  automatically once they are;
- `offer`: what the last reply offered (`{"tool", "text", "args"}`), so that "yes" accepts it;
- `handoff_text`: the words a handoff was made for, for the next agent to act on;
- `misses`: consecutive turns not understood; `calls`: tool calls made (for fresh call ids);
- `source`: the words behind the last tool call;
- `users`: how many caller turns the history had when the brain last answered. When the brain is the
  fallback of a cloud model, turns it did not answer may come in between: then what it was waiting
  for is stale and forgotten.

Values being collected (an account number before the date of birth arrives) are held in `pending`
only until the tool is called.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from media_host.engines.base import ChatMessage

STATE_KEY = "offline_brain"


@dataclass
class BrainState:
    agent: str | None = None
    pending: dict[str, Any] | None = None
    retry: dict[str, Any] | None = None
    intent: dict[str, Any] | None = None
    offer: dict[str, Any] | None = None
    handoff_text: str | None = None
    misses: int = 0
    calls: int = 0
    source: str | None = None
    users: int = 0

    @classmethod
    def load(cls, state: dict[str, Any]) -> BrainState:
        raw = state.get(STATE_KEY)
        if not isinstance(raw, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError:
            return cls()

    def save(self, state: dict[str, Any]) -> None:
        state[STATE_KEY] = json.loads(json.dumps(asdict(self), default=str))

    def forget_tools(self) -> None:
        """What only made sense with the previous agent's tools."""
        self.pending = self.retry = self.offer = None

    def forget_context(self) -> None:
        """What only made sense right after the brain's own last reply."""
        self.forget_tools()
        self.intent = self.handoff_text = None
        self.misses = 0


def last_of(messages: Sequence[ChatMessage], role: str) -> ChatMessage | None:
    return next((m for m in reversed(messages) if m.role == role), None)


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    message = last_of(messages, "user")
    return message.content if message else ""


def last_spoken(messages: Sequence[ChatMessage]) -> str:
    """What the agent said last (its most recent non-empty assistant text)."""
    return next((m.content for m in reversed(messages) if m.role == "assistant" and m.content.strip()), "")


def call_arguments(messages: Sequence[ChatMessage], call_id: str | None) -> dict[str, Any]:
    """The arguments of an earlier tool call, as the assistant message sent them."""
    for message in reversed(messages):
        for call in message.tool_calls:
            if call.id == call_id:
                try:
                    parsed = json.loads(call.arguments or "{}")
                except ValueError:
                    return {}
                return parsed if isinstance(parsed, dict) else {}
    return {}


def tool_calls_made(messages: Sequence[ChatMessage]) -> int:
    return sum(len(m.tool_calls) for m in messages)


def parse_result(content: str) -> Any:
    try:
        return json.loads(content)
    except (ValueError, TypeError):
        return content
