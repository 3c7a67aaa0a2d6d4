"""Verifies ACS HMAC-SHA256 request signatures, recomputed exactly as the SDK's `HMACCredentialsPolicy` signs.

    string_to_sign = VERB \\n path_and_query \\n x-ms-date;host;x-ms-content-sha256
    Authorization  = HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<b64 hmac>

The key is the resource's base64 access key; `host` is what the client signed (it includes the port).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
SCHEME = "HMAC-SHA256"


class HmacError(Exception):
    """The request is not signed with the access key; the message says why (it becomes the 401 body)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_access_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def decode_key(access_key_b64: str) -> bytes:
    """The raw key bytes; a key that is not base64 is a configuration error, not a bad request."""
    try:
        return base64.b64decode(access_key_b64, validate=True)
    except binascii.Error as exc:
        raise ValueError("the ACS access key must be base64") from exc


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def sign(method: str, path_and_query: str, *, x_ms_date: str, host: str, body_hash: str, access_key_b64: str) -> str:
    """The Signature= value the SDK sends for this request."""
    string_to_sign = f"{method.upper()}\n{path_and_query}\n{x_ms_date};{host};{body_hash}"
    digest = hmac.new(decode_key(access_key_b64), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_hmac(method: str, path_and_query: str, headers: Mapping[str, str], body: bytes, access_key_b64: str,
                *, now: datetime, max_skew_s: float = 300) -> None:
    """Raise `HmacError` unless the request carries a valid, fresh signature by `access_key_b64`.

    `path_and_query` is the raw (still percent-encoded) request target, as the client signed it.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    for name in ("authorization", "x-ms-date", "x-ms-content-sha256", "host"):
        if not lower.get(name):
            raise HmacError(f"missing {name} header")

    # Cheap checks first, each with its own reason, so a failing client can tell what it got wrong.
    if not hmac.compare_digest(lower["x-ms-content-sha256"], content_hash(body)):
        raise HmacError("x-ms-content-sha256 does not match the body")
    try:
        signed_at = parsedate_to_datetime(lower["x-ms-date"])
    except (TypeError, ValueError):
        raise HmacError("x-ms-date is not an RFC 1123 date") from None
    if signed_at.tzinfo is None or abs((now - signed_at).total_seconds()) > max_skew_s:
        raise HmacError(f"x-ms-date is more than {max_skew_s:g} s away from the server's clock")

    scheme, _, params = lower["authorization"].partition(" ")
    if scheme != SCHEME:
        raise HmacError("authorization scheme is not HMAC-SHA256")
    # Split each field at its first "=": the base64 signature itself may end in "=".
    fields = {name: value for name, _, value in (part.partition("=") for part in params.split("&"))}
    if fields.get("SignedHeaders") != SIGNED_HEADERS:
        raise HmacError(f"SignedHeaders must be {SIGNED_HEADERS}")
    signature = fields.get("Signature")
    if not signature:
        raise HmacError("authorization has no signature")
    expected = sign(method, path_and_query, x_ms_date=lower["x-ms-date"], host=lower["host"],
                    body_hash=lower["x-ms-content-sha256"], access_key_b64=access_key_b64)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise HmacError("signature does not match")
