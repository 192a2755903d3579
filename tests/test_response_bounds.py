"""Responses sized by the data they may carry, not by what is stored: Latest Events and the live tail."""

from __future__ import annotations

import json
import time

import httpx
from helpers import World, bearer, post_events

T0 = 1_700_200_000
BIG = 900 * 1024  # twelve of these are more than a page may carry
PAGE_BYTES = 8 << 20  # README: Latest Events carries at most 8 MiB of payloads


def big_events(count: int) -> list[dict]:
    return [{"t": T0 + i, "n": 0, "e": {"k": "Reconcile", "i": i, "blob": "x" * BIG}} for i in range(count)]


def payload_bytes(event: dict) -> int:
    return len(json.dumps(event["e"], separators=(",", ":")).encode())


def test_latest_events_stops_before_the_size_bound_and_says_so_by_its_count(world: World):
    connector = world.new_connector()
    events = big_events(12)
    for half in (events[:6], events[6:]):
        post_events(world, half, connector=connector).raise_for_status()
    response = httpx.get(f"{world.events_url(connector)}/latest", headers=bearer(world.read_token), timeout=30)
    assert response.status_code == 200
    result = response.json()["result"]
    fit = PAGE_BYTES // payload_bytes(events[0])
    assert fit < len(events)
    assert result["count"] == len(result["items"]) == fit
    newest_first = events[::-1][:fit]
    assert [(item["t"], item["n"]) for item in result["items"]] == [(ev["t"], ev["n"]) for ev in newest_first]
    assert all(item["e"] == ev["e"] for item, ev in zip(result["items"], newest_first, strict=True))
    assert len(response.content) <= PAGE_BYTES + 4096
    # A page this large is sent in parts as it is read, not built whole.
    assert response.headers.get("transfer-encoding") == "chunked"


def test_a_middle_sized_page_is_sent_in_parts_and_reads_the_same(world: World):
    connector = world.new_connector()
    events = [{"t": T0 + i, "n": 0, "e": {"k": "Reconcile", "i": i, "pad": "y" * 20_000}} for i in range(100)]
    post_events(world, events, connector=connector).raise_for_status()
    response = httpx.get(f"{world.events_url(connector)}/latest", headers=bearer(world.read_token), timeout=30)
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    assert body["result"]["count"] == 100
    assert [item["e"] for item in body["result"]["items"]] == [ev["e"] for ev in events[::-1]]


def test_a_live_tail_catches_up_on_large_events_in_bounded_batches(world: World):
    connector = world.new_connector()
    events = big_events(12)
    for half in (events[:6], events[6:]):
        post_events(world, half, connector=connector).raise_for_status()
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}/telemetry/events/stream"
    seen: list[int] = []
    deadline = time.monotonic() + 30
    headers = {**bearer(world.read_token), "Last-Event-ID": "0"}
    with httpx.Client(timeout=httpx.Timeout(10)) as client, client.stream("GET", url, headers=headers) as stream:
        assert stream.status_code == 200
        kind = ""
        for line in stream.iter_lines():
            assert time.monotonic() < deadline, f"only {len(seen)} of {len(events)} events arrived"
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            if line.startswith("data: ") and kind == "event":  # not health changes
                data = json.loads(line[len("data: ") :])
                assert data["e"] == events[len(seen)]["e"]
                seen.append(data["t"])
                if len(seen) == len(events):
                    break
    assert seen == [ev["t"] for ev in events]
