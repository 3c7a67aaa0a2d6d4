"""What one fuzz input does on a WebSocket: how it authenticates, the frames it sends, how it ends.

A script is made from a seeded generator, so `(seed, target, index)` makes it again; it is also saved as
JSON (binary frames in base64) when it finds a crash, and replayed from that file.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from random import Random
from typing import Any

from pydantic import ValidationError

from media_host.transports.audiocodes_models import INBOUND, ConnectionValidate, choose_format
from tests.fuzz import seeds
from tests.fuzz.mutate import Frame, dumps, frame, huge_string, pick, random_bytes, random_text

TOKENS = ("forged", "expired", "wrong_purpose", "missing", "garbage", "unknown_call")
ENDINGS = ("close", "abort")
OVERSIZE = 300_000  # over MEDIA_MAX_MESSAGE_BYTES (256 KiB by default)


@dataclass
class WsScript:
    target: str  # acs | audiocodes | browser
    index: int
    token: str = "valid"  # or one of TOKENS (ACS and browser); AudioCodes: the bearer token variant
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""  # extra query text after the token
    frames: list[Frame] = field(default_factory=list)
    ending: str = "verdict"  # verdict: send the protocol's terminator and wait; close / abort: leave early
    conversation_id: str = ""  # AudioCodes

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["frames"] = [{"text": f} if isinstance(f, str) else {"b64": base64.b64encode(f).decode()}
                         for f in self.frames]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> WsScript:
        frames: list[Frame] = [f["text"] if "text" in f else base64.b64decode(f["b64"]) for f in doc["frames"]]
        return cls(**{**doc, "frames": frames})


def _token(rng: Random) -> str:
    return "valid" if rng.random() < 0.85 else rng.choice(TOKENS)


def _ending(rng: Random) -> str:
    return "verdict" if rng.random() < 0.9 else rng.choice(ENDINGS)


def _stray(rng: Random) -> Frame:
    """Something no protocol expects: binary where JSON is due, arbitrary text, an oversize message."""
    roll = rng.random()
    if roll < 0.4:
        return random_bytes(rng, 2_000)
    if roll < 0.8:
        return random_text(rng, 500)
    return huge_string(rng)[:OVERSIZE] if rng.random() < 0.5 else "x" * OVERSIZE


# --- ACS media -----------------------------------------------------------------------------------------


def acs_script(rng: Random, index: int) -> WsScript:
    rate = rng.choice((16000, 24000))
    frames: list[Frame] = []
    opening = rng.random()
    if opening < 0.75:
        frames.append(frame(seeds.acs_metadata(rng, rate), rng, seeds.ACS_KINDS, valid=0.8, mutated=0.15))
    elif opening < 0.85:  # unknown kinds may come first; they are skipped
        frames.append(frame(seeds.acs_dtmf(rng), rng, seeds.ACS_KINDS, valid=0.5, mutated=0.5))
        frames.append(dumps(seeds.acs_metadata(rng, rate)) if rng.random() < 0.7 else _stray(rng))
    for _ in range(rng.randrange(6)):
        frames.append(pick(rng, [
            (5, lambda: frame(seeds.acs_audio(rng, rate), rng, seeds.ACS_KINDS, valid=0.5, mutated=0.4)),
            (1, lambda: frame(seeds.acs_dtmf(rng), rng, seeds.ACS_KINDS, valid=0.5, mutated=0.4)),
            (1, lambda: frame(seeds.acs_metadata(rng, rate), rng, seeds.ACS_KINDS, valid=0.5, mutated=0.4)),
            (1, lambda: _stray(rng)),
        ]))
    headers = {"x-ms-call-connection-id": seeds.uuid_from(rng), "x-ms-call-correlation-id": seeds.uuid_from(rng)}
    if rng.random() < 0.1:
        headers[rng.choice(("x-ms-call-connection-id", "Authorization", "X-Junk"))] = random_text(rng, 200).strip() \
            .replace("\r", "").replace("\n", "") or "x"
    query = rng.choice(("", "", "", "&token=second", "&a=%ff%fe", "&" + "x" * 3_000, "&%00=%00"))
    return WsScript("acs", index, _token(rng), headers, query, frames, _ending(rng))


# --- AudioCodes Bot API --------------------------------------------------------------------------------


def _is_probe(message: Frame) -> bool:
    """connection.validate is the terminator: the fuzz frames before it must not contain one."""
    if isinstance(message, bytes):
        return False
    try:
        return isinstance(INBOUND.validate_json(message), ConnectionValidate)
    except ValidationError:
        return False


def audiocodes_script(rng: Random, index: int) -> WsScript:
    conversation = seeds.uuid_from(rng) if rng.random() < 0.95 else rng.choice(("bad id!", "", "x" * 200, "a/b"))
    initiate = seeds.audiocodes_initiate(rng, conversation)
    media_format = choose_format(initiate["supportedMediaFormats"])
    first = pick(rng, [
        (80, lambda: frame(initiate, rng, seeds.AUDIOCODES_TYPES, valid=0.85, mutated=0.12)),
        (4, lambda: dumps(seeds.audiocodes("session_resume", conversation))),
        (3, lambda: dumps(seeds.payload("audiocodes_connection_validate"))),
        (8, lambda: frame(seeds.audiocodes("user_stream_start", conversation), rng, seeds.AUDIOCODES_TYPES)),
        (5, lambda: _stray(rng)),
    ])
    frames: list[Frame] = [first]
    name = media_format.name if media_format is not None else "raw/lpcm16"
    streaming = rng.random() < 0.8
    if streaming:
        frames.append(dumps(seeds.audiocodes("user_stream_start", conversation)))
    for _ in range(rng.randrange(6)):
        frames.append(pick(rng, [
            (6, lambda: frame(seeds.audiocodes_chunk(rng, conversation, name), rng, seeds.AUDIOCODES_TYPES,
                              valid=0.5, mutated=0.4)),
            (2, lambda: frame(seeds.audiocodes_activity(rng, conversation), rng, seeds.ACTIVITY_NAMES,
                              valid=0.4, mutated=0.5)),
            (1, lambda: frame(seeds.audiocodes(rng.choice(("user_stream_start", "user_stream_stop", "session_end")),
                                               conversation), rng, seeds.AUDIOCODES_TYPES, valid=0.6)),
            (1, lambda: dumps({"type": "userStream.chunk", "conversationId": "someone-else",
                                     "audioChunk": ""})),
            (1, lambda: _stray(rng)),
        ]))
    frames = [frames[0], *(f for f in frames[1:] if not _is_probe(f))]
    auth = "valid" if rng.random() < 0.9 else rng.choice(("missing", "wrong", "basic", "empty", "garbage"))
    return WsScript("audiocodes", index, auth, {}, "", frames, _ending(rng), conversation)


# --- browser softphone ---------------------------------------------------------------------------------


def browser_script(rng: Random, index: int) -> WsScript:
    rate = rng.choice((8000, 16000, 24000, 48000))
    frames: list[Frame] = []
    opening = rng.random()
    if opening < 0.8:
        frames.append(frame(seeds.browser_start(rng, rate), rng, seeds.BROWSER_TYPES, valid=0.8, mutated=0.15))
    elif opening < 0.9:
        frames.append(dumps({"type": "ping", "id": "early"}))
        frames.append(dumps(seeds.browser_start(rng, rate)))
    for _ in range(rng.randrange(6)):
        frames.append(pick(rng, [
            (5, lambda: seeds.pcm(rng, rng.choice((rate // 50, rate // 10, rate // 100))) if rng.random() < 0.85
             else rng.randbytes(rng.choice((1, 3, 641, rate * 2 + 2)))),
            (2, lambda: frame(seeds.browser_control(rng), rng, seeds.BROWSER_TYPES, valid=0.5, mutated=0.4)),
            (1, lambda: frame(seeds.browser_start(rng, rate), rng, seeds.BROWSER_TYPES, valid=0.3)),
            (1, lambda: dumps({"type": "ping", "id": "x" * rng.choice((1, 65, 5_000))})),
            (1, lambda: _stray(rng)),
        ]))
    return WsScript("browser", index, _token(rng), {}, rng.choice(("", "", "&v=2", "&token=")), frames,
                    _ending(rng))


GENERATORS = {"acs": acs_script, "audiocodes": audiocodes_script, "browser": browser_script}
