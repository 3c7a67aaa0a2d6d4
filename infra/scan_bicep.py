"""Policy scan of infra/bicep with checkov (run by `make infra-scan` in its own virtualenv).

Fails when a check fails, when a file cannot be parsed (checkov would silently skip it), or when a
waiver (`// checkov:skip=<id>: <reason>` inside the resource) gives no reason. Prints every waiver.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BICEP_DIR = Path(__file__).resolve().parent / "bicep"
WAIVER = re.compile(r"//\s*checkov:skip=(?P<id>CKV2?_[A-Z]+_\d+)\s*:?\s*(?P<reason>.*)")


def waiver_reason(check: dict[str, object]) -> str:
    """The reason written next to the waiver: checkov's Bicep runner drops it, so read the resource."""
    path = BICEP_DIR / str(check["file_path"]).lstrip("/")
    lines = check["file_line_range"]
    assert isinstance(lines, list)
    first, last = int(lines[0]), int(lines[1])
    for line in path.read_text().splitlines()[first - 1:last]:
        found = WAIVER.search(line)
        if found and found["id"] == check["check_id"]:
            return found["reason"].strip()
    return ""


def scan() -> dict[str, object]:
    out = subprocess.run(  # noqa: S603 - our own interpreter running checkov on our own files
        [sys.executable, "-m", "checkov.main", "-d", str(BICEP_DIR), "--framework", "bicep", "--skip-download",
         "--output", "json"],
        capture_output=True, text=True, check=False,
    )
    try:
        report: dict[str, object] = json.loads(out.stdout)
    except json.JSONDecodeError:
        sys.exit(f"checkov printed no report (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return report


def main() -> int:
    report = scan()
    summary = report["summary"]
    results = report["results"]
    assert isinstance(summary, dict)
    assert isinstance(results, dict)
    problems: list[str] = []
    for check in results.get("failed_checks", []):
        where = f"{check['resource']} ({check['file_path']})"
        problems.append(f"FAILED {check['check_id']} {where}: {check['check_name']}")
    if summary["parsing_errors"]:
        unparsed = results.get("parsing_errors")
        problems.append(f"{summary['parsing_errors']} Bicep file(s) checkov could not parse: {unparsed}")
    print(f"Waivers ({summary['skipped']}):")
    for check in results.get("skipped_checks", []):
        reason = waiver_reason(check)
        print(f"  {check['check_id']:<14} {check['resource']:<46} {reason}")
        if not reason:
            problems.append(f"waiver without a reason: {check['check_id']} on {check['resource']}")
    print(f"checkov {summary['checkov_version']}: {summary['passed']} passed, {summary['failed']} failed, "
          f"{summary['skipped']} waived, {summary['parsing_errors']} parsing errors, "
          f"{summary['resource_count']} resources")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
