"""A local Cosmos DB (SQL API) server for tests: npm `@vercel/cosmosdb-server` over plain HTTP.

There is no Cosmos DB emulator without Docker; this Node implementation of the REST API is what the
real `azure-cosmos` client talks to in tests. Known gaps (worked around in the store, and so tested):
a point read of a missing id answers 500 rather than 404; a query must name the partition key in its
WHERE clause (the partition-key header is ignored); OFFSET/LIMIT is not parsed (TOP is); TTL is stored
but never enforced.

Clients must pass `enable_endpoint_discovery=False`: the server's account document advertises https://
locations that a plain-HTTP server does not serve.

Use the `cosmos_endpoint` fixture (import it into the test module), or `CosmosServer` directly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = ROOT / "node_modules" / ".bin" / "cosmosdb-server"
# The server accepts any key; this is the well-known public emulator key, not a secret.
COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_installed() -> Path:
    """The server binary, installed from package-lock.json with `npm ci` when missing."""
    if SERVER_BIN.exists():
        return SERVER_BIN
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("node is installed but npm is not: cannot install @vercel/cosmosdb-server (npm ci)")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    if done.returncode != 0 or not SERVER_BIN.exists():
        pytest.fail(f"`npm ci` failed ({done.returncode}); cannot start the Cosmos DB test server:\n"
                    f"{done.stderr[-2000:]}")
    return SERVER_BIN


class CosmosServer:
    """Runs cosmosdb-server on a free port for the duration of a `with` block."""

    def __init__(self, *, start_timeout: float = 30.0) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a full pipe would stall the server. Closed in stop().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    def __enter__(self) -> CosmosServer:
        binary = ensure_installed()
        self._proc = subprocess.Popen(
            [str(binary), "--host", "127.0.0.1", "-p", str(self.port), "--no-ssl"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches anything it spawned
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"cosmosdb-server exited with {self._proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"cosmosdb-server did not listen on port {self.port} within {self.start_timeout}s:\n"
                           f"{self.output()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        self._log.close()

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(proc.pid, sig)  # the group: the server and anything it started


@pytest.fixture(scope="session")
def cosmos_endpoint() -> Iterator[str]:
    """The HTTP endpoint of a cosmosdb-server started for this test session."""
    if shutil.which("node") is None:
        pytest.skip("SKIPPED LOUDLY: `node` is not on PATH, so the Cosmos DB store is NOT tested. "
                    "Install Node.js 20+ (CI has it) and run `make test`.")
    with CosmosServer() as server:
        yield server.endpoint
