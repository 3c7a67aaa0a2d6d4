"""local_stack.acs.hmac_auth: requests signed by the real SDK policy verify; each kind of tampering is named."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.communication.callautomation._shared import policy as sdk_policy
from azure.core.credentials import AzureKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from local_stack.acs.hmac_auth import HmacError, content_hash, verify_hmac

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
ENDPOINT = "http://127.0.0.1:8089"
SIGNED_AT = "Sat, 21 Nov 2026 08:36:22 GMT"
NOW = datetime(2026, 11, 21, 8, 36, 52, tzinfo=UTC)  # 30 s after signing
ANSWER = "/calling/callConnections:answer?api-version=2026-03-12"
BODY = '{"incomingCallContext": "ctx", "callbackUri": "https://app.test/cb?token=s3cr3t"}'


@pytest.fixture(autouse=True)
def frozen_sdk_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk_policy, "get_current_utc_time", lambda: SIGNED_AT)


def sdk_sign(method: str, path_and_query: str, body: str | None, key: str = KEY) -> dict[str, str]:
    """The headers the SDK's HMACCredentialsPolicy puts on this request, plus the Host the transport adds."""
    request = HttpRequest(method, ENDPOINT + path_and_query, content=body)
    policy = sdk_policy.HMACCredentialsPolicy(ENDPOINT, AzureKeyCredential(key))
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    return {**request.headers, "Host": "127.0.0.1:8089"}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", ANSWER, BODY),
    ("POST", "/calling/callConnections/c-1:terminate?api-version=2026-03-12", None),
    ("DELETE", "/calling/callConnections/c-1?api-version=2026-03-12", None),
    # the SDK signs the path as sent, still percent-encoded
    ("GET", "/calling/callConnections/c-1/participants/4%3A%2B15551230000?api-version=2026-03-12", None),
])
def test_a_request_signed_by_the_sdk_verifies(method: str, path: str, body: str | None) -> None:
    headers = sdk_sign(method, path, body)
    verify_hmac(method, path, headers, (body or "").encode(), KEY, now=NOW)
    assert headers["x-ms-content-sha256"] == content_hash((body or "").encode())


def test_an_empty_body_hashes_as_documented() -> None:
    assert sdk_sign("DELETE", "/x", None)["x-ms-content-sha256"] == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


Request = dict[str, Any]


def _with(headers: dict[str, str], **changes: str) -> dict[str, str]:
    return {**headers, **{name.replace("_", "-"): value for name, value in changes.items()}}


def _shift_date(req: Request) -> None:
    req["headers"] = _with(req["headers"], x_ms_date="Sat, 21 Nov 2026 08:36:23 GMT")


TAMPERING: list[tuple[str, Callable[[Request], None], str]] = [
    ("body", lambda r: r.update(body=BODY.replace("s3cr3t", "stolen").encode()),
     "x-ms-content-sha256 does not match the body"),
    ("body and its hash", lambda r: r.update(
        body=b"{}", headers=_with(r["headers"], x_ms_content_sha256=content_hash(b"{}"))), "signature does not match"),
    ("date, unparseable", lambda r: r.update(headers=_with(r["headers"], x_ms_date="yesterday")),
     "x-ms-date is not an RFC 1123 date"),
    ("date, a second later", _shift_date, "signature does not match"),
    ("signature", lambda r: r.update(headers=_with(r["headers"], Authorization=r["headers"]["Authorization"][:-8]
                                                   + "AAAAAAA=")), "signature does not match"),
    ("clock skew, server 6 min ahead", lambda r: r.update(now=NOW + timedelta(minutes=6)),
     "x-ms-date is more than 300 s away from the server's clock"),
    ("clock skew, signed in the future", lambda r: r.update(now=NOW - timedelta(minutes=6)),
     "x-ms-date is more than 300 s away from the server's clock"),
    ("path", lambda r: r.update(path=ANSWER.replace("2026-03-12", "2025-05-15")), "signature does not match"),
    ("method", lambda r: r.update(method="PUT"), "signature does not match"),
    ("host", lambda r: r.update(headers=_with(r["headers"], Host="127.0.0.1:9999")), "signature does not match"),
    ("key", lambda r: r.update(key=OTHER_KEY), "signature does not match"),
    ("no authorization", lambda r: r["headers"].pop("Authorization"), "missing authorization header"),
    ("no date", lambda r: r["headers"].pop("x-ms-date"), "missing x-ms-date header"),
    ("bearer scheme", lambda r: r.update(headers=_with(r["headers"], Authorization="Bearer abc")),
     "authorization scheme is not HMAC-SHA256"),
    ("signed headers", lambda r: r.update(headers=_with(r["headers"], Authorization=r["headers"]["Authorization"]
                                                        .replace("x-ms-date;host;", "host;x-ms-date;"))),
     "SignedHeaders must be x-ms-date;host;x-ms-content-sha256"),
    ("no signature", lambda r: r.update(headers=_with(
        r["headers"], Authorization="HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256")),
     "authorization has no signature"),
]


@pytest.mark.parametrize(("change", "reason"), [(t[1], t[2]) for t in TAMPERING], ids=[t[0] for t in TAMPERING])
def test_tampered_requests_fail_with_a_reason(change: Callable[[Request], None], reason: str) -> None:
    req: Request = {"method": "POST", "path": ANSWER, "headers": sdk_sign("POST", ANSWER, BODY),
                    "body": BODY.encode(), "key": KEY, "now": NOW}
    verify_hmac(req["method"], req["path"], req["headers"], req["body"], req["key"], now=req["now"])  # untouched
    change(req)
    with pytest.raises(HmacError) as info:
        verify_hmac(req["method"], req["path"], req["headers"], req["body"], req["key"], now=req["now"])
    assert info.value.reason == reason == str(info.value)


def test_body_date_signature_and_skew_failures_are_told_apart() -> None:
    reasons = {reason for name, _, reason in TAMPERING
               if name in ("body", "date, unparseable", "signature", "clock skew, server 6 min ahead")}
    assert len(reasons) == 4


def test_the_skew_allowance_is_configurable() -> None:
    headers = sdk_sign("POST", ANSWER, BODY)
    verify_hmac("POST", ANSWER, headers, BODY.encode(), KEY, now=NOW + timedelta(minutes=6), max_skew_s=600)
    with pytest.raises(HmacError, match="more than 10 s away"):
        verify_hmac("POST", ANSWER, headers, BODY.encode(), KEY, now=NOW, max_skew_s=10)


def test_header_names_are_case_insensitive() -> None:
    headers = {name.upper(): value for name, value in sdk_sign("POST", ANSWER, BODY).items()}
    verify_hmac("POST", ANSWER, headers, BODY.encode(), KEY, now=NOW)


def test_a_key_that_is_not_base64_is_a_setup_error() -> None:
    headers = sdk_sign("POST", ANSWER, BODY)
    with pytest.raises(ValueError, match="base64"):
        verify_hmac("POST", ANSWER, headers, BODY.encode(), "not base64!", now=NOW)
