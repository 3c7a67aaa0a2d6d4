from __future__ import annotations

import json

import azure.functions as func

from tests.support.functions_index import functions


def test_app_registers_the_health_route() -> None:
    bindings = json.loads(functions()["health"].get_function_json())["bindings"]
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")
    assert trigger["route"] == "health"
    assert trigger["methods"] == ["GET"]
    assert trigger["authLevel"] == "ANONYMOUS"


def test_health_reports_version_and_selection() -> None:
    req = func.HttpRequest(method="GET", url="http://localhost/api/health", body=b"", headers={})
    resp = functions()["health"].get_user_function()(req)
    assert resp.status_code == 200
    body = json.loads(resp.get_body())
    assert body["status"] == "ok"
    assert body["version"]
    assert body["selection"]["redis"] in {"embedded-valkey", "external"}
