"""The README table and local.settings.json.example are generated from Settings and must match it."""

from __future__ import annotations

import json

from switchboard.settings import PROJECT_ROOT, Settings
from switchboard.settings_doc import example_settings, settings_table


def test_readme_has_the_current_settings_table() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert settings_table() in readme, "regenerate with: make settings-doc"


def test_example_file_lists_every_setting_with_its_default() -> None:
    example = json.loads((PROJECT_ROOT / "local.settings.json.example").read_text())
    assert example == example_settings(), "regenerate with: make settings-doc"
    for name in Settings.model_fields:
        assert name.upper() in example["Values"]


def test_every_setting_is_described() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []
