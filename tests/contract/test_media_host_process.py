"""`python -m media_host` as a real process on the embedded default."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from switchboard.redis_server import free_port
from switchboard.settings import PROJECT_ROOT


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(x) for x in f.read().split()]
    return found


def _wait_healthy(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _get(f"http://127.0.0.1:{port}/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"media host on port {port} was not healthy within {timeout} s")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def media_host() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["MEDIA_HOST_PORT"] = str(port)
    proc = subprocess.Popen([sys.executable, "-m", "media_host"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_healthy(port)
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_health_then_graceful_sigterm(media_host: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = media_host
    status, body = _get(f"http://127.0.0.1:{port}/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["active_calls"] == 0
    assert body["version"]

    status, body = _get(f"http://127.0.0.1:{port}/nope")
    assert status == 404
    assert body == {"error": "not_found", "path": "/nope"}

    redis_children = _children(proc.pid)
    assert redis_children, "the embedded Redis server should be a child of the media host"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "media host stopped" in output
    assert "mode=embedded" in output  # the selection is logged at start
    for child in redis_children:
        assert not _alive(child), "the embedded Redis server outlived the media host"


FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "agents"


def _start(env_extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(env_extra)
    return subprocess.Popen([sys.executable, "-m", "media_host"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_invalid_agents_stop_the_host_at_start(tmp_path: Path) -> None:
    root = tmp_path / "defs"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__"))
    front = root / "mini/agents/front.yaml"
    front.write_text(front.read_text().replace("mini_opening_hours", "no_such_tool"))
    proc = _start({"AGENTS_DIR": str(root), "MEDIA_HOST_PORT": str(free_port())})
    assert proc.wait(timeout=30) == 1
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert f"{front}: agent 'front': field 'tools[0]': unknown tool 'no_such_tool'" in output
    assert "Traceback" not in output


def _wait_for(port: int, condition: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = _get(f"http://127.0.0.1:{port}/health")[1]
        if condition(health):
            return health
        time.sleep(0.05)
    raise AssertionError(f"health never matched: {health}")


def test_sighup_reloads_agents(tmp_path: Path) -> None:
    root = tmp_path / "defs"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    proc = _start({"AGENTS_DIR": str(root), "MEDIA_HOST_PORT": str(port)})
    try:
        _wait_healthy(port)
        first = _get(f"http://127.0.0.1:{port}/health")[1]["agents_version"]
        front = root / "mini/agents/front.yaml"
        front.write_text(front.read_text().replace("thanks for calling", "welcome back"))
        proc.send_signal(signal.SIGHUP)
        health = _wait_for(port, lambda h: h["agents_version"] != first)
        second = health["agents_version"]
        front.write_text("name: [broken\n")
        proc.send_signal(signal.SIGHUP)
        health = _wait_for(port, lambda h: h["agent_reload_failures"] == 1)
        assert health["agents_version"] == second  # a failed reload keeps the version and the host
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "agents reloaded" in output
    assert "agent reload failed; keeping version" in output
