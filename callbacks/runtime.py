"""Per-worker state of the Function App, created once (cold start matters: calls die waiting).

`startup()` runs when function_app.py is imported, so invalid settings or agent definitions stop the
worker before it indexes any function: a bad agent never reaches a live call. The connections (Redis,
ACS, the record store) are opened on first use, once per worker event loop, and shared by every
invocation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agents import AgentLibrary
from switchboard.acs_auth import AcsJwtVerifier
from switchboard.call_records import RecordStore, open_record_store
from switchboard.services import SharedServices, open_services
from switchboard.session_store import SessionStore
from switchboard.settings import Settings, get_settings

if TYPE_CHECKING:
    from azure.communication.callautomation.aio import CallAutomationClient

log = logging.getLogger(__name__)


@functools.cache
def agents() -> AgentLibrary:
    return AgentLibrary.load(settings().agents_dir)


def settings() -> Settings:
    return get_settings()


def startup() -> None:
    """Validate settings and agents; raises SettingsError or AgentLoadError with the reasons."""
    current = settings()
    catalog = agents().current
    log.info("function app ready", extra={**current.selection(), "agents_version": catalog.version})


@dataclass
class Worker:
    """What every invocation of this worker shares."""

    settings: Settings
    agents: AgentLibrary
    shared: SharedServices
    records: RecordStore
    jwt: AcsJwtVerifier | None
    _acs: CallAutomationClient | None = None

    @property
    def store(self) -> SessionStore:
        return self.shared.store

    @property
    def acs(self) -> CallAutomationClient:
        if self._acs is None:
            from callbacks.acs_client import acs_client  # noqa: PLC0415 - the SDK is heavy: first use only

            self._acs = acs_client(self.settings)
        return self._acs

    async def close(self) -> None:
        if self._acs is not None:
            await self._acs.close()
        await self.records.close()
        await self.shared.close()


_workers: dict[asyncio.AbstractEventLoop, asyncio.Future[Worker]] = {}


async def _open() -> Worker:
    current = settings()
    jwt = (AcsJwtVerifier(current.acs_jwks_url, current.acs_jwt_issuer, current.acs_resource_id,
                          lifespan_seconds=current.acs_jwks_lifespan_seconds)
           if current.acs_resource_id else None)
    return Worker(current, agents(), await open_services(current), open_record_store(current), jwt)


async def worker() -> Worker:
    """The worker's services for the running event loop, opened once (concurrent first calls share it)."""
    loop = asyncio.get_running_loop()
    opening = _workers.get(loop)
    if opening is None or (opening.done() and opening.exception() is not None):
        opening = _workers[loop] = loop.create_task(_open())
    return await asyncio.shield(opening)


def use(services: Worker) -> None:
    """Install a worker built elsewhere (the local function host, tests) for the running loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Worker] = loop.create_future()
    done.set_result(services)
    _workers[loop] = done


async def shutdown() -> None:
    """Close this loop's worker (the local function host stops; tests end)."""
    opening = _workers.pop(asyncio.get_running_loop(), None)
    if opening is not None and opening.done() and opening.exception() is None:
        await opening.result().close()
