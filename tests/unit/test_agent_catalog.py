from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents import AgentLibrary, AgentLoadError, PromptVariables, ToolContext, default_registry, load_catalog
from agents.tools import HandoffRequested

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "agents"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "defs", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "defs"


def test_routes_by_called_number(root: Path) -> None:
    catalog = load_catalog(root)
    mini = catalog.scenario_for_number("4:+15550000001")
    assert mini is not None
    assert mini.name == "mini"
    assert catalog.scenario_for_number("+15550000001") is mini
    assert catalog.scenario_for_number("+19999999999") is None
    assert catalog.scenario_for_number(None) is None
    assert mini.entry_agent.name == "front"


def test_defaults_are_inherited_and_overridden(root: Path) -> None:
    catalog = load_catalog(root)
    front, back = catalog.agent("mini", "front"), catalog.agent("mini", "back")
    assert front.spec.model.temperature == 0.2  # from the scenario defaults
    assert front.spec.model.max_tokens == 200  # the agent's own
    assert [t.name for t in front.tools] == ["mini_opening_hours", "transfer_to_human", "handoff_to_back"]
    assert [t.name for t in back.tools] == ["transfer_to_human", "handoff_to_front"]


def test_generated_handoff_tool_carries_the_target(root: Path) -> None:
    front = load_catalog(root).agent("mini", "front")
    tool = front.tool("handoff_to_back")
    assert tool is not None
    assert tool.kind == "handoff"
    assert tool.requires_auth  # back requires an authenticated caller
    assert tool.examples == ("I need the back office", "something complicated")
    assert tool.description == "Hand the caller over to the back agent. Handles everything the front desk cannot."
    assert set(tool.parameters_schema()["properties"]) == {"reason", "summary"}


async def test_handoff_tool_requests_the_handoff(root: Path) -> None:
    front = load_catalog(root).agent("mini", "front")
    tool = front.tool("handoff_to_back")
    ctx = ToolContext(call_id="c1", scenario="mini", agent="front")
    refused = await default_registry.execute("handoff_to_back", {"reason": "x"}, ctx, spec=tool)
    assert refused.error is not None
    assert refused.error.code == "not_authenticated"
    ctx.authenticate({"id": "C1", "name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"})
    done = await default_registry.execute("handoff_to_back", {"reason": "complex", "summary": "wants help"}, ctx,
                                          spec=tool)
    assert done.ok
    assert done.effects == [HandoffRequested(target="back", reason="complex", summary="wants help")]


def test_prompts_and_greetings_render_with_call_variables(root: Path) -> None:
    catalog = load_catalog(root)
    evening = datetime(2026, 5, 1, 20, 0, tzinfo=UTC)
    customer = {"id": "C1", "name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"}
    front = catalog.agent("mini", "front")
    variables = PromptVariables(agent="front", scenario="mini", customer=customer, now=evening)
    assert front.render_prompt(variables) == ("You are front, the front desk of mini. It is evening.\n"
                                              "The caller is Ada Lovelace.")
    assert front.render_greeting(variables) == "Good evening, thanks for calling."
    back = catalog.agent("mini", "back")
    handed = PromptVariables(agent="back", scenario="mini", customer=customer, now=evening,
                             handoff={"from_agent": "front", "reason": "r", "summary": "needs a refund"})
    assert "You took over from front: needs a refund" in back.render_prompt(handed)
    assert back.render_greeting(handed) == "Hello Ada, this is the back office."


def test_reload_swaps_versions_and_keeps_calls_on_theirs(root: Path) -> None:
    library = AgentLibrary.load(root)
    in_call = library.current
    old_agent = in_call.agent("mini", "front")
    greeting = root / "mini/agents/front.yaml"
    greeting.write_text(greeting.read_text().replace("thanks for calling", "welcome back"))
    tools = root / "mini/tools.py"
    tools.write_text(tools.read_text().replace("We are open", "Our hours are"))

    fresh = library.reload()
    assert fresh.version != in_call.version
    now = PromptVariables(agent="front", scenario="mini", now=datetime(2026, 5, 1, 9, tzinfo=UTC))
    assert fresh.agent("mini", "front").render_greeting(now) == "Good morning, welcome back."
    new_tool = fresh.agent("mini", "front").tool("mini_opening_hours")
    assert new_tool is not None
    assert new_tool.reply is not None
    assert new_tool.reply.startswith("Our hours are")
    # The call that started on the old version keeps its agent, greeting and tool.
    assert in_call.agent("mini", "front") is old_agent
    assert old_agent.render_greeting(now) == "Good morning, thanks for calling."
    old_tool = old_agent.tool("mini_opening_hours")
    assert old_tool is not None
    assert old_tool.reply is not None
    assert old_tool.reply.startswith("We are open")


def test_failed_reload_keeps_the_current_version(root: Path) -> None:
    library = AgentLibrary.load(root)
    before = library.current
    (root / "mini/agents/front.yaml").write_text("name: front\ndescription: [broken\n")
    with pytest.raises(AgentLoadError) as info:
        library.reload()
    assert "not valid YAML" in str(info.value)
    assert library.current is before


def test_summary_lists_scenarios_agents_and_tools(root: Path) -> None:
    summary = load_catalog(root).summary()
    assert summary["scenarios"]["mini"]["agents"]["back"] == ["transfer_to_human", "handoff_to_front"]
    assert summary["scenarios"]["mini"]["phone_numbers"] == ["+15550000001"]
