"""Retries of large batches: every duplicate counted, one conflict among thousands writes nothing.

PostgreSQL checks a retried batch's already recorded events in one statement
(store/postgres.py); these tests hold both backends to the same answers.
"""

from __future__ import annotations

import httpx
from helpers import World, bearer, post_events

T0 = 1_700_000_000
BATCH = 5000  # the largest batch the server accepts (max_batch_events)


def batch(count: int, start: int = 0, reordered: bool = False) -> list[dict]:
    """`count` events, every tenth with a version; `reordered`: the same events, keys in another order."""
    events = []
    for i in range(start, start + count):
        payload = {"k": "Reconcile", "i": i, "nested": {"a": [1, 2.5], "b": True}}
        event = {"t": T0 + i // 10, "n": i % 10, "e": payload}
        if i % 10 == 0:
            event["v"] = f"2024.{i}"
        if reordered:
            event = {key: event[key] for key in reversed(event)}
            event["e"] = {"nested": {"b": True, "a": [1, 2.5]}, "i": i, "k": "Reconcile"}
        events.append(event)
    return events


def listed(world: World, connector: str, from_t: int, to_t: int) -> list[dict]:
    response = httpx.get(
        world.events_url(connector),
        params={"from": from_t, "to": to_t, "limit": 1000},
        headers=bearer(world.read_token),
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["result"]["items"]


def test_full_retry_of_a_largest_batch_counts_every_event_a_duplicate(world: World):
    connector = world.new_connector()
    events = batch(BATCH)
    assert post_events(world, events, connector=connector).json()["result"] == {"accepted": BATCH, "duplicates": 0}
    assert post_events(world, events, connector=connector).json()["result"] == {"accepted": 0, "duplicates": BATCH}
    # The same events with their keys in another order are still the same events.
    again = post_events(world, batch(BATCH, reordered=True), connector=connector)
    assert again.json()["result"] == {"accepted": 0, "duplicates": BATCH}
    # A retry that carries one new event among the duplicates records just that one.
    mixed = [*batch(BATCH - 1, start=1), *batch(1, start=BATCH)]
    assert post_events(world, mixed, connector=connector).json()["result"] == {"accepted": 1, "duplicates": BATCH - 1}
    assert len(listed(world, connector, T0 + BATCH // 10, T0 + BATCH // 10)) == 1


def test_a_conflict_among_thousands_of_duplicates_writes_nothing(world: World):
    connector = world.new_connector()
    recorded = batch(4000)
    post_events(world, recorded, connector=connector).raise_for_status()
    # A retry of those (keys reordered), 997 new events, and two events that differ from what is recorded.
    retry = batch(4000, reordered=True) + batch(997, start=4000)
    first_conflict, second_conflict = dict(retry[1234], e={"k": "Reconcile", "i": -1}), dict(retry[3000], v="other")
    retry[1234], retry[3000] = first_conflict, second_conflict
    response = post_events(world, retry, connector=connector)
    assert response.status_code == 409
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == 20006
    # The first conflict in the batch's order is the one named.
    assert f"{first_conflict['t']}.{first_conflict['n']} " in body["errors"][0]["message"]
    assert listed(world, connector, T0 + 400, T0 + 500) == []  # none of the new events
    stored = httpx.get(
        f"{world.events_url(connector)}/{first_conflict['t']}.{first_conflict['n']}", headers=bearer(world.read_token)
    )
    assert stored.json()["result"]["e"] == recorded[1234]["e"]  # the recorded event is untouched
    # Without the conflicts, the same batch goes in: nothing of the refused one was kept.
    retry[1234], retry[3000] = recorded[1234], recorded[3000]
    assert post_events(world, retry, connector=connector).json()["result"] == {"accepted": 997, "duplicates": 4000}
