"""What a call's logs must never hold: the caller's number in any format, audio, tokens and secrets.

    problems = audit({"function host log": text, ...}, caller="+14255550123", secrets={"signing secret": s})
    assert problems == []

Each problem names the log, the line and what leaked, never the value itself, so a failing test does
not print the secret it caught.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

from switchboard.logs import JsonFormatter, TextFormatter

# Audio travels base64-encoded (ACS AudioData, AudioCodes chunks): a 20 ms frame is hundreds of
# characters. Opaque ids (a serverCallId is base64 of a short URL) stay well under this.
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{200,}={0,2}")
TOKEN_PARAM = re.compile(r"token=[A-Za-z0-9_\-.%]{8,}")
# A JWT, our own tokens (base64url JSON "eyJ..." dot signature) and ACS's incomingCallContext alike.
JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")


def number_pattern(e164: str) -> re.Pattern[str]:
    """The number written any common way: +14255550123, 14255550123, (425) 555-0123, 425.555.0123..."""
    national = re.sub(r"\D", "", e164)[-10:]  # every way of writing it contains these digits in order
    return re.compile(r"[\s().\-]{0,3}".join(national))


def formatted(records: Iterable[logging.LogRecord]) -> dict[str, str]:
    """Log records as both formats would write them (LOG_FORMAT=text and json)."""
    records = list(records)
    return {fmt: "\n".join(formatter.format(r) for r in records)
            for fmt, formatter in (("text", TextFormatter()), ("json", JsonFormatter()))}


def url_secrets(url: str) -> list[str]:
    """The token values in a URL's query (what a callback or media URL carries)."""
    return [v for values in parse_qs(urlsplit(url).query).values() for v in values]


def audit(logs: Mapping[str, str], *, caller: str, secrets: Mapping[str, str]) -> list[str]:
    """Every leak found in `logs` (name -> text), as readable lines with the values masked."""
    checks = [("the caller's number", number_pattern(caller)), ("a long base64 run (audio?)", BASE64_RUN),
              ("a token in a URL", TOKEN_PARAM), ("a JWT-like string", JWT_LIKE)]
    checks += [(name, re.compile(re.escape(value))) for name, value in secrets.items() if value]
    problems = []
    for source, text in logs.items():
        for what, pattern in checks:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{source}, line {line}: {what} ({len(match.group())} characters)")
    return problems
