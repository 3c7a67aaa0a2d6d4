"""What the simulated caller says: a YAML script (see local_stack/scripts/banking.yaml), parsed once."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from local_stack.callers.scripted import Line

SCRIPTS = Path(__file__).resolve().parent / "scripts"


class ScriptError(ValueError):
    pass


class ScriptLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    say: str | None = Field(None, min_length=1, max_length=500)
    dtmf: str | None = Field(None, pattern=r"^[0-9*#]{1,32}$")
    interrupt_after_s: float | None = Field(None, ge=0, le=60)

    @model_validator(mode="after")
    def _one_action(self) -> ScriptLine:
        if (self.say is None) == (self.dtmf is None):
            raise ValueError("each line has exactly one of `say` or `dtmf`")
        return self

    def line(self) -> Line:
        return Line(self.say or "", self.interrupt_after_s, self.dtmf)


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str
    caller: str = Field("+14255550123", pattern=r"^\+[1-9][0-9]{6,14}$")
    lines: list[ScriptLine] = Field(min_length=1, max_length=50)

    def caller_lines(self) -> list[Line]:
        return [line.line() for line in self.lines]


def load_script(path: Path) -> Script:
    try:
        return Script.model_validate(yaml.safe_load(path.read_text()))
    except OSError as exc:
        raise ScriptError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScriptError(f"{path}: not YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise ScriptError(f"{path}: {where}: {first['msg']}") from None


def default_script(scenario: str) -> Path:
    path = SCRIPTS / f"{scenario}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SCRIPTS.glob("*.yaml")))
        raise ScriptError(f"no script for scenario {scenario!r} (have: {known}); pass --script FILE")
    return path
