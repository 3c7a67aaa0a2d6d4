"""Entra ID auth for Redis (REDIS_USE_ENTRA_ID) against a real server.

The Redis side is real: a valkey server whose ACL user is named after a fake object id, with a fake token
as its password, as Azure Managed Redis sees a managed identity. Entra ID is the stand-in: a credential
handing out unsigned JWTs with an `oid` claim. Expiry is driven by a clock the test moves, never by waiting.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from redis.asyncio import Redis

from media_host.notices import NoticeBoard
from switchboard.redis_entra import (
    REDIS_SCOPE,
    RETRY_AFTER_S,
    EntraAuthError,
    EntraCredentialProvider,
    entra_pool,
    object_id,
)
from switchboard.redis_server import EmbeddedRedis
from switchboard.services import open_services
from switchboard.session_store import SessionStore, connect_redis
from switchboard.settings import PROJECT_ROOT, load_settings
from switchboard.tokens import TokenSigner
from tests.conftest import TEST_SECRET

T0 = 1_900_000_000.0  # the test clock's start; real time plays no part
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FakeEntra:
    """An `AsyncTokenCredential` standing in for `DefaultAzureCredential`: one identity, a token at a time."""

    def __init__(self, oid: str, token: str, expires_on: float) -> None:
        self.oid, self.token, self.expires_on = oid, token, expires_on
        self.scopes: list[tuple[str, ...]] = []
        self.fail = False
        self.closed = False

    async def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                        enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if self.fail:
            raise ClientAuthenticationError("ManagedIdentityCredential: no response from the IMDS endpoint")
        return AccessToken(self.token, int(self.expires_on))

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> FakeEntra:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def entra_jwt(oid: str, serial: int) -> str:
    """A real JWT (unsigned: Entra ID is not what is tested) carrying the claims Redis cares about."""
    return jwt.encode({"oid": oid, "aud": "https://redis.azure.com", "serial": serial}, "", algorithm="none")


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    """A server of this module's own: its ACL users are changed."""
    with EmbeddedRedis() as started:
        yield started


@pytest.fixture
async def admin(server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(server.url, decode_responses=True)
    yield client
    await client.aclose()


async def acl(client: Redis, *args: str) -> Any:
    return await client.execute_command("ACL", *args)  # type: ignore[no-untyped-call]


async def rotate(admin: Redis, oid: str, token: str) -> None:
    await acl(admin, "SETUSER", oid, "resetpass", f">{token}")


async def connections_of(admin: Redis, oid: str) -> list[dict[str, Any]]:
    return [c for c in await admin.client_list() if c.get("user") == oid]


@asynccontextmanager
async def identity(admin: Redis) -> AsyncIterator[tuple[str, FakeEntra, Clock]]:
    oid = str(uuid.uuid4())
    token = entra_jwt(oid, 1)
    await acl(admin, "SETUSER", oid, "on", f">{token}", "~*", "&*", "+@all")
    clock = Clock()
    try:
        yield oid, FakeEntra(oid, token, T0 + HOUR), clock
    finally:
        await acl(admin, "DELUSER", oid)


@asynccontextmanager
async def entra_client(url: str, credential: FakeEntra,
                       clock: Clock) -> AsyncIterator[tuple[Redis, EntraCredentialProvider]]:
    provider = EntraCredentialProvider(credential, clock=clock)
    redis = connect_redis(url, credential_provider=provider)
    try:
        yield redis, provider
    finally:
        await redis.aclose()
        await redis.connection_pool.disconnect()
        await provider.aclose()


async def whoami(redis: Redis) -> str:
    name = await acl(redis, "WHOAMI")
    return name.decode() if isinstance(name, bytes) else str(name)


async def test_commands_run_as_the_identitys_object_id_with_one_token_for_all_connections(
        server: EmbeddedRedis, admin: Redis) -> None:
    async with identity(admin) as (oid, credential, clock), \
            entra_client(server.url, credential, clock) as (redis, _provider):
        await redis.set("entra:greeting", "hello")
        assert await redis.get("entra:greeting") == b"hello"
        assert await whoami(redis) == oid
        # Ten connections at once: one token request (cached, and fetched once under a lock).
        assert await asyncio.gather(*(whoami(redis) for _ in range(10))) == [oid] * 10
        assert len(await connections_of(admin, oid)) > 1
        assert credential.scopes == [(REDIS_SCOPE,)]
        assert REDIS_SCOPE == "https://redis.azure.com/.default"
    assert credential.closed


async def test_pooled_connections_reconnect_with_the_renewed_token_before_the_old_one_expires(
        server: EmbeddedRedis, admin: Redis, caplog: pytest.LogCaptureFixture) -> None:
    async with identity(admin) as (oid, credential, clock), \
            entra_client(server.url, credential, clock) as (redis, provider):
        first = await redis.client_id()
        # Entra ID issues the next token; from now on Redis accepts only it (the first one is on its way out).
        credential.token, credential.expires_on = entra_jwt(oid, 2), T0 + 2 * HOUR
        await rotate(admin, oid, credential.token)

        clock.now = T0 + HOUR - 301  # not yet within the 5-minute margin: same connection, no token request
        assert await redis.client_id() == first
        assert len(credential.scopes) == 1

        clock.now = T0 + HOUR - 299  # within it: the token is renewed in the background...
        assert await redis.client_id() == first  # ...while commands carry on with the current one
        assert provider.renewal is not None
        await provider.renewal
        second = await redis.client_id()  # then the connection is replaced by one that used the new token
        assert second != first
        assert await whoami(redis) == oid
        assert len(credential.scopes) == 2
        assert [c["id"] for c in await connections_of(admin, oid)] == [str(second)]

        clock.now = T0 + HOUR + 1  # the first token has expired: new connections use the second
        assert await asyncio.gather(*(whoami(redis) for _ in range(5))) == [oid] * 5
        assert len(credential.scopes) == 2
    assert credential.token not in caplog.text
    assert entra_jwt(oid, 1) not in caplog.text


async def test_a_subscription_renews_its_token_and_keeps_receiving_notices(
        server: EmbeddedRedis, admin: Redis) -> None:
    received: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    class Recording(NoticeBoard):
        def deliver(self, call_id: str, data: bytes | str) -> None:
            received.put_nowait((call_id, data.decode() if isinstance(data, bytes) else data))

    async with identity(admin) as (oid, credential, clock), \
            entra_client(server.url, credential, clock) as (redis, _provider):
        store = SessionStore(redis, TokenSigner(TEST_SECRET), ttl_seconds=600, prefix=f"test:{uuid.uuid4().hex[:8]}:")
        board = Recording(store)
        board.start()
        try:
            await asyncio.wait_for(board.ready.wait(), 5)
            await redis.publish(f"{store.prefix}notice:call-1", "before")
            assert await asyncio.wait_for(received.get(), 5) == ("call-1", "before")
            [subscriber] = [c for c in await connections_of(admin, oid) if c["psub"] == "1"]

            credential.token, credential.expires_on = entra_jwt(oid, 2), T0 + 2 * HOUR
            await rotate(admin, oid, credential.token)
            clock.now = T0 + HOUR - 60
            renewed: list[dict[str, Any]] = []
            async with asyncio.timeout(5):  # the listener renews on its next poll (every 0.1 s)
                while not renewed:
                    await asyncio.sleep(0.02)
                    renewed = [c for c in await connections_of(admin, oid)
                               if c["psub"] == "1" and c["id"] != subscriber["id"]]
            assert subscriber["id"] not in [c["id"] for c in await connections_of(admin, oid)]

            await redis.publish(f"{store.prefix}notice:call-2", "after")
            assert await asyncio.wait_for(received.get(), 5) == ("call-2", "after")
        finally:
            await board.stop()


async def test_a_failed_renewal_keeps_the_current_token_until_it_expires(
        server: EmbeddedRedis, admin: Redis, caplog: pytest.LogCaptureFixture) -> None:
    async with identity(admin) as (oid, credential, clock), \
            entra_client(server.url, credential, clock) as (redis, provider):
        first = await redis.client_id()
        credential.fail = True
        clock.now = T0 + HOUR - 120
        with caplog.at_level(logging.WARNING, logger="switchboard.redis_entra"):
            assert await redis.client_id() == first
            assert provider.renewal is not None
            await provider.renewal
        [warning] = [r for r in caplog.records if r.name == "switchboard.redis_entra"]
        assert warning.getMessage() == "could not renew the Entra ID token for Redis; the current one stays in use"
        assert "ManagedIdentityCredential: no response" in warning.__dict__["error"]
        assert warning.__dict__["expires_in_s"] == 120
        assert len(credential.scopes) == 2
        clock.now += RETRY_AFTER_S - 1  # nothing newer: the connection is kept, and Entra ID is not asked yet
        assert await redis.client_id() == first
        assert len(credential.scopes) == 2
        clock.now += 2  # then it is asked again
        assert await redis.client_id() == first
        await provider.renewal
        assert len(credential.scopes) == 3

        clock.now = T0 + HOUR + 1  # expired, and still no new token: a clear error, not a hang
        with pytest.raises(EntraAuthError, match=r"could not get a Microsoft Entra ID token for Redis "
                                                 r"\(ClientAuthenticationError: ManagedIdentityCredential"):
            await redis.ping()

        credential.fail = False  # Entra ID is back: so is Redis
        credential.expires_on = T0 + 2 * HOUR
        assert await whoami(redis) == oid


async def test_a_token_redis_refuses_is_a_clear_error(server: EmbeddedRedis, admin: Redis) -> None:
    async with identity(admin) as (oid, credential, clock):
        credential.token = entra_jwt(oid, 99)  # not the password Redis has for this identity
        async with entra_client(server.url, credential, clock) as (redis, _provider):
            with pytest.raises(EntraAuthError) as info:
                await redis.ping()
    message = str(info.value)
    assert message.startswith(f"Redis refused the Microsoft Entra ID token of object id {oid} (")
    assert "data access policy" in message
    assert credential.token not in message


def test_tokens_without_an_object_id_and_urls_with_a_password_are_refused() -> None:
    assert object_id(entra_jwt("11111111-2222-3333-4444-555555555555", 1)) == "11111111-2222-3333-4444-555555555555"
    with pytest.raises(EntraAuthError, match="has no oid claim"):
        object_id(jwt.encode({"sub": "x"}, "", algorithm="none"))
    with pytest.raises(EntraAuthError, match="is not a JWT"):
        object_id("not-a-jwt")
    provider = EntraCredentialProvider(FakeEntra("x", "t", T0))
    with pytest.raises(ValueError, match="must not carry a user name or password"):
        entra_pool("rediss://:secret@cache.example:10000", provider)
    with pytest.raises(ValueError, match="needs a redis:// or rediss:// URL"):
        entra_pool("unix:///tmp/redis.sock", provider)
    with pytest.raises(NotImplementedError):
        provider.get_credentials()


async def test_open_services_uses_entra_id_when_the_setting_is_on(server: EmbeddedRedis, admin: Redis) -> None:
    async with identity(admin) as (oid, credential, _clock):
        credential.expires_on = 4_000_000_000  # the provider runs on real time here
        # The settings insist on rediss://; the local server has no TLS, so the checked URL is swapped after.
        settings = load_settings(redis_url=server.url).model_copy(update={"redis_use_entra_id": True})
        services = await open_services(settings, credential=credential)
        try:
            assert services.redis_credentials is not None
            assert await whoami(services.store.redis) == oid
        finally:
            await services.close()
        assert credential.closed


def test_without_the_setting_nothing_of_entra_id_is_imported() -> None:
    code = ("import sys, switchboard.services, switchboard.session_store, media_host.notices; "
            "assert not [m for m in sys.modules if m.startswith(('azure.identity', 'switchboard.redis_entra'))]")
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True, timeout=60)
