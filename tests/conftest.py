"""Shared fixtures: a real Redis server for the whole session, and a store with its own key prefix."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from switchboard.redis_server import EmbeddedRedis
from switchboard.session_store import SessionStore, connect_redis
from switchboard.tokens import TokenSigner

if TYPE_CHECKING:
    from tests.support.functions_harness import Harness

TEST_SECRET = "test-signing-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when set, else an embedded valkey server started for this test session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[SessionStore]:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    s = SessionStore(connect_redis(redis_url), TokenSigner(TEST_SECRET), ttl_seconds=600, prefix=prefix)
    yield s
    keys = [k async for k in s.redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await s.redis.delete(*keys)
    await s.close()



@pytest.fixture
async def harness(redis_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The Function App's routes on a local function host, with a local ACS and a fake Durable webhook."""
    from tests.support.functions_harness import open_harness

    async with open_harness(redis_url, tmp_path) as opened:
        yield opened
