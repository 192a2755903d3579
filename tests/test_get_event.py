"""Get Event: every kind round-trips, every client path form resolves, and misses are clear."""

from __future__ import annotations

import httpx
import pytest
from helpers import World, bearer, post_events

from conntel.kinds import KINDS

T0 = 1_700_000_000


def payload(kind: str) -> dict:
    e = {"k": kind, "detail": {"attempt": 2, "ok": False, "ratio": 0.5, "tags": ["a", "b"]}, "note": None}
    if kind == "StartUpgrade":
        e["url"] = "https://downloads.example.com/bundle.tar.zst"
    return e


def get(world: World, connector: str, ref: str, token: str | None = None) -> httpx.Response:
    return httpx.get(f"{world.events_url(connector)}/{ref}", headers=bearer(token or world.read_token))


def test_every_kind_round_trips_with_its_payload(world: World):
    connector = world.new_connector()
    events = [{"t": T0 + i, "n": i % 3, "e": payload(kind.name), "v": f"2026.{i}.0"} for i, kind in enumerate(KINDS)]
    assert len(events) == 29
    response = post_events(world, events, connector=connector)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"accepted": 29, "duplicates": 0}
    for event in events:
        response = get(world, connector, f"{event['t']}.{event['n']}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body == {"result": event, "success": True, "errors": [], "messages": []}
        assert list(body["result"]) == ["e", "n", "t", "v"]


def test_version_is_omitted_when_unknown(world: World):
    connector = world.new_connector()
    post_events(world, [{"t": T0, "n": 0, "e": {"k": "Init"}}], connector=connector).raise_for_status()
    result = get(world, connector, f"{T0}.0").json()["result"]
    assert result == {"e": {"k": "Init"}, "n": 0, "t": T0}


@pytest.mark.parametrize(
    "ref",
    [
        f"{T0}.3",  # ints
        f"{T0}.0.3.0",  # floats, as the Python SDK formats them
        f"{T0}.0.3",  # float t, int n
        f"{T0}.3.0",  # int t, float n
        "1.7e+09.3",  # exponent form
        "1.7e%2B09.3",  # the same, percent-encoded
        f"000{T0}.0003",  # leading zeros
    ],
)
def test_every_unambiguous_reading_resolves_to_the_same_event(world: World, ref: str):
    connector = world.new_connector()
    post_events(world, [{"t": T0, "n": 3, "e": {"k": "Reconcile"}}], connector=connector).raise_for_status()
    response = get(world, connector, ref)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"e": {"k": "Reconcile"}, "n": 3, "t": T0}


@pytest.mark.parametrize(
    "ref",
    [
        "1.5.3",
        "1.2.3.4",
        "abc",
        f"{T0}",
        f"{T0}.",
        f".{T0}",
        f"{T0}.-1",
        f"-{T0}.1",
        f"{T0}.1e400",
        "9" * 20 + ".1",
        f"{T0}.x",
        "١٢.3",
    ],
)
def test_malformed_or_ambiguous_references_are_routing_errors(world: World, ref: str):
    response = get(world, world.connector, ref)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert [error["code"] for error in body["errors"]] == [7003, 7000]


def test_unknown_event_is_404(world: World):
    connector = world.new_connector()
    response = get(world, connector, f"{T0}.42")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 20001


def test_unknown_connector_is_404(world: World):
    response = get(world, "no-such-connector", f"{T0}.0")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 20002


def test_other_accounts_connector_is_not_visible_through_own_account(world: World):
    # The other account's connector id named under our own account does not exist here.
    response = get(world, world.other_connector, f"{T0}.0")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 20002
