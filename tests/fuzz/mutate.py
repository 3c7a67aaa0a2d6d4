"""Deterministic mutations of wire messages, driven by a seeded `random.Random`.

The property tests and the live fuzz runner share these, so any input the runner tries can be made
again from its seed, target and index alone. Mutations work on the decoded JSON (drop or rename a
field, a value of the wrong type, huge or strange strings, deep nesting, interesting numbers, bad
base64, wrong sample rates) or on the encoded text (truncation, bad escapes, stray bytes, a binary
frame where text is expected).
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable, Sequence
from random import Random
from typing import Any

Json = Any
Frame = str | bytes

INTERESTING_INTS: tuple[int, ...] = (0, -1, 1, 7, 2**15, -(2**15), 2**31 - 1, 2**31, 2**53 + 1, 2**63,
                                     -(2**63) - 1, 2**64, 10**30)
INTERESTING_FLOATS: tuple[float, ...] = (0.5, -0.0, 1e308, -1e308, 5e-324, 16000.5, 1e20)
SAMPLE_RATES: tuple[Json, ...] = (0, 1, -16000, 8000, 11025, 16000, 22050, 24000, 44100, 48000, 96000, 2**40,
                                  "16000", "24000", 16000.0, 24000.5, True, None, [16000], {"rate": 16000})
WEIRD_TEXT: tuple[str, ...] = (
    "", " ", "\x00", "a\x00b", "\u202e\u202dreversed", "🎧📞" * 8, "e" + "\u0301" * 64, "\uffff\ufffe", "\ufeffbom",
    "Ω≈ç√∫µ", "<script>alert(1)</script>", "'; DROP TABLE calls; --", "%s%n%x", "../../../etc/passwd",
    "\r\n\r\nHTTP/1.1 200 OK", "${jndi:ldap://x}", "{{7*7}}", "null", "true", "[]", "{}", "-0", "1e999",
    "\t\n\r\x0b\x0c", "\U0001d54f" * 40, "ǅǈǋ", "\u0085\u2028\u2029",
)
# Text a base64 decoder must refuse, or accept and yield an odd byte count.
BAD_BASE64: tuple[str, ...] = ("!!!", "abc", "YQ", "YQ=", "YWJj\n", " YWJj", "YW Jj", "-_-_", "====", "AAA=A",
                               "ÿÿÿÿ", "AQ==", "AAEC", "YWJj====", "=YWJj", "Y\x00Jj", "%41%41")
DISCRIMINATORS = ("kind", "type")
AUDIO_FIELDS = ("data", "audioChunk", "audio_chunk", "Data")
RATE_FIELDS = ("sampleRate", "sample_rate", "rate")


def rng_for(seed: int | str, target: str, index: int) -> Random:
    """The generator of input `index` of `target` in a run seeded `seed` (str seeds hash stably)."""
    return Random(f"{seed}:{target}:{index}")


def huge_string(rng: Random) -> str:
    return rng.choice("Aa0é🎧") * rng.choice((1_000, 5_000, 70_000, 300_000))


def deep(rng: Random, depth: int | None = None) -> Json:
    """Nesting deeper than a JSON parser's recursion limit, or just under it."""
    depth = depth or rng.choice((33, 64, 200, 1_000, 5_000))
    value: Json = rng.choice((0, "x", None))
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def any_value(rng: Random, vocabulary: Sequence[str] = ()) -> Json:
    """A value of any JSON type, biased towards the ones parsers get wrong."""
    pick = rng.randrange(12)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice((True, False))
    if pick == 2:
        return rng.choice(INTERESTING_INTS)
    if pick == 3:
        return rng.choice(INTERESTING_FLOATS)
    if pick == 4:
        return rng.choice(WEIRD_TEXT)
    if pick == 5:
        return huge_string(rng) if rng.random() < 0.3 else "x" * rng.randrange(1, 300)
    if pick == 6:
        return [any_value(rng, vocabulary) for _ in range(rng.randrange(4))]
    if pick == 7:
        return {rng.choice(WEIRD_TEXT + tuple(vocabulary) or ("k",)): any_value(rng) for _ in range(rng.randrange(3))}
    if pick == 8:
        return deep(rng, rng.choice((5, 40)))
    if pick == 9 and vocabulary:
        return rng.choice(vocabulary)
    if pick == 10:
        return rng.choice(BAD_BASE64)
    return random_text(rng, 40)


_ALPHABET = string.printable + '{}[]":,\\' * 4 + "éΩ🎧\u202e\x00\ufeff"


def random_text(rng: Random, limit: int = 2_000) -> str:
    # One draw for the whole string: cheap with hypothesis's generator too.
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in rng.randbytes(rng.randrange(limit + 1)))


def random_bytes(rng: Random, limit: int = 4_000) -> bytes:
    return rng.randbytes(rng.randrange(limit + 1))


# --- structural mutations ------------------------------------------------------------------------------

Slot = tuple[Json, Any]  # a container and the key (dict) or index (list) of one of its values


def _slots(doc: Json) -> list[Slot]:
    found: list[Slot] = []
    stack = [doc]
    while stack and len(found) < 500:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                found.append((node, key))
                stack.append(value)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found.append((node, index))
                stack.append(value)
    return found


def _rename(key: str, rng: Random) -> str:
    options = [key.upper(), key.lower(), key + "_", "_" + key, key[:-1] or "x", key.swapcase(), key + "\u200b",
               "".join(f"_{c.lower()}" if c.isupper() else c for c in key)]
    return rng.choice(options)


def _interesting_for(key: Any, value: Json, rng: Random, vocabulary: Sequence[str]) -> Json:
    """A replacement that knows what the slot holds: a sample rate, audio, a discriminator, a number."""
    if key in RATE_FIELDS:
        return rng.choice(SAMPLE_RATES)
    if key in AUDIO_FIELDS:
        choices = [rng.choice(BAD_BASE64), base64.b64encode(rng.randbytes(rng.choice((1, 3, 641)))).decode(),
                   base64.b64encode(bytes(rng.choice((96_002, 200_000)))).decode(), ""]
        return rng.choice(choices)
    if key in DISCRIMINATORS and vocabulary:
        kind = rng.choice(vocabulary)
        return rng.choice((kind, kind.lower(), kind.upper(), kind + " ", kind[:-1], kind * 2))
    if isinstance(value, bool):
        return rng.choice((not value, 0, 1, "true", None))
    if isinstance(value, int | float):
        return rng.choice(INTERESTING_INTS + INTERESTING_FLOATS + (str(value), None))
    return any_value(rng, vocabulary)


def copy_json(doc: Json) -> Json:
    """A copy of a JSON document, without recursion (documents here nest deeper than the stack)."""
    root: list[Json] = [doc]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        value = container[key]
        if isinstance(value, dict):
            container[key] = dict(value)
            stack.extend((container[key], k) for k in value)
        elif isinstance(value, list):
            container[key] = list(value)
            stack.extend((container[key], i) for i in range(len(value)))
    return root[0]


def mutate(doc: Json, rng: Random, vocabulary: Sequence[str] = (), rounds: int | None = None) -> Json:
    """`doc` (not changed) with one to three structural mutations."""
    doc = copy_json(doc)
    for _ in range(rounds or rng.choice((1, 1, 2, 3))):
        doc = _mutate_once(doc, rng, vocabulary)
    return doc


def _mutate_once(doc: Json, rng: Random, vocabulary: Sequence[str]) -> Json:
    slots = _slots(doc)
    if not slots or rng.random() < 0.05:  # the whole message becomes something else
        return any_value(rng, vocabulary)
    container, key = rng.choice(slots)
    op = rng.randrange(10)
    if op == 0 and isinstance(container, dict):
        del container[key]
    elif op == 1 and isinstance(container, dict) and isinstance(key, str):
        container[_rename(key, rng)] = container.pop(key)
    elif op == 2:
        container[key] = any_value(rng, vocabulary)
    elif op == 3:
        container[key] = huge_string(rng)
    elif op == 4:
        container[key] = deep(rng)
    elif op == 5:
        container[key] = rng.choice(WEIRD_TEXT)
    elif op == 6 and isinstance(container, dict):
        container[rng.choice((*WEIRD_TEXT[:8], "__class__", "__proto__", "constructor", "extra"))] = any_value(rng)
    elif op == 7 and isinstance(container, list):
        value = container[key]
        small = not isinstance(value, dict | list) and len(str(value)) < 100  # big ones: encoding costs 100s of ms
        container.extend([value] * (rng.choice((2, 50, 2_000)) if small else 2))  # shared: encoded as copies
    else:
        container[key] = _interesting_for(key, container[key], rng, vocabulary)
    return doc


# --- encoding ------------------------------------------------------------------------------------------


def dumps(doc: Json) -> str:
    """JSON text even for documents the strict encoder refuses (nesting past its recursion limit)."""
    try:
        return json.dumps(doc, ensure_ascii=False)
    except RecursionError:
        return "[" * 5_000 + "0" + "]" * 5_000


def corrupt(text: str, rng: Random) -> Frame:
    """Damage the encoded text: what a broken or hostile peer puts on the wire."""
    op = rng.randrange(11)
    cut = rng.randrange(len(text) + 1)
    if op == 0:
        return text[:cut]
    if op == 1:
        return text[:cut] + rng.choice('{}[]",:\\') + text[cut:]
    if op == 2:
        return text.replace('"', "'", 1)
    if op == 3:
        return text + rng.choice((" trailing", "}", "\x00", "\n{}"))
    if op == 4:
        return "\ufeff" + text
    if op == 5:  # escapes JSON allows but a strict decoder must reject (lone surrogates, bad hex)
        return text.replace('":"', '":"' + rng.choice(("\\ud800", "\\udfff", "\\u12", "\\x41", "\\q")), 1)
    if op == 6:
        return text.replace("}", ',"kind":1,"type":2,"kind":"AudioData"}', 1)  # duplicate keys
    if op == 7:
        return rng.choice(("NaN", "Infinity", "-Infinity", "1e99999", "-", "nul", "tru", '"', "{", "[")) + text[:cut]
    if op == 8:  # the same message as a binary frame, in one encoding or another
        return text.encode(rng.choice(("utf-8", "utf-16", "utf-32", "latin-1")), errors="replace")
    if op == 9:
        raw = bytearray(text.encode())
        for _ in range(rng.randrange(1, 4)):
            if raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    return "[" * rng.choice((100, 1_000, 10_000)) + text


MAX_FRAME = 400_000  # past MEDIA_MAX_MESSAGE_BYTES already: anything larger only costs time to send


def frame(doc: Json, rng: Random, vocabulary: Sequence[str] = (), *, valid: float = 0.3,
          mutated: float = 0.5) -> Frame:
    """One wire frame from a valid `doc`: as is, structurally mutated, corrupted as text, or arbitrary."""
    return _frame(doc, rng, vocabulary, valid, mutated)[:MAX_FRAME]


def _frame(doc: Json, rng: Random, vocabulary: Sequence[str], valid: float, mutated: float) -> Frame:
    roll = rng.random()
    if roll < valid:
        return dumps(doc)
    if roll < valid + mutated:
        return dumps(mutate(doc, rng, vocabulary))
    if roll < 0.95:
        return corrupt(dumps(mutate(doc, rng, vocabulary, rounds=1) if rng.random() < 0.5 else doc), rng)
    return random_text(rng) if rng.random() < 0.5 else random_bytes(rng)


def pick(rng: Random, weighted: Sequence[tuple[float, Callable[[], Json]]]) -> Json:
    """Call one of the makers, chosen by weight."""
    total = sum(weight for weight, _ in weighted)
    roll = rng.random() * total
    for weight, make in weighted:
        roll -= weight
        if roll < 0:
            return make()
    return weighted[-1][1]()
