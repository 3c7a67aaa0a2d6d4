"""Load scenarios and agents from a directory into a validated `Catalog`.

Every problem found is collected (not only the first), each naming the file, the agent and the field,
and raised together as `AgentLoadError`. Nothing half-loaded is ever returned.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Template, TemplateError, TemplateSyntaxError
from pydantic import ValidationError

import agents.builtin_tools  # noqa: F401 - registers transfer_to_human
from agents.builtin_tools import TRANSFER_TO_HUMAN, handoff_tool
from agents.catalog import Agent, Catalog, Scenario
from agents.prompts import compile_lenient, compile_strict, sample_variables
from agents.schema import AgentSpec, ScenarioSpec, merge_defaults
from agents.tools import ToolRegistry, ToolSpec, default_registry
from agents.validation import Problem, check_graph

SCENARIO_FILE = "scenario.yaml"


class AgentLoadError(Exception):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the agent definitions:\n{lines}")


def _field(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _read_yaml(path: Path, problems: list[Problem], agent: str | None = None) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problems.append(Problem(path, f"not valid YAML{line}: {getattr(exc, 'problem', exc)}", agent))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path, f"cannot read file: {exc}", agent))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(path, "must be a YAML mapping of field: value", agent))
        return None
    return data


def _schema_problems(exc: ValidationError, path: Path, agent: str | None) -> list[Problem]:
    return [Problem(path, e["msg"].removeprefix("Value error, "), agent, _field(e["loc"]) or None)
            for e in exc.errors(include_input=False, include_url=False)]


def _tools_module_name(spec: ScenarioSpec) -> str | None:
    """The module name the scenario's tools register under (a .py file gets a private name)."""
    if spec.tools_module is None:
        return None
    return f"_switchboard_tools_{spec.name}" if spec.tools_module.endswith(".py") else spec.tools_module


def _import_tools(spec: ScenarioSpec, directory: Path, path: Path, problems: list[Problem], fresh: bool) -> None:
    target = spec.tools_module
    name = _tools_module_name(spec)
    if target is None or name is None:
        return
    try:
        if target.endswith(".py"):
            file = (directory / target).resolve()
            if not file.is_relative_to(directory.resolve()) or not file.is_file():
                problems.append(Problem(path, f"tools file not found in the scenario: {target}", field="tools_module"))
                return
            module_spec = importlib.util.spec_from_file_location(name, file)
            assert module_spec is not None
            assert module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        elif fresh and target in sys.modules:
            importlib.reload(sys.modules[target])
        else:
            importlib.import_module(target)
    except Exception as exc:  # user code: report any failure as a problem, never crash the loader
        problems.append(Problem(path, f"cannot import tools module '{target}': {type(exc).__name__}: {exc}",
                                field="tools_module"))


class _AgentBuilder:
    """Turns one validated AgentSpec into an Agent, recording problems instead of raising."""

    def __init__(self, scenario: ScenarioSpec, directory: Path, registry: ToolRegistry,
                 specs: dict[str, tuple[AgentSpec, Path]], problems: list[Problem]) -> None:
        self.scenario, self.directory, self.registry = scenario, directory, registry
        self.specs, self.problems = specs, problems
        self.tools_module = _tools_module_name(scenario)

    def _problem(self, spec: AgentSpec, path: Path, field: str, message: str) -> None:
        self.problems.append(Problem(path, message, spec.name, field))

    def _compile(self, spec: AgentSpec, path: Path, field: str, origin: str, source: str, *,
                 strict: bool = True) -> Template | None:
        try:
            return compile_strict(source) if strict else compile_lenient(source)
        except TemplateSyntaxError as exc:
            self._problem(spec, path, field, f"template syntax error in {origin} at line {exc.lineno}: {exc.message}")
            return None

    def _prompt_source(self, spec: AgentSpec, path: Path) -> tuple[str, str] | None:
        if spec.prompt_template is not None:
            return spec.prompt_template, "prompt_template"
        assert spec.prompt is not None
        file = (self.directory / spec.prompt).resolve()
        if not file.is_relative_to(self.directory.resolve()) or not file.is_file():
            self._problem(spec, path, "prompt", f"prompt file not found in the scenario: {spec.prompt}")
            return None
        return file.read_text(encoding="utf-8"), spec.prompt

    def _render_check(self, spec: AgentSpec, path: Path, field: str, origin: str, template: Template) -> None:
        for variables in sample_variables(spec.name, self.scenario.name, spec.locale):
            try:
                template.render(**variables.as_dict())
            except TemplateError as exc:
                self._problem(spec, path, field, f"{origin} does not render: {exc.message or exc}")
                return
            except Exception as exc:  # e.g. a filter applied to the wrong type
                self._problem(spec, path, field, f"{origin} does not render: {type(exc).__name__}: {exc}")
                return

    def _tools(self, spec: AgentSpec, path: Path) -> list[ToolSpec]:
        tools: list[ToolSpec] = []
        for i, name in enumerate(spec.tools):
            if spec.tools.index(name) != i:
                self._problem(spec, path, f"tools[{i}]", f"tool '{name}' is listed twice")
                continue
            if name.startswith("handoff_to_"):
                self._problem(spec, path, f"tools[{i}]", "handoff tools are generated: list the agent under "
                                                        "'handoffs' instead")
                continue
            tool = self.registry.get(name, self.tools_module)
            if tool is None:
                if len(self.registry.modules_defining(name)) > 1:
                    modules = ", ".join(self.registry.modules_defining(name))
                    self._problem(spec, path, f"tools[{i}]", f"tool '{name}' is defined by several modules "
                                                            f"({modules}) and not by this scenario's tools module")
                    continue
                near = difflib.get_close_matches(name, self.registry.names(), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                self._problem(spec, path, f"tools[{i}]", f"unknown tool '{name}'{hint}")
                continue
            for kind, source in (("reply", tool.reply), ("confirm", tool.confirm)):
                if source is not None:
                    self._compile(spec, path, f"tools[{i}]", f"the {kind} template of tool '{name}'", source,
                                  strict=False)
            tools.append(tool)
        for target in spec.handoffs:
            if target in self.specs and target != spec.name:
                other = self.specs[target][0]
                tools.append(handoff_tool(target, other.description, list(other.handoff_examples),
                                          other.requires_auth))
        return tools

    def build(self, spec: AgentSpec, path: Path) -> Agent | None:
        before = len(self.problems)
        prompt = self._prompt_source(spec, path)
        prompt_t = self._compile(spec, path, "prompt", prompt[1], prompt[0]) if prompt else None
        greeting_t = self._compile(spec, path, "greeting", "greeting", spec.greeting)
        replies = {key: self._compile(spec, path, f"replies.{key}", f"reply '{key}'", text, strict=False)
                   for key, text in spec.replies.items()}
        if prompt_t is not None and prompt is not None:
            self._render_check(spec, path, "prompt", prompt[1], prompt_t)
        if greeting_t is not None:
            self._render_check(spec, path, "greeting", "greeting", greeting_t)
        tools = self._tools(spec, path)
        if len(self.problems) > before or prompt_t is None or greeting_t is None:
            return None
        return Agent(spec=spec, scenario=self.scenario.name, tools=tuple(tools), prompt_template=prompt_t,
                     greeting_template=greeting_t,
                     reply_templates={k: t for k, t in replies.items() if t is not None}, source_file=path)


def _load_agent_specs(scenario: ScenarioSpec, directory: Path, raw_defaults: dict[str, Any],
                      problems: list[Problem]) -> dict[str, tuple[AgentSpec, Path]]:
    specs: dict[str, tuple[AgentSpec, Path]] = {}
    files = sorted((directory / "agents").glob("*.yaml")) + sorted((directory / "agents").glob("*.yml"))
    if not files:
        problems.append(Problem(directory / "agents", "no agent files (agents/<name>.yaml)"))
    for path in files:
        raw = _read_yaml(path, problems, path.stem)
        if raw is None:
            continue
        agent_name = str(raw.get("name", path.stem))
        try:
            spec = AgentSpec.model_validate(merge_defaults(raw_defaults, raw))
        except ValidationError as exc:
            problems.extend(_schema_problems(exc, path, agent_name))
            continue
        if spec.name != path.stem:
            problems.append(Problem(path, f"must match the file name '{path.stem}'", spec.name, "name"))
        elif spec.name in specs:
            problems.append(Problem(path, f"duplicate agent name (also in {specs[spec.name][1]})", spec.name, "name"))
        else:
            specs[spec.name] = (spec, path)
    return specs


def _load_scenario(directory: Path, registry: ToolRegistry, problems: list[Problem], fresh: bool) -> Scenario | None:
    path = directory / SCENARIO_FILE
    raw = _read_yaml(path, problems)
    if raw is None:
        return None
    try:
        spec = ScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_schema_problems(exc, path, None))
        return None
    before = len(problems)
    _import_tools(spec, directory, path, problems, fresh)
    specs = _load_agent_specs(spec, directory, dict(raw.get("defaults") or {}), problems)
    problems.extend(check_graph(spec, path, specs))
    if spec.policy.human_queue is None and any(TRANSFER_TO_HUMAN in s.tools for s, _ in specs.values()):
        problems.append(Problem(path, f"agents use {TRANSFER_TO_HUMAN}, so a number to transfer to is required",
                                field="policy.human_queue"))
    builder = _AgentBuilder(spec, directory, registry, specs, problems)
    agents = {name: builder.build(s, p) for name, (s, p) in specs.items()}
    if len(problems) > before:
        return None
    return Scenario(spec=spec, directory=directory,
                    agents={name: agent for name, agent in agents.items() if agent is not None})


def _content_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml", ".j2", ".py"}):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def load_catalog(root: Path, registry: ToolRegistry = default_registry, *, fresh: bool = False) -> Catalog:
    """Load and validate every scenario under `root`. `fresh` re-imports tool modules (for reloads)."""
    root = Path(root)
    problems: list[Problem] = []
    if not root.is_dir():
        raise AgentLoadError([Problem(root, "agents directory does not exist")])
    directories = sorted(d for d in root.iterdir() if (d / SCENARIO_FILE).is_file())
    if not directories:
        raise AgentLoadError([Problem(root, f"no scenarios found (a scenario is a directory with {SCENARIO_FILE})")])
    scenarios: dict[str, Scenario] = {}
    numbers: dict[str, str] = {}
    for directory in directories:
        scenario = _load_scenario(directory, registry, problems, fresh)
        if scenario is None:
            continue
        path = directory / SCENARIO_FILE
        if scenario.name in scenarios:
            problems.append(Problem(path, f"duplicate scenario name (also in {scenarios[scenario.name].directory})",
                                    field="name"))
            continue
        for i, number in enumerate(scenario.spec.phone_numbers):
            if number in numbers:
                problems.append(Problem(path, f"{number} already routes to scenario '{numbers[number]}'",
                                        field=f"phone_numbers[{i}]"))
            numbers[number] = scenario.name
        scenarios[scenario.name] = scenario
    if problems:
        raise AgentLoadError(problems)
    return Catalog(root=root, scenarios=scenarios, version=_content_hash(root))


class AgentLibrary:
    """The current catalog, and reloading it. A failed reload raises and keeps the current version."""

    def __init__(self, catalog: Catalog, registry: ToolRegistry = default_registry) -> None:
        self._current = catalog
        self._registry = registry
        self._lock = threading.Lock()

    @classmethod
    def load(cls, root: Path, registry: ToolRegistry = default_registry) -> AgentLibrary:
        return cls(load_catalog(root, registry), registry)

    @property
    def current(self) -> Catalog:
        return self._current

    def reload(self) -> Catalog:
        with self._lock:
            self._current = load_catalog(self._current.root, self._registry, fresh=True)
            return self._current
