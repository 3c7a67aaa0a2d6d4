"""OpenAI Realtime API: every client event the pipeline builds (media_host/pipelines/realtime/protocol.py
`Dialect`) is one the service takes, in both dialects, for every agent this project ships.

Grounded in the openai SDK's generated client-event models, openai 3.63.0: `openai.types.realtime`
RealtimeClientEvent (GA) and `openai.types.beta.realtime` RealtimeClientEvent (beta), applied as the local
Realtime server applies them (tests/support/realtime_events.py): a field the models do not define is refused, as
the service refuses it (`unknown_parameter`).

Not checkable without the service: values the models type loosely (a voice or model name, a tool's JSON
schema), and the Azure deployment names a session names (test_realtime_azure.py covers the shape).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents import Agent, AgentLibrary, PromptVariables
from media_host.pipelines.realtime.protocol import Dialect, SessionConfig, Transcription
from switchboard.settings import RealtimeFlavor, load_settings
from tests.support.realtime_events import client_problems

FLAVORS = [RealtimeFlavor.GA, RealtimeFlavor.BETA]


def agents() -> list[Agent]:
    catalog = AgentLibrary.load(load_settings().agents_dir).current
    return [agent for scenario in catalog.scenarios.values() for agent in scenario.agents.values()]


AGENTS = agents()


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("agent", AGENTS, ids=[f"{a.scenario}-{a.name}" for a in AGENTS])
@pytest.mark.parametrize("transcription", [Transcription(), Transcription(azure=True, deployment="stt")],
                         ids=["openai", "azure"])
def test_every_agents_session_is_a_session_update_the_service_takes(
        flavor: RealtimeFlavor, agent: Agent, transcription: Transcription) -> None:
    variables = PromptVariables(agent=agent.name, scenario="conformance", now=datetime(2026, 1, 15, 9, 30, tzinfo=UTC))
    config = SessionConfig.for_agent(agent, variables, transcription)
    dialect = Dialect(flavor)
    for event in (dialect.session_update(config), dialect.session_update(config, with_voice=False, event_id="sw_1")):
        assert client_problems(event, flavor is RealtimeFlavor.GA) == []


@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_other_client_event_the_pipeline_builds_is_one_the_service_takes(flavor: RealtimeFlavor) -> None:
    dialect = Dialect(flavor)
    tools = AGENTS[0].realtime_tools()
    events = [
        dialect.response_create(), dialect.response_create("Say hello."), dialect.response_create("Go on.", tools),
        dialect.response_out_of_band("Say: one moment.", {"switchboard": "holding"}, "sw_holding_1"),
        dialect.response_cancel(), dialect.response_cancel("resp_1"), dialect.append("AAAA"),
        dialect.truncate("item_1", 1200), dialect.function_output("call_1", '{"ok": true}'),
        dialect.message("user", "123"), dialect.message("assistant", "Hello."), dialect.message("system", "Note."),
    ]
    for event in events:
        assert client_problems(event, flavor is RealtimeFlavor.GA) == [], event["type"]
    assert tools, "the first agent has tools: the check above covered them"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_field_of_the_other_dialect_is_refused_as_the_service_refuses_it(flavor: RealtimeFlavor) -> None:
    """The stand-in's check is not vacuous: GA's session shape on a beta session, and beta's on GA."""
    other = Dialect(RealtimeFlavor.BETA if flavor is RealtimeFlavor.GA else RealtimeFlavor.GA)
    config = SessionConfig(instructions="x", voice="alloy")
    found = client_problems(other.session_update(config), flavor is RealtimeFlavor.GA)
    assert found
    assert {p.code for p in found} <= {"unknown_parameter", "invalid_value"}
    assert all(p.param and p.param.startswith("session") for p in found)
