"""ACS JWT verification against a local JWKS endpoint (as for callbacks and media upgrades).

The key set's lifespan and the refetch interval are measured on an injected clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from local_stack.callers.acs_client import AcsClient
from media_host.transports.acs import AcsAdapter
from switchboard.acs_auth import AcsAuthError, AcsJwtVerifier
from switchboard.redis_server import free_port
from tests.support.jwks_server import AUDIENCE, ISSUER, Signer, jwks_endpoint, jwks_server
from tests.support.media_harness import running_host, seed_call

ACS = Signer("acs-key-1")
ROTATED = Signer("acs-key-2")
OTHER = Signer("attacker-key")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(token: str) -> str:
    return f"Bearer {token}"


async def test_a_valid_token_passes_and_keys_are_cached() -> None:
    with jwks_server(ACS) as (url, requests):
        verifier = AcsJwtVerifier(url, ISSUER, AUDIENCE)
        for _ in range(5):
            claims = await verifier.verify(bearer(ACS.token(sub="acs")))
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
    (f"Bearer {OTHER.token(kid='acs-key-1')}", "invalid token"),  # a known kid does not make a signature
    ("Bearer " + jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800}, "k" * 32, algorithm="HS256",
                            headers={"kid": "acs-key-1"}), "token algorithm not accepted"),
    ("Bearer " + jwt.encode({"iss": ISSUER, "aud": AUDIENCE}, None, algorithm="none"),  # type: ignore[arg-type]
     "token algorithm not accepted"),
])
async def test_bad_tokens_are_rejected_with_a_reason(header: str | None, reason: str) -> None:
    with jwks_server(ACS) as (url, _):
        with pytest.raises(AcsAuthError) as info:
            await AcsJwtVerifier(url, ISSUER, AUDIENCE).verify(header)
        assert str(info.value) == reason


async def test_unreachable_keys_fail_closed() -> None:
    verifier = AcsJwtVerifier(f"http://127.0.0.1:{free_port()}/calling/keys", ISSUER, AUDIENCE)
    with pytest.raises(AcsAuthError, match="signing keys unavailable"):
        await verifier.verify(bearer(ACS.token()))


async def test_a_rotated_key_is_accepted_at_once() -> None:
    with jwks_endpoint(ACS) as endpoint:
        verifier = AcsJwtVerifier(endpoint.url, ISSUER, AUDIENCE, clock=Clock())
        await verifier.verify(bearer(ACS.token()))
        endpoint.publish(ACS, ROTATED)  # ACS rotates, and signs with the new key straight away
        claims = await verifier.verify(bearer(ROTATED.token(sub="rotated")))
        assert claims["sub"] == "rotated"
        await verifier.verify(bearer(ACS.token()))  # the old key is still published: still good
        assert len(endpoint.requests) == 2


async def test_a_withdrawn_key_is_refused_once_the_lifespan_is_over() -> None:
    clock = Clock()
    with jwks_endpoint(ACS, ROTATED) as endpoint:
        verifier = AcsJwtVerifier(endpoint.url, ISSUER, AUDIENCE, lifespan_seconds=600, clock=clock)
        await verifier.verify(bearer(ACS.token()))
        endpoint.publish(ROTATED)  # ACS withdraws acs-key-1
        clock.now += 599
        await verifier.verify(bearer(ACS.token()))  # within the lifespan, the held set still has it
        clock.now += 1
        with pytest.raises(AcsAuthError, match="token signed with an unknown key"):
            await verifier.verify(bearer(ACS.token()))
        await verifier.verify(bearer(ROTATED.token()))
        assert len(endpoint.requests) == 2


async def test_an_expired_set_that_cannot_be_fetched_fails_closed_and_is_not_hammered() -> None:
    clock = Clock()
    with jwks_endpoint(ACS) as endpoint:
        verifier = AcsJwtVerifier(endpoint.url, ISSUER, AUDIENCE, lifespan_seconds=600,
                                  refetch_interval_seconds=5, clock=clock)
        await verifier.verify(bearer(ACS.token()))
        endpoint.fail(503)
        clock.now += 600
        for _ in range(10):
            with pytest.raises(AcsAuthError, match="signing keys unavailable"):
                await verifier.verify(bearer(ACS.token()))
        assert len(endpoint.requests) == 2  # the failed fetch starts the cooldown
        endpoint.publish(ACS)
        clock.now += 5
        await verifier.verify(bearer(ACS.token()))
        assert len(endpoint.requests) == 3


async def test_a_flood_of_forged_key_ids_costs_one_fetch_per_interval() -> None:
    clock = Clock()
    with jwks_endpoint(ACS) as endpoint:
        verifier = AcsJwtVerifier(endpoint.url, ISSUER, AUDIENCE, refetch_interval_seconds=5, clock=clock)
        await verifier.verify(bearer(ACS.token()))
        forged = [bearer(OTHER.token(kid=f"forged-{n}")) for n in range(50)]

        async def refused(header: str) -> str:
            with pytest.raises(AcsAuthError) as info:
                await verifier.verify(header)
            return str(info.value)

        # 50 at once share one fetch; 50 more in the same interval start none.
        reasons = await asyncio.gather(*(refused(h) for h in forged))
        reasons += [await refused(h) for h in forged]
        assert set(reasons) == {"token signed with an unknown key"}
        assert len(endpoint.requests) == 2
        clock.now += 5  # the next interval: one more
        reasons = await asyncio.gather(*(refused(h) for h in forged))
        assert len(endpoint.requests) == 3
        await verifier.verify(bearer(ACS.token()))  # the genuine key never stopped working
        assert verifier.keys.fetches == 3


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
