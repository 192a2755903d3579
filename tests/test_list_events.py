"""List Events and Latest Events: keyset pagination, filters, validation."""

from __future__ import annotations

import httpx
import pytest
from helpers import World, bearer, post_events

T0 = 1_700_000_000
KINDS = ["Init", "Reconcile", "HaTransition", "Reconcile", "RekeyStart"]


@pytest.fixture(scope="module")
def filled(world: World) -> tuple[str, list[dict]]:
    """A connector with 60 events: three per second over 20 seconds."""
    connector = world.new_connector()
    events = [{"t": T0 + i // 3, "n": i % 3, "e": {"k": KINDS[i % 5], "i": i}, "v": f"1.{i}"} for i in range(60)]
    post_events(world, events, connector=connector).raise_for_status()
    return connector, events


def list_events(world: World, connector: str, **params) -> httpx.Response:
    return httpx.get(world.events_url(connector), params=params, headers=bearer(world.read_token))


def walk(world: World, connector: str, **params) -> tuple[list[tuple[int, int]], int]:
    seen, pages, cursor = [], 0, params.pop("cursor", None)
    while True:
        body = list_events(world, connector, **params, **({"cursor": cursor} if cursor else {})).json()
        result = body["result"]
        assert result["count"] == len(result["items"])
        seen += [(item["t"], item["n"]) for item in result["items"]]
        pages += 1
        cursor = result.get("cursor")
        if cursor is None:
            return seen, pages


def test_pages_walk_every_event_once_in_order(world: World, filled):
    connector, events = filled
    seen, pages = walk(world, connector, **{"from": T0, "to": T0 + 19, "limit": 7})
    assert seen == [(e["t"], e["n"]) for e in events]
    assert pages == 9  # 60 events, 7 a page; the last page has no cursor


def test_items_carry_collection_time_and_kind(world: World, filled):
    connector, events = filled
    result = list_events(world, connector, **{"from": T0, "to": T0}).json()["result"]
    assert "cursor" not in result
    assert [(i["k"], i["n"], i["t"]) for i in result["items"]] == [(e["e"]["k"], e["n"], e["t"]) for e in events[:3]]
    assert all(isinstance(i["a"], int) and i["a"] > T0 for i in result["items"])
    assert set(result["items"][0]) == {"a", "k", "n", "t"}


def test_from_and_to_are_inclusive(world: World, filled):
    connector, _ = filled
    result = list_events(world, connector, **{"from": T0 + 5, "to": T0 + 6}).json()["result"]
    assert [(i["t"], i["n"]) for i in result["items"]] == [(T0 + 5, n) for n in range(3)] + [
        (T0 + 6, n) for n in range(3)
    ]


def test_default_limit_is_100(world: World):
    connector = world.new_connector()
    post_events(world, [{"t": T0 + i, "n": 0, "e": {"k": "Reconcile"}} for i in range(150)], connector=connector)
    result = list_events(world, connector, **{"from": T0, "to": T0 + 1000}).json()["result"]
    assert result["count"] == 100 and "cursor" in result


def test_kind_filter(world: World, filled):
    connector, events = filled
    seen, _ = walk(world, connector, **{"from": T0, "to": T0 + 19, "k": "Reconcile", "limit": 5})
    assert seen == [(e["t"], e["n"]) for e in events if e["e"]["k"] == "Reconcile"]


def test_float_forms_of_numbers_are_accepted(world: World, filled):
    connector, _ = filled
    response = list_events(world, connector, **{"from": f"{T0}.0", "to": f"{T0 + 1}.0", "limit": "2.0"})
    assert response.status_code == 200
    assert response.json()["result"]["count"] == 2


def test_pagination_stays_correct_while_events_arrive(world: World):
    connector = world.new_connector()
    post_events(world, [{"t": T0 + 10 * i, "n": 0, "e": {"k": "Reconcile"}} for i in range(10)], connector=connector)
    page = list_events(world, connector, **{"from": T0, "to": T0 + 1000, "limit": 4}).json()["result"]
    # New events arrive: one behind the cursor, two ahead of it.
    post_events(
        world,
        [
            {"t": T0 + 5, "n": 0, "e": {"k": "HaError"}},
            {"t": T0 + 35, "n": 0, "e": {"k": "HaError"}},
            {"t": T0 + 95, "n": 1, "e": {"k": "HaError"}},
        ],
        connector=connector,
    )
    rest, _ = walk(world, connector, **{"from": T0, "to": T0 + 1000, "limit": 4, "cursor": page["cursor"]})
    first = [(i["t"], i["n"]) for i in page["items"]]
    assert first == [(T0, 0), (T0 + 10, 0), (T0 + 20, 0), (T0 + 30, 0)]
    assert rest == [
        (T0 + 35, 0),
        (T0 + 40, 0),
        (T0 + 50, 0),
        (T0 + 60, 0),
        (T0 + 70, 0),
        (T0 + 80, 0),
        (T0 + 90, 0),
        (T0 + 95, 1),
    ]


def test_cursor_is_bound_to_its_query(world: World, filled):
    connector, _ = filled
    cursor = list_events(world, connector, **{"from": T0, "to": T0 + 19, "limit": 5}).json()["result"]["cursor"]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    other = world.new_connector()
    cases = [
        (connector, {"from": T0, "to": T0 + 19, "limit": 5, "cursor": tampered}),
        (connector, {"from": T0, "to": T0 + 18, "limit": 5, "cursor": cursor}),
        (connector, {"from": T0, "to": T0 + 19, "k": "Init", "cursor": cursor}),
        (other, {"from": T0, "to": T0 + 19, "limit": 5, "cursor": cursor}),
        (connector, {"from": T0, "to": T0 + 19, "cursor": "not a cursor!"}),
        (connector, {"from": T0, "to": T0 + 19, "cursor": ""}),
    ]
    for target, params in cases:
        response = list_events(world, target, **params)
        assert response.status_code == 400, params
        assert response.json()["errors"][0]["code"] == 20011
    # A different limit is the same walk: the cursor stays good.
    assert list_events(world, connector, **{"from": T0, "to": T0 + 19, "limit": 9, "cursor": cursor}).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"to": T0},
        {"from": T0},
        {},
        {"from": "yesterday", "to": T0},
        {"from": T0, "to": T0 - 1},
        {"from": -1, "to": T0},
        {"from": 1.5, "to": T0},
        {"from": T0, "to": 2**53},
        {"from": T0, "to": T0, "limit": 0},
        {"from": T0, "to": T0, "limit": 1001},
        {"from": T0, "to": T0, "limit": "ten"},
        {"from": T0, "to": T0, "k": "Bogus"},
        {"from": T0, "to": T0, "kind": "Init"},
        [("from", T0), ("from", T0), ("to", T0)],
    ],
)
def test_invalid_query_is_400(world: World, filled, params):
    connector, _ = filled
    response = httpx.get(world.events_url(connector), params=params, headers=bearer(world.read_token))
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["errors"][0]["code"] == 20010


def test_unknown_connector_is_404(world: World):
    assert list_events(world, "nobody", **{"from": T0, "to": T0}).json()["errors"][0]["code"] == 20002
    response = httpx.get(world.events_url("nobody") + "/latest", headers=bearer(world.read_token))
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == 20002


def test_latest_is_newest_first_with_full_payloads(world: World):
    connector = world.new_connector()
    events = [{"t": T0 + i // 2, "n": i % 2, "e": {"k": "RekeyAdvance", "i": i}} for i in range(130)]
    events[-1]["v"] = "9.9"
    post_events(world, events, connector=connector).raise_for_status()
    response = httpx.get(world.events_url(connector) + "/latest", headers=bearer(world.read_token))
    result = response.json()["result"]
    assert result["count"] == 100 == len(result["items"])
    assert result["items"][0] == {"e": {"k": "RekeyAdvance", "i": 129}, "n": 1, "t": T0 + 64, "v": "9.9"}
    assert result["items"][1] == {"e": {"k": "RekeyAdvance", "i": 128}, "n": 0, "t": T0 + 64}
    assert [item["e"]["i"] for item in result["items"]] == list(range(129, 29, -1))


def test_latest_of_an_empty_connector(world: World):
    connector = world.new_connector()
    response = httpx.get(world.events_url(connector) + "/latest", headers=bearer(world.read_token))
    assert response.json()["result"] == {"count": 0, "items": []}
    with_query = httpx.get(world.events_url(connector) + "/latest?limit=5", headers=bearer(world.read_token))
    assert with_query.status_code == 400 and with_query.json()["errors"][0]["code"] == 20010


def test_list_and_latest_need_permission_on_the_account(world: World, filled):
    connector, _ = filled
    other = bearer(world.other_write_token)
    assert httpx.get(world.events_url(connector), params={"from": T0, "to": T0}, headers=other).status_code == 403
    assert httpx.get(world.events_url(connector) + "/latest", headers=other).status_code == 403
    assert httpx.get(world.events_url(connector), params={"from": T0, "to": T0}).status_code == 400
