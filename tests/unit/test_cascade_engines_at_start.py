"""Which hosts build the cascade's engines at start (media_host/pipelines/factory.py `cascade_engines`): a cascade
host must have them; a Realtime host builds them as its fallback when it can, and serves without them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

import pytest

from media_host.engines.base import Engines
from media_host.pipelines.factory import cascade_engines
from switchboard.settings import SettingsError, load_settings

BUILT = cast(Engines, object())
REALTIME = {"pipeline": "realtime", "realtime_websocket_url": "ws://127.0.0.1:9/v1"}


async def built() -> Engines:
    return BUILT


async def not_installed() -> Engines:
    raise SettingsError("Invalid setting STT_ENGINE: auto selects the embedded Whisper, whose packages are not "
                        "installed (faster_whisper)")


async def broken() -> Engines:
    raise RuntimeError("a model file is corrupt")


async def test_a_realtime_host_builds_them_at_start_as_its_fallback() -> None:
    assert await cascade_engines(load_settings(**REALTIME), built) is BUILT


@pytest.mark.parametrize("build", [not_installed, broken])
async def test_a_realtime_host_without_them_says_its_calls_cannot_fall_back_and_serves(
        build: Callable[[], Awaitable[Engines]], caplog: pytest.LogCaptureFixture) -> None:
    assert await cascade_engines(load_settings(**REALTIME), build) is None
    assert "realtime calls cannot fall back to the cascade" in caplog.text


async def test_a_cascade_host_cannot_start_without_them() -> None:
    with pytest.raises(SettingsError):
        await cascade_engines(load_settings(pipeline="cascade"), not_installed)


async def test_an_echo_host_builds_none() -> None:
    assert await cascade_engines(load_settings(pipeline="echo"), broken) is None
