"""Connectors over HTTP: create, list, get, update (PUT), edit (PATCH), delete."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from helpers import World, bearer, global_key, post_events

from conntel import admin, connectors
from conntel.connectors import ConnectorSettings, DeviceSpec
from conntel.store import open_store

T0 = 1_700_000_000
ALL_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
DEFAULTS = {
    "activated": False,
    "interrupt_window_days_of_week": ALL_DAYS,
    "interrupt_window_duration_hours": 3.0,
    "interrupt_window_embargo_dates": [],
    "interrupt_window_hour_of_day": 0.0,
    "notes": "",
    "timezone": "UTC",
}
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def url(world: World, connector: str | None = None, account: str | None = None) -> str:
    base = f"{world.server.base_url}/accounts/{account or world.account}/magic/connectors"
    return f"{base}/{connector}" if connector else base


def call(world: World, method: str, connector: str | None = None, token: str | None = None, **kwargs) -> httpx.Response:
    return httpx.request(method, url(world, connector), headers=bearer(token or world.write_token), **kwargs)


def result_of(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["errors"] == []
    return body["result"]


def error_code(response: httpx.Response) -> int:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return body["errors"][0]["code"]


def test_create_with_defaults_and_each_device_form(world: World):
    by_serial = result_of(call(world, "POST", json={"device": {"serial_number": "CF-123"}}))
    assert {k: by_serial[k] for k in DEFAULTS} == DEFAULTS
    assert re.fullmatch(r"[0-9a-f]{32}", by_serial["id"])
    assert ISO.fullmatch(by_serial["last_updated"])
    assert by_serial["device"]["serial_number"] == "CF-123" and by_serial["device"]["type"] == "MANAGED"
    assert "license_key" not in by_serial and "last_heartbeat" not in by_serial

    by_id = result_of(call(world, "POST", json={"device": {"id": "dev-77"}, "notes": "rack 4"}))
    assert by_id["device"] == {"id": "dev-77"} and by_id["notes"] == "rack 4"

    licensed = result_of(call(world, "POST", json={"device": {"provision_license": True}}))
    assert licensed["device"]["type"] == "LICENSED"
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}", licensed["license_key"])
    # The key is shown once: stored hashed, never returned again.
    assert "license_key" not in result_of(call(world, "GET", licensed["id"]))


def test_create_with_every_setting(world: World):
    settings = {
        "activated": True,
        "interrupt_window_days_of_week": ["Saturday", "Sunday"],
        "interrupt_window_duration_hours": 2.5,
        "interrupt_window_embargo_dates": ["2026-12-24", "2026-12-31"],
        "interrupt_window_hour_of_day": 3,
        "notes": "Lisbon branch",
        "timezone": "Europe/Lisbon",
    }
    created = result_of(call(world, "POST", json={"device": {"serial_number": "S-1"}, **settings}))
    assert {k: created[k] for k in settings} == settings
    assert result_of(call(world, "GET", created["id"])) == created


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, 20012),
        ({"device": {}}, 20012),
        ({"device": {"id": "a", "serial_number": "b"}}, 20012),
        ({"device": {"provision_license": False}}, 20012),
        ({"device": {"id": "a"}, "timezone": "Mars/Olympus"}, 20012),
        ({"device": {"id": "a"}, "interrupt_window_hour_of_day": 24}, 20012),
        ({"device": {"id": "a"}, "interrupt_window_duration_hours": 0}, 20012),
        ({"device": {"id": "a"}, "interrupt_window_days_of_week": ["Funday"]}, 20012),
        ({"device": {"id": "a"}, "interrupt_window_days_of_week": ["Monday", "Monday"]}, 20012),
        ({"device": {"id": "a"}, "interrupt_window_embargo_dates": ["2026-02-30"]}, 20012),
        ({"device": {"id": "a"}, "activated": "yes"}, 20012),
        ({"device": {"id": "a"}, "colour": "blue"}, 20012),
        ({"device": {"id": "a"}, "notes": "nul\u0000"}, 20012),
        ({"device": {"serial_number": "S\u0000"}}, 20012),
        ([], 20012),
    ],
)
def test_invalid_create_is_400(world: World, body, code):
    before = len(result_of(call(world, "GET")))
    response = call(world, "POST", json=body)
    assert response.status_code == 400
    assert error_code(response) == code
    assert len(result_of(call(world, "GET"))) == before  # nothing written


def test_malformed_json_body_is_400(world: World):
    response = call(world, "POST", content=b"{device:")
    assert response.status_code == 400 and error_code(response) == 20004


def test_put_resets_what_it_does_not_name(world: World):
    created = result_of(call(world, "POST", json={"device": {"id": "d"}, "notes": "keep?", "activated": True}))
    updated = result_of(call(world, "PUT", created["id"], json={"timezone": "Asia/Tokyo"}))
    assert updated["timezone"] == "Asia/Tokyo"
    assert updated["notes"] == "" and updated["activated"] is False
    assert updated["device"] == created["device"]


def test_patch_changes_only_what_it_names(world: World):
    created = result_of(call(world, "POST", json={"device": {"id": "d"}, "notes": "keep", "timezone": "Asia/Tokyo"}))
    time.sleep(1.1)
    edited = result_of(call(world, "PATCH", created["id"], json={"activated": True}))
    assert edited["activated"] is True
    assert edited["notes"] == "keep" and edited["timezone"] == "Asia/Tokyo"
    assert edited["last_updated"] > created["last_updated"]
    bad = call(world, "PATCH", created["id"], json={"timezone": "Nowhere"})
    assert bad.status_code == 400 and error_code(bad) == 20012
    assert result_of(call(world, "GET", created["id"]))["timezone"] == "Asia/Tokyo"


def test_provision_license_regenerates_the_key(world: World):
    created = result_of(call(world, "POST", json={"device": {"provision_license": True}}))
    again = result_of(call(world, "PATCH", created["id"], json={"provision_license": True}))
    assert again["license_key"] != created["license_key"]
    assert "license_key" not in result_of(call(world, "PATCH", created["id"], json={"notes": "x"}))


@pytest.mark.parametrize("device", [{"serial_number": "M-1"}, {"id": "plain"}])
def test_provision_license_needs_a_licensed_connector(world: World, device: dict):
    created = result_of(call(world, "POST", json={"device": device, "notes": "before"}))
    for method in ("PATCH", "PUT"):
        response = call(world, method, created["id"], json={"provision_license": True, "notes": "after"})
        assert response.status_code == 400 and error_code(response) == 20012
    assert result_of(call(world, "GET", created["id"]))["notes"] == "before"  # nothing changed


def test_list_and_device_type_filter(world: World):
    managed = result_of(call(world, "POST", json={"device": {"serial_number": "M-9"}}))["id"]
    licensed = result_of(call(world, "POST", json={"device": {"provision_license": True}}))["id"]
    everything = {c["id"] for c in result_of(call(world, "GET"))}
    assert {managed, licensed, world.connector} <= everything
    only_managed = result_of(call(world, "GET", params={"device_type": "MANAGED"}))
    assert managed in {c["id"] for c in only_managed} and licensed not in {c["id"] for c in only_managed}
    assert all(c["device"]["type"] == "MANAGED" for c in only_managed)
    bad = call(world, "GET", params={"device_type": "VIRTUAL"})
    assert bad.status_code == 400 and error_code(bad) == 20010


# -- a large list, sent in parts as it is read (README: Connectors) --
LONG_NOTES = ("Rack 4, shelf 2: été\n" * 200)[:4000]  # multi-byte characters and line breaks
OK_TAIL = b',"success":true,"errors":[],"messages":[]}'


def device_of(index: int) -> DeviceSpec | None:
    return [DeviceSpec(serial_number=f"SN-{index}"), DeviceSpec(provision_license=True), None][index % 3]


def settings_of(index: int, long_every: int) -> ConnectorSettings:
    if index % long_every == 0:
        return ConnectorSettings(notes=LONG_NOTES, interrupt_window_embargo_dates=["2030-01-01", "2030-12-25"])
    return ConnectorSettings(activated=index % 2 == 0)


def account_of_connectors(world: World, count: int, long_every: int = 7) -> tuple[str, str]:
    """A new account with `count` connectors of every device form, one in `long_every` with long notes,
    made on the store directly (quick): its id and a Read token."""

    async def create() -> str:
        store = open_store(str(world.db))
        await store.start()
        try:
            account = (await admin.create_account(store))["id"]
            for index in range(count):
                await connectors.create(store, account, settings_of(index, long_every), device_of(index))
            return account
        finally:
            await store.close()

    account = asyncio.run(create())
    return account, world.new_token("Magic WAN Read", account=account)["value"]


def whole_list(world: World, account: str, token: str, **params: str) -> httpx.Response:
    response = httpx.get(url(world, account=account), headers=bearer(token), params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response


def one_by_one(world: World, account: str, token: str, ids: list[str]) -> bytes:
    """The body `ok` gives the list of `ids`, made of each connector's own Get answer."""
    with httpx.Client(headers=bearer(token), timeout=30) as client:
        results = []
        for connector in ids:
            body = client.get(url(world, connector, account)).content
            assert body.startswith(b'{"result":{') and body.endswith(OK_TAIL), body[:200]
            results.append(body[len(b'{"result":') : -len(OK_TAIL)])
    return b'{"result":[' + b",".join(results) + b"]" + OK_TAIL


@pytest.mark.parametrize(
    ("count", "in_parts"),
    [(0, False), (1, False), (150, False), (200, True), (1100, True)],
    ids=["empty", "one", "small", "one-page", "several-parts"],
)
def test_a_list_of_any_size_is_byte_for_byte_what_ok_gives(world: World, count: int, in_parts: bool):
    account, read = account_of_connectors(world, count)
    response = whole_list(world, account, read)
    ids = [item["id"] for item in response.json()["result"]]
    assert len(ids) == count and ids == sorted(ids)
    assert response.content == one_by_one(world, account, read, ids)
    # A list of PAGE_ROWS (200) connectors or more, or beyond a part (256 KiB), is sent as it is read.
    assert (response.headers.get("transfer-encoding") == "chunked") is in_parts
    if count == 1100:
        assert len(response.content) > 3 * (256 << 10)  # several parts
        managed = whole_list(world, account, read, device_type="MANAGED")
        expected = [item for item in response.json()["result"] if item.get("device", {}).get("type") == "MANAGED"]
        assert managed.json()["result"] == expected and len(expected) == count // 3 + 1
        assert managed.content == one_by_one(world, account, read, [item["id"] for item in expected])


def test_heartbeat_and_last_seen_version_follow_events(world: World):
    connector = result_of(call(world, "POST", json={"device": {"id": "d"}}))["id"]
    before = int(time.time())
    post_events(
        world,
        [{"t": T0 + 10, "n": 0, "e": {"k": "Init"}, "v": "2.0"}, {"t": T0 + 11, "n": 0, "e": {"k": "Reconcile"}}],
        connector=connector,
    ).raise_for_status()
    state = result_of(call(world, "GET", connector))
    assert state["last_seen_version"] == "2.0"
    heartbeat = time.mktime(time.strptime(state["last_heartbeat"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 1 <= heartbeat <= time.time() + 1
    # A late, older event does not roll the version back; a newer one moves it on.
    post_events(world, [{"t": T0, "n": 0, "e": {"k": "Init"}, "v": "1.0"}], connector=connector)
    assert result_of(call(world, "GET", connector))["last_seen_version"] == "2.0"
    post_events(world, [{"t": T0 + 20, "n": 0, "e": {"k": "Init"}, "v": "2.1"}], connector=connector)
    assert result_of(call(world, "GET", connector))["last_seen_version"] == "2.1"


def test_delete_removes_the_connector_and_its_events(world: World):
    connector = result_of(call(world, "POST", json={"device": {"id": "d"}}))["id"]
    post_events(world, [{"t": T0, "n": 0, "e": {"k": "Init"}}], connector=connector).raise_for_status()
    deleted = result_of(call(world, "DELETE", connector))
    assert deleted["id"] == connector
    assert error_code(call(world, "GET", connector)) == 20002
    event = httpx.get(f"{world.events_url(connector)}/{T0}.0", headers=bearer(world.read_token))
    assert event.status_code == 404 and error_code(event) == 20002
    again = call(world, "DELETE", connector)
    assert again.status_code == 404 and error_code(again) == 20002


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_unknown_connector_is_404(world: World, method: str):
    response = call(world, method, "no-such-connector", json={} if method in ("PUT", "PATCH") else None)
    assert response.status_code == 404 and error_code(response) == 20002


def test_permissions(world: World):
    read = world.read_token
    assert call(world, "GET", token=read).status_code == 200
    assert call(world, "GET", world.connector, token=read).status_code == 200
    for method, connector in (
        ("POST", None),
        ("PUT", world.connector),
        ("PATCH", world.connector),
        ("DELETE", world.connector),
    ):
        response = call(world, method, connector, token=read, json={"device": {"id": "x"}} if method == "POST" else {})
        assert response.status_code == 403 and error_code(response) == 10000
    other = httpx.get(url(world, account=world.other_account), headers=bearer(world.write_token))
    assert other.status_code == 403
    by_key = httpx.post(url(world), json={"device": {"id": "k"}}, headers=global_key(world.email, world.api_key))
    assert by_key.status_code == 200
