"""Per-worker state of the Function App, created once at start-up (cold start matters: calls die waiting).

`startup()` runs when function_app.py is imported, so invalid settings or agent definitions stop the
worker before it indexes any function: a bad agent never reaches a live call.
"""

from __future__ import annotations

import functools
import logging

from agents import AgentLibrary
from switchboard.settings import Settings, get_settings

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
