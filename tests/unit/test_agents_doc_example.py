"""docs/agents.md's worked example is written to disk from the doc itself and must validate and run."""

from __future__ import annotations

import re
from pathlib import Path

from agents import ToolContext, default_registry, load_catalog
from agents.prompts import compile_strict, render_reply
from switchboard.settings import PROJECT_ROOT

BLOCK = re.compile(r'^```\w+ title="(?P<path>[^"]+)"\n(?P<body>.*?)^```$', re.S | re.M)


def _write_example(root: Path) -> list[str]:
    doc = (PROJECT_ROOT / "docs" / "agents.md").read_text()
    written = []
    for match in BLOCK.finditer(doc):
        target = root / match["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(match["body"])
        written.append(match["path"])
    return written


async def test_worked_example_validates_and_its_tools_work(tmp_path: Path) -> None:
    written = _write_example(tmp_path)
    assert set(written) == {"pizza/scenario.yaml", "pizza/agents/orders.yaml", "pizza/agents/tracking.yaml",
                            "pizza/prompts/orders.j2", "pizza/tools.py"}
    catalog = load_catalog(tmp_path)
    pizza = catalog.scenario_for_number("+18005550300")
    assert pizza is not None
    orders = pizza.entry_agent
    assert [t.name for t in orders.tools] == ["pizza_menu", "place_order", "transfer_to_human", "handoff_to_tracking"]

    ctx = ToolContext(call_id="c1", scenario="pizza", agent="orders")
    spec = orders.tool("place_order")
    assert spec is not None
    placed = await default_registry.execute("place_order", {"pizza": "pepperoni", "size": "large"}, ctx, spec=spec)
    assert placed.ok
    assert spec.reply is not None
    said = render_reply(compile_strict(spec.reply), args=placed.arguments, result=placed.data)
    assert said == f"Order {placed.data['order']} is in: large pepperoni. About 30 minutes."

    refused = await default_registry.execute("place_order", {"pizza": "pineapple"}, ctx, spec=spec)
    assert refused.error is not None
    assert refused.error.message.startswith("Sorry, we don't make pineapple.")

    tracking = pizza.agents["tracking"]
    status = tracking.tool("order_status")
    assert status is not None
    found = await default_registry.execute("order_status", {"order": placed.data["order"]}, ctx, spec=status)
    assert found.data == {"status": "in the oven"}
