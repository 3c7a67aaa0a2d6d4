"""docs/settings.md's table and local.settings.json.example are generated from Settings and must match it."""

from __future__ import annotations

import json
from pathlib import Path

from switchboard.settings import PROJECT_ROOT, Settings
from switchboard.settings_doc import (
    SETTINGS_DOC,
    TABLE_END,
    TABLE_START,
    example_settings,
    settings_table,
    write_docs,
)


def test_settings_doc_has_the_current_settings_table() -> None:
    doc = (PROJECT_ROOT / SETTINGS_DOC).read_text()
    assert f"{TABLE_START}\n{settings_table()}\n{TABLE_END}" in doc, "regenerate with: make settings-doc"


def test_write_docs_rewrites_only_the_table(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / SETTINGS_DOC).write_text(f"# Settings\n\nProse.\n\n{TABLE_START}\n| stale |\n{TABLE_END}\n\nMore.\n")
    write_docs(tmp_path)
    assert (tmp_path / SETTINGS_DOC).read_text() == (
        f"# Settings\n\nProse.\n\n{TABLE_START}\n{settings_table()}\n{TABLE_END}\n\nMore.\n")
    assert json.loads((tmp_path / "local.settings.json.example").read_text()) == example_settings()


def test_example_file_lists_every_setting_with_its_default() -> None:
    example = json.loads((PROJECT_ROOT / "local.settings.json.example").read_text())
    assert example == example_settings(), "regenerate with: make settings-doc"
    for name in Settings.model_fields:
        assert name.upper() in example["Values"]


def test_every_setting_is_described() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []
