"""The tests' VAIC: local_stack.callers' AudioCodesClient with the test host's bot token, sending AudioCodes'
documented example messages (tests/fixtures/payloads/audiocodes_*.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local_stack.callers import audiocodes_client
from local_stack.callers.audiocodes import BOT_EVENT_NAMES, BOT_MESSAGE_TYPES, violations_in
from tests.support.media_harness import AUDIOCODES_TOKEN

__all__ = ["BOT_EVENT_NAMES", "BOT_MESSAGE_TYPES", "AudioCodesClient", "payload", "violations_in"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"


def payload(name: str, **overrides: Any) -> dict[str, Any]:
    """The fixture `audiocodes_<name>.json`, with top-level fields replaced."""
    doc: dict[str, Any] = json.loads((FIXTURES / f"audiocodes_{name}.json").read_text())
    return {**doc, **overrides}


class AudioCodesClient(audiocodes_client.AudioCodesClient):
    def __init__(self, port: int, *, token: str | None = AUDIOCODES_TOKEN, conversation_id: str | None = None,
                 path: str = "/ws") -> None:
        super().__init__(port, token=token, examples=payload, conversation_id=conversation_id, path=path)
