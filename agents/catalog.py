"""The loaded, validated agents: immutable catalog versions and a holder that can reload them.

A call keeps the `Catalog` it started with (its agents, templates and tool specs), so reloading the
definitions (agents.loader.AgentLibrary) never changes a call in progress.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Template

from agents.prompts import PromptVariables, render_reply
from agents.schema import AgentSpec, ScenarioSpec
from agents.tools import ToolSpec


@dataclass(frozen=True)
class Agent:
    spec: AgentSpec
    scenario: str
    tools: tuple[ToolSpec, ...]
    prompt_template: Template
    greeting_template: Template
    reply_templates: Mapping[str, Template]
    source_file: Path

    @property
    def name(self) -> str:
        return self.spec.name

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    def render_prompt(self, variables: PromptVariables) -> str:
        return self.prompt_template.render(**variables.as_dict()).strip()

    def render_greeting(self, variables: PromptVariables) -> str:
        return render_reply(self.greeting_template, **variables.as_dict())

    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.openai_tool() for t in self.tools]

    def realtime_tools(self) -> list[dict[str, Any]]:
        return [t.realtime_tool() for t in self.tools]


@dataclass(frozen=True)
class Scenario:
    spec: ScenarioSpec
    directory: Path
    agents: Mapping[str, Agent]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def entry_agent(self) -> Agent:
        return self.agents[self.spec.entry_agent]

    def now(self) -> datetime:
        """The time where the callers are (the scenario's time zone)."""
        return datetime.now(ZoneInfo(self.spec.timezone))


@dataclass(frozen=True)
class Catalog:
    root: Path
    scenarios: Mapping[str, Scenario]
    version: str  # content hash of every file that went into it
    loaded_at: float = field(default_factory=time.time)

    def scenario(self, name: str) -> Scenario:
        return self.scenarios[name]

    def agent(self, scenario: str, name: str) -> Agent:
        return self.scenarios[scenario].agents[name]

    def scenario_for_number(self, number: str | None) -> Scenario | None:
        """The scenario that answers calls to this number (E.164, or an ACS raw id `4:+1...`)."""
        if not number:
            return None
        wanted = number.removeprefix("4:")
        return next((s for s in self.scenarios.values() if wanted in s.spec.phone_numbers), None)

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "scenarios": {
                s.name: {"entry_agent": s.spec.entry_agent, "phone_numbers": list(s.spec.phone_numbers),
                         "agents": {a.name: [t.name for t in a.tools] for a in s.agents.values()}}
                for s in self.scenarios.values()
            },
        }
