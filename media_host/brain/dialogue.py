"""One turn of the offline brain: what to say, or which tool to call, given the chat so far.

The last message decides the kind of turn:
- a `user` message: continue what is in progress (a confirmation, an argument asked for, a retry
  after a tool error, an offer just made), else route the words to a tool (or to the tool whose
  arguments they fill, or that takes the option they pick), else small talk, else ask the caller to
  rephrase (three misunderstandings in a row: transfer to a person);
- a `tool` result, or a handoff: see `actions.Actions`.
"""

from __future__ import annotations

import re
from typing import Any

from agents import ToolSpec
from media_host.brain.actions import VERIFY_HINT, Actions, Reply, is_failure, join
from media_host.brain.arguments import extract, params_of, validate
from media_host.brain.extraction import ordinal_choice, yes_no
from media_host.brain.options import choose_option
from media_host.brain.replies import (
    DECLINED,
    HANDOFF_REFUSED,
    NOT_CAUGHT,
    OFFER_DECLINED,
    YES_OR_NO,
    small_talk,
    wants_repeat,
)
from media_host.brain.routing import STRONG, Decision
from media_host.brain.state import call_arguments, last_spoken, parse_result
from media_host.brain.text import spoken_to_digits


class Turn(Actions):
    """One call of the brain: built from a request, `run()` once."""

    def run(self) -> Reply:
        users = sum(m.role == "user" for m in self.messages)
        if users > self.st.users + 1:  # another model answered turns in between
            self.st.forget_context()
        reply = self._dispatch()
        self.st.users = users
        self.st.agent = self.agent.name
        self.st.save(self.request.state)
        return Reply(reply.text, reply.call, tuple(self.trace))

    def _dispatch(self) -> Reply:
        last = self.messages[-1] if self.messages else None
        if last is None or last.role not in ("user", "tool"):
            return Reply()
        if self.st.agent is not None and self.st.agent != self.agent.name:
            self.st.forget_tools()
        if last.role == "user":
            return self._on_user(last.content)
        name = last.name or ""
        if name.startswith("handoff_to_") and not is_failure(parse_result(last.content)):
            if name == f"handoff_to_{self.agent.name}":
                return self._after_handoff()
            return Reply(HANDOFF_REFUSED)  # the pipeline refused the handoff and transfers instead
        return self._after_tool(last)

    # --- the caller spoke ----------------------------------------------------------------------------
    def _on_user(self, text: str) -> Reply:
        if not text.strip():
            return self._miss()
        spoken = last_spoken(self.messages[:-1])
        if wants_repeat(text) and spoken:
            return Reply(spoken)
        decision = self.router.route(text)
        self.trace.append(f"routing: {decision.explain()}")
        for step in (self._continue_pending, self._continue_retry, self._continue_offer):
            reply = step(text, decision)
            if reply is not None:
                return reply
        chosen = self._choice(text, decision) or decision.tool or self._filled(text)
        if chosen is not None:
            self.st.misses = 0
            self._remember_intent(text, chosen)
            return self._start(self.tools[chosen], text, why=decision.phrase or decision.rule)
        chat = small_talk(text, spoken)
        if chat is not None:
            self.st.misses = 0
            self.trace.append("small talk")
            return Reply(chat[0])
        return self._miss()

    def _elsewhere(self, decision: Decision, tool: ToolSpec) -> bool:
        """The caller clearly asks for something else than the tool in progress."""
        return decision.tool is not None and decision.tool != tool.name and (
            decision.score >= STRONG or bool(decision.rule))

    def _continue_pending(self, text: str, decision: Decision) -> Reply | None:
        pending = self.st.pending
        tool = self.tools.get(pending["tool"]) if pending else None
        if pending is None or tool is None:
            self.st.pending = None
            return None
        args: dict[str, Any] = dict(pending.get("args") or {})
        source = str(pending.get("text") or text)
        if pending.get("confirm"):
            changed = {k: v for k, v in extract(tool, text, self._ctx(tool)).items() if args.get(k) != v}
            answer = yes_no(text)
            if changed:  # "yes, with express delivery", "no, the one ending in 5 6 7 8": confirm again
                return self._proceed(tool, {**args, **changed}, source)
            if answer is True and not self._elsewhere(decision, tool):
                self.st.misses = 0
                self.trace.append(f"{tool.name} confirmed")
                return self._call(tool, args, source)
            if answer is False:
                self.trace.append(f"{tool.name} declined")
                self.st.pending = None
                self.st.misses = 0
                return Reply(DECLINED)
            if self._elsewhere(decision, tool):
                self.st.pending = None
                return None
            return self._reask(join(YES_OR_NO, self.replies.confirm(tool, validate(tool, args)[0] or args)))
        awaiting = pending.get("awaiting")
        new = extract(tool, text, self._ctx(tool, awaiting=awaiting))
        if new and not (self._elsewhere(decision, tool) and awaiting not in new):
            self.st.misses = 0
            return self._proceed(tool, {**args, **new}, source)
        if self._elsewhere(decision, tool):
            self.st.pending = None
            return None
        chat = small_talk(text, "")
        if chat is not None:
            if chat[1]:
                self.st.pending = None
            return Reply(chat[0])
        if yes_no(text) is False:
            self.st.pending = None
            return Reply(OFFER_DECLINED)
        return self._reask(join(NOT_CAUGHT, self.replies.ask(tool, str(awaiting), args)))

    def _continue_retry(self, text: str, decision: Decision) -> Reply | None:
        retry, self.st.retry = self.st.retry, None
        tool = self.tools.get(retry["tool"]) if retry else None
        if retry is None or tool is None or self._elsewhere(decision, tool):
            return None
        new = extract(tool, text, self._ctx(tool)) or self._from_choices(tool, text)
        if not new:
            return None
        before = call_arguments(self.messages, retry.get("call_id"))
        if all(before.get(k) == v for k, v in new.items()):
            return self._proceed(tool, new, text)  # the same details again: collect the rest afresh
        self.st.misses = 0
        self.trace.append(f"retry {tool.name} with new {sorted(new)}")
        return self._proceed(tool, {**before, **new}, text)

    def _continue_offer(self, text: str, decision: Decision) -> Reply | None:
        offer, self.st.offer = self.st.offer, None
        tool = self.tools.get(offer["tool"]) if offer else None
        if offer is None or tool is None or self._elsewhere(decision, tool):
            return None
        answer = yes_no(text)
        base = dict(offer.get("args") or {})
        if answer is True:
            self.st.misses = 0
            self.trace.append(f"offer of {tool.name} accepted")
            return self._start(tool, text, base=base, routed=False, why=str(offer.get("text") or ""),
                               handoff_text=str(offer.get("text") or text))
        if answer is False and decision.tool is None:
            chat = small_talk(text, "")
            self.st.misses = 0
            return Reply(chat[0] if chat and chat[1] else OFFER_DECLINED)
        if answer is None and decision.tool is None and tool.kind == "function":
            new = extract(tool, text, self._ctx(tool, routed=True))
            if any(p.kind == "text" and p.name in new for p in params_of(tool)):  # "tell me what happened"
                self.st.misses = 0
                return self._proceed(tool, {**base, **new}, text)
        return None

    def _choice(self, text: str, decision: Decision) -> str | None:
        """A tool taking one of the options a previous result listed, when the caller picks one."""
        if decision.rule:
            return None
        by_position = ordinal_choice(spoken_to_digits(text)) is not None
        for tool in self.order:
            if tool.kind != "function":
                continue
            options = self._options(tool)
            if any(choose_option(text, items) is not None for items in options.values()):
                score = decision.scores.get(tool.name, 0.0)
                if by_position or decision.tool in (None, tool.name) or score >= decision.score - 0.15:
                    return tool.name
        return None

    def _from_choices(self, tool: ToolSpec, text: str) -> dict[str, Any]:
        """Arguments from the choice a tool error listed ("a debit card ending in 5 6 7 8 and a credit card
        ending in 9 9 0 0. Which one?"), picked by what the caller said of it ("the credit one")."""
        spoken = last_spoken(self.messages)
        segments = [s.strip() for s in re.split(r"[,:;.?]|\band\b|\bor\b", spoken) if s.strip()]
        choices = [(s, found) for s in segments if (found := extract(tool, s, self._ctx(tool)))]
        picked = choose_option(text, [{"text": s} for s, _ in choices]) if len(choices) > 1 else None
        return next((found for s, found in choices if picked and s == picked["text"]), {})

    def _remember_intent(self, text: str, chosen: str) -> None:
        """ "My account is 4567, born March 3rd 1980, and I'd like my balance": verification first, and
        the balance remembered for when it succeeds."""
        tool = self.tools[chosen]
        if self.customer is not None or tool.requires_auth or not (
                VERIFY_HINT.search(tool.name) or VERIFY_HINT.search(tool.description)):
            return
        doc = self.router.doc(chosen)
        other = self.router.route(text, exclude=[chosen], ignore=doc.vocabulary if doc else frozenset())
        if other.tool is not None and self.tools[other.tool].requires_auth:
            self.st.intent = {"text": text, "tool": other.tool}

    def _filled(self, text: str) -> str | None:
        """For words that are only a value ("4567", "A-1000"): the tool whose required arguments they fill."""
        best, most = None, 0
        for tool in self.order:
            required = [p.name for p in params_of(tool) if p.required]
            if tool.kind != "function" or not required or (tool.requires_auth and self.customer is None):
                continue
            found = extract(tool, text, self._ctx(tool))
            count = sum(name in found for name in required)
            if count > most:
                best, most = tool.name, count
        return best
