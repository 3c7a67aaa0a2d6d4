"""Reading infra/bicep for the consistency tests: files parsed once with a real Bicep parser (pycep), and
the app settings each runtime gets, resolved through the `union(...)` calls and variables that build them.

pycep does syntax only (no types, no symbols), so what the Bicep compiler would check across files is
checked here: module parameters, the parameters file, and what the code expects of the template.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra" / "bicep"
MAIN = INFRA / "main.bicep"
PARAMETERS = INFRA / "main.parameters.json"
PLACEHOLDER = "x-example"  # stands for any expression the template computes at deployment
_INTERPOLATION = re.compile(r"\$\{[^}]*\}")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = dict(BicepParser().parse(file_path=path))
    return parsed


def module_path(caller: Path, module: dict[str, Any]) -> Path:
    return (caller.parent / str(module["detail"]["path"])).resolve()


def module_config(module: dict[str, Any]) -> dict[str, Any]:
    """A module call's body (name, scope, params), also for a conditional `= if (...) {...}` call."""
    config: dict[str, Any] = module["config"]
    return config["config"] if "condition" in config else config


def module_calls() -> list[tuple[Path, str, dict[str, Any]]]:
    """(calling file, symbolic name, module) for every module call in every file."""
    return [(path, name, module) for path in bicep_files() for name, module in parse(path).get("modules", {}).items()]


def parameters_file() -> dict[str, Any]:
    params: dict[str, Any] = json.loads(PARAMETERS.read_text())["parameters"]
    return params


class Scope:
    """One Bicep file's parameters and variables, for resolving the expressions that build settings."""

    def __init__(self, path: Path, overrides: dict[str, Any] | None = None) -> None:
        parsed = parse(path)
        self.params: dict[str, Any] = parsed.get("parameters", {})
        self.variables: dict[str, Any] = parsed.get("variables", {})
        self.overrides = overrides or {}

    def settings(self, expr: Any) -> dict[str, str]:
        """An object expression (literal, variable, `union(a, b)` or `c ? a : b`) as setting name -> sample value."""
        if isinstance(expr, str) and expr in self.overrides:
            return dict(self.overrides[expr])
        if isinstance(expr, str) and expr in self.variables:
            return self.settings(self.variables[expr]["value"])
        if isinstance(expr, dict) and expr.get("operator", {}).get("type") == "conditional":
            # `cond ? {...} : {...}`: every setting either branch may set (the tests check all of them)
            branches = expr["operator"]["operands"]
            return {**self.settings(branches["false_value"]), **self.settings(branches["true_value"])}
        if isinstance(expr, dict) and expr.get("function", {}).get("type") == "union":
            merged: dict[str, str] = {}
            for arg in expr["function"]["parameters"].values():
                merged.update(self.settings(arg))
            return merged
        if isinstance(expr, dict) and "function" not in expr and "operator" not in expr:
            return {name: self.value(value) for name, value in expr.items()}
        raise AssertionError(f"cannot resolve settings expression {expr!r}")

    def value(self, expr: Any) -> str:
        """A sample of what a setting's value becomes: literals as written, parameters as their default,
        interpolations and computed expressions as a placeholder."""
        if isinstance(expr, bool):
            return str(expr).lower()
        if isinstance(expr, int):
            return str(expr)
        if not isinstance(expr, str):
            return PLACEHOLDER
        if expr in self.params:
            default = self.params[expr].get("default")
            return PLACEHOLDER if default is None or isinstance(default, dict) else str(default)
        return _INTERPOLATION.sub(PLACEHOLDER, expr)


def main_scope() -> Scope:
    return Scope(MAIN)


def function_app_settings() -> dict[str, str]:
    """Every app setting the Function App gets: main's `functionSettings` plus the module's own."""
    main = main_scope()
    module = INFRA / "modules" / "function-app.bicep"
    passed = main.settings(module_config(parse(MAIN)["modules"]["functionApp"])["params"]["settings"])
    own = Scope(module, {"settings": passed})
    return own.settings(parse(module)["resources"]["appSettings"]["config"]["properties"])


def media_host_settings() -> dict[str, str]:
    """Every environment variable the media host container gets, plain and from Key Vault secrets."""
    main = main_scope()
    module = INFRA / "modules" / "media-host.bicep"
    passed = main.settings(module_config(parse(MAIN)["modules"]["mediaHost"])["params"]["settings"])
    own = Scope(module, {"settings": passed})
    env = own.settings("hostSettings")
    for secret in parse(module)["variables"]["secretEnv"]["value"]:
        env[secret["name"]] = f"secret:{secret['secretRef']}"
    return env
