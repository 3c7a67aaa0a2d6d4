"""Helpers for testing a scenario's tools through the real registry, as the pipelines call them."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from agents.prompts import compile_strict, render_reply
from agents.tools import ToolContext, ToolResult, ToolSpec, default_registry


def say(template: str | None, **variables: Any) -> str:
    """Render a reply or confirm template as the offline brain does: strict names, spoken spacing."""
    assert template is not None
    return render_reply(compile_strict(template), **variables)


def render(source: str, **variables: Any) -> str:
    """Render a prompt or greeting with the loader's strict, sandboxed settings."""
    return compile_strict(source).render(**variables)


class ScenarioTools:
    """The tools one scenario module defines, resolved as that scenario's agents see them."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module.__name__

    def tool(self, name: str) -> ToolSpec:
        spec = default_registry.get(name, self.module)
        assert spec is not None, f"{name} is not defined by {self.module}"
        return spec

    def names(self) -> set[str]:
        return {t.name for t in default_registry.defined_in(self.module)}

    async def call(self, ctx: ToolContext, name: str, **args: Any) -> ToolResult:
        return await default_registry.execute(name, args, ctx, spec=self.tool(name))
