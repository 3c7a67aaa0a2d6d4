"""Every file the manual names in backticks exists, so a rename or a move cannot leave the docs behind.

Checked in README.md and docs/*.md, in inline code outside fenced blocks:
- a path whose first part is a folder or file of the repository (`media_host/channel.py`, `tests/unit/`),
  a glob (`requirements*.txt`) matching at least one file;
- a bare module file (`serve_functions.py`) that some file of the repository is called;
- a dotted name under one of our packages (`switchboard.logs.bind_call`): the module, and the name
  defined in it;
- a test id (`tests/unit/test_x.py::test_y`): the file, and the test defined in it.
Paths under a folder .gitignore lists (`out/`: what `make run` writes) are outputs, not sources;
placeholders (`agents/<name>.yaml`) are skipped.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from switchboard.settings import PROJECT_ROOT
from tests.unit.test_doc_links import CODE_SPAN, PAGES, prose

# Named in the manual, but not files of this repository.
NOT_OURS = {
    "jwks_client.py",  # PyJWT's module (docs/conformance.md says why the project replaced it)
    "local_stack/scripts/pizza.yaml",  # the reader writes it (docs/agents.md, adding a scenario)
}
PATH = re.compile(r"[\w.*-]+(/[\w.*-]*)+|[\w.-]*\*[\w*-]*\.\w+")  # a/b.py, a/b/, a/*.bicep, requirements*.txt
MODULE_FILE = re.compile(r"\w+\.py")
DOTTED = re.compile(r"[a-z_]\w*(\.[A-Za-z_]\w*)+")
TEST_ID = re.compile(r"(?P<file>[\w/]+\.py)::(?P<name>\w+)")
NOT_SOURCES = {".git", ".venv", ".venv-infra", "node_modules", "__pycache__"}


def ignored_roots(root: Path) -> set[str]:
    """The folders .gitignore lists (`out/`, `.data/`...): what runs write, not sources."""
    lines = (root / ".gitignore").read_text().splitlines()
    return {line.strip("/") for line in lines if line.endswith("/") and "*" not in line}


@functools.cache
def module_files(root: Path) -> set[str]:
    skipped = NOT_SOURCES | ignored_roots(root)
    tops = [p for p in root.iterdir() if p.name not in skipped]
    found = {p.name for top in tops if top.is_dir() for p in top.rglob("*.py")} | {p.name for p in tops if p.is_file()}
    return {name for name in found if name.endswith(".py")}


def top_level_names(module: Path) -> set[str]:
    """What `module` (a .py file or a package) defines or imports at its top level."""
    source = module if module.suffix == ".py" else module / "__init__.py"
    names: set[str] = set()
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def missing_dotted(span: str, root: Path) -> str | None:
    parts = span.removesuffix("()").split(".")
    module = root / parts[0]
    if not (module / "__init__.py").is_file():
        return None  # not one of our packages (`df.DFApp`, `prometheus_client.parser`)
    for i, part in enumerate(parts[1:], start=1):
        if module.suffix != ".py" and (module / part).is_dir():
            module = module / part
        elif module.suffix != ".py" and (module / f"{part}.py").is_file():
            module = module / f"{part}.py"
        else:  # a name in the module (the rest, if any, are its attributes)
            return None if part in top_level_names(module) else f"{span}: no {part} in {'.'.join(parts[:i])}"
    return None


def missing_paths(text: str, root: Path) -> list[str]:
    """Each file named in `text`'s inline code that `root` does not hold, as `name: why`."""
    ignored, tops = ignored_roots(root), {p.name for p in root.iterdir()}
    names: set[str] | None = None
    missing = []
    for span in (s.strip("`").rstrip(":,") for s in CODE_SPAN.findall(prose(text))):
        if span in NOT_OURS or "<" in span:
            continue
        if test_id := TEST_ID.fullmatch(span):
            file = root / test_id["file"]
            if not file.is_file():
                missing.append(f"{span}: no such file")
            elif test_id["name"] not in top_level_names(file):
                missing.append(f"{span}: no {test_id['name']} in {test_id['file']}")
        elif PATH.fullmatch(span):
            first = span.split("/")[0]
            if first in ignored or ("*" not in first and first not in tops):
                continue  # an output (`out/call.wav`) or not a repository path (`raw/lpcm16`, `~/.cache/pip`)
            found = any(root.glob(span.rstrip("/"))) if "*" in span else (root / span).exists()
            if not found:
                missing.append(f"{span}: no such file")
        elif MODULE_FILE.fullmatch(span):
            names = module_files(root) if names is None else names
            if span not in names:
                missing.append(f"{span}: no file of that name")
        elif DOTTED.fullmatch(span.removesuffix("()")) and (why := missing_dotted(span, root)):
            missing.append(why)
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(PROJECT_ROOT).as_posix())
def test_every_file_named_exists(page: Path) -> None:
    assert missing_paths(page.read_text(), PROJECT_ROOT) == []


def test_the_checker_finds_a_moved_file_a_renamed_name_and_a_lost_module(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text(".venv/\nout/\n")
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "mod.py").write_text("from os import path as kept_path\n\n\nclass Kept:\n    pass\n")
    (tmp_path / "requirements-a.txt").write_text("")
    text = (
        "`pkg/sub/mod.py` `pkg/sub/` `requirements*.txt` `mod.py` `pkg.sub.mod.Kept.attr` `pkg.sub.mod.kept_path()`\n"
        "`out/call.wav` `raw/lpcm16` `agents/<name>.yaml` `jwks_client.py` `df.DFApp` `host.json` `a b/c.py`\n"
        "```\n`pkg/fenced.py` `gone.py`\n```\n"
        "`pkg/sub/gone.py` `pkg/old/` `requirements*.lock` `caller.py` `pkg.sub.mod.Renamed` `pkg.lost.thing`\n"
        "`MediaStreaming*` `holding_*`\n"
        "`pkg/sub/mod.py::Kept` `pkg/sub/mod.py::test_gone` `pkg/sub/nope.py::test_x`\n"
    )
    assert missing_paths(text, tmp_path) == [
        "pkg/sub/gone.py: no such file",
        "pkg/old/: no such file",
        "requirements*.lock: no such file",
        "caller.py: no file of that name",
        "pkg.sub.mod.Renamed: no Renamed in pkg.sub.mod",
        "pkg.lost.thing: no lost in pkg",
        "pkg/sub/mod.py::test_gone: no test_gone in pkg/sub/mod.py",
        "pkg/sub/nope.py::test_x: no such file",
    ]
