"""The whole Switchboard stack on one machine: Redis, the function host, the media host and a local ACS.

    async with LocalStack(StackOptions(out=Path("out")), media=connector) as stack:
        await stack.acs.ring(stack.incoming_calls, "+18005550100", "+14255550123")

Redis (the valkey wheel) and the two hosts are child processes, started with the settings a real
deployment would give them (the ACS endpoint and key, the public URLs, one signing secret); the local
ACS runs in this process, because it is also where the simulated caller speaks and listens. On exit
every child is stopped with SIGTERM and every port is checked to be free again.

Faults: `kill_media_host()` (SIGKILL, a crash) or `signal_media_host(SIGTERM)` (a drain), then
`start_media_host()` brings a new media host up on the same port, as a restarted container would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from redis.asyncio import Redis

from local_stack.acs import EventGridSubscription, LocalAcs, MediaConnector, MediaOffer, new_access_key
from local_stack.processes import Child, StackError
from switchboard.redis_server import EmbeddedRedis, free_port
from switchboard.session_store import monitor_channel

Engines = Literal["embedded", "azure"]
# Settings that would send a local run to the cloud: cleared for the embedded default.
CLOUD_SETTINGS = ("SPEECH_KEY", "SPEECH_REGION", "SPEECH_ENDPOINT", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY",
                  "AZURE_OPENAI_CHAT_DEPLOYMENT", "OPENAI_BASE_URL", "OPENAI_API_KEY", "COSMOS_ENDPOINT", "COSMOS_KEY",
                  "ACS_CONNECTION_STRING", "ACS_RESOURCE_ID")


@dataclass
class StackOptions:
    out: Path
    engines: Engines = "embedded"
    functions_port: int = 7071  # 0, or taken: a free port is used instead
    media_port: int = 8765
    log_format: Literal["text", "json"] = "text"
    console_logs: bool = False  # the children log to this console rather than to files under `out`
    extra_env: dict[str, str] = field(default_factory=dict)


def port_free(port: int) -> bool:
    """Whether a server could listen on the port now (connections in TIME_WAIT do not count, as for servers)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pick(port: int) -> int:
    return port if port and port_free(port) else free_port()


class LocalStack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.redis = EmbeddedRedis()
        self.acs = LocalAcs(new_access_key(), auto_callbacks=True, media=self._media)
        self._callers: dict[str, MediaConnector] = {}  # by correlation id: who is on each call's media leg
        self.functions_port = _pick(options.functions_port)
        self.media_port = _pick(options.media_port)
        self.secret = secrets.token_urlsafe(32)
        self.functions: Child | None = None
        self.media: Child | None = None
        self.media_exits: list[int] = []  # exit codes of media hosts that ended before the stack stopped
        self.incoming_calls: EventGridSubscription | None = None

    @property
    def functions_url(self) -> str:
        return f"http://127.0.0.1:{self.functions_port}"

    @property
    def media_url(self) -> str:
        return f"http://127.0.0.1:{self.media_port}"

    @property
    def ports(self) -> list[int]:
        return [self.functions_port, self.media_port]

    def exit_codes(self) -> dict[str, int | None]:
        """Each child's exit code (None: still running or never started)."""
        return {c.name: c.process.poll() if c.process else None for c in (self.functions, self.media) if c}

    def _env(self) -> dict[str, str]:
        base = dict(os.environ)
        if self.options.engines == "embedded":
            for name in CLOUD_SETTINGS:
                base.pop(name, None)
            base.update({"STT_ENGINE": "embedded", "TTS_ENGINE": "embedded", "CHAT_ENGINE": "offline"})
        base.update({
            "REDIS_URL": self.redis.url, "SIGNING_SECRET": self.secret, "LOG_FORMAT": self.options.log_format,
            "ACS_ENDPOINT": self.acs.endpoint, "ACS_ACCESS_KEY": self.acs.access_key,
            "CALLBACK_BASE_URL": self.functions_url, "MEDIA_HOST_PUBLIC_URL": f"ws://127.0.0.1:{self.media_port}",
            "MEDIA_HOST_PORT": str(self.media_port), "MONITOR_CALLS": "true", "PIPELINE": "cascade",
            "RECORDS_DB_PATH": str(self.options.out / "records.sqlite3"),
        })
        base.update(self.options.extra_env)
        return base

    async def start(self) -> None:
        out = self.options.out
        out.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.redis.start)
        await self.acs.start()
        env = self._env()
        self.functions = Child("function host", "local_stack.serve_functions", env=env,
                               args=["--port", str(self.functions_port)],
                               log_path=None if self.options.console_logs else out / "function_host.log")
        self.media = Child("media host", "media_host", env=env,
                           log_path=None if self.options.console_logs else out / "media_host.log")
        self.functions.start()
        self.media.start()
        await asyncio.gather(asyncio.to_thread(self.functions.wait_healthy, f"{self.functions_url}/api/health", 60),
                             asyncio.to_thread(self.media.wait_healthy, f"{self.media_url}/health", 120))
        self.incoming_calls = self.acs.subscription(
            f"{self.functions_url}/runtime/webhooks/eventgrid?functionName=on_incoming_call")
        await self.incoming_calls.validate()

    # --- faults ----------------------------------------------------------------------------------------
    async def signal_media_host(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send the media host `sig` and wait for it to exit (SIGKILL: a crash; SIGTERM: its drain, up to
        SHUTDOWN_GRACE_SECONDS). Returns its exit code (negative: killed by that signal)."""
        assert self.media is not None, "the stack is not started"
        code = await asyncio.to_thread(self.media.send_signal, sig, timeout)
        self.media_exits.append(code)
        return code

    async def kill_media_host(self) -> int:
        return await self.signal_media_host(signal.SIGKILL)

    async def start_media_host(self, timeout: float = 120.0) -> None:
        """A new media host on the same port with the same settings (after a kill or a drain), once healthy."""
        assert self.media is not None, "the stack is not started"
        if self.media.process is not None and self.media.process.poll() is None:
            raise StackError("the media host is still running")
        self.media.start()
        await asyncio.to_thread(self.media.wait_healthy, f"{self.media_url}/health", timeout)

    # --- calls -----------------------------------------------------------------------------------------
    def expect_media(self, correlation_id: str, connector: MediaConnector) -> None:
        """`connector` takes the media leg of the call with this correlation id when ACS opens it."""
        self._callers[correlation_id] = connector

    async def _media(self, offer: MediaOffer) -> None:
        connector = self._callers.get(offer.call.correlation_id)
        if connector is None:  # nobody scripted this call: silence until it ends
            await offer.ended.wait()
            return
        await connector(offer)

    @asynccontextmanager
    async def monitor(self, call_id: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """The call's monitor feed (subscribed on entry, so nothing published after it is missed)."""
        redis = Redis.from_url(self.redis.url)
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(monitor_channel(call_id))

                async def feed() -> AsyncIterator[dict[str, Any]]:
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                        if message is not None and message.get("type") == "message":
                            yield json.loads(message["data"])

                yield feed()
        finally:
            await redis.aclose()

    async def stop(self) -> list[str]:
        """Stop everything; returns what did not stop cleanly (empty when all is well)."""
        problems = []
        for child in (self.media, self.functions):
            if child is None:
                continue
            try:
                code = await asyncio.to_thread(child.stop)
            except StackError as exc:
                problems.append(str(exc))
            else:
                if code != 0:
                    problems.append(f"{child.name} exited with code {code} (log: {child.log_path})")
        await self.acs.stop()
        await asyncio.to_thread(self.redis.stop)
        problems += [f"something still listens on port {port}" for port in self.ports if listening(port)]
        return problems

    async def __aenter__(self) -> LocalStack:
        try:
            await self.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        problems = await self.stop()
        if problems and exc[0] is None:
            raise StackError("; ".join(problems))
