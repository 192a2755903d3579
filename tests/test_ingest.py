"""Ingestion: validation, all-or-nothing batches, idempotent retries, conflicts, limits."""

from __future__ import annotations

import json

import httpx
import pytest
from helpers import World, bearer, post_events

T0 = 1_700_000_000


def stored(world: World, connector: str, t: int, n: int) -> httpx.Response:
    return httpx.get(f"{world.events_url(connector)}/{t}.{n}", headers=bearer(world.read_token))


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    return body["errors"][0]


def test_identical_resend_is_a_counted_noop(world: World):
    connector = world.new_connector()
    batch = [
        {"t": T0, "n": 0, "e": {"k": "Init", "x": {"b": 1, "a": 2}}, "v": "1"},
        {"t": T0, "n": 1, "e": {"k": "HaInit"}},
    ]
    assert post_events(world, batch, connector=connector).json()["result"] == {"accepted": 2, "duplicates": 0}
    # Same content, keys in another order: still the same event.
    again = [
        {"v": "1", "e": {"x": {"a": 2, "b": 1}, "k": "Init"}, "n": 0, "t": T0},
        *batch[1:],
        {"t": T0, "n": 2, "e": {"k": "Leave"}},
    ]
    assert post_events(world, again, connector=connector).json()["result"] == {"accepted": 1, "duplicates": 2}


def test_repeat_within_one_batch_counts_as_duplicate(world: World):
    connector = world.new_connector()
    event = {"t": T0, "n": 0, "e": {"k": "Init"}}
    assert post_events(world, [event, event], connector=connector).json()["result"] == {"accepted": 1, "duplicates": 1}


@pytest.mark.parametrize(
    "changed",
    [
        {"e": {"k": "Leave"}},
        {"e": {"k": "Init", "x": 1}},
        {"v": "2"},
        {"e": {"k": "Init", "flag": 1}},  # 1 is not true
    ],
)
def test_conflicting_event_is_409_and_writes_nothing_of_the_batch(world: World, changed: dict):
    connector = world.new_connector()
    first = {"t": T0, "n": 0, "e": {"k": "Init", "flag": True}, "v": "1"}
    post_events(world, [first], connector=connector).raise_for_status()
    conflicting = {**first, **changed}
    response = post_events(world, [{"t": T0 + 1, "n": 0, "e": {"k": "Reconcile"}}, conflicting], connector=connector)
    assert response.status_code == 409
    assert error_of(response)["code"] == 20006
    assert stored(world, connector, T0 + 1, 0).status_code == 404  # nothing of the batch written
    assert stored(world, connector, T0, 0).json()["result"] == first


def test_conflict_within_one_batch_is_409(world: World):
    connector = world.new_connector()
    response = post_events(
        world, [{"t": T0, "n": 0, "e": {"k": "Init"}}, {"t": T0, "n": 0, "e": {"k": "Leave"}}], connector=connector
    )
    assert response.status_code == 409
    assert stored(world, connector, T0, 0).status_code == 404


@pytest.mark.parametrize(
    ("event", "where"),
    [
        ({"t": T0, "n": 0, "e": {"k": "Bogus"}}, "$[1].e.k"),
        ({"t": T0, "n": 0, "e": {"k": "StartUpgrade"}}, "$[1].e"),
        ({"t": T0, "n": 0, "e": {"k": "StartUpgrade", "url": 7}}, "$[1].e.url"),
        ({"t": T0, "n": 0, "e": {}}, "$[1].e"),
        ({"t": T0, "n": 0, "e": "Init"}, "$[1].e"),
        ({"t": -1, "n": 0, "e": {"k": "Init"}}, "$[1].t"),
        ({"t": T0, "n": -5, "e": {"k": "Init"}}, "$[1].n"),
        ({"t": 10**30, "n": 0, "e": {"k": "Init"}}, "$[1].t"),
        ({"t": 2**53, "n": 0, "e": {"k": "Init"}}, "$[1].t"),
        ({"t": "1700000000", "n": 0, "e": {"k": "Init"}}, "$[1].t"),
        ({"t": 1.5, "n": 0, "e": {"k": "Init"}}, "$[1].t"),
        ({"t": T0, "n": None, "e": {"k": "Init"}}, "$[1].n"),
        ({"t": T0, "n": 0, "e": {"k": "Init"}, "v": 3}, "$[1].v"),
        ({"t": T0, "n": 0, "e": {"k": "Init"}, "v": "1.0\u0000"}, "$[1].v"),
        ({"t": T0, "n": 0, "e": {"k": "Init"}, "extra": 1}, "$[1]"),
        ({"n": 0, "e": {"k": "Init"}}, "$[1]"),
    ],
)
def test_invalid_event_is_400_naming_item_and_field(world: World, event: dict, where: str):
    connector = world.new_connector()
    response = post_events(world, [{"t": T0, "n": 9, "e": {"k": "Init"}}, event], connector=connector)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == 20005
    assert f"`{where}" in error["message"]
    assert stored(world, connector, T0, 9).status_code == 404


@pytest.mark.parametrize("body", [b"", b"[", b'{"t": 1', b"not json", b"[1,]", b"\xff\xfe"])
def test_malformed_json_is_400(world: World, body: bytes):
    response = httpx.post(world.events_url(), content=body, headers=bearer(world.write_token))
    assert response.status_code == 400
    assert error_of(response)["code"] == 20004


@pytest.mark.parametrize("body", [{"t": T0, "n": 0, "e": {"k": "Init"}}, [1, 2], "Init", None, [[]], [None]])
def test_body_that_is_not_a_list_of_events_is_400(world: World, body):
    content = json.dumps(body).encode()
    response = httpx.post(world.events_url(), content=content, headers=bearer(world.write_token))
    assert response.status_code == 400
    assert error_of(response)["code"] == 20005


def test_payload_text_is_kept_exactly_even_odd_characters(world: World):
    connector = world.new_connector()
    event = {"t": T0, "n": 0, "e": {"k": "HaError", "error": 'nul\u0000 tab\t emoji \U0001f680 quote"'}}
    post_events(world, [event], connector=connector).raise_for_status()
    assert stored(world, connector, T0, 0).json()["result"] == event


def test_empty_batch_accepts_nothing(world: World):
    assert post_events(world, []).json()["result"] == {"accepted": 0, "duplicates": 0}


def test_oversized_batch_is_413(world: World):
    connector = world.new_connector()
    events = [{"t": T0 + i, "n": 0, "e": {"k": "Reconcile"}} for i in range(5001)]
    response = post_events(world, events, connector=connector)
    assert response.status_code == 413
    assert error_of(response)["code"] == 20007
    assert stored(world, connector, T0, 0).status_code == 404


def test_oversized_body_is_413(world: World):
    body = b"[" + b" " * (8 * 1024 * 1024) + b"]"
    response = httpx.post(world.events_url(), content=body, headers=bearer(world.write_token))
    assert response.status_code == 413
    assert error_of(response)["code"] == 20008


def test_oversized_chunked_body_is_413(world: World):
    def chunks():
        yield b"["
        for _ in range(9):
            yield b" " * (1024 * 1024)
        yield b"]"

    response = httpx.post(world.events_url(), content=chunks(), headers=bearer(world.write_token))
    assert response.status_code == 413
    assert error_of(response)["code"] == 20008


def test_unknown_connector_is_404(world: World):
    response = post_events(world, [{"t": T0, "n": 0, "e": {"k": "Init"}}], connector="nobody-here")
    assert response.status_code == 404
    assert error_of(response)["code"] == 20002


def test_largest_allowed_batch_is_accepted(world: World):
    connector = world.new_connector()
    events = [{"t": T0 + i // 10, "n": i % 10, "e": {"k": "Reconcile"}} for i in range(5000)]
    assert post_events(world, events, connector=connector).json()["result"] == {"accepted": 5000, "duplicates": 0}
    assert stored(world, connector, T0 + 499, 9).status_code == 200


def test_collection_time_is_stamped_by_the_server(world: World):
    import time

    connector = world.new_connector()
    before = int(time.time())
    post_events(world, [{"t": 5, "n": 0, "e": {"k": "Init"}}], connector=connector).raise_for_status()
    listed = httpx.get(world.events_url(connector), params={"from": 0, "to": 10}, headers=bearer(world.read_token))
    (item,) = listed.json()["result"]["items"]
    assert before <= item["a"] <= int(time.time()) + 1


def test_a_large_batch_overlapping_recorded_events_counts_each_and_a_conflict_anywhere_writes_none(world: World):
    """Batches are stored many rows to a statement (store/sqlite.py): rows already recorded are counted as
    duplicates wherever they fall, and a conflicting row in any statement of the batch writes nothing."""
    connector = world.new_connector()
    events = [{"t": T0 + i, "n": 0, "e": {"k": "Reconcile"}} for i in range(250)]
    assert post_events(world, events[60:170], connector=connector).json()["result"] == {
        "accepted": 110,
        "duplicates": 0,
    }
    assert post_events(world, events, connector=connector).json()["result"] == {"accepted": 140, "duplicates": 110}
    more = [{"t": T0 + 1000 + i, "n": 0, "e": {"k": "Reconcile"}} for i in range(230)]
    conflicting = {**events[120], "e": {"k": "Leave"}}  # in the middle statement of the batch
    response = post_events(world, [*more[:150], conflicting, *more[150:]], connector=connector)
    assert response.status_code == 409 and error_of(response)["code"] == 20006
    assert stored(world, connector, T0 + 1000, 0).status_code == 404
    assert stored(world, connector, T0 + 1229, 0).status_code == 404
    query = {"from": T0, "to": T0 + 2000, "limit": 1000}
    listed = httpx.get(world.events_url(connector), params=query, headers=bearer(world.read_token)).json()["result"]
    assert [item["t"] for item in listed["items"]] == [T0 + i for i in range(250)]  # nothing of the refused batch
