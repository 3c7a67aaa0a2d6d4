"""What the offline brain does: start tools, phrase their results, handle failures and handoffs.

`Actions` is the half of a turn that acts: starting a tool means verification first if the tool needs
it, then its arguments (asked for one at a time), then its confirmation question, then the call. A
tool result is phrased with the tool's reply template (or the agent's override); after a successful
verification, what the caller asked for before it continues automatically. After a handoff, the new
agent acts on the words the handoff was made for. `dialogue.Turn` adds the half that listens.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from agents import ToolSpec
from media_host.brain.arguments import Context, extract, missing, params_of, validate
from media_host.brain.extraction import today_from
from media_host.brain.options import options_in
from media_host.brain.replies import (
    APOLOGY,
    NOT_CAUGHT,
    TROUBLE,
    Replies,
    generic_result,
    offer_sentence,
    without_final_question,
)
from media_host.brain.routing import router_for
from media_host.brain.state import (
    BrainState,
    call_arguments,
    last_user_text,
    parse_result,
    tool_calls_made,
)
from media_host.brain.text import spoken_to_digits
from media_host.engines.base import ChatMessage, ChatRequest, ToolCall

FAILURE_CODES = frozenset({"unknown_tool", "invalid_arguments", "not_authenticated", "timeout", "tool_error",
                           "internal_error"})
VERIFY_HINT = re.compile(r"verif|authenticat|identit|log ?in|sign ?in", re.IGNORECASE)
MAX_MISSES = 3
MISUNDERSTOOD = "could not understand the caller"


@dataclass
class Reply:
    text: str = ""
    call: ToolCall | None = None
    trace: tuple[str, ...] = ()  # why: the decisions behind it (tool and parameter names only, never values)


def is_failure(data: Any) -> bool:
    return isinstance(data, dict) and data.get("error") in FAILURE_CODES and "message" in data


def _masked(text: str) -> str:
    """The caller's words for a handoff summary, numbers masked (they may be account numbers or dates)."""
    return re.sub(r"\d(?:[\d ,./:-]*\d)?(?:st|nd|rd|th)?", "…", spoken_to_digits(text.strip()))


def join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


class Actions:
    """The acting half of one turn (see the module docstring)."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.messages: list[ChatMessage] = list(request.messages)
        self.agent = request.agent
        self.order = list(request.tools)
        self.tools = {t.name: t for t in self.order}
        self.router = router_for(self.order)
        self.customer = request.customer
        self.st = BrainState.load(request.state)
        self.replies = Replies(request.agent, request.customer)
        system = next((m.content for m in self.messages if m.role == "system"), "")
        self.today = today_from(system) or date.today()
        self.trace: list[str] = []

    # --- starting a tool ----------------------------------------------------------------------------------
    def _start(self, tool: ToolSpec, text: str, *, base: dict[str, Any] | None = None, routed: bool = True,
               why: str = "", handoff_text: str | None = None) -> Reply:
        self.trace.append(f"start {tool.name}")
        if tool.kind == "transfer":
            return self._call(tool, {"reason": "caller asked for a person"}, text)
        if tool.requires_auth and self.customer is None:
            return self._needs_auth(tool, text)
        if tool.kind == "handoff":
            self.st.handoff_text = handoff_text or text
            words = _masked(handoff_text or text)
            said = f'The caller {"accepted" if handoff_text else "said"}: "{words}".' if words else ""
            verified = f" They are verified as {self.customer.get('name')}." if self.customer else ""
            reason = why.strip().rstrip(".?") if why and why != "named agent" else "the caller asked for it"
            return self._call(tool, {"reason": reason[:120], "summary": (said + verified).strip()[:400]}, text)
        args = {**(base or {}), **extract(tool, text, self._ctx(tool, routed=routed))}
        return self._proceed(tool, args, text)

    def _proceed(self, tool: ToolSpec, args: dict[str, Any], text: str) -> Reply:
        """Ask for what is missing, then confirm, then call."""
        absent = missing(tool, args)
        full, bad = validate(tool, args) if not absent else (None, [])
        if absent or full is None:
            wanted = (absent or bad or [p.name for p in params_of(tool)] or [""])[0]
            kept = {k: v for k, v in args.items() if k not in bad}
            self.st.pending = {"tool": tool.name, "args": kept, "awaiting": wanted, "confirm": False, "text": text}
            self.trace.append(f"ask {tool.name}.{wanted} (have {sorted(kept)})")
            question = self.replies.ask(tool, wanted, kept)
            return Reply(question if absent else join(NOT_CAUGHT, question))
        if tool.confirm:
            self.trace.append(f"confirm {tool.name}")
            self.st.pending = {"tool": tool.name, "args": args, "awaiting": None, "confirm": True, "text": text}
            return Reply(self.replies.confirm(tool, full))
        return self._call(tool, args, text)

    def _needs_auth(self, tool: ToolSpec, text: str) -> Reply:
        self.st.intent = {"text": text, "tool": tool.name}
        self.trace.append(f"{tool.name} needs verification: intent remembered")
        verify = next((t for t in self.order if t.kind == "function" and not t.requires_auth
                       and (VERIFY_HINT.search(t.name) or VERIFY_HINT.search(t.description))), None)
        if verify is None:
            return Reply(self.replies.needs_auth())
        given = extract(verify, text, self._ctx(verify, strict=True))  # "my card ending 1234": not an account
        if given:
            return self._proceed(verify, given, text)
        first = missing(verify, {})
        self.st.pending = {"tool": verify.name, "args": {}, "awaiting": first[0] if first else None,
                           "confirm": False, "text": text}
        own = self.replies.agent_reply("needs_auth")
        return Reply(own or join(self.replies.needs_auth(), self.replies.ask(verify, first[0], {}) if first else ""))

    def _call(self, tool: ToolSpec, args: dict[str, Any], text: str) -> Reply:
        self.trace.append(f"call {tool.name} with {sorted(args)}")
        number = max(self.st.calls, tool_calls_made(self.messages)) + 1
        self.st.calls = number
        self.st.source = text
        if self.st.pending and self.st.pending.get("tool") == tool.name:
            self.st.pending = None
        return Reply(call=ToolCall(id=f"call_{number}", name=tool.name, arguments=json.dumps(args)))

    # --- a tool answered ---------------------------------------------------------------------------------------
    def _after_tool(self, message: ChatMessage) -> Reply:
        tool = self.tools.get(message.name or "")
        args = call_arguments(self.messages, message.tool_call_id)
        data = parse_result(message.content)
        if is_failure(data):
            self.trace.append(f"{message.name} failed: {data['error']}")
            return self._after_failure(tool, message, args, data)
        self.trace.append(f"reply to {message.name}")
        self.st.misses = 0
        if tool is None:
            return Reply(generic_result(data))
        if self.st.pending and self.st.pending.get("tool") == tool.name:
            self.st.pending = None
        text = self.replies.tool_reply(tool, validate(tool, args)[0] or args, data)
        if tool.kind == "transfer":
            return Reply(text)
        if self.st.intent and self.customer is not None:
            self.trace.append("verified: continue the remembered intent")
            follow = self._continue_intent()
            if follow.call is not None or follow.text:
                return Reply(join(without_final_question(text), follow.text), follow.call)
        self.st.offer = self._offer(text, tool, message)
        return Reply(text)

    def _continue_intent(self) -> Reply:
        intent, self.st.intent = self.st.intent or {}, None
        text = str(intent.get("text") or "")
        tool = self.tools.get(str(intent.get("tool")))
        if tool is None or tool.kind == "transfer":
            decision = self.router.route(text)
            tool = self.tools.get(decision.tool) if decision.tool else None
        if tool is None or (tool.requires_auth and self.customer is None):
            return Reply()
        return self._start(tool, text, why="what the caller asked for before verification")

    def _after_failure(self, tool: ToolSpec | None, message: ChatMessage, args: dict[str, Any],
                       data: dict[str, Any]) -> Reply:
        code, text = data["error"], str(data.get("message", ""))
        self.st.pending = None
        source = self.st.source or last_user_text(self.messages)
        if code == "not_authenticated" and tool is not None:
            return self._needs_auth(tool, source)
        if code == "invalid_arguments" and tool is not None:
            names = {p.name for p in params_of(tool)}
            bad = [str(d.get("field", "")).split(".")[0] for d in data.get("details", []) if isinstance(d, dict)]
            bad = [b for b in bad if b in names]
            if bad:
                kept = {k: v for k, v in args.items() if k not in bad}
                self.st.pending = {"tool": tool.name, "args": kept, "awaiting": bad[0], "confirm": False,
                                   "text": source}
                return Reply(join(NOT_CAUGHT, self.replies.ask(tool, bad[0], kept)))
        if code == "tool_error":
            if tool is not None and params_of(tool):
                self.st.retry = {"tool": tool.name, "call_id": message.tool_call_id}
            full = validate(tool, args)[0] if tool is not None else None
            spoken = self.replies.tool_error(text, full or args)
            if tool is not None:  # "That time has just been taken. Shall I find another one?"
                self.st.offer = self._offer(spoken, tool, message)
            return Reply(spoken)
        transfer = next((t for t in self.order if t.kind == "transfer"), None)
        if transfer is None or (tool is not None and tool.kind == "transfer"):
            return Reply("I'm sorry, I couldn't do that just now.")
        self.st.offer = {"tool": transfer.name, "text": "", "args": {}}
        return Reply(APOLOGY)

    def _offer(self, text: str, tool: ToolSpec, message: ChatMessage) -> dict[str, Any] | None:
        """What a reply offers, so that "yes" takes it: one option another tool takes ("The next opening
        is Tuesday at 9:30. Would that work?"), or a tool the closing question names."""
        sentence = offer_sentence(text)
        if sentence is None:
            return None
        for other in self.order:
            if other is tool or other.kind != "function":
                continue
            keys = [p.name for p in params_of(other) if p.kind == "pattern"]
            for key, items in options_in([message], keys).items():
                if len(items) == 1:
                    return {"tool": other.name, "text": "", "args": {key: items[0][key]}}
        decision = self.router.route(sentence, exclude=[tool.name])
        return {"tool": decision.tool, "text": sentence, "args": {}} if decision.tool else None

    # --- after a handoff -----------------------------------------------------------------------------------
    def _after_handoff(self) -> Reply:
        """The new agent acts on the words the handoff was made for (never handing them on again)."""
        text = self.st.handoff_text or last_user_text(self.messages)
        self.st.handoff_text = None
        handoffs = [t.name for t in self.order if t.kind == "handoff"]
        decision = self.router.route(text, exclude=handoffs)
        self.trace.append(f"after handoff: {decision.explain()}")
        tool = self.tools.get(decision.tool) if decision.tool else None
        if tool is None or (tool.kind == "transfer" and not decision.rule):
            return Reply()  # the greeting the caller just heard asks what they need
        return self._start(tool, text, why=decision.phrase)

    # --- helpers ------------------------------------------------------------------------------------------------
    def _options(self, tool: ToolSpec) -> dict[str, list[dict[str, Any]]]:
        keys = [p.name for p in params_of(tool) if p.kind == "pattern"]
        return options_in(self.messages, keys) if keys else {}

    def _ctx(self, tool: ToolSpec, *, awaiting: str | None = None, routed: bool = False, strict: bool = False
             ) -> Context:
        return Context(today=self.today, awaiting=awaiting, options=self._options(tool), routed=routed, strict=strict)

    def _reask(self, text: str) -> Reply:
        self.st.misses += 1
        self.trace.append(f"not understood ({self.st.misses} in a row)")
        return self._give_up() if self.st.misses >= MAX_MISSES else Reply(text)

    def _miss(self) -> Reply:
        return self._reask(self.replies.clarify())

    def _give_up(self) -> Reply:
        self.st.misses = 0
        self.st.forget_tools()
        transfer = next((t for t in self.order if t.kind == "transfer"), None)
        if transfer is None:
            return Reply(self.replies.clarify())
        return Reply(TROUBLE, self._call(transfer, {"reason": MISUNDERSTOOD}, "").call)

