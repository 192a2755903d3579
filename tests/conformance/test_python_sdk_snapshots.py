"""Snapshots through the official Python SDK (PyPI cloudflare 5.9.0), sync and async, unchanged.

`magic_transit.connectors.snapshots.list` (a plain object: the caller passes `cursor` back),
`.get(snapshot_t)` with an int and with a float, and `.latest.list`; a snapshot with every
field of the SDK's type tree filled and one with only the required fields.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import AsyncCloudflare, Cloudflare
from helpers import World, bearer
from snapshot_data import SNAPSHOTS, T0


def run(world: World, mode: str, call: Callable[[Any], Any], token: str | None = None) -> Any:
    token = token or world.read_token
    options = {"base_url": world.server.base_url, "max_retries": 0, "timeout": 20, "api_token": token}
    if mode == "sync":
        with Cloudflare(**options) as client:
            return call(client)

    async def run_async() -> Any:
        async with AsyncCloudflare(**options) as client:
            return await call(client)

    return asyncio.run(run_async())


@pytest.fixture(scope="module")
def recorded(world: World) -> str:
    connector = world.new_connector()
    url = world.events_url(connector).removesuffix("/events") + "/snapshots"
    response = httpx.post(url, json=SNAPSHOTS, headers=bearer(world.write_token))
    assert response.json()["result"] == {"accepted": len(SNAPSHOTS), "duplicates": 0}
    return connector


def as_sent(model: Any) -> dict[str, Any]:
    """An SDK model as JSON again: the fields the server sent, unknown ones included."""
    return json.loads(model.to_json())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_get_with_int_and_float_times_and_every_field(world: World, recorded: str, mode: str):
    for t in (T0, float(T0)):
        got = run(
            world,
            mode,
            lambda c, t=t: c.magic_transit.connectors.snapshots.get(t, account_id=world.account, connector_id=recorded),
        )
        assert as_sent(got) == SNAPSHOTS[0]
        assert got.netdevs[0].recv_bytes == 1.0 and got.interfaces[0].ip_addresses[0].ip_address == "x"
        assert got.tunnels[0].health_value == 1.0 and got.thermals[0].critical_celcius == 1.0
    minimal = run(
        world,
        mode,
        lambda c: c.magic_transit.connectors.snapshots.get(T0 + 60, account_id=world.account, connector_id=recorded),
    )
    assert as_sent(minimal) == SNAPSHOTS[1] and minimal.netdevs is None


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_list_walks_by_cursor_and_latest_is_newest_first(world: World, recorded: str, mode: str):
    seen, cursor = [], None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        page = run(
            world,
            mode,
            lambda c, extra=extra: c.magic_transit.connectors.snapshots.list(
                recorded, account_id=world.account, from_=T0, to=T0 + 600, limit=4, **extra
            ),
        )
        assert page.count == len(page.items) <= 4
        seen += [(item.t, item.a) for item in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert [t for t, _ in seen] == [T0 + 60 * i for i in range(11)]  # `to` inclusive
    assert all(isinstance(a, float) and a > T0 for _, a in seen)
    latest = run(
        world, mode, lambda c: c.magic_transit.connectors.snapshots.latest.list(recorded, account_id=world.account)
    )
    assert latest.count == len(SNAPSHOTS)
    assert [as_sent(item) for item in latest.items] == SNAPSHOTS[::-1]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_errors_come_out_as_the_sdk_classes(world: World, recorded: str, mode: str):
    cases = [
        (lambda c: c.magic_transit.connectors.snapshots.get(T0 + 1, account_id=world.account, connector_id=recorded),
         cloudflare.NotFoundError, 20031),
        (lambda c: c.magic_transit.connectors.snapshots.list(recorded, account_id=world.account, from_=2, to=1),
         cloudflare.BadRequestError, 20010),
        (lambda c: c.magic_transit.connectors.snapshots.latest.list("nosuchconnector", account_id=world.account),
         cloudflare.NotFoundError, 20002),
    ]  # fmt: skip
    for call, error, code in cases:
        with pytest.raises(error) as raised:
            run(world, mode, call)
        assert raised.value.body["errors"][0]["code"] == code
    with pytest.raises(cloudflare.PermissionDeniedError):
        run(
            world,
            mode,
            lambda c: c.magic_transit.connectors.snapshots.latest.list(recorded, account_id=world.account),
            token=world.other_write_token,
        )
