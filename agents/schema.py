"""The YAML schema of scenarios and agents, as pydantic models.

A scenario directory holds `scenario.yaml`, one YAML file per agent under `agents/`, Jinja prompt
templates (usually under `prompts/`) and the scenario's tools module. Scenario `defaults` apply to
every agent: an agent's own value wins, nested settings (voice, model, realtime, turn, replies) merge
key by key, and default `tools` are added to the agent's own.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Voice(_Spec):
    azure: str = Field("en-US-AvaMultilingualNeural", description="Azure Speech voice name")
    embedded: str = Field("af_heart", description="Embedded TTS voice")
    style: str | None = Field(None, description="Azure speaking style (SSML mstts:express-as)")
    rate: str | None = Field(None, pattern=r"^[+-]?[0-9]{1,3}%$", description="Speaking rate, e.g. +10%")


class ModelSettings(_Spec):
    temperature: float = Field(0.3, ge=0, le=2)
    max_tokens: int = Field(400, ge=1, le=8192)


class TurnDetection(_Spec):
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | None = Field(None, ge=0, le=1)
    prefix_padding_ms: int | None = Field(None, ge=0, le=2000)
    silence_duration_ms: int | None = Field(None, ge=100, le=5000)
    eagerness: Literal["low", "medium", "high", "auto"] | None = None


class RealtimeSettings(_Spec):
    voice: str = "alloy"
    turn_detection: TurnDetection = TurnDetection()
    transcription_model: str = "gpt-4o-mini-transcribe"


class TurnSettings(_Spec):
    end_of_speech_ms: int = Field(500, ge=150, le=3000, description="Silence that ends the caller's turn")


class AgentSpec(_Spec):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=1)
    greeting: str = Field("", description="Jinja template said when the call (or this agent) starts")
    prompt: str | None = Field(None, description="Path of the Jinja prompt template, relative to the scenario")
    prompt_template: str | None = Field(None, description="The Jinja prompt template inline")
    locale: str = Field("en-US", pattern=r"^[a-z]{2}-[A-Z]{2}$")
    voice: Voice = Voice()
    model: ModelSettings = ModelSettings()
    tools: list[str] = Field(default_factory=list)
    handoffs: list[str] = Field(default_factory=list, description="Agents this agent may hand over to")
    handoff_examples: list[str] = Field(default_factory=list,
                                        description="Caller phrases that should bring the caller to this agent")
    requires_auth: bool = Field(False, description="Only an authenticated caller may be handed to this agent")
    realtime: RealtimeSettings = RealtimeSettings()
    turn: TurnSettings = TurnSettings()
    replies: dict[str, str] = Field(default_factory=dict,
                                    description="Reply templates for the offline brain, by tool name or situation")

    @model_validator(mode="after")
    def _one_prompt(self) -> AgentSpec:
        if (self.prompt is None) == (self.prompt_template is None):
            raise ValueError("exactly one of 'prompt' (a file) or 'prompt_template' (inline) is required")
        return self


class Policy(_Spec):
    max_handoffs: int = Field(10, ge=0, le=100)
    human_queue: str | None = Field(None, pattern=PHONE_PATTERN, description="Number transfers go to")


class ScenarioSpec(_Spec):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=1)
    entry_agent: str = Field(pattern=NAME_PATTERN)
    phone_numbers: list[str] = Field(default_factory=list)
    tools_module: str | None = Field(None, description="A dotted module, or a .py path relative to the scenario")
    timezone: str = Field("UTC", description="IANA time zone of the callers: `now` and `time_of_day` use it")
    defaults: dict[str, Any] = Field(default_factory=dict, description="Agent fields every agent inherits")
    policy: Policy = Policy()

    @model_validator(mode="after")
    def _numbers(self) -> ScenarioSpec:
        for i, number in enumerate(self.phone_numbers):
            if not re.match(PHONE_PATTERN, number):
                raise ValueError(f"phone_numbers[{i}] must be an E.164 number like +18005550100")
        if len(set(self.phone_numbers)) != len(self.phone_numbers):
            raise ValueError("phone_numbers lists a number twice")
        if "name" in self.defaults:
            raise ValueError("defaults cannot set 'name'")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone '{self.timezone}' is not an IANA time zone like America/New_York") from None
        return self


MERGED_FIELDS = ("voice", "model", "realtime", "turn", "replies")


def merge_defaults(defaults: dict[str, Any], agent: dict[str, Any]) -> dict[str, Any]:
    """An agent's raw YAML with the scenario defaults applied (see the module docstring)."""
    merged = {**defaults, **agent}
    for key in MERGED_FIELDS:
        if isinstance(defaults.get(key), dict) and isinstance(agent.get(key), dict):
            merged[key] = _deep_merge(defaults[key], agent[key])
    own, inherited = agent.get("tools", []), defaults.get("tools", [])
    if isinstance(own, list) and isinstance(inherited, list):  # otherwise schema validation reports it
        merged["tools"] = own + [t for t in inherited if t not in own]
    return merged


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out
