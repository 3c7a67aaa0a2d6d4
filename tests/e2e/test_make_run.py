"""What `make run` runs, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from switchboard.settings import PROJECT_ROOT


def test_local_stack_starts_checks_and_stops_the_media_host(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "local_stack", "--out", str(tmp_path)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "media host healthy" in proc.stdout
    assert "exit code 0" in proc.stdout
    assert "media host stopped" in (tmp_path / "media_host.log").read_text()
