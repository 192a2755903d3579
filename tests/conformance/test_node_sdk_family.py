"""The official npm `cloudflare` SDK 7.3.0 over the whole API family, in its own call forms.

Each test hands `sdk_calls.mjs` a scenario — a list of named SDK calls, later ones
able to use earlier results through {"$ref": "step.result.path"} — and asserts
exactly on what the SDK returned or raised for every step. Values the server
generates (ids, times, license keys, cursors, `a`) are first checked for shape,
then put into the expected value, so every other field is compared exactly.

Call forms (node_modules/cloudflare-7/resources/magic-transit/connectors/*.d.ts):
  client.magicTransit.connectors.create({account_id, device, ...settings})
  client.magicTransit.connectors.update|edit|get|delete(connectorID, {account_id, ...})
  client.magicTransit.connectors.list({account_id, device_type?})      -> SinglePage, `for await`
  client.magicTransit.connectors.events.list(connectorID, {account_id, from, to, limit?, k?, cursor?})
  client.magicTransit.connectors.events.get(eventN, {account_id, connector_id, event_t})
  client.magicTransit.connectors.events.latest.list(connectorID, {account_id})
  client.user.tokens.verify()
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from family_data import (
    BAD_CREATES,
    DEFAULTS,
    HA_TRANSITIONS,
    HEX_ID,
    IN_WINDOW,
    LICENSE_KEY,
    NEWEST_100,
    OUTSIDE,
    SETTINGS,
    SMALL,
    T0,
    near_now,
)
from helpers import World, bearer, cli, env_without_proxies, post_events
from test_connectors import account_of_connectors, whole_list

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "sdk_calls.mjs"

CONNECTORS = "magicTransit.connectors"
EVENTS = "magicTransit.connectors.events"


def run(node: str, world: World, steps: list[dict], sdk: str = "v7") -> dict:
    env = {k: v for k, v in env_without_proxies().items() if not k.startswith("CLOUDFLARE_")}
    scenario = {"baseURL": world.server.base_url, "sdk": sdk, "steps": steps}
    done = subprocess.run(
        [node, str(RUNNER)], input=json.dumps(scenario), env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"sdk_calls.mjs failed ({done.returncode}):\n{done.stderr}"
    outcomes = json.loads(done.stdout)
    assert list(outcomes) == [step["name"] for step in steps]
    return outcomes


def step(
    name: str,
    call: str,
    *args: Any,
    token: str | None = None,
    email: str | None = None,
    key: str | None = None,
    mode: str | None = None,
) -> dict:
    auth = {"apiEmail": email, "apiKey": key} if email else {"apiToken": token}
    made = {"name": name, "auth": auth, "call": call, "args": list(args)}
    if mode:
        made["mode"] = mode
    return made


def ref(path: str) -> dict:
    return {"$ref": path}


def error(name: str, status: int, *codes: int) -> dict:
    return {"error": {"name": name, "status": status, "codes": list(codes)}}


BAD_REQUEST = "BadRequestError"
NOT_FOUND = "NotFoundError"
DENIED = "PermissionDeniedError"
UNAUTHENTICATED = "AuthenticationError"


def connector(
    outcome: dict,
    settings: dict,
    device: dict | None,
    *,
    license_key: bool = False,
    heartbeat: bool = False,
    version: str | None = None,
    same_as: dict | None = None,
) -> dict:
    """The exact connector expected, server-generated values taken from `outcome` after a shape check.

    `device` may hold "id": None for a server-made device id; `same_as` is an earlier
    outcome whose id (and device id) this one must repeat.
    """
    assert "result" in outcome, outcome
    got = outcome["result"]
    assert HEX_ID.match(got["id"]), got
    assert near_now(got["last_updated"]), got
    want: dict = {"id": got["id"], **settings, "last_updated": got["last_updated"]}
    if device is not None:
        want["device"] = dict(device)
        if device.get("id") is None:
            assert HEX_ID.match(got["device"]["id"]), got
            want["device"]["id"] = got["device"]["id"]
    if same_as is not None:
        assert got["id"] == same_as["result"]["id"]
        if "device" in same_as["result"]:
            assert got["device"]["id"] == same_as["result"]["device"]["id"]
    if heartbeat:
        assert near_now(got.get("last_heartbeat")), got
        want["last_heartbeat"] = got["last_heartbeat"]
    if version is not None:
        want["last_seen_version"] = version
    if license_key:
        assert LICENSE_KEY.match(got.get("license_key") or ""), got
        want["license_key"] = got["license_key"]
    assert got == want
    return want


def without_key(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "license_key"}


# --------------------------------------------------------------------------- connectors


def test_connector_lifecycle(node_sdk: str, world: World):
    """create (each device form) / get / edit / update / list (+ device_type) / delete, in a fresh account."""
    account = cli("accounts", "create", db=world.db)["id"]
    write = world.new_token("Magic WAN Write", account=account)["value"]
    read = world.new_token("Magic WAN Read", account=account)["value"]
    at = {"account_id": account}
    out = run(
        node_sdk,
        world,
        [
            step("list_empty", f"{CONNECTORS}.list", at, token=read, mode="iterate"),
            step("create_id", f"{CONNECTORS}.create", {**at, "device": {"id": "ts-device-1"}}, token=write),
            step(
                "create_serial",
                f"{CONNECTORS}.create",
                {**at, "device": {"serial_number": "SN-TS"}, **SETTINGS},
                token=write,
            ),
            step("create_licensed", f"{CONNECTORS}.create", {**at, "device": {"provision_license": True}}, token=write),
            step("get_id", f"{CONNECTORS}.get", ref("create_id.result.id"), at, token=read),
            step("get_licensed", f"{CONNECTORS}.get", ref("create_licensed.result.id"), at, token=read),
            step(
                "edit_serial",
                f"{CONNECTORS}.edit",
                ref("create_serial.result.id"),
                {**at, "notes": "patched", "interrupt_window_hour_of_day": 3, "interrupt_window_embargo_dates": []},
                token=write,
            ),
            step("get_serial_edited", f"{CONNECTORS}.get", ref("create_serial.result.id"), at, token=read),
            step("edit_nothing", f"{CONNECTORS}.edit", ref("create_serial.result.id"), at, token=write),
            step(
                "update_serial",
                f"{CONNECTORS}.update",
                ref("create_serial.result.id"),
                {**at, "notes": "put", "activated": True},
                token=write,
            ),
            step("get_serial_updated", f"{CONNECTORS}.get", ref("create_serial.result.id"), at, token=read),
            step(
                "edit_provision",
                f"{CONNECTORS}.edit",
                ref("create_licensed.result.id"),
                {**at, "provision_license": True},
                token=write,
            ),
            step(
                "update_provision",
                f"{CONNECTORS}.update",
                ref("create_licensed.result.id"),
                {**at, "provision_license": True, "timezone": "Asia/Tokyo"},
                token=write,
            ),
            step(
                "edit_no_provision",
                f"{CONNECTORS}.edit",
                ref("create_licensed.result.id"),
                {**at, "notes": "no new key"},
                token=write,
            ),
            step("get_licensed_after", f"{CONNECTORS}.get", ref("create_licensed.result.id"), at, token=read),
            step("list_all", f"{CONNECTORS}.list", at, token=read, mode="iterate"),
            step("list_managed", f"{CONNECTORS}.list", {**at, "device_type": "MANAGED"}, token=read, mode="iterate"),
            step("list_licensed", f"{CONNECTORS}.list", {**at, "device_type": "LICENSED"}, token=read, mode="iterate"),
            step("delete_id", f"{CONNECTORS}.delete", ref("create_id.result.id"), at, token=write),
            step("get_deleted", f"{CONNECTORS}.get", ref("create_id.result.id"), at, token=read),
            step("delete_again", f"{CONNECTORS}.delete", ref("create_id.result.id"), at, token=write),
            step("list_after_delete", f"{CONNECTORS}.list", at, token=read, mode="iterate"),
        ],
    )
    assert out["list_empty"] == {"result": []}
    created_id = connector(out["create_id"], DEFAULTS, {"id": "ts-device-1"})  # device.id: no type
    managed = {"id": None, "serial_number": "SN-TS", "type": "MANAGED"}
    created_serial = connector(out["create_serial"], SETTINGS, managed)
    created_licensed = connector(out["create_licensed"], DEFAULTS, {"id": None, "type": "LICENSED"}, license_key=True)
    assert out["get_id"] == {"result": created_id}
    assert out["get_licensed"] == {"result": without_key(created_licensed)}  # the key is shown once

    serial_device = created_serial["device"]
    edited = {**SETTINGS, "notes": "patched", "interrupt_window_hour_of_day": 3, "interrupt_window_embargo_dates": []}
    edited_serial = connector(out["edit_serial"], edited, serial_device, same_as=out["create_serial"])
    assert out["get_serial_edited"] == {"result": edited_serial}
    connector(out["edit_nothing"], edited, serial_device, same_as=out["create_serial"])
    updated = {**DEFAULTS, "notes": "put", "activated": True}  # PUT resets what it does not give
    updated_serial = connector(out["update_serial"], updated, serial_device, same_as=out["create_serial"])
    assert out["get_serial_updated"] == {"result": updated_serial}

    licensed_device = created_licensed["device"]
    keys = [created_licensed["license_key"]]
    for name, settings in [("edit_provision", DEFAULTS), ("update_provision", {**DEFAULTS, "timezone": "Asia/Tokyo"})]:
        got = connector(out[name], settings, licensed_device, license_key=True, same_as=out["create_licensed"])
        assert got["license_key"] not in keys, "re-provisioning must make a new license key"
        keys.append(got["license_key"])
    no_new_key = {**DEFAULTS, "timezone": "Asia/Tokyo", "notes": "no new key"}
    final_licensed = connector(out["edit_no_provision"], no_new_key, licensed_device, same_as=out["create_licensed"])
    assert out["get_licensed_after"] == {"result": final_licensed}

    by_id = {item["id"]: item for item in out["list_all"]["result"]}
    assert len(out["list_all"]["result"]) == 3
    assert by_id == {c["id"]: c for c in (created_id, updated_serial, final_licensed)}
    assert out["list_managed"] == {"result": [updated_serial]}
    assert out["list_licensed"] == {"result": [final_licensed]}

    assert out["delete_id"] == {"result": created_id}  # the deleted connector, as it was
    assert out["get_deleted"] == error(NOT_FOUND, 404, 20002)
    assert out["delete_again"] == error(NOT_FOUND, 404, 20002)
    assert sorted(item["id"] for item in out["list_after_delete"]["result"]) == sorted(
        [updated_serial["id"], final_licensed["id"]]
    )


def test_heartbeat_version_and_global_key(node_sdk: str, world: World):
    quiet, busy = world.new_connector(), world.new_connector()  # operator-made: no device yet
    post_events(
        world,
        [
            {"t": T0 + 10, "n": 0, "e": {"k": "Init"}, "v": "2.0.0"},
            {"t": T0 + 5, "n": 9, "e": {"k": "Leave"}, "v": "1.9.0"},
            {"t": T0 + 20, "n": 0, "e": {"k": "Reconcile"}},
        ],
        connector=busy,
    ).raise_for_status()
    at = {"account_id": world.account}
    out = run(
        node_sdk,
        world,
        [
            step("get_quiet", f"{CONNECTORS}.get", quiet, at, token=world.read_token),
            step("get_busy", f"{CONNECTORS}.get", busy, at, token=world.read_token),
            step(
                "key_create",
                f"{CONNECTORS}.create",
                {**at, "device": {"id": "ts-by-key"}, "notes": "k"},
                email=world.email,
                key=world.api_key,
            ),
            step(
                "key_edit",
                f"{CONNECTORS}.edit",
                ref("key_create.result.id"),
                {**at, "notes": "k2"},
                email=world.email,
                key=world.api_key,
            ),
            step(
                "key_delete",
                f"{CONNECTORS}.delete",
                ref("key_create.result.id"),
                at,
                email=world.email,
                key=world.api_key,
            ),
        ],
    )
    connector(out["get_quiet"], DEFAULTS, None)
    assert "last_heartbeat" not in out["get_quiet"]["result"] and "device" not in out["get_quiet"]["result"]
    connector(out["get_busy"], DEFAULTS, None, heartbeat=True, version="2.0.0")  # newest (t, n) with a `v`
    created = connector(out["key_create"], {**DEFAULTS, "notes": "k"}, {"id": "ts-by-key"})
    edited = connector(out["key_edit"], {**DEFAULTS, "notes": "k2"}, {"id": "ts-by-key"}, same_as=out["key_create"])
    assert created["id"] == edited["id"]
    assert out["key_delete"] == {"result": edited}


def test_a_large_list_sent_in_parts_is_every_connector_as_the_api_sends_it(node_sdk: str, world: World):
    account, read = account_of_connectors(world, 1100)  # ~1 MiB: sent in parts as it is read
    sent = whole_list(world, account, read)
    assert sent.headers.get("transfer-encoding") == "chunked"
    at = {"account_id": account}
    out = run(
        node_sdk,
        world,
        [
            step("list_large", f"{CONNECTORS}.list", at, token=read, mode="iterate"),
            step("list_managed", f"{CONNECTORS}.list", {**at, "device_type": "MANAGED"}, token=read, mode="iterate"),
        ],
    )
    assert out["list_large"] == {"result": sent.json()["result"]} and len(sent.json()["result"]) == 1100
    managed = whole_list(world, account, read, device_type="MANAGED").json()["result"]
    assert out["list_managed"] == {"result": managed} and len(managed) > 300


def test_connector_errors(node_sdk: str, world: World):
    existing = world.new_connector()
    missing = secrets.token_hex(16)
    at = {"account_id": world.account}
    bad_token = secrets.token_urlsafe(30)
    steps = [
        step("create_read", f"{CONNECTORS}.create", {**at, "device": {"id": "x"}}, token=world.read_token),
        step("update_read", f"{CONNECTORS}.update", existing, {**at, "notes": "x"}, token=world.read_token),
        step("edit_read", f"{CONNECTORS}.edit", existing, {**at, "notes": "x"}, token=world.read_token),
        step("delete_read", f"{CONNECTORS}.delete", existing, at, token=world.read_token),
        step("get_other", f"{CONNECTORS}.get", existing, at, token=world.other_write_token),
        step("list_other", f"{CONNECTORS}.list", at, token=world.other_write_token, mode="iterate"),
        step("list_bad_token", f"{CONNECTORS}.list", at, token=bad_token, mode="iterate"),
        step("get_bad_token", f"{CONNECTORS}.get", existing, at, token=bad_token),
        step("get_missing", f"{CONNECTORS}.get", missing, at, token=world.read_token),
        step("get_foreign", f"{CONNECTORS}.get", world.other_connector, at, token=world.read_token),
        step("update_missing", f"{CONNECTORS}.update", missing, {**at, "notes": "x"}, token=world.write_token),
        step("edit_missing", f"{CONNECTORS}.edit", missing, {**at, "notes": "x"}, token=world.write_token),
        step("delete_missing", f"{CONNECTORS}.delete", missing, at, token=world.write_token),
        step(
            "list_bad_type",
            f"{CONNECTORS}.list",
            {**at, "device_type": "BOGUS"},
            token=world.read_token,
            mode="iterate",
        ),
        step(
            "edit_bad_timezone",
            f"{CONNECTORS}.edit",
            existing,
            {**at, "timezone": "Nowhere/Special"},
            token=world.write_token,
        ),
        step(
            "update_bad_hour",
            f"{CONNECTORS}.update",
            existing,
            {**at, "interrupt_window_hour_of_day": 24},
            token=world.write_token,
        ),
        step("edit_device", f"{CONNECTORS}.edit", existing, {**at, "device": {"id": "z"}}, token=world.write_token),
        *[
            step(f"create {name}", f"{CONNECTORS}.create", {**at, **body}, token=world.write_token)
            for name, body in BAD_CREATES.items()
        ],
        step("get_unchanged", f"{CONNECTORS}.get", existing, at, token=world.read_token),
    ]
    out = run(node_sdk, world, steps)
    want = {
        "create_read": error(DENIED, 403, 10000),
        "update_read": error(DENIED, 403, 10000),
        "edit_read": error(DENIED, 403, 10000),
        "delete_read": error(DENIED, 403, 10000),
        "get_other": error(DENIED, 403, 10000),
        "list_other": error(DENIED, 403, 10000),
        "list_bad_token": error(UNAUTHENTICATED, 401, 10000),
        "get_bad_token": error(UNAUTHENTICATED, 401, 10000),
        "get_missing": error(NOT_FOUND, 404, 20002),
        "get_foreign": error(NOT_FOUND, 404, 20002),  # another account's connector is not found under yours
        "update_missing": error(NOT_FOUND, 404, 20002),
        "edit_missing": error(NOT_FOUND, 404, 20002),
        "delete_missing": error(NOT_FOUND, 404, 20002),
        "list_bad_type": error(BAD_REQUEST, 400, 20010),
        "edit_bad_timezone": error(BAD_REQUEST, 400, 20012),
        "update_bad_hour": error(BAD_REQUEST, 400, 20012),
        "edit_device": error(BAD_REQUEST, 400, 20012),
        **{f"create {name}": error(BAD_REQUEST, 400, 20012) for name in BAD_CREATES},
    }
    assert {name: out[name] for name in want} == want
    connector(out["get_unchanged"], DEFAULTS, None)  # none of the refused writes changed anything


# --------------------------------------------------------------------------- events


@pytest.fixture(scope="module")
def history(world: World) -> dict:
    connector_id = world.new_connector()
    before = int(time.time())
    response = post_events(world, list(reversed(IN_WINDOW + OUTSIDE)), connector=connector_id)
    assert response.status_code == 200, response.text
    return {"connector": connector_id, "received": (before, int(time.time()) + 1)}


def pages_of(outcome: dict, events: list[dict], size: int, received: tuple[int, int], more: bool = False) -> list[dict]:
    """The exact pages expected when walking `events` `size` at a time; cursors and `a` checked, then copied.

    `more`: the last page given is not the last there is (so it has a cursor too).
    """
    assert "result" in outcome, outcome
    got = outcome["result"]
    chunks = [events[i : i + size] for i in range(0, len(events), size)] or [[]]
    assert len(got) == len(chunks), [page.get("count") for page in got]
    want = []
    for number, (page, chunk) in enumerate(zip(got, chunks, strict=False)):
        items = []
        for item, event in zip(page["items"], chunk, strict=False):
            assert isinstance(item.get("a"), int) and received[0] <= item["a"] <= received[1], item
            items.append({"a": item["a"], "k": event["e"]["k"], "n": event["n"], "t": event["t"]})
        expected = {"count": len(chunk), "items": items}
        if more or number < len(chunks) - 1:  # a cursor only when more follow
            assert isinstance(page.get("cursor"), str) and page["cursor"], page
            expected["cursor"] = page["cursor"]
        want.append(expected)
    assert got == want
    return want


def test_list_events(node_sdk: str, world: World, history: dict):
    cid = history["connector"]
    q = {"account_id": world.account, "from": T0, "to": T0 + 9}
    r = world.read_token
    list_ = f"{EVENTS}.list"
    out = run(
        node_sdk,
        world,
        [
            step("walk_7", list_, cid, {**q, "limit": 7}, token=r, mode="walk"),
            step("default_limit", list_, cid, q, token=r),
            step("limit_1000", list_, cid, {**q, "limit": 1000}, token=r, mode="walk"),
            step("limit_exact", list_, cid, {**q, "limit": 250}, token=r, mode="walk"),
            step("limit_249", list_, cid, {**q, "limit": 249}, token=r, mode="walk"),
            step("wide", list_, cid, {**q, "from": T0 - 1, "to": T0 + 10, "limit": 1000}, token=r, mode="walk"),
            step("one_second", list_, cid, {**q, "from": T0 + 4, "to": T0 + 4}, token=r, mode="walk"),
            step("empty", list_, cid, {**q, "from": T0 + 11, "to": T0 + 99}, token=r),
            step("kind_walk", list_, cid, {**q, "k": "HaTransition", "limit": 6}, token=r, mode="walk"),
            step("write_token_reads", list_, cid, {**q, "limit": 1000}, token=world.write_token, mode="walk"),
            step("from_after_to", list_, cid, {**q, "from": T0 + 1, "to": T0}, token=r),
            step("limit_0", list_, cid, {**q, "limit": 0}, token=r),
            step("limit_1001", list_, cid, {**q, "limit": 1001}, token=r),
            step("fractional_from", list_, cid, {**q, "from": T0 + 0.5}, token=r),
            step("unknown_kind", list_, cid, {**q, "k": "NoSuchKind"}, token=r),
            step("bad_cursor", list_, cid, {**q, "cursor": "not-a-cursor"}, token=r),
            step("foreign_cursor", list_, cid, {**q, "k": "Init", "cursor": ref("walk_7.result.0.cursor")}, token=r),
            step("unknown_connector", list_, secrets.token_hex(16), q, token=r),
            step("other_account", list_, cid, q, token=world.other_write_token),
        ],
    )
    received = history["received"]
    pages_of(out["walk_7"], IN_WINDOW, 7, received)  # every event once, (t, n) ascending, from/to inclusive
    assert len(out["walk_7"]["result"]) == 36
    pages_of({"result": [out["default_limit"]["result"]]}, IN_WINDOW[:100], 100, received, more=True)  # limit 100
    pages_of(out["limit_1000"], IN_WINDOW, 1000, received)
    pages_of(out["limit_exact"], IN_WINDOW, 250, received)  # exactly the rest: no cursor
    pages_of(out["limit_249"], IN_WINDOW, 249, received)
    wide = sorted(IN_WINDOW + OUTSIDE[:3], key=lambda e: (e["t"], e["n"]))
    pages_of(out["wide"], wide, 1000, received)
    pages_of(out["one_second"], [e for e in IN_WINDOW if e["t"] == T0 + 4], 100, received)
    assert out["empty"] == {"result": {"count": 0, "items": []}}
    pages_of(out["kind_walk"], HA_TRANSITIONS, 6, received)
    pages_of(out["write_token_reads"], IN_WINDOW, 1000, received)
    refused = {
        "from_after_to": error(BAD_REQUEST, 400, 20010),
        "limit_0": error(BAD_REQUEST, 400, 20010),
        "limit_1001": error(BAD_REQUEST, 400, 20010),
        "fractional_from": error(BAD_REQUEST, 400, 20010),
        "unknown_kind": error(BAD_REQUEST, 400, 20010),
        "bad_cursor": error(BAD_REQUEST, 400, 20011),
        "foreign_cursor": error(BAD_REQUEST, 400, 20011),
        "unknown_connector": error(NOT_FOUND, 404, 20002),
        "other_account": error(DENIED, 403, 10000),
    }
    assert {name: out[name] for name in refused} == refused


def test_latest_and_get_event(node_sdk: str, world: World, history: dict):
    small, empty = world.new_connector(), world.new_connector()
    post_events(world, list(reversed(SMALL)), connector=small).raise_for_status()
    at = {"account_id": world.account}
    latest = f"{EVENTS}.latest.list"
    event = IN_WINDOW[37]
    get_at = {**at, "connector_id": history["connector"]}
    out = run(
        node_sdk,
        world,
        [
            step("latest_history", latest, history["connector"], at, token=world.read_token),
            step("latest_small", latest, small, at, token=world.read_token),
            step("latest_empty", latest, empty, at, token=world.read_token),
            step("latest_unknown", latest, secrets.token_hex(16), at, token=world.read_token),
            step("latest_other_account", latest, small, at, token=world.other_write_token),
            step("get", f"{EVENTS}.get", event["n"], {**get_at, "event_t": event["t"]}, token=world.read_token),
            step("get_missing", f"{EVENTS}.get", 25, {**get_at, "event_t": T0}, token=world.read_token),
        ],
    )
    assert out["latest_history"] == {"result": {"count": 100, "items": NEWEST_100}}  # newest first, e as sent
    assert out["latest_small"] == {"result": {"count": 3, "items": SMALL}}  # `v` only when sent
    assert out["latest_empty"] == {"result": {"count": 0, "items": []}}
    assert out["latest_unknown"] == error(NOT_FOUND, 404, 20002)
    assert out["latest_other_account"] == error(DENIED, 403, 10000)
    assert out["get"] == {"result": event}
    assert out["get_missing"] == error(NOT_FOUND, 404, 20001)


# --------------------------------------------------------------------------- token verify


def test_verify_tokens(node_sdk: str, world: World):
    expiring = world.new_token("Magic WAN Read", expires_on="2099-01-02T03:04:05Z")
    expired = world.new_token("Magic WAN Read", expires_on="2001-01-01T00:00:00Z")
    revoked = world.new_token("Magic WAN Write")
    verify_url = f"{world.server.base_url}/user/tokens/verify"
    assert httpx.get(verify_url, headers=bearer(revoked["value"])).status_code == 200
    cli("tokens", "revoke", revoked["id"], db=world.db)
    deadline = time.monotonic() + 3  # credential lookups are cached for at most 1 s
    while httpx.get(verify_url, headers=bearer(revoked["value"])).status_code == 200:
        assert time.monotonic() < deadline, "a revoked token still verifies after 3 s"
        time.sleep(0.1)
    verify = "user.tokens.verify"
    out = run(
        node_sdk,
        world,
        [
            step("read", verify, token=world.read_token),
            step("write", verify, token=world.write_token),
            step("expiring", verify, token=expiring["value"]),
            step("unknown", verify, token=secrets.token_urlsafe(30)),
            step("malformed", verify, token="not-a-token"),
            step("expired", verify, token=expired["value"]),
            step("revoked", verify, token=revoked["value"]),
            step(
                "revoked_list",
                f"{CONNECTORS}.list",
                {"account_id": world.account},
                token=revoked["value"],
                mode="iterate",
            ),
            step("global_key", verify, email=world.email, key=world.api_key),
        ],
    )
    assert out == {
        "read": {"result": {"id": world.token_ids["read"], "status": "active"}},
        "write": {"result": {"id": world.token_ids["write"], "status": "active"}},
        "expiring": {"result": {"id": expiring["id"], "status": "active", "expires_on": "2099-01-02T03:04:05Z"}},
        "unknown": error(UNAUTHENTICATED, 401, 1000),
        "malformed": error(UNAUTHENTICATED, 401, 1000),
        "expired": error(UNAUTHENTICATED, 401, 1000),
        "revoked": error(UNAUTHENTICATED, 401, 1000),
        "revoked_list": error(UNAUTHENTICATED, 401, 10000),
        "global_key": error(BAD_REQUEST, 400, 1001),  # no Authorization header to verify
    }
