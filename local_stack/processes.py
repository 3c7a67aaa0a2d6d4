"""Child processes of the local stack: started with a clean environment, health-checked, stopped cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchboard.redis_server import die_with_parent
from switchboard.settings import PROJECT_ROOT


class StackError(RuntimeError):
    pass


def get_json(url: str, timeout: float = 1.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URLs we built
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class Child:
    """One child process: a Python module run with the project's interpreter."""

    name: str
    module: str
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (again, after it died: a restart appends to the same log)."""
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        mode = "ab" if self.process is not None else "wb"
        out = open(self.log_path, mode) if self.log_path else None  # noqa: SIM115 - None: our console
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", self.module, *self.args], cwd=PROJECT_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            # Ctrl-C reaches only the stack, which stops each child in turn; a killed stack takes them along.
            start_new_session=True, preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only, no locks taken
        )

    def wait_healthy(self, url: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise StackError(f"{self.name} exited with code {self.process.returncode} before it was healthy"
                                 f"{self._log_tail()}")
            try:
                status, body = get_json(url)
                if status == 200:
                    return body
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise StackError(f"{self.name} was not healthy at {url} within {timeout:.0f} s{self._log_tail()}")

    def send_signal(self, sig: signal.Signals, timeout: float = 20.0) -> int:
        """Send `sig` and wait for the process to exit (SIGKILL: at once; SIGTERM: its drain). Returns the
        exit code (negative: the signal that killed it)."""
        proc = self.process
        if proc is None:
            raise StackError(f"{self.name} was never started")
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return int(proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            raise StackError(f"{self.name} did not exit within {timeout:.0f} s of {sig.name}") from None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; SIGKILL only if it does not exit in time. Returns the exit code."""
        proc = self.process
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise StackError(f"{self.name} did not stop within {timeout:.0f} s of SIGTERM") from None
        return int(proc.returncode)

    def _log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n  " + "\n  ".join(tail)
