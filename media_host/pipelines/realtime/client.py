"""Connecting to the Realtime API with the openai SDK: OpenAI or Azure OpenAI, GA or beta.

The SDK builds the URL and the authentication; this module only picks the client:

========  =======  ==========================================================================
service   flavor   client and connect
========  =======  ==========================================================================
openai    ga       AsyncOpenAI(api_key).realtime.connect(model)         /v1/realtime?model=M
openai    beta     AsyncOpenAI(api_key).beta.realtime.connect(model)    + OpenAI-Beta: realtime=v1
azure     ga       AsyncOpenAI(base_url={endpoint}/openai/v1/, api_key or Entra ID token provider)
                   .realtime.connect(model=deployment)                  /openai/v1/realtime?model=D
azure     beta     AsyncAzureOpenAI(azure_endpoint, api_version, api_key or azure_ad_token_provider)
                   .beta.realtime.connect(model=deployment)             /openai/realtime?api-version&deployment
========  =======  ==========================================================================

`REALTIME_WEBSOCKET_URL` becomes the client's `websocket_base_url` (the SDK appends `/realtime`).
Messages are sent and read raw: the SDK's typed models belong to one dialect each, and the beta
client would mis-type GA events (and the other way round), so `protocol.parse` reads the JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider
from openai import AsyncAzureOpenAI, AsyncOpenAI
from openai.resources.beta.realtime.realtime import AsyncRealtimeConnection as BetaConnection
from openai.resources.realtime.realtime import AsyncRealtimeConnection as GaConnection
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from media_host.pipelines.realtime.protocol import parse
from switchboard.settings import RealtimeFlavor, Settings

log = logging.getLogger(__name__)

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
NO_KEY = "unused"  # a local server or proxy needs no key, but the SDK insists on one
CONNECT_TIMEOUT_S = 10.0


class RealtimeDisconnected(Exception):
    """The Realtime socket is closed (or could not be opened)."""


class RealtimeSocket(Protocol):
    async def send(self, event: dict[str, Any]) -> None:
        """Send one client event. Raises RealtimeDisconnected."""

    async def recv(self) -> dict[str, Any]:
        """The next server event, its `type` in the GA dialect. Raises RealtimeDisconnected."""

    async def ping(self) -> Awaitable[object] | None:
        """Send a WebSocket ping; what it returns completes when the pong arrives (None: no liveness checks).
        Raises RealtimeDisconnected."""

    def abort(self) -> None:
        """Drop the connection now, without a closing handshake (a path that went silent)."""

    async def close(self) -> None: ...


Connector = Callable[[], Awaitable[RealtimeSocket]]


class SdkSocket:
    """An SDK connection (GA or beta), spoken to in raw JSON."""

    def __init__(self, connection: GaConnection | BetaConnection) -> None:
        self.connection = connection
        # The SDK's websockets connection, for pings: the SDK has no ping of its own. Were the attribute
        # ever renamed, liveness checks are off (a silent path is then noticed by TCP, much later).
        ws = getattr(connection, "_connection", None)
        self._ws: ClientConnection | None = ws if isinstance(ws, ClientConnection) else None

    async def send(self, event: dict[str, Any]) -> None:
        try:
            if isinstance(self.connection, GaConnection):
                await self.connection.send_raw(json.dumps(event))
            else:
                await self.connection.send(event)  # type: ignore[arg-type]  # a raw dict, passed through as is
        except (ConnectionClosed, OSError) as exc:
            raise RealtimeDisconnected(str(exc)) from exc

    async def recv(self) -> dict[str, Any]:
        while True:
            try:
                message = await self.connection.recv_bytes()
            except (ConnectionClosed, OSError) as exc:
                raise RealtimeDisconnected(str(exc)) from exc
            event = parse(message)
            if event is not None:
                return event
            log.warning("realtime: ignoring a message that is not an event", extra={"bytes": len(message)})

    async def ping(self) -> Awaitable[object] | None:
        if self._ws is None:
            return None
        try:
            return await self._ws.ping()
        except (ConnectionClosed, OSError) as exc:
            raise RealtimeDisconnected(str(exc)) from exc

    def abort(self) -> None:
        if self._ws is not None:
            self._ws.transport.abort()  # connection_lost at once: recv() raises, the link reconnects

    async def close(self) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await self.connection.close()


def _entra_token_provider() -> Callable[[], Awaitable[str]]:
    provider: Callable[[], Awaitable[str]] = get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)
    return provider


def realtime_connector(settings: Settings) -> Connector:
    """A function that opens one Realtime socket per call (and per reconnect), as settings say."""
    service = settings.resolved_realtime
    flavor = settings.realtime_flavor
    ws_base = settings.realtime_websocket_url
    if service == "azure":
        endpoint = (settings.azure_openai_endpoint or "").rstrip("/")
        deployment = settings.azure_openai_realtime_deployment or ""
        key = settings.azure_openai_api_key.get_secret_value() if settings.azure_openai_api_key else None
        token_provider = None if key else _entra_token_provider()
        if flavor is RealtimeFlavor.GA:
            ga_client = AsyncOpenAI(base_url=f"{endpoint}/openai/v1/", api_key=key or token_provider,
                                    websocket_base_url=ws_base, max_retries=0)

            async def azure_ga() -> RealtimeSocket:
                return SdkSocket(await ga_client.realtime.connect(model=deployment).enter())
            return _guarded(azure_ga, service, flavor)
        azure_client = AsyncAzureOpenAI(azure_endpoint=endpoint, api_version=settings.azure_openai_realtime_api_version,
                                        api_key=key, azure_ad_token_provider=token_provider,
                                        websocket_base_url=ws_base, max_retries=0)

        async def azure_beta() -> RealtimeSocket:
            return SdkSocket(await azure_client.beta.realtime.connect(model=deployment).enter())
        return _guarded(azure_beta, service, flavor)
    if service == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else NO_KEY
        client = AsyncOpenAI(api_key=key, websocket_base_url=ws_base, max_retries=0)
        model = settings.openai_realtime_model
        if flavor is RealtimeFlavor.GA:
            async def openai_ga() -> RealtimeSocket:
                return SdkSocket(await client.realtime.connect(model=model).enter())
            return _guarded(openai_ga, service, flavor)

        async def openai_beta() -> RealtimeSocket:
            return SdkSocket(await client.beta.realtime.connect(model=model).enter())
        return _guarded(openai_beta, service, flavor)
    raise ValueError("no Realtime service is configured (AZURE_OPENAI_* or OPENAI_API_KEY or REALTIME_WEBSOCKET_URL)")


def _guarded(connect: Connector, service: str, flavor: RealtimeFlavor) -> Connector:
    """Connect with a time limit; every failure to connect is a RealtimeDisconnected."""
    async def guarded() -> RealtimeSocket:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                return await connect()
        except (TimeoutError, OSError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
            raise RealtimeDisconnected(f"{service}/{flavor.value}: {type(exc).__name__}") from exc
        except Exception as exc:  # the SDK's own errors (auth, configuration): still a failed attempt
            log.warning("realtime connect failed", extra={"service": service, "flavor": flavor.value},
                        exc_info=True)
            raise RealtimeDisconnected(f"{service}/{flavor.value}: {type(exc).__name__}") from exc
    return guarded
