"""What the offline brain says: the agent's and tools' reply templates, and generic phrases.

Templates are compiled strictly (`agents.prompts.compile_strict`, cached by source) and rendered for
speech with `render_reply`. A template that fails on a live call (a result without a field it uses)
falls back to the agent's leniently compiled template, then to a generic sentence: the caller always
hears something sensible.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Template

from agents import Agent, ToolSpec
from agents.prompts import compile_strict, render_reply
from media_host.brain.arguments import params_of
from media_host.brain.text import normalise, sentences

log = logging.getLogger(__name__)

CLARIFY = "Sorry, I didn't quite catch that. Could you say it another way?"
NEEDS_AUTH = "I can help with that as soon as I've verified who you are."
APOLOGY = "I'm sorry, I couldn't do that just now. Would you like me to put you through to a colleague?"
DONE = "Done. Is there anything else I can help with?"
DECLINED = "No problem, I won't do that. Is there anything else I can help with?"
OFFER_DECLINED = "No problem. Is there anything else I can help with?"
YES_OR_NO = "Sorry, I need a yes or a no."
NOT_CAUGHT = "Sorry, I didn't catch that."
TROUBLE = "I'm sorry, I'm having trouble understanding."
HANDOFF_REFUSED = "Let me put you through to a colleague who can help. Please stay on the line."
GREETING = "Hello! How can I help you today?"
THANKS = "You're welcome. Is there anything else I can help with?"
GOODBYE = "Thank you for calling. Goodbye!"
HOW_ARE_YOU = "I'm well, thank you. How can I help you today?"
WAIT = "Of course, take your time."
WHAT_ELSE = "Sure. What else can I help you with?"

_GOODBYE = re.compile(r"\b(?:bye|goodbye|good bye|see you|have a (?:nice|good|great) (?:day|evening|one)|"
                      r"that is all|that is it|that will be all|nothing else|all done|i am done|i am all set)\b")
_THANKS = re.compile(r"\b(?:thanks|thank you|thank u|cheers|appreciate it|much appreciated)\b")
_GREETING = re.compile(r"^(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|greetings)\b")
_HOW_ARE_YOU = re.compile(r"\bhow are you\b")
_WAIT = re.compile(r"\b(?:hold on|one moment|one second|just a (?:moment|second|minute)|give me a (?:moment|second|"
                   r"minute)|wait a (?:moment|second|minute)|let me (?:check|find|look|get))\b")
_REPEAT = re.compile(r"\b(?:repeat|say (?:that|it) again|come again|pardon|what did you say|did not (?:hear|catch)|"
                     r"could not hear|can not hear|what was that)\b")
_OFFER = re.compile(r"\b(?:would you like|shall i|should i|do you want|want me to|can i|may i|like me to|"
                    r"would that work|does that work|is that (?:ok|okay|all right)|how about)\b")
_ANYTHING_ELSE = re.compile(r"\banything else\b", re.IGNORECASE)


@lru_cache(maxsize=2048)
def _compiled(source: str) -> Template:
    return compile_strict(source)


def render(source: str | None, fallback: Template | None = None, **variables: Any) -> str | None:
    """A template rendered for speech, or None if it is missing or cannot be rendered."""
    if source is None:
        return None
    try:
        return render_reply(_compiled(source), **variables) or None
    except Exception as exc:  # a template problem must never silence the call
        log.warning("offline brain: reply template failed (%s: %s)", type(exc).__name__, exc)
    if fallback is not None:
        try:
            return render_reply(fallback, **variables) or None
        except Exception:
            log.warning("offline brain: lenient reply template failed too", exc_info=True)
    return None


class Replies:
    """The reply templates of one agent, with the variables every template sees."""

    def __init__(self, agent: Agent, customer: Mapping[str, Any] | None) -> None:
        self.agent = agent
        self.base: dict[str, Any] = {"customer": dict(customer) if customer else None, "agent": agent.name}

    def agent_reply(self, key: str, **variables: Any) -> str | None:
        return render(self.agent.spec.replies.get(key), self.agent.reply_templates.get(key),
                      **{"args": {}, **self.base, **variables})

    def tool_reply(self, tool: ToolSpec, args: Mapping[str, Any], result: Any) -> str:
        variables = {"args": dict(args), "result": result, **self.base}
        text = self.agent_reply(tool.name, **variables) or render(tool.reply, **variables)
        return text or generic_result(result)

    def confirm(self, tool: ToolSpec, args: Mapping[str, Any]) -> str:
        text = render(tool.confirm, args=dict(args), **self.base)
        return text or f"Just to confirm, shall I go ahead with {tool.name.replace('_', ' ')}?"

    def ask(self, tool: ToolSpec, param: str, args: Mapping[str, Any]) -> str:
        return self.agent_reply(f"ask_{param}", args=dict(args)) or question_for(tool, param)

    def clarify(self) -> str:
        return self.agent_reply("clarify") or CLARIFY

    def needs_auth(self) -> str:
        return self.agent_reply("needs_auth") or NEEDS_AUTH

    def tool_error(self, message: str, args: Mapping[str, Any]) -> str:
        text = self.agent_reply("tool_error", error=message, args=dict(args))
        if text:
            return text
        spoken = bool(re.search(r"[.!?]$", message.strip())) and " " in message.strip()
        return message.strip() if spoken else APOLOGY


def question_for(tool: ToolSpec, param: str) -> str:
    """A question built from the parameter's description: "The caller's account number, digits only"
    becomes "Could you tell me your account number, please?"."""
    described = next((p.description for p in params_of(tool) if p.name == param), "")
    phrase = re.split(r"[,;.(]| as | like | in the caller's| in your", described, maxsplit=1)[0].strip()
    phrase = re.sub(r"^(?:the )?caller's\b", "your", phrase, flags=re.IGNORECASE)
    phrase = re.sub(r"\bthe caller\b", "you", phrase, flags=re.IGNORECASE)
    if not phrase:
        phrase = "the " + param.replace("_", " ")
    elif not phrase[:2].isupper():
        phrase = phrase[0].lower() + phrase[1:]
    if re.match(r"(?:what|which|how|when|where|who|why)\b", phrase):
        return f"Could you tell me {phrase}?"
    return f"Could you tell me {phrase}, please?"


def generic_result(result: Any) -> str:
    """A reply for a tool without a reply template."""
    if isinstance(result, str) and result.strip():
        return result.strip()
    if isinstance(result, Mapping):
        for key in ("message", "text", "summary", "answer", "status", "result"):
            value = result.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return DONE


def without_final_question(text: str) -> str:
    """ "You're verified. How can I help you today?" -> "You're verified." (when the brain goes on)."""
    parts = sentences(text)
    while parts and parts[-1].endswith("?"):
        parts.pop()
    return " ".join(parts)


def offer_sentence(text: str) -> str | None:
    """The closing offer of a reply ("Would you like me to order a replacement?"), if it makes one."""
    parts = sentences(text)
    if not parts:
        return None
    last = parts[-1]
    lowered = last.lower()
    if last.endswith("?") and _OFFER.search(lowered):
        return last
    if re.search(r"\b(?:tell me|let me know)\b.*\b(?:and|then) i(?:'ll| will)\b", lowered):
        return last
    return None


def small_talk(text: str, last_assistant: str) -> tuple[str, bool] | None:
    """A reply to pleasantries, and whether the conversation is ending; None for anything else."""
    t = normalise(text)
    if _GOODBYE.search(t) or (_ANYTHING_ELSE.search(last_assistant) and re.fullmatch(
            r"(?:no|nope|nah|no thanks|no thank you|not really|i am good|i am fine|that is fine)[ ,.!]*"
            r"(?:thanks|thank you)?[ .!]*", t)):
        return GOODBYE, True
    if _THANKS.search(t):
        return THANKS, False
    if _HOW_ARE_YOU.search(t):
        return HOW_ARE_YOU, False
    if _WAIT.search(t):
        return WAIT, False
    if _GREETING.search(t) and len(t.split()) <= 4:
        return GREETING, False
    if _ANYTHING_ELSE.search(last_assistant) and re.fullmatch(r"(?:yes|yeah|yep|sure|actually yes)[ ,.!]*(?:please)?"
                                                              r"[ .!]*", t):
        return WHAT_ELSE, False
    return None


def wants_repeat(text: str) -> bool:
    return bool(_REPEAT.search(normalise(text)))
