"""Caller scripts for `make run --script`: parsed once, with a clear reason when they are wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.callers.scripted import Line
from local_stack.phone_call import describe
from local_stack.script import SCRIPTS, ScriptError, default_script, load_script


def test_every_shipped_script_loads_and_names_a_scenario() -> None:
    for path in SCRIPTS.glob("*.yaml"):
        script = load_script(path)
        assert script.scenario == path.stem
    banking = load_script(default_script("banking")).caller_lines()
    assert banking[0] == Line("My account number is 4567 and my date of birth is March third, 1980.")
    assert banking[-1].text == "I would like to talk to a human agent."


def test_lines_can_interrupt_or_press_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("scenario: banking\nlines:\n  - say: Stop.\n    interrupt_after_s: 1.5\n  - dtmf: '12#'\n")
    assert load_script(path).caller_lines() == [Line("Stop.", 1.5), Line("", None, "12#")]


@pytest.mark.parametrize(("text", "reason"), [
    ("scenario: banking\nlines: []\n", "lines: List should have at least 1 item"),
    ("scenario: banking\nlines:\n  - say: hi\n    dtmf: '1'\n", "exactly one of `say` or `dtmf`"),
    ("scenario: banking\nlines:\n  - dtmf: 'x'\n", "lines.0.dtmf"),
    ("scenario: banking\ncaller: '555'\nlines:\n  - say: hi\n", "caller"),
    ("scenario: banking\nextra: 1\nlines:\n  - say: hi\n", "extra"),
    ("[unclosed", "not YAML"),
])
def test_bad_scripts_say_where(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScriptError, match=r"bad\.yaml") as caught:
        load_script(path)
    assert reason in str(caught.value)


def test_a_missing_script_or_scenario_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="No such file"):
        load_script(tmp_path / "none.yaml")
    with pytest.raises(ScriptError, match="no script for scenario 'nope' \\(have: banking, clinic\\)"):
        default_script("nope")


def test_console_lines_name_tools_but_never_their_arguments() -> None:
    tool = {"type": "tool", "name": "verify_customer", "ok": True, "elapsed_ms": 3.2,
            "arguments": {"account_number": "4567"}}
    assert describe(tool) == "   tool verify_customer: ok in 3 ms"
    assert describe({"type": "transcript", "speaker": "agent", "agent": "cards", "text": "Done.",
                     "interrupted": True}) == "agent (cards): Done. [interrupted]"
    assert describe({"type": "handoff", "agent": "cards", "previous": "account", "reason": ""}) == (
        "-> handoff account -> cards")
    assert describe({"type": "latency", "marks": {}}) is None
