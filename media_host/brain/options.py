"""Choices a tool result offered ("I have Tuesday at 9:30, Wednesday at 10:30..."), and which one the
caller picks: by position ("the second one") or by what they say of it ("the 10:30 with Dr. Patel")."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from media_host.brain.extraction import find_times, ordinal_choice
from media_host.brain.text import STOPWORDS, spoken_to_digits, stem


def _option_keys(text: str) -> set[str]:
    """What tells options apart: words (stemmed, not folded into classes: "Tuesday" is not
    "Wednesday"), numbers and times of day."""
    digits = spoken_to_digits(text)
    keys = {w if w.isdigit() else stem(w) for w in re.findall(r"[a-z]+|\d+", digits) if w not in STOPWORDS}
    keys.update(f"t{h % 12}:{m:02d}" for h, m in (s.value for s in find_times(digits)))
    return keys


def choose_option(text: str, options: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The option the caller picked: by position ("the second one") or by what they said of it."""
    if not options:
        return None
    index = ordinal_choice(spoken_to_digits(text))
    if index is not None and -len(options) <= index < len(options):
        return options[index]
    said = _option_keys(text)
    scores = [len(said & _option_keys(" ".join(str(v) for v in o.values() if isinstance(v, str | int))))
              for o in options]
    best = max(scores)
    return options[scores.index(best)] if best > 0 and scores.count(best) == 1 else None


def options_in(messages: Sequence[Any], keys: Sequence[str], depth: int = 8) -> dict[str, list[dict[str, Any]]]:
    """Choices a recent tool result offered: dicts carrying one of `keys` (e.g. the slots with a
    `slot_id` that book_appointment takes), from the most recent tool message that has any."""
    wanted = set(keys)
    for message in list(messages)[-depth:][::-1]:
        if getattr(message, "role", None) != "tool":
            continue
        try:
            data = json.loads(message.content)
        except (ValueError, TypeError):
            continue
        found: dict[str, list[dict[str, Any]]] = {}
        _collect(data, wanted, found, 0)
        if found:
            return found
    return {}


def _collect(node: Any, wanted: set[str], found: dict[str, list[dict[str, Any]]], level: int) -> None:
    """Dicts carrying a wanted key, in the order a reply reads them (depth first)."""
    if level > 4:
        return
    if isinstance(node, dict):
        for key in sorted(wanted & node.keys()):
            found.setdefault(key, []).append(node)
        for value in node.values():
            _collect(value, wanted, found, level + 1)
    elif isinstance(node, list):
        for item in node:
            _collect(item, wanted, found, level + 1)
