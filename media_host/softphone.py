"""The browser softphone page: static files served by the media host, on the same port as the sockets.

`GET /` is the page (static/index.html), `GET /static/<name>` its scripts and styles, and
`GET /api/v1/realtime/scenarios` the scenarios its picker offers. The page talks to the host over the
browser transport (docs/browser-protocol.md) and holds nothing secret: creating a call stays behind
the sessions route's own protection (BROWSER_ACCESS_KEY), so the files are always served.

Only the plain files found in static/ when the host starts are routes: the exact paths are registered
one by one, so no request path can reach outside the directory. Their content is read on each request
(a reload shows an edited file; a new file needs a restart).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from media_host.http import json_response, method_of, respond

if TYPE_CHECKING:
    from media_host.server import MediaHost

log = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"
STATIC_PREFIX: Final = "/static/"
INDEX: Final = "index.html"
SCENARIOS_PATH: Final = "/api/v1/realtime/scenarios"
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".wav": "audio/wav",
}
_PLAIN_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9]+)+$")
# The page loads only its own scripts and styles and talks only to its own origin (fetch and WebSocket).
PAGE_POLICY: Final = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                      "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
                      "form-action 'none'; frame-ancestors 'none'")
_COMMON_HEADERS: Final = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

Handler = Callable[[Request], Awaitable[Response]]


def static_files(directory: Path = STATIC_DIR) -> dict[str, Path]:
    """The servable files of `directory` by name: plain names with a known type, regular files only."""
    if not directory.is_dir():
        return {}
    return {path.name: path for path in sorted(directory.iterdir())
            if _PLAIN_NAME.match(path.name) and path.suffix in CONTENT_TYPES
            and path.is_file() and not path.is_symlink()}


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def file_handler(path: Path, cache_control: str, extra: dict[str, str] | None = None) -> Handler:
    """GET answers the file's current content with an ETag (304 when the browser has it already)."""
    content_type = CONTENT_TYPES[path.suffix]
    headers = {**_COMMON_HEADERS, "Cache-Control": cache_control, **(extra or {})}

    async def handle(request: Request) -> Response:
        if method_of(request).upper() != "GET":
            return respond(405, b'{"error": "method_not_allowed", "detail": "use GET"}', "application/json",
                           {"Allow": "GET"})
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError:
            log.warning("static file unreadable: %s", path.name)
            return json_response(404, {"error": "not_found", "path": request.path})
        etag = _etag(body)
        if etag in request.headers.get("If-None-Match", ""):
            return Response(304, "Not Modified", Headers({**headers, "ETag": etag, "Content-Length": "0"}), b"")
        return respond(200, body, content_type, {**headers, "ETag": etag})

    return handle


def scenarios_handler(host: MediaHost) -> Handler:
    """The scenario names for the page's picker (and each one's first agent); the default comes first."""

    async def handle(request: Request) -> Response:
        if method_of(request).upper() != "GET":
            return respond(405, b'{"error": "method_not_allowed", "detail": "use GET"}', "application/json",
                           {"Allow": "GET"})
        default = host.settings.default_scenario
        scenarios = sorted(host.agents.current.scenarios.values(), key=lambda s: (s.name != default, s.name))
        return json_response(200, {
            "default": default if default in host.agents.current.scenarios else None,
            "scenarios": [{"name": s.name, "agent": s.entry_agent.name} for s in scenarios],
        })

    return handle


def add_softphone_routes(host: MediaHost, directory: Path = STATIC_DIR) -> None:
    """Serve the softphone: `/`, `/static/<file>` for each file of `directory`, and the scenario list."""
    files = static_files(directory)
    if INDEX not in files:
        log.warning("softphone page not found in %s: GET / is not served", directory)
    for name, path in files.items():
        page = name == INDEX
        # The page is revalidated on every load (a deploy shows at once); its parts may be reused briefly.
        handler = file_handler(path, "no-cache" if page else "public, max-age=60",
                               {"Content-Security-Policy": PAGE_POLICY} if page else None)
        host.add_http_route(STATIC_PREFIX + name, handler)
        if page:
            host.add_http_route("/", handler)
    host.add_http_route(SCENARIOS_PATH, scenarios_handler(host))
