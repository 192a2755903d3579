"""Snapshots through the official npm `cloudflare` SDK 7.3.0 (sdk_calls.mjs), in its own call forms.

client.magicTransit.connectors.snapshots.list(connectorID, {account_id, from, to, limit?, cursor?})
client.magicTransit.connectors.snapshots.get(snapshotT, {account_id, connector_id})
client.magicTransit.connectors.snapshots.latest.list(connectorID, {account_id})
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from helpers import World, bearer
from snapshot_data import SNAPSHOTS, T0
from test_node_sdk_family import error, run, step

SNAPSHOT_CALLS = "magicTransit.connectors.snapshots"


@pytest.fixture(scope="module")
def recorded(world: World) -> str:
    connector = world.new_connector()
    url = world.events_url(connector).removesuffix("/events") + "/snapshots"
    response = httpx.post(url, json=SNAPSHOTS, headers=bearer(world.write_token))
    assert response.json()["result"] == {"accepted": len(SNAPSHOTS), "duplicates": 0}
    return connector


def test_snapshots_list_get_and_latest(node_sdk: str, world: World, recorded: str):
    r = world.read_token
    unknown = {"account_id": world.account}
    where = {"account_id": world.account, "connector_id": recorded}
    query = {"account_id": world.account, "from": T0, "to": T0 + 600}
    out = run(
        node_sdk,
        world,
        [
            step("get_full", f"{SNAPSHOT_CALLS}.get", T0, where, token=r),
            step("get_minimal", f"{SNAPSHOT_CALLS}.get", T0 + 60, where, token=r),
            step("get_fraction", f"{SNAPSHOT_CALLS}.get", T0 + 0.5, where, token=r),
            step("walk", f"{SNAPSHOT_CALLS}.list", recorded, query | {"limit": 4}, token=r, mode="walk"),
            step("one", f"{SNAPSHOT_CALLS}.list", recorded, query | {"from": T0 + 60, "to": T0 + 60}, token=r),
            step("latest", f"{SNAPSHOT_CALLS}.latest.list", recorded, {"account_id": world.account}, token=r),
            step("from_after_to", f"{SNAPSHOT_CALLS}.list", recorded, query | {"from": T0 + 1, "to": T0}, token=r),
            step("bad_cursor", f"{SNAPSHOT_CALLS}.list", recorded, query | {"cursor": "nope"}, token=r),
            step("unknown", f"{SNAPSHOT_CALLS}.latest.list", secrets.token_hex(16), unknown, token=r),
            step("other_account", f"{SNAPSHOT_CALLS}.get", T0, where, token=world.other_write_token),
        ],
    )
    assert out["get_full"] == {"result": SNAPSHOTS[0]}  # every field, nested ones and an unknown one included
    assert out["get_minimal"] == {"result": SNAPSHOTS[1]}
    assert out["get_fraction"] == error("NotFoundError", 404, 20031)
    pages = out["walk"]["result"]
    assert [len(page["items"]) for page in pages] == [4, 4, 3]
    assert [item["t"] for page in pages for item in page["items"]] == [T0 + 60 * i for i in range(11)]
    assert all(page["count"] == len(page["items"]) for page in pages)
    assert all(set(item) == {"a", "t"} and item["a"] > T0 for page in pages for item in page["items"])
    assert [item["t"] for item in out["one"]["result"]["items"]] == [T0 + 60]
    assert out["latest"] == {"result": {"count": len(SNAPSHOTS), "items": SNAPSHOTS[::-1]}}
    assert out["from_after_to"] == error("BadRequestError", 400, 20010)
    assert out["bad_cursor"] == error("BadRequestError", 400, 20011)
    assert out["unknown"] == error("NotFoundError", 404, 20002)
    assert out["other_account"] == error("PermissionDeniedError", 403, 10000)
