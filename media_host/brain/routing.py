"""Which tool the caller's words ask for: weighted token overlap with each tool's phrases.

Every tool is described by phrases: its example caller phrases, its description and its name (for a
generated handoff tool: the target agent's `handoff_examples`, its description and its name). Words
are normalised (`text.content_tokens`: stemming, synonyms, stopwords) and weighted by how rare they
are among this agent's tools (IDF), so "card" counts less than "stolen" in the cards agent.

A phrase scores a recall-weighted F-measure: how much of the phrase the caller said, and how much of
what the caller said (among words any tool knows) the phrase covers. Callers add filler words, so
recall matters more. A tool's score is its best phrase's; handoffs are discounted a little, so the
current agent's own tool wins a near tie. Every decision keeps all scores, for logs and tests.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agents.tools import ToolSpec
from media_host.brain.text import content_tokens, normalise

log = logging.getLogger(__name__)

THRESHOLD = 0.45  # below this, nothing was understood
STRONG = 0.7  # a clear request: it may interrupt what the dialogue was waiting for
HANDOFF_DISCOUNT = 0.9
WEIGHTS = {"example": 1.0, "description": 0.7, "name": 0.8, "agent": 0.6}
BETA2 = 4.0  # F-beta with beta 2: recall counts four times as much as precision
WEAK_TOKENS = frozenset({"not", "#"})  # never enough on their own

_HUMAN = re.compile(r"\b(?:human|humans|person|people|representative|rep|operator|agent|colleague|advisor|"
                    r"adviser|staff|manager|supervisor|real person|live person|someone real)\b")
_ASK = re.compile(r"\b(?:speak|talk|transfer|connect|put me through|get me|give me|want|need|let me|can i|"
                  r"could i|may i|like to|put me|through to|a real|please)\b")
_SOMEONE = re.compile(r"\b(?:speak|talk) (?:to|with) (?:someone|somebody|anyone|a person)\b")
_PREAMBLE = re.compile(r"^Hand the caller over to the \w+ agent\.\s*")


@dataclass(frozen=True)
class Phrase:
    text: str
    tokens: frozenset[str]
    weight: float
    kind: str


@dataclass(frozen=True)
class ToolDoc:
    name: str
    kind: str
    phrases: tuple[Phrase, ...]
    vocabulary: frozenset[str]
    target: str | None = None  # for a handoff: the agent it leads to


@dataclass(frozen=True)
class Decision:
    """The outcome of routing one utterance: the tool (or None), and why."""

    tool: str | None
    score: float
    phrase: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    rule: str = ""  # "transfer rule" when the explicit request for a person decided it

    def explain(self) -> str:
        ranked = sorted(self.scores.items(), key=lambda kv: -kv[1])[:4]
        listed = ", ".join(f"{name}={score:.2f}" for name, score in ranked)
        chosen = f"{self.tool} ({self.score:.2f}, {self.rule or repr(self.phrase)})" if self.tool else "nothing"
        return f"{chosen}; {listed}"


def _phrase(text: str, kind: str) -> Phrase | None:
    tokens = frozenset(content_tokens(text))
    return Phrase(text, tokens, WEIGHTS[kind], kind) if tokens else None


def _doc(spec: ToolSpec) -> ToolDoc:
    texts: list[tuple[str, str]] = [(e, "example") for e in spec.examples]
    target = spec.name.removeprefix("handoff_to_") if spec.kind == "handoff" else None
    if target is not None:
        texts += [(_PREAMBLE.sub("", spec.description), "description"), (target.replace("_", " "), "agent")]
    else:
        texts += [(spec.description, "description"), (spec.name.replace("_", " "), "name")]
    phrases = tuple(p for p in (_phrase(t, k) for t, k in texts) if p is not None)
    vocabulary = frozenset(t for p in phrases for t in p.tokens)
    return ToolDoc(spec.name, spec.kind, phrases, vocabulary, target)


class Router:
    """The routing index of one agent's tools (built once per tool set, then shared by every call)."""

    def __init__(self, tools: Sequence[ToolSpec]) -> None:
        self.docs = tuple(_doc(t) for t in tools)
        n = max(len(self.docs), 1)
        df: dict[str, int] = {}
        for doc in self.docs:
            for t in doc.vocabulary:
                df[t] = df.get(t, 0) + 1
        self.idf = {t: 1.0 + math.log(n / d) for t, d in df.items()}
        self.vocabulary = frozenset(df)

    def _weight(self, tokens: Iterable[str]) -> float:
        return sum(self.idf.get(t, 0.0) for t in tokens)

    def _score(self, said: frozenset[str], phrase: Phrase) -> float:
        shared = said & phrase.tokens
        if shared <= WEAK_TOKENS:  # "no thanks" shares only "not" with "...when you cannot help them"
            return 0.0
        common = self._weight(shared)
        precision = common / max(self._weight(said & self.vocabulary), common)
        if phrase.kind == "description":  # long by nature: how much of the request it covers is what counts
            return phrase.weight * precision
        recall = common / self._weight(phrase.tokens)
        return phrase.weight * (1 + BETA2) * precision * recall / (BETA2 * precision + recall)

    def scores(self, text: str, exclude: Iterable[str] = (), ignore: frozenset[str] = frozenset()
               ) -> dict[str, tuple[float, str]]:
        said = frozenset(content_tokens(text)) - ignore
        excluded = set(exclude)
        out: dict[str, tuple[float, str]] = {}
        for doc in self.docs:
            if doc.name in excluded:
                continue
            best, phrase = 0.0, ""
            for p in doc.phrases:
                s = self._score(said, p)
                if s > best:
                    best, phrase = s, p.text
            if doc.kind == "handoff":
                best *= HANDOFF_DISCOUNT
            out[doc.name] = (round(best, 4), phrase)
        return out

    def route(self, text: str, exclude: Iterable[str] = (), threshold: float = THRESHOLD,
              ignore: frozenset[str] = frozenset()) -> Decision:
        """The tool these words ask for, if any scores above `threshold` (`ignore`: words already
        accounted for, e.g. the verification details when looking for what else the caller wants)."""
        scored = self.scores(text, exclude, ignore)
        flat = {name: s for name, (s, _) in scored.items()}
        transfer = next((d.name for d in self.docs if d.kind == "transfer" and d.name in scored), None)
        named = self._named_agent(text, scored)
        if named is not None:
            decision = Decision(named, HANDOFF_DISCOUNT, "", flat, rule="named agent")
        elif transfer is not None and self._asks_for_a_person(text):
            decision = Decision(transfer, 1.0, "", flat, rule="transfer rule")
        else:
            # Ties go to the tool listed first: the agent's own tools come before its handoffs.
            best = max(scored, key=lambda name: scored[name][0], default=None)
            if best is None or scored[best][0] < threshold:
                decision = Decision(None, scored[best][0] if best else 0.0, "", flat)
            else:
                decision = Decision(best, scored[best][0], scored[best][1], flat)
        log.debug("offline brain routing %s: %s", content_tokens(text), decision.explain())
        return decision

    def _named_agent(self, text: str, candidates: Iterable[str]) -> str | None:
        """A handoff the caller asks for by the agent's name: "put me through to the fraud team"."""
        t = normalise(text)
        for d in self.docs:
            if d.target and d.name in candidates:
                name = re.escape(d.target.replace("_", " ").rstrip("s"))
                if re.search(rf"\b{name}s? (?:team|department|desk|line|services?|specialists?)\b", t) or \
                        re.search(rf"\b(?:speak|talk|transfer|connect|put) (?:me )?(?:to|with|through to) "
                                  rf"(?:the |a |an )?{name}s?\b", t):
                    return d.name
        return None

    def _asks_for_a_person(self, text: str) -> bool:
        t = normalise(text)
        said = set(content_tokens(text))
        if _HUMAN.search(t):
            return bool(_ASK.search(t)) or len(said) <= 3
        return bool(_SOMEONE.search(t)) and len(said) <= 4

    def doc(self, name: str) -> ToolDoc | None:
        return next((d for d in self.docs if d.name == name), None)


_ROUTERS: dict[tuple[tuple[str, str, str, tuple[str, ...]], ...], Router] = {}


def router_for(tools: Sequence[ToolSpec]) -> Router:
    """The shared router of a tool set (cached: agents are immutable catalog versions)."""
    key = tuple((t.name, t.kind, t.description, t.examples) for t in tools)
    router = _ROUTERS.get(key)
    if router is None:
        if len(_ROUTERS) > 256:
            _ROUTERS.clear()
        router = _ROUTERS[key] = Router(tools)
    return router
