"""ACS JWT verification against a local JWKS endpoint (as for callbacks and media upgrades)."""

from __future__ import annotations

import json

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from media_host.transports.acs import AcsAdapter
from switchboard.acs_auth import AcsAuthError, AcsJwtVerifier
from switchboard.redis_server import free_port
from tests.acs_client import AcsClient
from tests.jwks_server import AUDIENCE, ISSUER, Signer, jwks_server
from tests.media_harness import running_host, seed_call

ACS = Signer("acs-key-1")
OTHER = Signer("attacker-key")


def test_a_valid_token_passes_and_keys_are_cached() -> None:
    with jwks_server(ACS) as (url, requests):
        verifier = AcsJwtVerifier(url, ISSUER, AUDIENCE)
        for _ in range(5):
            claims = verifier.verify_sync(f"Bearer {ACS.token(sub='acs')}")
            assert claims["sub"] == "acs"
        assert requests == ["/calling/keys"]  # fetched once, then cached


@pytest.mark.parametrize(("header", "reason"), [
    (None, "missing bearer token"),
    ("Basic abc", "missing bearer token"),
    ("Bearer not.a.jwt", "malformed token"),
    (f"Bearer {ACS.token(audience='another-resource')}", "token audience is not this ACS resource"),
    (f"Bearer {ACS.token(issuer='https://evil.example')}", "token issuer is not ACS"),
    (f"Bearer {ACS.token(expires_in=-120)}", "token expired"),
    (f"Bearer {OTHER.token()}", "token signed with an unknown key"),
    ("Bearer " + jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800}, "k" * 32, algorithm="HS256",
                            headers={"kid": "acs-key-1"}), "token algorithm not accepted"),
    ("Bearer " + jwt.encode({"iss": ISSUER, "aud": AUDIENCE}, None, algorithm="none"),  # type: ignore[arg-type]
     "token algorithm not accepted"),
])
def test_bad_tokens_are_rejected_with_a_reason(header: str | None, reason: str) -> None:
    with jwks_server(ACS) as (url, _):
        with pytest.raises(AcsAuthError) as info:
            AcsJwtVerifier(url, ISSUER, AUDIENCE).verify_sync(header)
        assert str(info.value) == reason


def test_unreachable_keys_fail_closed() -> None:
    verifier = AcsJwtVerifier(f"http://127.0.0.1:{free_port()}/calling/keys", ISSUER, AUDIENCE)
    with pytest.raises(AcsAuthError, match="signing keys unavailable"):
        verifier.verify_sync(f"Bearer {ACS.token()}")


async def test_media_upgrade_checks_the_acs_jwt_when_configured(redis_url: str) -> None:
    with jwks_server(ACS) as (url, _):
        async with running_host(redis_url, adapters=[AcsAdapter], acs_resource_id=AUDIENCE, acs_jwks_url=url,
                                acs_jwt_issuer=ISSUER) as host:
            _, token = await seed_call(host)
            assert host.port is not None
            async with AcsClient(host.port, token, headers={"Authorization": f"Bearer {ACS.token()}"}) as acs:
                await acs.send_frame(bytes(960))
                await acs.wait_for(lambda r: len(r.audio) == 1)
            for bad in (None, f"Bearer {ACS.token(audience='x')}", f"Bearer {OTHER.token()}"):
                headers = {"Authorization": bad} if bad else {}
                with pytest.raises(InvalidStatus) as info:
                    async with connect(f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token={token}",
                                       additional_headers=headers):
                        pass
                assert info.value.response.status_code == 401
                assert json.loads(info.value.response.body)["detail"].startswith("ACS token: ")
