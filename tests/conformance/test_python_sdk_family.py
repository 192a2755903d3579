"""The official Python SDK (PyPI cloudflare==5.9.0) over the whole API family, unchanged.

Every test runs twice: with the sync `Cloudflare` client and with `AsyncCloudflare`
(the `sdk` fixture), both with max_retries=0. A call is written once, as a function
of the client: `api(lambda c: c.magic_transit.connectors.get(...))`; list endpoints
come back as the items the SDK's page object yields (`for` / `async for`).

Covers connectors.create/list/get/update/edit/delete, events.list (cursor walk,
limit, k), events.get, events.latest.list and user.tokens.verify; Get Event in
depth is test_python_sdk.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Callable
from typing import Any

import cloudflare
import cloudflare.pagination
import cloudflare.types.magic_transit
import cloudflare.types.magic_transit.connectors
import cloudflare.types.magic_transit.connectors.events
import cloudflare.types.user
import httpx
import pytest
from cloudflare import AsyncCloudflare, Cloudflare
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
    VALID_TOKEN_MESSAGE,
    near_now,
)
from helpers import World, bearer, cli, post_events
from test_connectors import account_of_connectors, whole_list

# --------------------------------------------------------------------------- the two clients


class Api:
    """One SDK client configuration, sync or async; `api(call)` runs `call(client)` to completion."""

    def __init__(self, world: World, mode: str, **credentials: str):
        self.mode = mode
        self.options = {"base_url": world.server.base_url, "max_retries": 0, "timeout": 20, **credentials}

    def __call__(self, call: Callable[[Any], Any]) -> Any:
        if self.mode == "sync":
            with Cloudflare(**self.options) as client:
                result = call(client)
                if isinstance(result, cloudflare.pagination.SyncSinglePage):
                    return list(result)  # the page's own iteration, as a user would
                return result
        return asyncio.run(self._run_async(call))

    async def _run_async(self, call: Callable[[Any], Any]) -> Any:
        async with AsyncCloudflare(**self.options) as client:
            result = call(client)
            if hasattr(result, "__aiter__"):  # AsyncPaginator: the list endpoints
                return [item async for item in result]
            return await result


@pytest.fixture(params=["sync", "async"])
def sdk(request: pytest.FixtureRequest, world: World) -> Callable[..., Api]:
    """sdk() -> Api with the write token; sdk(token) or sdk(email=, key=) for other credentials."""

    def make(token: str | None = None, *, email: str | None = None, key: str | None = None) -> Api:
        if email or key:
            return Api(world, request.param, api_email=email, api_key=key)
        return Api(world, request.param, api_token=token or world.write_token)

    return make


def fails(api: Api, call: Callable[[Any], Any], error: type[cloudflare.APIStatusError], status: int, code: int):
    with pytest.raises(error) as raised:
        api(call)
    assert raised.value.status_code == status
    body = raised.value.response.json()
    assert body["success"] is False and body["result"] is None
    assert [item["code"] for item in body["errors"]] == [code], body
    return raised.value


def settings_of(connector: Any) -> dict:
    return {name: getattr(connector, name) for name in DEFAULTS}


def fresh_account(world: World, *permissions: str) -> tuple[str, str]:
    """A new account of its own (so listing it is exact) and a token on it."""
    account = cli("accounts", "create", db=world.db)["id"]
    token = world.new_token(*(permissions or ("Magic WAN Write",)), account=account)["value"]
    return account, token


def connectors(c: Any) -> Any:
    return c.magic_transit.connectors


# --------------------------------------------------------------------------- connectors


def test_create_with_device_id_has_the_defaults(world: World, sdk):
    api = sdk()
    device_id = "dev-" + secrets.token_hex(6)
    made = api(lambda c: connectors(c).create(account_id=world.account, device={"id": device_id}))
    assert isinstance(made, cloudflare.types.magic_transit.ConnectorCreateResponse)
    assert HEX_ID.match(made.id)
    assert settings_of(made) == DEFAULTS
    assert made.device is not None and made.device.id == device_id
    assert made.device.type is None and made.device.serial_number is None  # device.id: no type
    assert made.license_key is None and made.last_heartbeat is None and made.last_seen_version is None
    assert near_now(made.last_updated)

    got = sdk(world.read_token)(lambda c: connectors(c).get(made.id, account_id=world.account))
    assert isinstance(got, cloudflare.types.magic_transit.ConnectorGetResponse)
    assert got.to_dict() == made.to_dict()


def test_create_with_serial_number_echoes_every_setting(world: World, sdk):
    api = sdk()
    made = api(
        lambda c: connectors(c).create(account_id=world.account, device={"serial_number": "SN-0042"}, **SETTINGS)
    )
    assert settings_of(made) == SETTINGS
    assert made.device.type == "MANAGED" and made.device.serial_number == "SN-0042"
    assert HEX_ID.match(made.device.id)
    assert made.license_key is None
    got = sdk(world.read_token)(lambda c: connectors(c).get(made.id, account_id=world.account))
    assert got.to_dict() == made.to_dict()


def test_license_key_is_shown_once_per_provisioning(world: World, sdk):
    api = sdk()
    made = api(lambda c: connectors(c).create(account_id=world.account, device={"provision_license": True}))
    assert made.device.type == "LICENSED" and made.device.serial_number is None
    assert made.license_key and LICENSE_KEY.match(made.license_key)
    first = made.license_key

    got = api(lambda c: connectors(c).get(made.id, account_id=world.account))
    assert got.license_key is None and "license_key" not in got.to_dict()
    listed = {item.id: item for item in api(lambda c: connectors(c).list(account_id=world.account))}
    assert listed[made.id].license_key is None

    patched = api(lambda c: connectors(c).edit(made.id, account_id=world.account, provision_license=True))
    assert patched.license_key and LICENSE_KEY.match(patched.license_key) and patched.license_key != first
    put = api(lambda c: connectors(c).update(made.id, account_id=world.account, provision_license=True))
    assert put.license_key and put.license_key not in (first, patched.license_key)
    assert put.device.to_dict() == made.device.to_dict()  # re-provisioning keeps the device

    plain = api(lambda c: connectors(c).edit(made.id, account_id=world.account, notes="no new key"))
    assert plain.license_key is None
    assert api(lambda c: connectors(c).get(made.id, account_id=world.account)).license_key is None


def test_update_resets_what_it_does_not_give(world: World, sdk):
    api = sdk()
    made = api(lambda c: connectors(c).create(account_id=world.account, device={"serial_number": "SN-PUT"}, **SETTINGS))
    put = api(lambda c: connectors(c).update(made.id, account_id=world.account, notes="only notes", activated=True))
    assert isinstance(put, cloudflare.types.magic_transit.ConnectorUpdateResponse)
    assert settings_of(put) == {**DEFAULTS, "notes": "only notes", "activated": True}
    assert put.id == made.id and put.device.to_dict() == made.device.to_dict()
    assert put.license_key is None and near_now(put.last_updated)

    full = api(lambda c: connectors(c).update(made.id, account_id=world.account, **SETTINGS))
    assert settings_of(full) == SETTINGS
    empty = api(lambda c: connectors(c).update(made.id, account_id=world.account))
    assert settings_of(empty) == DEFAULTS
    got = api(lambda c: connectors(c).get(made.id, account_id=world.account))
    assert settings_of(got) == DEFAULTS


def test_edit_changes_only_what_it_gives(world: World, sdk):
    api = sdk()
    made = api(
        lambda c: connectors(c).create(account_id=world.account, device={"serial_number": "SN-PATCH"}, **SETTINGS)
    )
    patched = api(
        lambda c: connectors(c).edit(
            made.id, account_id=world.account, notes="patched", interrupt_window_hour_of_day=3, timezone="Asia/Tokyo"
        )
    )
    assert isinstance(patched, cloudflare.types.magic_transit.ConnectorEditResponse)
    changed = {"notes": "patched", "interrupt_window_hour_of_day": 3.0, "timezone": "Asia/Tokyo"}
    assert settings_of(patched) == {**SETTINGS, **changed}
    assert patched.device.to_dict() == made.device.to_dict()

    # Lists can be emptied, and `activated` turned off, without touching the rest.
    emptied = api(
        lambda c: connectors(c).edit(
            made.id, account_id=world.account, interrupt_window_embargo_dates=[], activated=False
        )
    )
    want = {**settings_of(patched), "interrupt_window_embargo_dates": [], "activated": False}
    assert settings_of(emptied) == want
    nothing = api(lambda c: connectors(c).edit(made.id, account_id=world.account))
    assert settings_of(nothing) == want
    assert settings_of(api(lambda c: connectors(c).get(made.id, account_id=world.account))) == want


def test_list_is_every_connector_of_the_account_and_filters_by_device_type(world: World, sdk):
    account, token = fresh_account(world, "Magic WAN Write")
    api = sdk(token)
    assert api(lambda c: connectors(c).list(account_id=account)) == []
    managed = api(lambda c: connectors(c).create(account_id=account, device={"serial_number": "SN-L1"}, notes="m"))
    licensed = api(lambda c: connectors(c).create(account_id=account, device={"provision_license": True}))
    by_id = api(lambda c: connectors(c).create(account_id=account, device={"id": "plain-device"}))
    operator_made = world.new_connector(account=account)  # no device at all

    every = api(lambda c: connectors(c).list(account_id=account))
    assert all(isinstance(item, cloudflare.types.magic_transit.ConnectorListResponse) for item in every)
    listed = {item.id: item for item in every}
    assert set(listed) == {managed.id, licensed.id, by_id.id, operator_made}
    assert len(every) == 4
    assert listed[managed.id].to_dict() == managed.to_dict()
    assert listed[by_id.id].to_dict() == by_id.to_dict()
    assert listed[licensed.id].to_dict() == {k: v for k, v in licensed.to_dict().items() if k != "license_key"}
    assert listed[operator_made].device is None and settings_of(listed[operator_made]) == DEFAULTS

    only_managed = api(lambda c: connectors(c).list(account_id=account, device_type="MANAGED"))
    assert [item.id for item in only_managed] == [managed.id]
    only_licensed = api(lambda c: connectors(c).list(account_id=account, device_type="LICENSED"))
    assert [item.id for item in only_licensed] == [licensed.id]

    reader = sdk(world.new_token("Magic WAN Read", account=account)["value"])
    assert {item.id for item in reader(lambda c: connectors(c).list(account_id=account))} == set(listed)


def test_a_large_list_sent_in_parts_is_every_connector_as_the_api_sends_it(world: World, sdk):
    account, read = account_of_connectors(world, 1100)  # ~1 MiB: sent in parts as it is read
    sent = whole_list(world, account, read)
    assert sent.headers.get("transfer-encoding") == "chunked"
    for device_type in (None, "MANAGED"):
        query = {"device_type": device_type} if device_type else {}
        listed = sdk(read)(lambda c, query=query: connectors(c).list(account_id=account, **query))
        expected = whole_list(world, account, read, **query).json()["result"]
        assert len(listed) == len(expected) > 300
        assert [item.to_dict() for item in listed] == expected


def test_delete_returns_the_connector_and_removes_it_with_its_events(world: World, sdk):
    api = sdk()
    made = api(
        lambda c: connectors(c).create(account_id=world.account, device={"serial_number": "SN-DEL"}, notes="bye")
    )
    post_events(world, [{"t": T0, "n": 1, "e": {"k": "Init"}, "v": "1.0"}], connector=made.id).raise_for_status()
    before = api(lambda c: connectors(c).get(made.id, account_id=world.account))

    deleted = api(lambda c: connectors(c).delete(made.id, account_id=world.account))
    assert isinstance(deleted, cloudflare.types.magic_transit.ConnectorDeleteResponse)
    assert deleted.to_dict() == before.to_dict()
    assert deleted.last_seen_version == "1.0"

    fails(api, lambda c: connectors(c).get(made.id, account_id=world.account), cloudflare.NotFoundError, 404, 20002)
    fails(api, lambda c: connectors(c).delete(made.id, account_id=world.account), cloudflare.NotFoundError, 404, 20002)
    fails(
        api,
        lambda c: connectors(c).events.get(1, account_id=world.account, connector_id=made.id, event_t=T0),
        cloudflare.NotFoundError,
        404,
        20002,
    )
    fails(
        api,
        lambda c: connectors(c).events.list(made.id, account_id=world.account, from_=0, to=2 * T0),
        cloudflare.NotFoundError,
        404,
        20002,
    )
    assert made.id not in {item.id for item in api(lambda c: connectors(c).list(account_id=world.account))}


def test_heartbeat_and_version_follow_ingestion(world: World, sdk):
    api = sdk()
    made = api(lambda c: connectors(c).create(account_id=world.account, device={"serial_number": "SN-HB"}))
    assert made.last_heartbeat is None and made.last_seen_version is None

    post_events(
        world,
        [
            {"t": T0 + 10, "n": 0, "e": {"k": "Init"}, "v": "2.0.0"},
            {"t": T0 + 5, "n": 9, "e": {"k": "Leave"}, "v": "1.9.0"},
        ],
        connector=made.id,
    ).raise_for_status()
    got = api(lambda c: connectors(c).get(made.id, account_id=world.account))
    assert near_now(got.last_heartbeat) and got.last_seen_version == "2.0.0"
    assert settings_of(got) == DEFAULTS  # ingestion touches no setting

    # An older event with another version, and a newer one without any: the version stays.
    post_events(
        world,
        [
            {"t": T0 + 1, "n": 0, "e": {"k": "Reconcile"}, "v": "0.1.0"},
            {"t": T0 + 20, "n": 0, "e": {"k": "Reconcile"}},
        ],
        connector=made.id,
    ).raise_for_status()
    assert api(lambda c: connectors(c).get(made.id, account_id=world.account)).last_seen_version == "2.0.0"
    newer = {"t": T0 + 30, "n": 0, "e": {"k": "HaInit"}, "v": "2.1.0"}
    post_events(world, [newer], connector=made.id).raise_for_status()
    latest = api(lambda c: connectors(c).get(made.id, account_id=world.account))
    assert latest.last_seen_version == "2.1.0" and near_now(latest.last_heartbeat)
    managed = api(lambda c: connectors(c).list(account_id=world.account, device_type="MANAGED"))
    listed = {item.id: item for item in managed}
    assert listed[made.id].last_seen_version == "2.1.0" and listed[made.id].last_heartbeat == latest.last_heartbeat


def test_global_key_and_token_kinds(world: World, sdk):
    by_key = sdk(email=world.email, key=world.api_key)
    made = by_key(lambda c: connectors(c).create(account_id=world.account, device={"id": "by-key"}, notes="k"))
    assert made.notes == "k"
    assert by_key(lambda c: connectors(c).edit(made.id, account_id=world.account, notes="k2")).notes == "k2"
    reader = sdk(world.read_token)
    assert reader(lambda c: connectors(c).get(made.id, account_id=world.account)).notes == "k2"
    assert by_key(lambda c: connectors(c).delete(made.id, account_id=world.account)).id == made.id


@pytest.mark.parametrize(
    "method",
    ["create", "update", "edit", "delete"],
)
def test_read_token_cannot_write(world: World, sdk, method):
    connector = world.new_connector()
    calls = {
        "create": lambda c: connectors(c).create(account_id=world.account, device={"serial_number": "SN-RO"}),
        "update": lambda c: connectors(c).update(connector, account_id=world.account, notes="x"),
        "edit": lambda c: connectors(c).edit(connector, account_id=world.account, notes="x"),
        "delete": lambda c: connectors(c).delete(connector, account_id=world.account),
    }
    fails(sdk(world.read_token), calls[method], cloudflare.PermissionDeniedError, 403, 10000)
    assert sdk(world.read_token)(lambda c: connectors(c).get(connector, account_id=world.account)).notes == ""


def test_other_accounts_and_unknown_tokens(world: World, sdk):
    connector = world.new_connector()
    other = sdk(world.other_write_token)
    for call in [
        lambda c: connectors(c).get(connector, account_id=world.account),
        lambda c: connectors(c).list(account_id=world.account),
        lambda c: connectors(c).create(account_id=world.account, device={"id": "x"}),
        lambda c: connectors(c).events.list(connector, account_id=world.account, from_=0, to=1),
        lambda c: connectors(c).events.latest.list(connector, account_id=world.account),
    ]:
        fails(other, call, cloudflare.PermissionDeniedError, 403, 10000)
    # A connector of another account is simply not found under yours.
    fails(
        sdk(),
        lambda c: connectors(c).get(world.other_connector, account_id=world.account),
        cloudflare.NotFoundError,
        404,
        20002,
    )
    unknown = sdk(secrets.token_urlsafe(30))
    fails(unknown, lambda c: connectors(c).list(account_id=world.account), cloudflare.AuthenticationError, 401, 10000)


def test_unknown_connector_is_not_found(world: World, sdk):
    api = sdk()
    missing = secrets.token_hex(16)
    for call in [
        lambda c: connectors(c).get(missing, account_id=world.account),
        lambda c: connectors(c).update(missing, account_id=world.account, notes="x"),
        lambda c: connectors(c).edit(missing, account_id=world.account, notes="x"),
        lambda c: connectors(c).delete(missing, account_id=world.account),
        lambda c: connectors(c).events.list(missing, account_id=world.account, from_=0, to=1),
        lambda c: connectors(c).events.latest.list(missing, account_id=world.account),
        lambda c: connectors(c).events.get(0, account_id=world.account, connector_id=missing, event_t=T0),
    ]:
        fails(api, call, cloudflare.NotFoundError, 404, 20002)


@pytest.mark.parametrize("body", BAD_CREATES.values(), ids=BAD_CREATES.keys())
def test_invalid_create_is_bad_request(world: World, sdk, body):
    def create(c: Any) -> Any:
        return connectors(c).create(account_id=world.account, **body)

    fails(sdk(), create, cloudflare.BadRequestError, 400, 20012)


def test_invalid_update_and_edit_are_bad_requests(world: World, sdk):
    api = sdk()
    connector = api(lambda c: connectors(c).create(account_id=world.account, device={"id": "v"}, notes="keep")).id
    for call in [
        lambda c: connectors(c).update(connector, account_id=world.account, interrupt_window_hour_of_day=24),
        lambda c: connectors(c).edit(connector, account_id=world.account, timezone="Nowhere/Special"),
        lambda c: connectors(c).edit(connector, account_id=world.account, extra_body={"device": {"id": "z"}}),
        lambda c: connectors(c).update(connector, account_id=world.account, extra_body={"colour": "red"}),
        lambda c: connectors(c).create(account_id=world.account, device={"id": "a"}, extra_body={"colour": "red"}),
    ]:
        fails(api, call, cloudflare.BadRequestError, 400, 20012)
    fails(
        api,
        lambda c: connectors(c).list(account_id=world.account, device_type="BOGUS"),  # type: ignore[arg-type]
        cloudflare.BadRequestError,
        400,
        20010,
    )
    assert api(lambda c: connectors(c).get(connector, account_id=world.account)).notes == "keep"  # nothing changed


# --------------------------------------------------------------------------- events


@pytest.fixture(scope="module")
def history(world: World) -> dict:
    """A connector holding IN_WINDOW (250 events) and a few events just outside, sent out of order."""
    connector = world.new_connector()
    sent = list(reversed(IN_WINDOW + OUTSIDE))
    before = int(time.time())
    response = post_events(world, sent, connector=connector)
    assert response.status_code == 200, response.text
    return {"connector": connector, "received": (before, int(time.time()) + 1)}


def walk(api: Api, connector: str, account: str, **query: Any) -> list:
    """Every page of events.list, following `cursor` until it is absent."""
    pages = [api(lambda c: connectors(c).events.list(connector, account_id=account, **query))]
    while pages[-1].cursor is not None:
        assert len(pages) < 1000, "the cursor never ends"
        cursor = pages[-1].cursor
        pages.append(
            api(
                lambda c, cursor=cursor: connectors(c).events.list(
                    connector, account_id=account, cursor=cursor, **query
                )
            )
        )
    return pages


def keys(items: list) -> list[tuple]:
    return [(item.t, item.n) for item in items]


def test_list_walks_every_event_exactly_once_in_order(world: World, history: dict, sdk):
    api = sdk(world.read_token)
    pages = walk(api, history["connector"], world.account, from_=T0, to=T0 + 9, limit=7)
    assert all(isinstance(page, cloudflare.types.magic_transit.connectors.EventListResponse) for page in pages)
    assert len(pages) == 36  # ceil(250 / 7)
    assert [page.count for page in pages] == [7] * 35 + [5]
    assert all(page.count == len(page.items) for page in pages)
    assert all(page.cursor for page in pages[:-1]) and pages[-1].cursor is None
    assert "cursor" not in pages[-1].to_dict()
    items = [item for page in pages for item in page.items]
    assert keys(items) == [(e["t"], e["n"]) for e in IN_WINDOW]  # each once, (t, n) ascending, from/to inclusive
    first, last = history["received"]
    for item, event in zip(items, IN_WINDOW, strict=False):
        assert item.k == event["e"]["k"]
        assert first <= item.a <= last
        assert set(item.to_dict()) == {"a", "k", "n", "t"}


def test_list_limits(world: World, history: dict, sdk):
    api = sdk(world.read_token)

    def page(from_: float = T0, to: float = T0 + 9, **query: Any) -> Any:
        return api(
            lambda c: connectors(c).events.list(
                history["connector"], account_id=world.account, from_=from_, to=to, **query
            )
        )

    default = page()
    assert default.count == 100 and keys(default.items) == [(e["t"], e["n"]) for e in IN_WINDOW[:100]]
    assert default.cursor
    everything = page(limit=1000)
    assert everything.count == 250 and everything.cursor is None
    exact = page(limit=250)
    assert exact.count == 250 and exact.cursor is None  # no cursor when nothing follows
    one_less = page(limit=249)
    assert one_less.count == 249 and one_less.cursor
    # The SDK types from/to/limit as floats: 1700000000.0 on the wire means the same.
    floats = page(float(T0), float(T0 + 9), limit=1000.0)
    assert keys(floats.items) == keys(everything.items)
    # Widening the window takes in the events just outside, inclusively.
    wide = page(T0 - 1, T0 + 10, limit=1000)
    assert wide.count == 253 and keys(wide.items)[:2] == [(T0 - 1, 0), (T0 - 1, 24)]
    assert keys(wide.items)[-1] == (T0 + 10, 0)
    one_second = page(T0 + 4, T0 + 4)
    assert keys(one_second.items) == [(T0 + 4, n) for n in range(25)]
    empty = page(T0 + 11, T0 + 99)
    assert empty.count == 0 and empty.items == [] and empty.cursor is None


def test_list_filters_by_kind(world: World, history: dict, sdk):
    api = sdk(world.read_token)
    pages = walk(api, history["connector"], world.account, from_=T0, to=T0 + 9, k="HaTransition", limit=6)
    items = [item for page in pages for item in page.items]
    want = [(e["t"], e["n"]) for e in HA_TRANSITIONS]
    assert len(want) == 50 and keys(items) == want
    assert {item.k for item in items} == {"HaTransition"}
    assert len(pages) == 9 and pages[-1].count == 2


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"from_": T0 + 1, "to": T0}, 20010),
        ({"from_": T0, "to": T0 + 1, "limit": 0}, 20010),
        ({"from_": T0, "to": T0 + 1, "limit": 1001}, 20010),
        ({"from_": T0 + 0.5, "to": T0 + 1}, 20010),
        ({"from_": -1, "to": T0}, 20010),
        ({"from_": T0, "to": T0 + 1, "k": "NoSuchKind"}, 20010),
        ({"from_": T0, "to": T0 + 1, "cursor": "not-a-cursor"}, 20011),
    ],
    ids=["from after to", "limit 0", "limit 1001", "fractional from", "negative from", "unknown kind", "bad cursor"],
)
def test_list_rejects_bad_queries(world: World, history: dict, sdk, query, code):
    fails(
        sdk(world.read_token),
        lambda c: connectors(c).events.list(history["connector"], account_id=world.account, **query),
        cloudflare.BadRequestError,
        400,
        code,
    )


def test_a_cursor_belongs_to_its_query(world: World, history: dict, sdk):
    api = sdk(world.read_token)
    connector = history["connector"]
    page = api(lambda c: connectors(c).events.list(connector, account_id=world.account, from_=T0, to=T0 + 9, limit=5))
    assert page.cursor
    for query in [{"from_": T0, "to": T0 + 9, "k": "Init"}, {"from_": T0, "to": T0 + 8}]:
        fails(
            api,
            lambda c, page=page, query=query: connectors(c).events.list(
                connector, account_id=world.account, cursor=page.cursor, **query
            ),
            cloudflare.BadRequestError,
            400,
            20011,
        )
    other = world.new_connector()
    fails(
        api,
        lambda c: connectors(c).events.list(other, account_id=world.account, from_=T0, to=T0 + 9, cursor=page.cursor),
        cloudflare.BadRequestError,
        400,
        20011,
    )


def test_latest_is_the_newest_hundred_newest_first(world: World, history: dict, sdk):
    api = sdk(world.read_token)
    latest = api(lambda c: connectors(c).events.latest.list(history["connector"], account_id=world.account))
    assert isinstance(latest, cloudflare.types.magic_transit.connectors.events.LatestListResponse)
    assert latest.count == 100
    assert [item.to_dict() for item in latest.items] == NEWEST_100  # e exactly as sent, v only when sent


def test_latest_of_a_small_and_an_empty_connector(world: World, sdk):
    api = sdk(world.read_token)
    connector = world.new_connector()
    empty = api(lambda c: connectors(c).events.latest.list(connector, account_id=world.account))
    assert empty.count == 0 and empty.items == []
    post_events(world, list(reversed(SMALL)), connector=connector).raise_for_status()
    latest = api(lambda c: connectors(c).events.latest.list(connector, account_id=world.account))
    assert latest.count == 3 and [item.to_dict() for item in latest.items] == SMALL
    assert latest.items[0].e.k == "HaError" and latest.items[1].v is None


def test_get_event(world: World, history: dict, sdk):
    api = sdk(world.read_token)
    event = IN_WINDOW[37]
    where = {"account_id": world.account, "connector_id": history["connector"]}
    got = api(lambda c: connectors(c).events.get(event["n"], event_t=event["t"], **where))
    assert isinstance(got, cloudflare.types.magic_transit.connectors.EventGetResponse)
    assert got.to_dict() == event
    fails(
        api,
        lambda c: connectors(c).events.get(25, event_t=T0, **where),
        cloudflare.NotFoundError,
        404,
        20001,
    )


# --------------------------------------------------------------------------- token verify


def verify(c: Any) -> Any:
    return c.user.tokens.verify()


def test_verify_an_active_token(world: World, sdk):
    result = sdk(world.read_token)(verify)
    assert isinstance(result, cloudflare.types.user.TokenVerifyResponse)
    assert result.to_dict() == {"id": world.token_ids["read"], "status": "active"}
    raw = sdk(world.write_token)(lambda c: c.user.tokens.with_raw_response.verify())
    body = raw.http_response.json()
    assert body["messages"] == [VALID_TOKEN_MESSAGE] and body["errors"] == [] and body["success"] is True
    assert body["result"] == {"id": world.token_ids["write"], "status": "active"}


def test_verify_shows_expiry(world: World, sdk):
    token = world.new_token("Magic WAN Read", expires_on="2099-01-02T03:04:05Z")
    result = sdk(token["value"])(verify)
    assert result.id == token["id"] and result.status == "active"
    assert result.expires_on == dt.datetime(2099, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_verify_rejects_unknown_expired_and_malformed_tokens(world: World, sdk):
    expired = world.new_token("Magic WAN Read", expires_on="2001-01-01T00:00:00Z")["value"]
    for token in [secrets.token_urlsafe(30), expired, "not-a-token"]:
        fails(sdk(token), verify, cloudflare.AuthenticationError, 401, 1000)
    # The global key is no token: verify has no Authorization header to check.
    fails(sdk(email=world.email, key=world.api_key), verify, cloudflare.BadRequestError, 400, 1001)


def test_verify_a_revoked_token(world: World, sdk):
    token = world.new_token("Magic WAN Write")
    api = sdk(token["value"])
    assert api(verify).status == "active"
    assert api(lambda c: connectors(c).list(account_id=world.account)) is not None
    cli("tokens", "revoke", token["id"], db=world.db)
    deadline = time.monotonic() + 3  # credential lookups are cached for at most 1 s
    while httpx.get(f"{world.server.base_url}/user/tokens/verify", headers=bearer(token["value"])).status_code == 200:
        assert time.monotonic() < deadline, "a revoked token still verifies after 3 s"
        time.sleep(0.1)
    fails(api, verify, cloudflare.AuthenticationError, 401, 1000)
    fails(api, lambda c: connectors(c).list(account_id=world.account), cloudflare.AuthenticationError, 401, 10000)
