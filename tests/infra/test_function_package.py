"""What `azd deploy functions` uploads: `.funcignore` keeps everything `function_app.py` imports and leaves
out what only runs elsewhere (the media host, the local stack, tests) and every local secret."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.infra import bicep

FUNCTION_SIDE = ["function_app.py", "callbacks", "orchestrations", "agents", "switchboard"]


def ignored_entries() -> set[str]:
    lines = (bicep.ROOT / ".funcignore").read_text().splitlines()
    return {line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")}


def repo_packages_imported() -> set[str]:
    """Top-level packages of this repository that the Function App's code imports."""
    local = {p.name for p in bicep.ROOT.iterdir() if (p / "__init__.py").is_file()}
    found: set[str] = set()
    for entry in FUNCTION_SIDE:
        root = bicep.ROOT / entry
        for path in [root] if root.is_file() else root.rglob("*.py"):
            for node in ast.walk(ast.parse(Path(path).read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                found |= {name.split(".")[0] for name in names} & local
    return found


def test_the_function_app_imports_only_what_is_packaged() -> None:
    imported = repo_packages_imported()
    assert {"callbacks", "orchestrations", "agents", "switchboard"} <= imported
    assert not imported & ignored_entries(), f"imported but left out of the package: {imported & ignored_entries()}"


def test_the_package_leaves_out_other_runtimes_and_secrets() -> None:
    ignored = ignored_entries()
    for entry in ("media_host", "local_stack", "tests", "bench", "infra", "node_modules", ".venv*",
                  "local.settings.json", ".env", ".azure", "out"):
        assert entry in ignored, f".funcignore must leave out {entry}"
    for entry in ("host.json", "requirements.txt", *FUNCTION_SIDE):
        assert entry not in ignored, f".funcignore must keep {entry}"
