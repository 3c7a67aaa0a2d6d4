"""Checks on a scenario's handoff graph and tool references. Pure functions over the parsed specs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agents.builtin_tools import TRANSFER_TO_HUMAN
from agents.schema import AgentSpec, ScenarioSpec


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the definitions, said so a user can find and fix it."""

    file: Path
    message: str
    agent: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = str(self.file)
        if self.agent:
            where += f": agent '{self.agent}'"
        if self.field:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"


def check_graph(scenario: ScenarioSpec, scenario_file: Path,
                agents: Mapping[str, tuple[AgentSpec, Path]]) -> list[Problem]:
    """Entry agent, handoff targets, reachability and dead ends."""
    problems: list[Problem] = []
    if scenario.entry_agent not in agents:
        problems.append(Problem(scenario_file, f"entry agent '{scenario.entry_agent}' is not defined",
                                field="entry_agent"))
    for name, (spec, path) in agents.items():
        for i, target in enumerate(spec.handoffs):
            if target == name:
                problems.append(Problem(path, "an agent cannot hand off to itself", name, f"handoffs[{i}]"))
            elif target not in agents:
                problems.append(Problem(path, f"unknown handoff target '{target}'", name, f"handoffs[{i}]"))
        if not spec.handoffs and TRANSFER_TO_HUMAN not in spec.tools:
            problems.append(Problem(path, f"dead end: no handoffs and no {TRANSFER_TO_HUMAN} tool", name, "tools"))
    if scenario.entry_agent in agents:
        for name in sorted(set(agents) - reachable(scenario.entry_agent, agents)):
            problems.append(Problem(agents[name][1], f"not reachable from the entry agent '{scenario.entry_agent}'",
                                    name, "handoffs"))
    return problems


def reachable(entry: str, agents: Mapping[str, tuple[AgentSpec, Path]]) -> set[str]:
    seen, todo = {entry}, [entry]
    while todo:
        for target in agents[todo.pop()][0].handoffs:
            if target in agents and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
