"""`python -m media_host` as a real process on the embedded default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from switchboard.redis_server import free_port
from switchboard.settings import PROJECT_ROOT


def _get(url: str) -> tuple[int, dict[str, object]]:
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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if _get(f"http://127.0.0.1:{port}/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
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
