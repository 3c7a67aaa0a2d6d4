"""A Realtime call for tests: a simulated ACS media stream into a running media host (real ACS socket,
Redis) whose Realtime pipeline connects with the real openai client, through `REALTIME_WEBSOCKET_URL`, to
the scripted local Realtime server (tests/support/realtime_server.py), GA or beta. The server's audio carries a
marker in each 20 ms frame, so what the caller got of each response is counted exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from local_stack.callers.acs_client import AcsClient
from media_host.channel import CallInfo
from media_host.metrics import Counter
from media_host.pipelines import Pipeline
from media_host.pipelines.realtime import realtime_pipeline_from_settings
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from tests.support.media_harness import running_host, seed_call
from tests.support.realtime_server import RealtimeServer
from tests.support.realtime_wire import marker_of

FLAVORS = ["ga", "beta"]
FRAME_BYTES = 960  # 20 ms at 24 kHz: ACS, the pipeline and the Realtime API all run at 24 kHz here
QUIET = bytes(FRAME_BYTES)
LOUD = (np.sin(2 * np.pi * 300 * np.arange(480) / 24000) * 8000).astype("<i2").tobytes()
# What the pipeline counts as sent to ACS but not heard yet. The playout releases a frame only while ACS
# holds at most its 60 ms lead, so ACS never holds more than that plus the frame just sent: a truncation
# is at most 80 ms (and 1 ms of rounding down) short of what the caller's socket received, and never more.
FAR_END_MS = 60 + 20 + 1

SCENARIO = {
    "scenario.yaml": """
name: rtdesk
description: A help desk for testing the Realtime pipeline.
entry_agent: front
tools_module: tools.py
defaults:
  tools: [transfer_to_human]
policy:
  human_queue: "+15550000199"
  max_handoffs: 2
""",
    "agents/front.yaml": """
name: front
description: Answers first.
greeting: "Hello, front desk."
prompt_template: "You are the front desk of {{ scenario }}."
tools: [rt_lookup, rt_goodbye, rt_gated_transfer]
handoffs: [back]
realtime: {voice: alloy}
""",
    "agents/back.yaml": """
name: back
description: Handles refunds.
greeting: "Back office."
prompt_template: "You are the back office.{% if handoff %} {{ handoff.summary }}{% endif %}"
handoffs: [front, mute]
realtime: {voice: verse, turn_detection: {type: semantic_vad, eagerness: low}}
replies: {resumed: "Back office again, sorry about the drop."}
""",
    "agents/mute.yaml": """
name: mute
description: Speaks without transcribing the caller.
prompt_template: "You do not transcribe."
realtime: {transcription_model: ""}
""",
    "tools.py": '''
import asyncio

from agents.tools import ToolContext, register_tool

GATE = asyncio.Event()  # rt_gated_transfer finishes once a test sets it


@register_tool(name="rt_lookup", description="Look an order up.")
async def rt_lookup(ctx: ToolContext, order: str = "") -> dict[str, str]:
    return {"order": order, "status": "shipped"}


@register_tool(name="rt_goodbye", description="End the call.")
async def rt_goodbye(ctx: ToolContext) -> dict[str, bool]:
    ctx.request_hangup("caller is done")
    return {"ending": True}


@register_tool(name="rt_gated_transfer", description="Transfer, once the gate opens.", timeout=30.0)
async def rt_gated_transfer(ctx: ToolContext) -> dict[str, bool]:
    await GATE.wait()
    ctx.request_transfer("gated")
    return {"transferring": True}
''',
}


@pytest.fixture(scope="session")
def agents_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("realtime_agents")
    for name, text in SCENARIO.items():
        path = root / "rtdesk" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    return root


@dataclass
class RtCall:
    host: MediaHost
    call_id: str
    acs: AcsClient
    server: RealtimeServer
    events: Counter  # the pipeline's Realtime events by kind
    sent: bytearray  # all the caller audio the ACS client sent

    async def turns(self) -> list[tuple[str, str, bool]]:
        return [(t.speaker.value, t.text, t.interrupted) for t in await self.host.store.turns(self.call_id)]

    async def wait_turns(self, count: int, timeout: float = 10) -> list[tuple[str, str, bool]]:
        async with asyncio.timeout(timeout):
            while len(found := await self.turns()) < count:
                await asyncio.sleep(0.02)
        return found

    def frames(self, response: int) -> list[int]:
        """Indexes of the frames the caller received of the server's `response` (0-based)."""
        marker = self.server.served[response].marker
        return [i for i, frame in enumerate(self.acs.received.audio) if marker_of(frame) == marker]

    async def got(self, response: int, frames: int) -> None:
        await self.server.wait_for(lambda s: len(s.served) > response)
        await self.acs.wait_for(lambda _r: len(self.frames(response)) >= frames, timeout=10)

    async def speak(self, ms: int = 200, silence_ms: int = 300) -> None:
        """The caller talks, then is quiet long enough for the server to end the turn."""
        for frame in [LOUD] * (ms // 20) + [QUIET] * (silence_ms // 20):
            self.sent += frame
            await self.acs.send_frame(frame)

    async def requests(self, kind: str) -> list[dict[str, Any]]:
        """What was asked of the control plane (transfer_requested, hangup_requested)."""
        return [e.data for e in await self.host.store.events(self.call_id) if e.kind == kind]

    async def requested(self, kind: str, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not await self.requests(kind):
                await asyncio.sleep(0.02)

    async def counted(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.02)


def azure_settings(server: RealtimeServer, **extra: str) -> dict[str, Any]:
    """Settings that reach `server` as Azure OpenAI (deployment `rt-deploy`, the dialect's Azure path)."""
    path = "/openai/v1" if server.ga else "/openai"
    return {"azure_openai_endpoint": server.origin, "azure_openai_api_key": "azure-key",
            "azure_openai_realtime_deployment": "rt-deploy",
            "realtime_websocket_url": f"ws://127.0.0.1:{server.port}{path}", **extra}


@contextlib.asynccontextmanager
async def realtime_call(redis_url: str, agents_dir: Path, server: RealtimeServer, *, greeted: bool = False,
                        agent: str = "front", azure: dict[str, str] | None = None,
                        **settings: Any) -> AsyncIterator[RtCall]:
    """A call on `server`: as OpenAI, or with `azure` (extra Azure settings) as Azure OpenAI."""
    holder: list[MediaHost] = []
    events = Counter("switchboard_realtime_events_total", "Realtime API events, by kind")

    def pipelines(_info: CallInfo) -> Pipeline:
        host = holder[0]
        return realtime_pipeline_from_settings(host.settings, host.control_plane, metrics=host.metrics,
                                               events=events)

    async with server:
        service = azure_settings(server, **azure) if azure is not None else {"realtime_websocket_url": server.url}
        async with running_host(redis_url, adapters=[AcsAdapter], pipelines=pipelines, agents_dir=str(agents_dir),
                                realtime_flavor=server.flavor, **{**service, **settings}) as host:
            holder.append(host)
            call_id, token = await seed_call(host, scenario="rtdesk", agent=agent, greeted=greeted)
            assert host.port is not None
            async with AcsClient(host.port, token, rate=24000) as acs:
                call = RtCall(host, call_id, acs, server, events, bytearray())
                yield call
    assert server.problems == []  # the pipeline sent nothing the service would refuse
    assert server.refused == []
    assert not server.script  # every scripted response was asked for


def item_texts(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of the message items among these client events."""
    return [(e["item"]["role"], e["item"]["content"][0]["text"]) for e in events
            if e["type"] == "conversation.item.create" and e["item"]["type"] == "message"]
