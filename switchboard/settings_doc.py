"""Render the settings documentation (docs/settings.md's table, local.settings.json.example) from Settings itself.

`python -m switchboard.settings_doc table|example` prints either; a test checks both files match, so
the documentation cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

from switchboard.settings import PROJECT_ROOT, Settings

# Values that only Azure Functions reads (not part of Settings), shown first in the example file.
FUNCTIONS_VALUES = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "FUNCTIONS_WORKER_RUNTIME": "python",
}


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    value: Any = field.default
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Path):
        return str(value.relative_to(PROJECT_ROOT)) if value.is_relative_to(PROJECT_ROOT) else str(value)
    return str(value)


def settings_table() -> str:
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = _default(name)
        shown = f"`{default}`" if default else "(unset)"
        rows.append(f"| `{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


def example_settings() -> dict[str, Any]:
    values = dict(FUNCTIONS_VALUES)
    values.update({name.upper(): _default(name) for name in Settings.model_fields})
    return {"IsEncrypted": False, "Values": values, "Host": {"LocalHttpPort": 7071, "CORS": "*"}}


TABLE_START, TABLE_END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
SETTINGS_DOC = Path("docs") / "settings.md"  # relative to the project root; its prose is hand-written


def write_docs(root: Path = PROJECT_ROOT) -> None:
    """Rewrite docs/settings.md's table (between its markers) and local.settings.json.example."""
    doc = root / SETTINGS_DOC
    text = doc.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    doc.write_text(f"{text[:start]}\n{settings_table()}\n{text[end:]}")
    (root / "local.settings.json.example").write_text(json.dumps(example_settings(), indent=2) + "\n")


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "table"
    if what == "table":
        print(settings_table())
    elif what == "example":
        print(json.dumps(example_settings(), indent=2))
    elif what == "write":
        write_docs()
    else:
        print("usage: python -m switchboard.settings_doc table|example|write", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
