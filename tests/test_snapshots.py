"""Snapshots over HTTP on both backends: ingestion, Get, List and Latest Snapshots (CONTRACT §8)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from helpers import World, bearer

T0 = 1_700_000_000


def snapshot(t: int, **fields: Any) -> dict[str, Any]:
    """A snapshot with the required fields, and `fields`."""
    base = {
        "count_reclaim_failures": 0,
        "count_reclaimed_paths": 0,
        "count_record_failed": 0,
        "count_transmit_failures": 0,
        "t": t,
        "v": "2025.9.1",
    }
    return base | fields


def url(world: World, connector: str, tail: str = "") -> str:
    return world.events_url(connector).removesuffix("/events") + "/snapshots" + tail


def post(world: World, connector: str, body: Any, token: str | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = bearer(token or world.write_token) | {"content-type": "application/json"}
    return httpx.post(url(world, connector), content=content, headers=headers)


def get(world: World, connector: str, tail: str = "", token: str | None = None, **params: Any) -> httpx.Response:
    return httpx.get(url(world, connector, tail), params=params, headers=bearer(token or world.read_token))


def error_code(response: httpx.Response) -> int:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return int(body["errors"][0]["code"])


def result_text(response: httpx.Response) -> bytes:
    """The envelope's `result` exactly as sent (the envelope is written `{"result":...,"success":...`)."""
    assert response.status_code == 200, response.text
    body = response.content
    assert body.startswith(b'{"result":') and body.endswith(b',"success":true,"errors":[],"messages":[]}')
    return body[len(b'{"result":') : -len(b',"success":true,"errors":[],"messages":[]}')]


def test_get_returns_the_snapshot_byte_for_byte_and_both_readings_of_t_name_it(world: World):
    connector = world.new_connector()
    # Unknown fields (any shape), numbers written oddly, escapes, key order: all kept as sent.
    text = (
        b'{"v":"2025.9.1","t":%d,"count_reclaim_failures":0,"count_reclaimed_paths":1.50,'
        b'"count_record_failed":1e2,"count_transmit_failures":0,"platform":"caf\\u00e9",'
        b'"added_in_2027":{"nested":[1,{"x":null}],"big":123456789012345678901234567890},'
        b'"netdevs":[{"name":"eth0","recv_bytes":10,"recv_compressed":0,"recv_drop":0,"recv_errs":0,'
        b'"recv_fifo":0,"recv_frame":0,"recv_multicast":0,"recv_packets":1,"sent_bytes":2,"sent_carrier":0,'
        b'"sent_colls":0,"sent_compressed":0,"sent_drop":0,"sent_errs":0,"sent_fifo":0,"sent_packets":1}]}'
    ) % T0
    before = int(time.time())
    response = post(world, connector, b"[ " + text + b" ]")
    assert response.json()["result"] == {"accepted": 1, "duplicates": 0}
    for reading in (f"{T0}", f"{T0}.0", "1.7e+09", "1.7E9"):
        assert result_text(get(world, connector, f"/{reading}")) == text
    listed = get(world, connector, **{"from": T0, "to": T0}).json()["result"]
    assert listed["count"] == 1 and listed["items"][0]["t"] == T0
    assert before <= listed["items"][0]["a"] <= int(time.time())  # `a`: when conntel received it


@pytest.mark.parametrize(("tail", "status", "code"), [(f"/{T0 + 1}", 404, 20031), (f"/{T0}.5", 404, 20031),
                                                     ("/17e", 400, 7003), ("/1700000000abc", 400, 7003)])  # fmt: skip
def test_get_of_no_snapshot(world: World, tail: str, status: int, code: int):
    connector = world.new_connector()
    post(world, connector, [snapshot(T0)]).raise_for_status()
    response = get(world, connector, tail)
    assert (response.status_code, error_code(response)) == (status, code)


def test_latest_is_not_a_time_and_lists_full_snapshots_newest_first(world: World):
    connector = world.new_connector()
    assert get(world, connector, "/latest").json()["result"] == {"count": 0, "items": []}
    batch = [snapshot(T0 + 60 * i, cpu_count=i) for i in range(3)]
    post(world, connector, batch).raise_for_status()
    latest = get(world, connector, "/latest").json()["result"]
    assert latest == {"count": 3, "items": batch[::-1]}
    assert error_code(get(world, connector, "/latest", limit=1)) == 20010  # it takes no parameters


def test_identical_resend_is_a_duplicate_and_other_content_a_409_writing_nothing(world: World):
    connector = world.new_connector()
    first = snapshot(T0, cpu_count=2, platform="x")
    assert post(world, connector, [first]).json()["result"] == {"accepted": 1, "duplicates": 0}
    reordered = dict(reversed(list(first.items())))  # the same snapshot, keys in another order
    again = post(world, connector, [reordered, snapshot(T0 + 60), snapshot(T0 + 60)])
    assert again.json()["result"] == {"accepted": 1, "duplicates": 2}
    conflicting = post(world, connector, [snapshot(T0 + 120), first | {"cpu_count": 4}])
    assert (conflicting.status_code, error_code(conflicting)) == (409, 20033)
    assert get(world, connector, f"/{T0 + 120}").status_code == 404  # nothing of that batch written
    assert get(world, connector, f"/{T0}").json()["result"] == first
    within = post(world, connector, [snapshot(T0 + 180), snapshot(T0 + 180, cpu_count=1)])
    assert (within.status_code, error_code(within)) == (409, 20033)
    two = post(world, connector, [snapshot(T0, cpu_count=2.0, platform="x")])  # 2.0 is not 2 as recorded
    assert two.status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        (
            [snapshot(T0), snapshot(T0 + 1, netdevs=[{"name": "e"}])],
            400,
            20032,
            "at `$[1].netdevs[0]`",
        ),
        ([snapshot(T0, memory_total_bytes=-1)], 400, 20032, "at `$[0].memory_total_bytes`"),
        ([snapshot(T0) | {"t": 1.5}], 400, 20032, "at `$[0].t`"),
        ([{"t": T0}], 400, 20032, "at `$[0]`"),
        ({"t": T0}, 400, 20032, "Expected `array`"),
        (json.dumps([snapshot(T0)]).encode().replace(b"}", b', "t": 1}'), 400, 20032, "`t`"),
        (b"[{", 400, 20004, ""),
        ([snapshot(T0 + i) for i in range(1001)], 413, 20007, "at most 1000"),
    ],
)
def test_invalid_batches_are_refused_whole(world: World, body: Any, status: int, code: int, says: str):
    connector = world.new_connector()
    response = post(world, connector, body)
    assert (response.status_code, error_code(response)) == (status, code)
    assert says in response.json()["errors"][0]["message"]
    assert get(world, connector, "/latest").json()["result"]["count"] == 0


def test_the_path_of_a_wrong_nested_value(world: World):
    netdev = {name: 0 for name in ("recv_bytes", "recv_compressed", "recv_drop", "recv_errs", "recv_fifo",
                                   "recv_frame", "recv_multicast", "recv_packets", "sent_bytes", "sent_carrier",
                                   "sent_colls", "sent_compressed", "sent_drop", "sent_errs", "sent_fifo",
                                   "sent_packets")} | {"name": "eth"}  # fmt: skip
    netdevs = [netdev] * 3 + [netdev | {"recv_bytes": "12"}]
    response = post(world, world.new_connector(), [snapshot(T0, netdevs=netdevs)])
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].endswith("at `$[0].netdevs[3].recv_bytes`")


def test_list_pages_by_signed_cursor_with_from_and_to_inclusive(world: World):
    connector = world.new_connector()
    post(world, connector, [snapshot(T0 + 60 * i) for i in range(7)]).raise_for_status()
    query = {"from": T0 + 60, "to": T0 + 300, "limit": 2}
    seen, cursor = [], None
    while True:
        page = get(world, connector, **query, **({"cursor": cursor} if cursor else {})).json()["result"]
        seen += [item["t"] for item in page["items"]]
        assert set(page["items"][0]) == {"a", "t"} and page["count"] == len(page["items"])
        cursor = page.get("cursor")
        if cursor is None:
            break
    assert seen == [T0 + 60 * i for i in range(1, 6)]
    # A cursor belongs to its query: another range, another connector, or List Events refuse it.
    first = get(world, connector, **query).json()["result"]["cursor"]
    assert error_code(get(world, connector, **(query | {"to": T0 + 400, "cursor": first}))) == 20011
    events = httpx.get(world.events_url(connector), params=query | {"cursor": first}, headers=bearer(world.read_token))
    assert error_code(events) == 20011
    assert error_code(get(world, connector, **{"from": 5, "to": 4})) == 20010
    assert error_code(get(world, connector, **{"from": T0})) == 20010
    floats = get(world, connector, **{"from": f"{T0}.0", "to": f"{T0 + 60}.0"}).json()["result"]
    assert [item["t"] for item in floats["items"]] == [T0, T0 + 60]


def test_permissions_accounts_and_unknown_connectors(world: World):
    connector = world.new_connector()
    assert error_code(post(world, connector, [snapshot(T0)], token=world.read_token)) == 10000
    assert error_code(post(world, connector, [snapshot(T0)], token=world.other_write_token)) == 10000
    post(world, connector, [snapshot(T0)]).raise_for_status()
    assert error_code(get(world, connector, f"/{T0}", token=world.other_write_token)) == 10000
    assert httpx.get(url(world, connector, f"/{T0}")).status_code == 400  # no credentials
    with_key = httpx.get(url(world, connector, f"/{T0}"), headers={"X-Auth-Email": world.email,
                                                                  "X-Auth-Key": world.api_key})  # fmt: skip
    assert with_key.status_code == 200
    for response in (
        post(world, "nosuchconnector", [snapshot(T0)]),
        get(world, "nosuchconnector", f"/{T0}"),
        get(world, "nosuchconnector", "/latest"),
        get(world, "nosuchconnector", **{"from": 0, "to": 1}),
    ):
        assert (response.status_code, error_code(response)) == (404, 20002)


def test_deleting_a_connector_deletes_its_snapshots(world: World):
    connector = world.new_connector()
    post(world, connector, [snapshot(T0)]).raise_for_status()
    deleted = httpx.delete(
        world.events_url(connector).removesuffix("/telemetry/events"), headers=bearer(world.write_token)
    )
    assert deleted.status_code == 200
    assert error_code(get(world, connector, f"/{T0}")) == 20002
