"""The envelope everywhere: unknown routes, wrong methods, malformed identifiers."""

from __future__ import annotations

import httpx
import pytest
from helpers import World, bearer

T0 = 1_700_000_000


def assert_no_route(response: httpx.Response, path: str):
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "result": None,
        "success": False,
        "errors": [
            {"code": 7003, "message": f"Could not route to {path}, perhaps your object identifier is invalid?"},
            {"code": 7000, "message": "No route for that URI"},
        ],
        "messages": [],
    }


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/assets",
        "/client/v4",
        "/client/v4/zones",
        "/client/v4/accounts/x/magic/connectors/y/telemetry/events/1.0/extra",
    ],
)
def test_unknown_route(world: World, path: str):
    response = httpx.get(world.server.origin + path, headers=bearer(world.read_token))
    shown = path.removeprefix("/client/v4") if path.startswith("/client/v4/") else path
    assert_no_route(response, shown)


def test_the_dashboard_is_served_at_the_root(world: World):
    response = httpx.get(world.server.origin + "/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert httpx.get(world.server.origin + "/assets/index.html").status_code == 200
    missing = httpx.get(world.server.origin + "/assets/nope.js")
    assert missing.status_code == 400 and missing.json()["errors"][0]["code"] == 7003


def test_trailing_slash_is_not_redirected(world: World):
    path = f"/accounts/{world.account}/magic/connectors/{world.connector}/telemetry/events/"
    response = httpx.get(world.server.base_url + path, headers=bearer(world.read_token))
    assert_no_route(response, path)


@pytest.mark.parametrize(
    ("account", "connector"),
    [("a" * 33, "c"), ("acc!", "c"), ("acc", "c" * 33), ("acc", "c%20d")],
)
def test_malformed_identifiers(world: World, account: str, connector: str):
    path = f"/accounts/{account}/magic/connectors/{connector}/telemetry/events/{T0}.0"
    response = httpx.get(world.server.base_url + path, headers=bearer(world.read_token))
    assert response.status_code == 400
    assert [e["code"] for e in response.json()["errors"]] == [7003, 7000]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_wrong_method_on_get_event(world: World, method: str):
    url = f"{world.events_url()}/{T0}.0"
    response = httpx.request(method, url, headers=bearer(world.write_token))
    assert response.status_code == 405
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == 20003
    assert "GET" in response.headers["allow"]
