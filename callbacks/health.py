"""GET /api/health: liveness of the Function App and which implementations its settings select."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from callbacks import runtime
from switchboard import __version__
from switchboard.settings import SettingsError


def health(_req: func.HttpRequest) -> func.HttpResponse:
    try:
        selection = runtime.settings().selection()
    except SettingsError as exc:
        body: dict[str, Any] = {"status": "misconfigured", "version": __version__, "error": str(exc)}
        return func.HttpResponse(json.dumps(body), status_code=500, mimetype="application/json")
    ok: dict[str, Any] = {"status": "ok", "version": __version__, "selection": selection,
                          "agents_version": runtime.agents().current.version}
    return func.HttpResponse(json.dumps(ok), status_code=200, mimetype="application/json")
