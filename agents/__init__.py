"""Agents: YAML definitions, Jinja prompts, the tool registry and scenarios. Pure Python, no network.

    from agents import load_catalog, register_tool, ToolContext
"""

from agents.catalog import Agent, Catalog, Scenario
from agents.loader import AgentLibrary, AgentLoadError, load_catalog
from agents.prompts import PromptVariables
from agents.tools import ToolContext, ToolError, ToolRegistry, ToolResult, ToolSpec, default_registry, register_tool
from agents.validation import Problem

__all__ = [
    "Agent", "AgentLibrary", "AgentLoadError", "Catalog", "Problem", "PromptVariables", "Scenario", "ToolContext",
    "ToolError", "ToolRegistry", "ToolResult", "ToolSpec", "default_registry", "load_catalog", "register_tool",
]
