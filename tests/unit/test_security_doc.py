"""docs/security.md lists every endpoint the code serves, each once, with its methods and key level; it is the
only page that says what protects them, and docs/media-host.md's list (what each serves) names the same routes.

The routes come from the code, not from a second list: the Functions host's index of function_app
(httpTrigger routes, methods and authLevel; Event Grid triggers; the Durable extension's webhook), and
the media host's route table (HTTP routes, softphone files, the transports' WebSocket paths) as
`python -m media_host` builds it.
"""

from __future__ import annotations

import re
from pathlib import Path

from agents import AgentLibrary
from media_host.main import ADAPTERS
from media_host.server import MediaHost
from media_host.softphone import STATIC_PREFIX
from media_host.transports.browser import register_routes
from switchboard.services import SharedServices
from switchboard.session_store import SessionStore, connect_redis
from switchboard.settings import PROJECT_ROOT, load_settings
from switchboard.tokens import TokenSigner
from tests.conftest import TEST_SECRET
from tests.support.functions_index import indexed

DOC = PROJECT_ROOT / "docs" / "security.md"
MEDIA_HOST_DOC = PROJECT_ROOT / "docs" / "media-host.md"
# Every page of the manual; only DOC may have a "protected by" column.
PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
# Routes that may be open: they carry no call data. Any other route claiming "nothing" fails the test.
OPEN = {"/api/health", "/health", "/ready", "/", "/static/<file>", "/api/v1/realtime/scenarios"}
KEYS = {"ANONYMOUS": "anonymous", "FUNCTION": "function", "ADMIN": "admin"}


def tables(doc: Path = DOC, second: str | None = None) -> list[dict[str, list[str]]]:
    """Each Markdown table of `doc` whose first column is `endpoint` (and second `second`, if given):
    endpoint -> its other cells."""
    found: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] | None = None
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            current = None
        elif cells[0] == "endpoint":
            current = {} if second is None or cells[1] == second else None
            if current is not None:
                found.append(current)
        elif current is not None and not set(cells[0]) <= set("-: "):
            [endpoint] = re.findall(r"`([^`]+)`", cells[0])
            assert endpoint not in current, f"{endpoint} is listed twice"
            current[endpoint] = cells[1:]
    return found


def function_routes() -> dict[str, tuple[str, str]]:
    """endpoint -> (methods, key at the host), from the functions the host indexes."""
    routes: dict[str, tuple[str, str]] = {}
    for name, function in indexed().items():
        trigger = function.trigger
        if function.kind == "httpTrigger":
            routes[f"/api/{trigger['route']}"] = (", ".join(trigger["methods"]), KEYS[trigger["authLevel"]])
        elif function.kind == "eventGridTrigger":
            routes[f"/runtime/webhooks/eventgrid?functionName={name}"] = ("POST, OPTIONS", "system key")
        elif function.kind == "orchestrationTrigger":
            routes["/runtime/webhooks/durabletask/..."] = ("GET, POST", "system key")
    return routes


def media_routes() -> dict[str, str]:
    """endpoint -> HTTP or WebSocket, from a media host built as media_host.main builds it (not started)."""
    settings = load_settings(signing_secret=TEST_SECRET)
    store = SessionStore(connect_redis("redis://127.0.0.1:1"), TokenSigner(TEST_SECRET), ttl_seconds=60)
    host = MediaHost(settings, SharedServices(store), AgentLibrary.load(settings.agents_dir),
                     pipelines=lambda _info: None, adapters=list(ADAPTERS))  # type: ignore[arg-type,return-value]
    register_routes(host)
    kinds = {"http": "HTTP", "websocket": "WebSocket"}
    return {(f"{STATIC_PREFIX}<file>" if path.startswith(STATIC_PREFIX) else path): kinds[kind]
            for path, kind in host.routes.items()}


def test_every_function_app_route_is_listed_with_its_methods_and_key() -> None:
    functions, _media = tables()
    expected = function_routes()
    assert set(functions) == set(expected), "docs/security.md and function_app.py list different routes"
    for endpoint, (methods, key) in expected.items():
        listed_methods, listed_key, protected_by, _limits = functions[endpoint]
        assert (listed_methods, listed_key.startswith(key)) == (methods, True), endpoint
        assert protected_by.startswith("nothing") == (endpoint in OPEN), endpoint


def test_every_media_host_route_is_listed_with_its_kind() -> None:
    _functions, media = tables()
    expected = media_routes()
    assert set(media) == set(expected), "docs/security.md and the media host list different routes"
    for endpoint, kind in expected.items():
        listed_kind, protected_by, _limits = media[endpoint]
        assert listed_kind == kind, endpoint
        assert protected_by.startswith("nothing") == (endpoint in OPEN), endpoint


def test_the_media_host_page_lists_the_same_routes() -> None:
    [listed] = tables(MEDIA_HOST_DOC, second="what")
    assert set(listed) == set(media_routes()), "docs/media-host.md's endpoint list and the code differ"


def header_cells(page: Path) -> list[list[str]]:
    """The header row of each Markdown table of `page` (the row above a |---| line)."""
    lines = page.read_text().splitlines()
    return [[c.strip().lower() for c in lines[i - 1].strip().strip("|").split("|")]
            for i, line in enumerate(lines)
            if i and line.startswith("|") and set(line) <= set("|-: ") and lines[i - 1].startswith("|")]


def test_endpoint_protections_are_written_once() -> None:
    assert DOC in PAGES
    with_protections = {page.relative_to(PROJECT_ROOT).as_posix() for page in PAGES
                        for header in header_cells(page) if "protected by" in header}
    assert with_protections == {"docs/security.md"}, "what protects an endpoint belongs in docs/security.md only"
