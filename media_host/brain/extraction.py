"""Values in what a caller said: dates, money, digit strings, numbers, times, yes/no, names, choices.

Every finder reads the text as `spoken_to_digits` writes it, so "March third nineteen eighty",
"March 3rd, 1980" and "3/3/1980" go through the same patterns. Finders return `Span`s (where the value
was found) so that one piece of text is never read twice: the year of a date is not also an account
number. Dates are month first (en-US): "3/4/1980" is March 4th.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from media_host.brain.text import MONTH_ABBREVIATIONS, MONTHS, STOPWORDS, WEEKDAYS, normalise, stem, words, wordset


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    value: Any
    partial: bool = False  # a date without an explicit year, a relative day...

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


def _free(span: Span, taken: Sequence[Span]) -> bool:
    return not any(span.overlaps(t) for t in taken)


# --- dates ---------------------------------------------------------------------------------------------
_MONTH = "|".join(sorted([*MONTHS, *MONTH_ABBREVIATIONS], key=len, reverse=True))
_YEAR = r"(?P<year>\d{4}|\d{2} \d{2}|\d{2} 0 \d|'\d{2}|\d{2})"
_YEAR_TAIL = rf"(?:\s*,?\s*(?:of\s+|in\s+)?{_YEAR}\b)?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?\b"
DATE_PATTERNS = (
    re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})\b"),
    re.compile(r"\b(?P<month>\d{1,2})[/.-](?P<day>\d{1,2})[/.-](?P<year>\d{4}|\d{2})\b"),
    # Day first before month first: in "the 3rd of march 19 80", "march 19 80" is not March 19.
    re.compile(rf"\b(?:the\s+)?{_DAY}\s+(?:of\s+)?(?P<month>{_MONTH})\b{_YEAR_TAIL}"),
    re.compile(rf"\b(?P<month>{_MONTH})\.?\s+(?:the\s+)?{_DAY}{_YEAR_TAIL}"),
)
_RELATIVE = re.compile(r"\b(?:(?P<after>(?:the\s+)?day after tomorrow)|(?P<tomorrow>tomorrow)|(?P<today>today)|"
                       rf"(?:(?P<mod>next|this|coming)\s+)?(?P<weekday>{'|'.join(WEEKDAYS)}))\b")
_DAY_ONLY = re.compile(r"\bthe (?P<day>\d{1,2})(?:st|nd|rd|th)\b(?! (?:one|option|slot|time|choice)\b)")
_SPOKEN_DATE = re.compile(rf"\b(?:{'|'.join(WEEKDAYS)}),?\s+(?P<month>{'|'.join(MONTHS)})\s+(?P<day>\d{{1,2}}),?\s+"
                          r"(?P<year>\d{4})\b")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def _month(value: str) -> int:
    if value.isdigit():
        return int(value)
    name = MONTH_ABBREVIATIONS.get(value, value)
    return MONTHS.index(name) + 1


def _year(value: str, today: date) -> int:
    digits = re.sub(r"\D", "", value)
    if len(digits) == 4:
        return int(digits)
    yy = int(digits)
    return 2000 + yy if yy <= today.year % 100 else 1900 + yy


def _upcoming(month: int, day: int, today: date) -> date | None:
    for year in (today.year, today.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None


def _absolute_dates(text: str, today: date, relative: bool) -> list[Span]:
    found: list[Span] = []
    for index, pattern in enumerate(DATE_PATTERNS):
        for m in pattern.finditer(text):
            year_text = m.group("year")
            month, day = _month(m.group("month")), int(m.group("day"))
            if index == 1 and month > 12 >= day:  # "25/12/1980": written day first after all
                month, day = day, month
            if not _free(Span(m.start(), m.end(), None), found):
                continue
            try:
                if year_text:
                    found.append(Span(m.start(), m.end(), date(_year(year_text, today), month, day)))
                    continue
            except ValueError:
                continue
            upcoming = _upcoming(month, day, today) if relative and 1 <= month <= 12 else None
            if upcoming is not None:
                found.append(Span(m.start(), m.end(), upcoming, partial=True))
    return found


def _relative_dates(text: str, today: date, found: list[Span]) -> None:
    for m in _RELATIVE.finditer(text):
        if m.group("after"):
            value = today + timedelta(days=2)
        elif m.group("tomorrow"):
            value = today + timedelta(days=1)
        elif m.group("today"):
            value = today
        else:
            ahead = (WEEKDAYS.index(m.group("weekday")) - today.weekday()) % 7
            # "Tuesday" said on a Tuesday means next week's, unless the caller says "this Tuesday".
            value = today + timedelta(days=ahead if ahead or m.group("mod") == "this" else 7)
        span = Span(m.start(), m.end(), value, partial=True)
        if _free(span, found):
            found.append(span)
    for m in _DAY_ONLY.finditer(text):  # "the 5th": this month's, or next month's if it has passed
        day = int(m.group("day"))
        for months_ahead in (0, 1):
            month = (today.month - 1 + months_ahead) % 12 + 1
            year = today.year + (today.month - 1 + months_ahead) // 12
            try:
                value = date(year, month, day)
            except ValueError:
                continue
            span = Span(m.start(), m.end(), value, partial=True)
            if value >= today and _free(span, found):
                found.append(span)
                break


def find_dates(text: str, today: date, *, relative: bool = True) -> list[Span]:
    """Dates in `text` (as `spoken_to_digits` writes it). Without `relative`, only full dates with a
    year count (a date of birth); otherwise also "tomorrow", "next Tuesday" and "March 3rd"."""
    found = _absolute_dates(text, today, relative)
    if relative:
        _relative_dates(text, today, found)
    return sorted(found, key=lambda s: s.start)


def today_from(text: str) -> date | None:
    """The date a system prompt states ("Today is Monday, December 1, 2025" or an ISO date)."""
    lowered = text.lower()
    m = _SPOKEN_DATE.search(lowered)
    if m:
        try:
            return date(int(m.group("year")), MONTHS.index(m.group("month")) + 1, int(m.group("day")))
        except ValueError:
            pass
    iso = _ISO_DATE.search(lowered)
    if iso:
        try:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        except ValueError:
            return None
    return None


# --- money, numbers, digit strings, times ------------------------------------------------------------------
_AMOUNT = r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cents>\d{1,2}))?"
MONEY_PATTERNS = (
    re.compile(rf"\$\s?{_AMOUNT}(?:\s*(?:dollars?|bucks|usd)\b)?"),
    re.compile(rf"\b{_AMOUNT}\s*(?:dollars?|bucks|usd)\b(?:\s*(?:and\s+)?(?P<cents2>\d{{1,2}})(?:\s*cents?)?\b)?"),
    re.compile(r"\b(?P<only_cents>\d{1,2})\s*cents?\b"),
)


def find_money(text: str) -> list[Span]:
    found: list[Span] = []
    for pattern in MONEY_PATTERNS:
        for m in pattern.finditer(text):
            groups = m.groupdict()
            if groups.get("only_cents"):
                value = Decimal(groups["only_cents"]) / 100
            else:
                value = Decimal(groups["int"].replace(",", ""))
                cents = groups.get("cents") or groups.get("cents2")
                if cents:
                    value += Decimal(cents.ljust(2, "0")) / 100
            span = Span(m.start(), m.end(), value)
            if _free(span, found):
                found.append(span)
    return sorted(found, key=lambda s: s.start)


_TIME_PATTERNS = (
    re.compile(r"\b(?P<h>\d{1,2})(?:[:. ](?P<m>[0-5]\d))?\s*(?P<ampm>a\.?\s?m\b\.?|p\.?\s?m\b\.?|oclock\b)"),
    re.compile(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})\b"),
    re.compile(r"\b(?:at|around|about)\s+(?P<h>\d{1,2})(?:\s(?P<m>[1-5]\d)\b)?(?![\d:/-])"),
)


def find_times(text: str) -> list[Span]:
    """Times of day as (hour 0-23, minute); a time without am/pm keeps the hour as said (1-12)."""
    found: list[Span] = []
    for pattern in _TIME_PATTERNS:
        for m in pattern.finditer(text):
            hour, minute = int(m.group("h")), int(m.group("m") or 0)
            ampm = (m.groupdict().get("ampm") or "").replace(".", "").replace(" ", "")
            if hour > 23 or minute > 59 or (ampm in ("am", "pm") and not 1 <= hour <= 12):
                continue
            if ampm == "pm" and hour < 12:
                hour += 12
            elif ampm == "am" and hour == 12:
                hour = 0
            span = Span(m.start(), m.end(), (hour, minute))
            if _free(span, found):
                found.append(span)
    return sorted(found, key=lambda s: s.start)


_DIGIT_RUN = re.compile(r"\b\d+\b(?:[ ,.\-]{1,3}\b\d+\b)*")
_LAST_FOUR = re.compile(r"\blast (?:4|four)(?: digits?| numbers?)?\b")


def find_digit_runs(text: str, taken: Sequence[Span] = ()) -> list[Span]:
    """Digit strings as callers read them: "4567", "4 5 6 7", "45 67", "4-5-6-7" all give "4567"."""
    text = _LAST_FOUR.sub(lambda m: "x" * len(m.group(0)), text)  # "the last four: 1 2 3 4"
    found = []
    for m in _DIGIT_RUN.finditer(text):
        span = Span(m.start(), m.end(), re.sub(r"\D", "", m.group(0)))
        if _free(span, taken):
            found.append(span)
    return found


def find_numbers(text: str, taken: Sequence[Span] = ()) -> list[Span]:
    """Single numbers ("5", "twelve", "1,200", "2.5") not already read as something else, nor part of
    a sequence of digits ("7 7 8 8" is an identifier, not a count of 7)."""
    sequences = [r for r in find_digit_runs(text) if re.search(r"\d[ ,.\-]+\d", text[r.start:r.end])]
    found = []
    for m in re.finditer(r"(?<![\d.,])\b(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?\b(?![.,]?\d)", text):
        raw = m.group(1).replace(",", "") + (f".{m.group(2)}" if m.group(2) else "")
        span = Span(m.start(), m.end(), Decimal(raw))
        if _free(span, taken) and (m.group(2) or "," in m.group(1) or _free(span, sequences)):
            found.append(span)
    return found


# --- yes / no --------------------------------------------------------------------------------------------------
_YES = re.compile(r"\b(?:yes|yeah|yea|yep|yup|ya|sure|certainly|correct|right|ok|okay|alright|go ahead|please do|"
                  r"do it|do that|absolutely|definitely|of course|affirmative|sounds good|that works|that would work|"
                  r"perfect|great|fine|please|exactly|indeed|confirm|confirmed|let us do it|why not)\b")
_NO = re.compile(r"\b(?:no|nope|nah|not|never mind|nevermind|cancel|stop|wrong|incorrect|negative|do not|"
                 r"rather not|hold on|wait)\b")
_UNSURE = re.compile(r"\b(?:not sure|do not know|no idea|maybe|perhaps|i guess)\b")


def yes_no(text: str) -> bool | None:
    """True for a yes, False for a no, None when it is neither or both (ask again)."""
    t = normalise(text)
    if _UNSURE.search(t) or not t:
        return None
    yes = [m.start() for m in _YES.finditer(t) if m.group(0) != "why not"]
    if "why not" in t:
        yes.append(t.index("why not"))
    no = [m.start() for m in _NO.finditer(t) if not t.startswith("why not", max(0, m.start() - 4))]
    if yes and not no:
        return True
    if no and not yes:
        return False
    if yes and no:
        first = min(yes + no)
        if first == 0:  # "no, that is right" / "yes, but not now" -> the first word wins
            return first in yes and first not in no
    return None


# --- names --------------------------------------------------------------------------------------------------------
_NAME_WORD = r"[A-Za-z][A-Za-z'\-]+"
_NAME_RUN = rf"(?P<name>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,3}})"
_STRONG_INTRO = re.compile(rf"\b(?:my name is|name is|the name is|patient is|patient name is|"
                           rf"this is|call me)\s+{_NAME_RUN}", re.IGNORECASE)
_WEAK_INTRO = re.compile(rf"\b(?:it is|i am|for|that is|it should be)\s+{_NAME_RUN}", re.IGNORECASE)
_NAME_STOP = wordset("""and born my date of birth please thanks thank you the dob i it is on from calling here
speaking again that was who ok okay yes so well um uh er at in with to her his their our for""")
_NOT_A_NAME = wordset("""not a an the calling looking trying just going sorry fine good well here sure yes no
okay ok hello hi hey me my calling wondering afraid about still very really""")
_FILLERS = re.compile(r"^(?:(?:yes|yeah|sure|ok|okay|so|um|uh|er|well|it is|it's|that is|that's|the name is|"
                      r"name is|my name is|the patient is|the patient's name is|patient is|this is)[,\s]+)+",
                      re.IGNORECASE)


def _tidy_name(raw: str) -> str | None:
    kept: list[str] = []
    for word in raw.replace("\u2019", "'").split():
        if kept and word.lower() in _NAME_STOP:
            break
        kept.append(word)
    if not kept or len(kept) > 4 or kept[0].lower() in _NOT_A_NAME or kept[0].lower() in _NAME_STOP:
        return None
    if sum(w.lower() in STOPWORDS or w.lower() in _NOT_A_NAME for w in kept) * 2 >= len(kept) + 1:
        return None  # "feeling well", "just a question": words, not a name
    return " ".join(w.capitalize() if w.islower() or w.isupper() else w for w in kept)


def find_name(text: str, *, awaiting: bool = False) -> str | None:
    """A person's name: "my name is Ada Lovelace"; when the name was just asked for, also "It's Ada
    Lovelace" or just "Ada Lovelace"."""
    clean = re.sub(r"[^\w\s'\-]", " ", text.replace("\u2019", "'")).strip()
    clean = re.sub(r"'s name is\b", " name is", clean)
    clean = re.sub(r"\b(i|it|that|name)('m|'s)\b", lambda m: m.group(1) + (" am" if m.group(2) == "'m" else " is"),
                   clean, flags=re.IGNORECASE)
    for pattern in (_STRONG_INTRO, *((_WEAK_INTRO,) if awaiting else ())):
        for m in pattern.finditer(clean):
            name = _tidy_name(m.group("name"))
            if name:
                return name
    if awaiting:
        bare = _FILLERS.sub("", clean).strip()
        bare = re.sub(r"\b(?:please|thanks|thank you)\b", "", bare, flags=re.IGNORECASE).strip()
        if bare and not re.search(r"\d", bare):
            return _tidy_name(bare)
    return None


# --- enumerated values and choices ---------------------------------------------------------------------------
# Near synonyms of common enumerated values, by value. Phrases are matched on stemmed words.
LITERAL_SYNONYMS: dict[str, tuple[str, ...]] = {
    "stolen": ("stolen", "stole", "steal", "theft", "thief", "robbed", "took my", "taken", "pickpocketed",
               "mugged", "snatched", "nicked", "took it"),
    "lost": ("lost", "lose", "misplaced", "missing", "can not find", "cannot find", "left it", "dropped",
             "left my", "gone"),
    "damaged": ("damaged", "broken", "broke", "cracked", "snapped", "bent", "chip", "not working",
                "stopped working", "does not work", "worn", "scratched", "demagnetised", "melted", "declined"),
    "suspected_fraud": ("fraud", "fraudulent", "hacked", "scam", "unauthorised", "unauthorized",
                        "without permission", "do not recognise", "do not recognize", "did not make",
                        "compromised", "skimmed", "cloned", "someone used", "suspicious"),
    "mortgage": ("mortgage", "home loan", "house", "home", "property"),
    "auto": ("car", "vehicle", "auto", "truck", "motorbike", "motorcycle"),
    "personal": ("personal",),
    "debit": ("debit",), "credit": ("credit",),
    "checking": ("checking", "current"), "savings": ("savings", "saving"),
    "morning": ("morning", "am"), "afternoon": ("afternoon", "pm"), "evening": ("evening", "night"),
}


def _stems(text: str) -> list[str]:
    return [stem(w) for w in words(text)]


def _find_phrase(haystack: list[str], phrase: list[str]) -> int | None:
    n = len(phrase)
    for i in range(len(haystack) - n + 1):
        if haystack[i:i + n] == phrase:
            return i
    return None


def match_literal(text: str, values: Sequence[str]) -> str | None:
    """The enumerated value the caller named, directly or by a near synonym (the earliest mentioned)."""
    haystack = _stems(text)
    best: tuple[int, int, str] | None = None
    for value in values:
        phrases = {value.replace("_", " "), *LITERAL_SYNONYMS.get(value.lower(), ())}
        for phrase in phrases:
            position = _find_phrase(haystack, _stems(phrase))
            if position is not None:
                key = (position, -len(phrase), value)
                best = key if best is None or key < best else best
    return best[2] if best else None


_ORDINAL = re.compile(rf"\b(?P<n>\d{{1,2}})(?:st|nd|rd|th)\b(?!\s+(?:of\s+)?(?:{_MONTH})\b)")
_LAST = re.compile(r"\b(?:the last|last one|the latest|latest one|the later one|later one)\b")
_FIRST = re.compile(r"\b(?:the earliest|earliest one|the earlier one|earlier one|the soonest)\b")


def ordinal_choice(text: str) -> int | None:
    """ "the second one" -> 1, "the last one" -> -1 (an index into the options last offered)."""
    for m in _ORDINAL.finditer(text):
        before = text[max(0, m.start() - 12):m.start()]
        if re.search(rf"\b(?:{_MONTH})\.?\s+(?:the\s+)?$", before):
            continue  # "March 3rd" is a date, not an option
        n = int(m.group("n"))
        if 1 <= n <= 10:
            return n - 1
    if _LAST.search(text):
        return -1
    if _FIRST.search(text):
        return 0
    return None
