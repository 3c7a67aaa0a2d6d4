"""`python -m agents validate [DIR]`: load and check every scenario; print a summary or every problem.

Exit codes: 0 valid, 1 invalid definitions, 2 usage or settings error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.catalog import Catalog
from agents.loader import AgentLoadError, load_catalog
from switchboard.settings import SettingsError, load_settings


def _summary(catalog: Catalog, directory: Path) -> str:
    agents = sum(len(s.agents) for s in catalog.scenarios.values())
    tools = {t.name for s in catalog.scenarios.values() for a in s.agents.values() for t in a.tools}
    lines = [f"OK: {len(catalog.scenarios)} scenarios, {agents} agents, {len(tools)} tools in {directory} "
             f"(version {catalog.version})"]
    for scenario in catalog.scenarios.values():
        numbers = ", ".join(scenario.spec.phone_numbers) or "no numbers"
        lines.append(f"  scenario {scenario.name}: entry {scenario.spec.entry_agent}; {numbers}")
        width = max(len(name) for name in scenario.agents)
        for agent in scenario.agents.values():
            lines.append(f"    {agent.name:<{width}}  {', '.join(t.name for t in agent.tools)}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check the agent definitions")
    validate.add_argument("directory", nargs="?", type=Path, help="default: AGENTS_DIR")
    args = parser.parse_args(argv)

    directory: Path | None = args.directory
    if directory is None:
        try:
            directory = load_settings().agents_dir
        except SettingsError as exc:
            print(f"agents: {exc}", file=sys.stderr)
            return 2
    try:
        catalog = load_catalog(directory)
    except AgentLoadError as exc:
        print(f"agents: {len(exc.problems)} problem(s) in {directory}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(_summary(catalog, directory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
