"""Jinja templates for prompts, greetings and replies: sandboxed, and strict about undefined names.

Prompt and greeting templates see exactly the variables of `PromptVariables`. A template that uses
anything else fails validation at load time, not on a live call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

STRICT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                       autoescape=False)
# Reply templates depend on each tool's result shape, which only a real call produces: at load time
# they are compiled and rendered leniently to catch syntax and filter errors.
LENIENT = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True,
                                        autoescape=False)


def time_of_day(now: datetime) -> str:
    if now.hour < 12:
        return "morning"
    return "afternoon" if now.hour < 18 else "evening"


@dataclass(frozen=True)
class PromptVariables:
    """Everything a prompt or greeting template may use."""

    agent: str
    scenario: str
    caller: str | None = None
    customer: dict[str, Any] | None = None
    handoff: dict[str, Any] | None = None
    locale: str = "en-US"
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "scenario": self.scenario, "caller": self.caller, "customer": self.customer,
                "handoff": self.handoff, "locale": self.locale, "now": self.now,
                "time_of_day": time_of_day(self.now)}


SAMPLE_CUSTOMER = {"id": "C-0000", "name": "Sam Sample", "first_name": "Sam", "last_name": "Sample"}
SAMPLE_HANDOFF = {"from_agent": "previous", "reason": "sample reason", "summary": "sample summary"}


def sample_variables(agent: str, scenario: str, locale: str) -> list[PromptVariables]:
    """The variable sets every prompt and greeting must render with: a fresh call and a handed-over one."""
    when = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    return [
        PromptVariables(agent=agent, scenario=scenario, caller=None, locale=locale, now=when),
        PromptVariables(agent=agent, scenario=scenario, caller="+14255550123", customer=SAMPLE_CUSTOMER,
                        handoff=SAMPLE_HANDOFF, locale=locale, now=when.replace(hour=19)),
    ]


def compile_strict(source: str) -> Template:
    return STRICT.from_string(source)


def compile_lenient(source: str) -> Template:
    return LENIENT.from_string(source)


def render_reply(template: Template, **variables: Any) -> str:
    """Render a reply for speech: whitespace collapsed to single spaces."""
    return " ".join(template.render(**variables).split())
