"""Tool arguments from what the caller said, read by each tool's own schema.

`params_of(spec)` looks at the tool's `args_model` (through its JSON schema: types, formats, enums,
patterns, descriptions) and classifies every parameter (a date of birth, an amount, digits, a name,
free text...). `extract()` finds candidates of the right kind in the caller's words and keeps those
the parameter's own pydantic validation accepts, so a value the brain sends is one the tool takes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from agents.tools import ToolSpec
from media_host.brain.extraction import (
    Span,
    find_dates,
    find_digit_runs,
    find_money,
    find_name,
    find_numbers,
    find_times,
    match_literal,
    yes_no,
)
from media_host.brain.options import choose_option
from media_host.brain.text import STOPWORDS, content_tokens, spoken_to_digits, token, words, wordset

PERSON_NAME_FIELDS = ("name", "full_name", "first_name", "last_name", "patient_name", "caller_name",
                      "customer_name", "patient")
MONEY_HINTS = ("dollar", "amount", "price", "cost", "fee", "$", "usd", "payment", "total")
GENERIC_NAME_PARTS = frozenset({"number", "id", "of", "the", "no", "value", "text", "code"})
# Extra words that point at a parameter, by a part of its name.
KEYWORD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "birth": ("born", "dob", "birthday"), "last": ("ending", "end"), "card": ("ending", "end"),
    "reference": ("ref", "booking", "confirmation"), "phone": ("mobile", "cell"), "zip": ("postcode", "postal"),
    "amount": ("dollar", "cost", "charge"), "day": ("#weekday", "#month", "tomorrow", "date"),
}
# Words that ask for something rather than describe it: a free-text argument needs more than these.
REQUEST_WORDS = wordset("""speak human someone report help question ask advice see problem issue regard concern
feel well sick not make open start file lodge new case medical health # #month #weekday describe something
talk hello""")
NAME_STOP = STOPWORDS | wordset("""free available open busy around about this next week tomorrow today
morning afternoon evening anytime time slot appointment please on at in is are with #""")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # birth_date date money number integer bool literal digits pattern person_name entity text other
    required: bool
    description: str
    values: tuple[str, ...]  # allowed values of a literal
    keywords: frozenset[str]  # routing tokens that point at this parameter
    adapter: TypeAdapter[Any] = field(compare=False, repr=False)

    def check(self, value: Any) -> Any:
        """The value as the tool will see it (JSON-ready), or None if the tool would refuse it."""
        if value is None:
            return None
        try:
            valid = self.adapter.validate_python(value)
        except (ValidationError, ValueError, TypeError):
            return None
        return None if valid is None else self.adapter.dump_python(valid, mode="json")


def _schema_kind(name: str, prop: dict[str, Any], description: str) -> str:
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    node = {**branches[0], **{k: v for k, v in prop.items() if k != "anyOf"}} if branches else prop
    typ, fmt, lowered = node.get("type"), node.get("format"), f"{name} {description}".lower()
    if "enum" in node or "const" in node:
        return "literal"
    if typ == "boolean":
        return "bool"
    if typ == "integer":
        return "integer"
    if typ == "number":
        return "money" if any(h in lowered for h in MONEY_HINTS) else "number"
    if typ == "string" and fmt == "date":
        return "birth_date" if "birth" in lowered or "dob" in name else "date"
    if typ == "string" and "pattern" in node:
        return "digits" if re.fullmatch(r"\^?(\[0-9\]|\\d)(\{[0-9,]+\}|\+)\$?", node["pattern"]) else "pattern"
    if typ == "string":
        if name in PERSON_NAME_FIELDS or name.endswith("_name"):
            return "person_name"
        return "entity" if "name" in description.lower() else "text"
    return "other"


def _keywords(name: str) -> frozenset[str]:
    parts = [re.sub(r"\d", "", p) for p in name.split("_")]
    out = set()
    for part in parts:
        if part and part not in GENERIC_NAME_PARTS:
            out.add(token(part) or part)
            out.update(token(s) or s for s in KEYWORD_SYNONYMS.get(part, ()))
    return frozenset(out)


@lru_cache(maxsize=512)
def _params(model: type[BaseModel]) -> tuple[Param, ...]:
    schema = model.model_json_schema()
    props = schema.get("properties", {})
    out = []
    for name, info in model.model_fields.items():
        prop = props.get(name, {})
        description = info.description or prop.get("description", "")
        annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        node = next((b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"), prop)
        values = tuple(str(v) for v in node.get("enum", [node["const"]] if "const" in node else []))
        out.append(Param(name=name, kind=_schema_kind(name, prop, description), required=info.is_required(),
                         description=description, values=values, keywords=_keywords(name),
                         adapter=TypeAdapter(annotation)))
    return tuple(out)


def params_of(spec: ToolSpec) -> tuple[Param, ...]:
    return _params(spec.args_model)


@dataclass
class Context:
    today: date
    awaiting: str | None = None  # the parameter the brain just asked for
    options: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)  # offered choices, by parameter
    routed: bool = False  # the words were routed to this tool: free text may describe the request
    strict: bool = False  # the words were about something else: numbers count only where they are named


def _nearby(text: str, span: Span) -> set[str]:
    before = text[max(0, span.start - 32):span.start]
    return {t for t in content_tokens(before) if t != "#"}


KIND_CLASSES = ({"digits", "pattern", "integer", "number", "money"}, {"date", "birth_date"})


def _same_class(a: Param, b: Param) -> bool:
    return any(a.kind in c and b.kind in c for c in KIND_CLASSES)


def _rank(param: Param, others: Sequence[Param], text: str, span: Span, *, awaiting: str | None,
          strict: bool = False) -> int:
    """How well a candidate fits a parameter: 3 awaited, 2 named nearby, 1 unnamed, 0 another's keyword.
    While another parameter is awaited, a bare number is that one's ("1980" is not an account number)."""
    near = _nearby(text, span)
    if param.name == awaiting:
        return 3
    if near & param.keywords:
        return 2
    rivals = [o for o in others if o is not param and _same_class(o, param)]
    if any(near & (o.keywords - param.keywords) for o in rivals):
        return 0
    ambiguous = param.kind not in ("date", "birth_date", "money")
    if ambiguous and (strict or (awaiting is not None and any(o.name == awaiting for o in others))):
        return 0
    return 1


def _pick(param: Param, params: Sequence[Param], text: str, spans: Sequence[Span], *, awaiting: str | None,
          convert: Any = None, strict: bool = False) -> tuple[Any, Span] | None:
    ranked = sorted(((-_rank(param, params, text, s, awaiting=awaiting, strict=strict), i, s)
                     for i, s in enumerate(spans)))
    for neg_rank, _, span in ranked:
        if neg_rank == 0:
            break
        value = param.check(convert(span.value) if convert else span.value)
        if value is not None:
            return value, span
    return None


def _pattern_candidates(raw: str, digits_text: str, runs: Sequence[Span]) -> list[Span]:
    """For patterned ids: runs with the letter said before them ("l 2001" -> "L2001"), the runs
    themselves, and raw tokens (an id read out as written, "patel-20251203-0900")."""
    out = []
    for span in runs:
        before = digits_text[max(0, span.start - 3):span.start]
        letter = re.search(r"\b([a-z])[\s-]*$", before)
        if letter:
            out.append(Span(span.start - len(before) + letter.start(1), span.end, letter.group(1) + span.value))
        out.append(span)
    out.extend(Span(m.start(), m.end(), m.group(0)) for m in re.finditer(r"[\w][\w\-]{2,}", raw))
    return out


LONG_TEXT = re.compile(r"\b(?:words|describ\w*|what happened|symptoms?|details?|explain\w*|message|notes?|"
                       r"reason|summary|comment|question|feedback|issue|problem|briefly)\b", re.IGNORECASE)
_EXAMPLE = re.compile(r"\b(?:like|e\.g\.|such as|for example)\s+['\"]?([A-Za-z]+)([\s-]?)(\d+)\b")


def _free_text(text: str, spec: ToolSpec, param: Param, ctx: Context, found: dict[str, Any]) -> str | None:
    """Free text. A description ("in the caller's words") takes the whole utterance when it says more
    than the request; a short value ("Which pizza") takes what is left once the request's own words
    and the other arguments are set aside, or an id shaped like the description's example ("like P-100")."""
    cleaned = " ".join(text.split()).strip()
    awaited = param.name == ctx.awaiting
    known = set(content_tokens(" ".join([spec.name.replace("_", " "), spec.description])))
    if LONG_TEXT.search(f"{param.name} {param.description}"):
        if awaited:
            return cleaned or None
        if not (ctx.routed and param.required):
            return None
        return cleaned if set(content_tokens(cleaned)) - REQUEST_WORDS - known else None
    shaped = _EXAMPLE.search(param.description)
    if shaped:
        letters, sep = shaped.group(1), shaped.group(2).strip() or shaped.group(2)
        m = re.search(rf"\b({re.escape(letters)})[\s-]*(\d+)\b", spoken_to_digits(text), re.IGNORECASE)
        if m:
            return f"{letters.upper() if letters.isupper() else letters}{sep}{m.group(2)}"
        if not awaited:
            return None
    if not (awaited or ctx.routed):
        return None
    used = {t for value in found.values() for t in content_tokens(str(value))}
    kept = [w for w in words(text) if (t := token(w)) and t not in REQUEST_WORDS and t not in known
            and t not in used and t != "#"]
    if kept:
        return " ".join(kept)
    return re.sub(r"[^\w\s'-]", "", cleaned).strip() or None if awaited else None


def _entity(text: str, param: Param, awaiting: bool) -> str | None:
    """A named thing other than the caller ("Dr. Patel" for a `doctor` parameter)."""
    words = "|".join(sorted({param.name.replace("_", " "), *(["dr", "doctor"] if "doctor" in param.name else [])},
                            key=len, reverse=True))
    for m in re.finditer(rf"\b(?:{words})\.?\s+([A-Za-z][A-Za-z'\-]+(?:\s+[A-Za-z][A-Za-z'\-]+)?)", text, re.I):
        kept = []
        for word in m.group(1).split():
            if token(word.lower()) in NAME_STOP or word.lower() in NAME_STOP:
                break
            kept.append(word)
        if kept:
            return " ".join(w.capitalize() if w.islower() else w for w in kept)
    return find_name(text, awaiting=True) if awaiting else None


class _Extraction:
    """One pass over the caller's words for one tool: typed values claim their spans first."""

    def __init__(self, spec: ToolSpec, text: str, ctx: Context) -> None:
        self.spec, self.text, self.ctx = spec, text, ctx
        self.params = params_of(spec)
        self.digits = spoken_to_digits(text)
        self.dates = find_dates(self.digits, ctx.today)
        self.money = find_money(self.digits)
        self.taken: list[Span] = [*self.dates, *self.money, *find_times(self.digits)]
        self.runs = find_digit_runs(self.digits, self.taken)
        self.found: dict[str, Any] = {}

    def pick(self, param: Param, spans: Sequence[Span], convert: Any = None) -> None:
        picked = _pick(param, self.params, self.digits, spans, awaiting=self.ctx.awaiting, convert=convert,
                       strict=self.ctx.strict)
        if picked is not None:
            self.found[param.name] = picked[0]
            self.taken.append(picked[1])

    def typed(self, param: Param) -> None:
        if param.kind == "birth_date":
            self.pick(param, [d for d in self.dates if not d.partial], date.isoformat)
        elif param.kind == "date":
            self.pick(param, self.dates, date.isoformat)
        elif param.kind == "money":
            spans = self.money or (find_numbers(self.digits, self.taken) if self.ctx.awaiting == param.name else [])
            self.pick(param, spans, float)

    def identifier(self, param: Param) -> None:
        runs = [r for r in self.runs if all(not r.overlaps(t) for t in self.taken)]
        if param.kind == "digits":
            self.pick(param, runs)
        elif param.kind == "pattern":
            self.pick(param, _pattern_candidates(self.text, self.digits, runs))
        elif param.kind in ("integer", "number"):
            self.pick(param, find_numbers(self.digits, self.taken), int if param.kind == "integer" else float)

    def worded(self, param: Param) -> None:
        awaited = self.ctx.awaiting == param.name
        value: Any = None
        if param.kind == "literal":
            value = match_literal(self.text, param.values)
        elif param.kind == "bool":
            value = _boolean(self.text, param, awaited)
        elif param.kind == "person_name":
            value = find_name(self.text, awaiting=awaited)
        elif param.kind == "entity":
            value = _entity(self.text, param, awaited)
        self.keep(param, value)

    def free(self, param: Param) -> None:
        if param.kind == "text":
            self.keep(param, _free_text(self.text, self.spec, param, self.ctx, self.found))

    def keep(self, param: Param, value: Any) -> None:
        checked = param.check(value)
        if checked is not None:
            self.found[param.name] = checked

    def chosen(self, param: Param) -> None:
        if not (self.ctx.routed or self.ctx.awaiting == param.name):
            return  # "12/9/1969" answers the date of birth; it does not pick the slot with a 9 in it
        option = choose_option(self.text, self.ctx.options.get(param.name, []))
        value = param.check(option.get(param.name)) if option else None
        if value is not None:
            self.found[param.name] = value

    def run(self) -> dict[str, Any]:
        for step in (self.typed, self.identifier, self.worded, self.chosen, self.free):
            for param in self.params:
                if param.name not in self.found:
                    step(param)
        return self.found


def extract(spec: ToolSpec, text: str, ctx: Context) -> dict[str, Any]:
    """The arguments of `spec` found in `text`, each already validated by the tool's schema."""
    return _Extraction(spec, text, ctx).run()


def _boolean(text: str, param: Param, awaiting: bool) -> bool | None:
    if awaiting:
        return yes_no(text)
    said = content_tokens(text)
    hints = param.keywords | {token(w) for w in re.findall(r"[a-z]+", param.description.lower().split("(")[0])[:3]
                              if token(w)}
    for i, t in enumerate(said):
        if t in hints:
            return "not" not in said[max(0, i - 2):i]
    return None


def validate(spec: ToolSpec, args: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """All arguments with defaults, as the tool will see them; or None and the fields it refuses."""
    try:
        return spec.args_model.model_validate(dict(args)).model_dump(mode="json"), []
    except ValidationError as exc:
        return None, sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})


def missing(spec: ToolSpec, args: Mapping[str, Any]) -> list[str]:
    return [p.name for p in params_of(spec) if p.required and p.name not in args]
