"""What the end-to-end tests share: the embedded engines (loaded once) and a fresh sample bank."""

from __future__ import annotations

import re

import pytest

from media_host.audio import resample
from media_host.engines.base import Engines
from media_host.engines.factory import build_engines
from switchboard.settings import load_settings


@pytest.fixture(scope="session")
async def engines() -> Engines:
    return await build_engines(load_settings(pipeline="cascade"))


@pytest.fixture(autouse=True)
def fresh_bank() -> None:
    from agents.definitions.banking.sample_bank import reset_bank

    reset_bank()


async def transcribe(engines: Engines, pcm24k: bytes) -> str:
    """What a listener hears in 24 kHz agent audio, by the embedded Whisper."""
    stream = engines.stt.stream("en-US")
    stream.push(resample(pcm24k, 24000, 16000))
    text = (await stream.finish()).text
    await stream.aclose()
    return text


def digits(text: str) -> str:
    return re.sub(r"[^0-9.]", "", text.replace(",", ""))
