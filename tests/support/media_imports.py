"""The media host's imports, walked statically from its sources, and the installed distributions that
provide them: what the image's requirement files must install for the host to start and to run.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.support.media_image import ROOT, installed_requirement_files, load_build

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


def all_sites() -> list[ImportSite]:
    """The third-party imports of every media host module and agent definition, lazy ones included."""
    return third_party(reachable(ALL_ROOTS, at_start=False))


def start_sites() -> list[ImportSite]:
    """The third-party imports that run when the host starts: module level and not ImportError-guarded."""
    return [s for s in third_party(reachable(START_ROOTS, at_start=True)) if not s.lazy and not s.optional]
