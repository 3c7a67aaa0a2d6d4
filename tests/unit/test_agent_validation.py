"""`python -m agents validate`: each validation error, from a broken copy of a valid fixture."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.__main__ import main as agents_cli
from switchboard.settings import PROJECT_ROOT

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "agents"


@pytest.fixture
def defs(tmp_path: Path) -> Path:
    root = tmp_path / "defs"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = agents_cli(["validate", str(root)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_fixture_is_valid(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(defs, capsys)
    assert (code, err) == (0, "")
    assert out.startswith("OK: 1 scenarios, 2 agents")
    assert "front  mini_opening_hours, transfer_to_human, handoff_to_back" in out


def test_shipped_definitions_are_valid_via_the_real_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "agents", "validate"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "scenario banking: entry auth" in proc.stdout
    assert "scenario clinic: entry reception" in proc.stdout


def _assert_problem(defs: Path, capsys: pytest.CaptureFixture[str], file: str, expected: str) -> None:
    code, out, err = run(defs, capsys)
    assert code == 1
    assert out == ""
    assert f"{defs / 'mini' / file}: {expected}" in err, err


def test_unknown_tool(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(defs / "mini/agents/front.yaml", lambda d: d.update(tools=["mini_opening_hourz"]))
    _assert_problem(defs, capsys, "agents/front.yaml", "agent 'front': field 'tools[0]': unknown tool "
                                                       "'mini_opening_hourz' (did you mean 'mini_opening_hours'?)")


def test_unknown_handoff_target(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(defs / "mini/agents/front.yaml", lambda d: d.update(handoffs=["back", "nowhere"]))
    _assert_problem(defs, capsys, "agents/front.yaml",
                    "agent 'front': field 'handoffs[1]': unknown handoff target 'nowhere'")


def test_unreachable_agent(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (defs / "mini/agents/lonely.yaml").write_text(
        "name: lonely\ndescription: Nobody hands over to me.\nprompt_template: hi\nhandoffs: [front]\n")
    _assert_problem(defs, capsys, "agents/lonely.yaml",
                    "agent 'lonely': field 'handoffs': not reachable from the entry agent 'front'")


def test_template_syntax_error(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (defs / "mini/prompts/front.j2").write_text("You are {{ agent }}.\n{% if %}broken{% endif %}\n")
    _assert_problem(defs, capsys, "agents/front.yaml",
                    "agent 'front': field 'prompt': template syntax error in prompts/front.j2 at line 2")


def test_undefined_template_variable(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(defs / "mini/agents/front.yaml", lambda d: d.update(greeting="Hello {{ callr }}"))
    _assert_problem(defs, capsys, "agents/front.yaml",
                    "agent 'front': field 'greeting': greeting does not render: 'callr' is undefined")


def test_undefined_attribute_in_prompt_file(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (defs / "mini/prompts/front.j2").write_text("{% if customer %}{{ customer.account }}{% endif %}")
    _assert_problem(defs, capsys, "agents/front.yaml",
                    "agent 'front': field 'prompt': prompts/front.j2 does not render: 'dict object' has no "
                    "attribute 'account'")


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"model": {"temperature": "hot"}}, "model.temperature", "Input should be a valid number"),
    ({"tools": "mini_opening_hours"}, "tools", "Input should be a valid list"),
    ({"requires_auth": "sometimes"}, "requires_auth", "Input should be a valid boolean"),
    ({"voice": {"rate": "fast"}}, "voice.rate", "String should match pattern"),
    ({"tols": ["x"]}, "tols", "Extra inputs are not permitted"),
    ({"description": ""}, "description", "String should have at least 1 character"),
])
def test_bad_yaml_types(defs: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], field: str,
                        message: str) -> None:
    edit_yaml(defs / "mini/agents/front.yaml", lambda d: d.update(change))
    _assert_problem(defs, capsys, "agents/front.yaml", f"agent 'front': field '{field}': {message}")


def test_yaml_syntax_error_names_the_line(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (defs / "mini/agents/back.yaml").write_text("name: back\ndescription: [unclosed\n")
    _assert_problem(defs, capsys, "agents/back.yaml", "agent 'back': not valid YAML at line 3")


def test_dead_end_without_transfer(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(defs / "mini/scenario.yaml", lambda d: d["defaults"].pop("tools"))
    edit_yaml(defs / "mini/agents/back.yaml", lambda d: d.update(handoffs=[]))
    _assert_problem(defs, capsys, "agents/back.yaml",
                    "agent 'back': field 'tools': dead end: no handoffs and no transfer_to_human tool")


def test_duplicate_agent_name(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (defs / "mini/agents/front2.yaml").write_text((defs / "mini/agents/front.yaml").read_text())
    _assert_problem(defs, capsys, "agents/front2.yaml",
                    "agent 'front': field 'name': must match the file name 'front2'")


def test_duplicate_scenario_name_and_number(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(defs / "mini", defs / "mini2")
    code, _, err = run(defs, capsys)
    assert code == 1
    assert f"{defs / 'mini2' / 'scenario.yaml'}: field 'name': duplicate scenario name" in err


def test_phone_number_routed_twice(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(defs / "mini", defs / "mini2")
    edit_yaml(defs / "mini2/scenario.yaml", lambda d: d.update(name="mini2"))
    code, _, err = run(defs, capsys)
    assert code == 1
    expected = "field 'phone_numbers[0]': +15550000001 already routes to scenario 'mini'"
    assert f"{defs / 'mini2' / 'scenario.yaml'}: {expected}" in err


def test_tools_module_that_fails_to_import(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(defs / "mini/scenario.yaml", lambda d: d.update(tools_module="tests.no_such_module"))
    _assert_problem(defs, capsys, "scenario.yaml", "field 'tools_module': cannot import tools module "
                                                   "'tests.no_such_module': ModuleNotFoundError")


def test_missing_entry_agent(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(defs / "mini/scenario.yaml", lambda d: d.update(entry_agent="reception"))
    _assert_problem(defs, capsys, "scenario.yaml", "field 'entry_agent': entry agent 'reception' is not defined")


def test_handoff_tools_are_not_listed_by_hand(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(defs / "mini/agents/front.yaml", lambda d: d.update(tools=["handoff_to_back"]))
    _assert_problem(defs, capsys, "agents/front.yaml", "agent 'front': field 'tools[0]': handoff tools are generated")


def test_transfer_needs_a_human_queue(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(defs / "mini/scenario.yaml", lambda d: d.pop("policy"))
    _assert_problem(defs, capsys, "scenario.yaml", "field 'policy.human_queue': agents use transfer_to_human")


def test_all_problems_are_reported_at_once(defs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(defs / "mini/agents/front.yaml", lambda d: d.update(tools=["nope"], greeting="{{ nope }}"))
    edit_yaml(defs / "mini/agents/back.yaml", lambda d: d.update(handoffs=["ghost"]))
    code, _, err = run(defs, capsys)
    assert code == 1
    assert err.startswith(f"agents: 3 problem(s) in {defs}:")
    assert "field 'tools[0]': unknown tool 'nope'" in err
    assert "field 'greeting': greeting does not render: 'nope' is undefined" in err
    assert "agent 'back': field 'handoffs[0]': unknown handoff target 'ghost'" in err


def test_missing_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(tmp_path / "nowhere", capsys)
    assert code == 1
    assert "agents directory does not exist" in err
