"""Ambiguous requests are refused, not guessed: on every route, the hot path (Get Event) included.

- A credential header sent twice: which one to use would be a guess (400, 6003 + the header's chain code).
- A query parameter a route does not declare: never ignored (400, 20010), and nothing is done.
- A method a path does not serve: 405 with `Allow` naming every method the path serves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
from helpers import World, bearer, post_events

T0 = 1_700_000_000
CHAIN = {"Authorization": 6111, "X-Auth-Email": 6102, "X-Auth-Key": 6103}


@pytest.fixture(scope="module")
def place(world: World) -> dict[str, str]:
    """A connector with one event: every path below names things that exist, so a refusal is the only reason."""
    connector = world.new_connector()
    post_events(world, [{"t": T0, "n": 0, "e": {"k": "Init"}}], connector=connector).raise_for_status()
    return {
        "account_id": world.account,
        "connector_id": connector,
        "event_t": str(T0),
        "event_n": "0",
        "snapshot_t": str(T0),
    }


def documented_operations(world: World) -> list[tuple[str, str]]:
    """(method, path template) of every operation in the OpenAPI document, which is built from the route table."""
    document = httpx.get(world.server.base_url + "/openapi.json").json()
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item]


# Routes outside the OpenAPI document (it describes JSON operations): they are strict too.
UNDOCUMENTED = [
    ("GET", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events/stream"),
    ("GET", "/accounts/{account_id}/magic/connectors/telemetry/events/stream"),
    ("GET", "/openapi.json"),
]
INFRA = ["/healthz", "/readyz", "/metrics"]


def fill(template: str, place: dict[str, str]) -> str:
    return template.format(**place)


BODIES = {  # a valid body for each operation that takes one, so only the query string is wrong
    ("POST", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events"): [
        {"t": T0 + 1, "n": 0, "e": {"k": "Init"}}
    ],
    ("POST", "/accounts/{account_id}/magic/connectors"): {"notes": "made despite an unknown parameter"},
    ("PUT", "/accounts/{account_id}/magic/connectors/{connector_id}"): {"notes": "changed"},
    ("PATCH", "/accounts/{account_id}/magic/connectors/{connector_id}"): {"notes": "changed"},
}


@contextlib.contextmanager
def answer(method: str, url: str, **kwargs: object) -> Iterator[httpx.Response]:
    """The response's status and headers without reading a body that may never end (a live tail that opened)."""
    with httpx.stream(method, url, timeout=10, **kwargs) as response:  # type: ignore[arg-type]
        yield response


def assert_error(response: httpx.Response, status: int, code: int) -> dict:
    response.read()
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["errors"][0]["code"] == code, body
    return body


def connector_state(world: World, connector: str) -> dict:
    response = httpx.get(f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}",
                         headers=bearer(world.read_token))  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()["result"]


def connector_count(world: World) -> int:
    response = httpx.get(f"{world.server.base_url}/accounts/{world.account}/magic/connectors",
                         headers=bearer(world.read_token))  # fmt: skip
    return len(response.json()["result"])


def event_exists(world: World, connector: str, t: int) -> bool:
    return httpx.get(f"{world.events_url(connector)}/{t}.0", headers=bearer(world.read_token)).status_code == 200


# -- repeated credential headers --


def repeated_headers(world: World, case: str) -> list[tuple[str, str]]:
    token, email, key = f"Bearer {world.write_token}", world.email, world.api_key
    return {
        "two-tokens": [("Authorization", token), ("Authorization", f"Bearer {world.read_token}")],
        "same-token-twice": [("Authorization", token), ("Authorization", token)],
        "two-emails": [("X-Auth-Email", email), ("X-Auth-Email", world.other_email), ("X-Auth-Key", key)],
        "two-keys": [("X-Auth-Email", email), ("X-Auth-Key", key), ("X-Auth-Key", key)],
        "key-twice-beside-a-token": [("Authorization", token), ("X-Auth-Key", key), ("x-auth-key", key)],
    }[case]


CASES = ["two-tokens", "same-token-twice", "two-emails", "two-keys", "key-twice-beside-a-token"]


@pytest.mark.parametrize("case", CASES)
def test_a_credential_header_sent_twice_is_refused_on_every_route(world: World, place: dict[str, str], case: str):
    sent = repeated_headers(world, case)
    names = [name.lower() for name, _ in sent]
    repeated = next(name for name in CHAIN if names.count(name.lower()) > 1)
    before = connector_count(world)
    get_event = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events/{event_t}.{event_n}"
    routes = [*documented_operations(world), *UNDOCUMENTED[:2], ("HEAD", get_event)]
    for method, template in routes:
        body = BODIES.get((method, template))
        with answer(method, world.server.base_url + fill(template, place), headers=sent, json=body) as response:
            if method == "HEAD":  # no body to read
                assert response.status_code == 400, template
                continue
            error = assert_error(response, 400, 6003)
        assert error["errors"][0]["message"] == "Invalid request headers"
        chain = error["errors"][0]["error_chain"]
        assert [item["code"] for item in chain] == [CHAIN[repeated]], (method, template)
        assert chain[0]["message"].endswith("sent more than once")
    # Nothing was done by any of them.
    assert connector_state(world, place["connector_id"])["notes"] == ""
    assert not event_exists(world, place["connector_id"], T0 + 1)
    assert connector_count(world) == before


def test_token_verify_refuses_two_authorization_headers(world: World):
    token = f"Bearer {world.read_token}"
    response = httpx.get(world.server.base_url + "/user/tokens/verify", headers=[("Authorization", token)] * 2)
    body = assert_error(response, 400, 6003)
    assert [item["code"] for item in body["errors"][0]["error_chain"]] == [6111]
    assert httpx.get(world.server.base_url + "/user/tokens/verify", headers=bearer(world.read_token)).status_code == 200


def test_repeated_headers_count_as_malformed_credentials(world: World, place: dict[str, str]):
    def malformed() -> float:
        for line in httpx.get(world.server.origin + "/metrics").text.splitlines():
            if line.startswith('conntel_auth_failures_total{reason="malformed"}'):
                return float(line.split()[-1])
        return 0.0

    before = malformed()
    url = f"{world.events_url(place['connector_id'])}/{T0}.0"  # the hot path
    assert httpx.get(url, headers=[("Authorization", f"Bearer {world.read_token}")] * 2).status_code == 400
    assert malformed() == before + 1


# -- query parameters a route does not declare --


def test_every_route_refuses_a_parameter_it_does_not_declare(world: World, place: dict[str, str]):
    connector = world.new_connector()
    here = {**place, "connector_id": connector}
    post_events(world, [{"t": T0, "n": 0, "e": {"k": "Init"}}], connector=connector).raise_for_status()
    before = connector_count(world)
    routes = documented_operations(world) + UNDOCUMENTED
    assert len(routes) >= 15  # every documented operation (a check that the document was read), and the live tails
    for method, template in routes:
        body = BODIES.get((method, template))
        url = world.server.base_url + fill(template, here)
        with answer(method, url, params={"dry_run": "true"}, headers=bearer(world.write_token), json=body) as response:
            error = assert_error(response, 400, 20010)
        assert "`dry_run`" in error["errors"][0]["message"], (method, template, error)
    # Nothing was done: the connector is still there, unchanged; no event, no new connector.
    assert connector_state(world, connector)["notes"] == ""
    assert not event_exists(world, connector, T0 + 1)
    assert connector_count(world) == before


@pytest.mark.parametrize("query", ["dry_run=true", "&", "x", "limit=5"])
def test_get_event_takes_no_query_string(world: World, place: dict[str, str], query: str):
    url = f"{world.events_url(place['connector_id'])}/{T0}.0?{query}"
    assert_error(httpx.get(url, headers=bearer(world.read_token)), 400, 20010)
    assert httpx.get(url.split("?")[0] + "?", headers=bearer(world.read_token)).status_code == 200  # empty: none


def test_an_undeclared_parameter_is_refused_before_the_credentials(world: World, place: dict[str, str]):
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{place['connector_id']}"
    assert_error(httpx.delete(url, params={"dry_run": "true"}), 400, 20010)
    assert_error(httpx.delete(url, params={"dry_run": "true"}, headers=bearer("x" * 40)), 400, 20010)


def test_declared_parameters_are_still_checked_after_the_credentials(world: World, place: dict[str, str]):
    url = world.events_url(place["connector_id"])
    assert_error(httpx.get(url, params={"from": T0}), 400, 9106)  # `to` missing, but who is asking comes first
    assert_error(httpx.get(url, params={"from": T0, "bogus": 1}), 400, 20010)  # an unknown name: at once


@pytest.mark.parametrize("path", INFRA)
def test_operability_routes_take_no_parameters(world: World, path: str):
    assert httpx.get(world.server.origin + path).status_code == 200
    body = assert_error(httpx.get(world.server.origin + path, params={"verbose": "1"}), 400, 20010)
    assert body["errors"][0]["message"] == "Unknown query parameter `verbose` (expected: none)"


def test_the_dashboard_ignores_query_strings(world: World):
    assert httpx.get(world.server.origin + "/", params={"v": "2"}).status_code == 200
    assert httpx.get(world.server.origin + "/assets/index.html", params={"v": "2"}).status_code == 200


# -- Allow --


def served_methods(world: World) -> dict[str, set[str]]:
    """Every API path (filled in) and the methods it serves, from the OpenAPI document and the live tails."""
    served: dict[str, set[str]] = {}
    for method, template in documented_operations(world) + UNDOCUMENTED:
        served.setdefault(template, set()).add(method)
    return {template: methods | ({"HEAD"} if "GET" in methods else set()) for template, methods in served.items()}


def test_allow_names_every_method_the_path_serves(world: World, place: dict[str, str]):
    served = served_methods(world)
    events = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events"
    assert served[events] == {"GET", "HEAD", "POST"}
    assert served["/accounts/{account_id}/magic/connectors/{connector_id}"] == {"GET", "HEAD", "PUT", "PATCH", "DELETE"}
    for template, methods in served.items():
        url = world.server.base_url + fill(template, place)
        for method in ["OPTIONS", *sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - methods)]:
            response = httpx.request(method, url, headers=bearer(world.write_token))
            assert_error(response, 405, 20003)
            assert set(response.headers["allow"].split(", ")) == methods, (method, template)


@pytest.mark.parametrize(("path", "methods"), [("/healthz", {"GET", "HEAD"}), ("/assets/index.html", {"GET", "HEAD"})])
def test_allow_outside_the_api(world: World, path: str, methods: set[str]):
    for method in ("OPTIONS", "POST"):
        response = httpx.request(method, world.server.origin + path)
        assert_error(response, 405, 20003)
        assert set(response.headers["allow"].split(", ")) == methods
