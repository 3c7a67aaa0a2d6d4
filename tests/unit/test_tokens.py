from __future__ import annotations

import pytest

from switchboard.tokens import Purpose, TokenError, TokenSigner

SECRET = "unit-test-secret-0123456789"


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_round_trip_binds_call_and_purpose() -> None:
    signer = TokenSigner(SECRET)
    token = signer.issue("call-1", Purpose.MEDIA, 60)
    claims = signer.verify(token, Purpose.MEDIA, "call-1")
    assert claims.call_id == "call-1"
    assert claims.purpose is Purpose.MEDIA


def test_expired_token_is_rejected() -> None:
    clock = Clock()
    signer = TokenSigner(SECRET, clock=clock)
    token = signer.issue("call-1", Purpose.CALLBACK, 30)
    clock.t += 29
    signer.verify(token, Purpose.CALLBACK, "call-1")
    clock.t += 1
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token, Purpose.CALLBACK, "call-1")


def test_wrong_call_is_rejected() -> None:
    signer = TokenSigner(SECRET)
    token = signer.issue("call-1", Purpose.MEDIA, 60)
    with pytest.raises(TokenError, match="another call"):
        signer.verify(token, Purpose.MEDIA, "call-2")


def test_wrong_purpose_is_rejected() -> None:
    signer = TokenSigner(SECRET)
    token = signer.issue("call-1", Purpose.MEDIA, 60)
    with pytest.raises(TokenError, match="not valid for callback"):
        signer.verify(token, Purpose.CALLBACK, "call-1")


def test_tampered_claims_are_rejected() -> None:
    signer = TokenSigner(SECRET)
    token = signer.issue("call-1", Purpose.MEDIA, 60)
    forged_body = TokenSigner("another-secret-0123456789").issue("call-2", Purpose.MEDIA, 60).split(".")[0]
    with pytest.raises(TokenError, match="signature"):
        signer.verify(f"{forged_body}.{token.split('.')[1]}", Purpose.MEDIA)


def test_token_from_another_secret_is_rejected() -> None:
    token = TokenSigner("another-secret-0123456789").issue("call-1", Purpose.MEDIA, 60)
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(SECRET).verify(token, Purpose.MEDIA, "call-1")


@pytest.mark.parametrize("bad", ["", None, "abc", "a.b.c", "é.é", "x" * 5000, ".", "YWJj.YWJj"])
def test_malformed_tokens_are_rejected(bad: str | None) -> None:
    with pytest.raises(TokenError):
        TokenSigner(SECRET).verify(bad, Purpose.MEDIA)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        TokenSigner("short")
