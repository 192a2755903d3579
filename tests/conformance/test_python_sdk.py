"""The official Python SDK (PyPI cloudflare==5.9.0) against a live conntel, unchanged."""

from __future__ import annotations

import asyncio

import cloudflare
import pytest
from cloudflare import AsyncCloudflare, Cloudflare
from helpers import World, post_events

T0 = 1_700_000_000
UPGRADE = {
    "t": T0,
    "n": 3,
    "e": {"k": "StartUpgrade", "url": "https://dl.example.com/b.tar", "attempt": 2},
    "v": "2026.9.1",
}
NO_VERSION = {"t": T0 + 1, "n": 0, "e": {"k": "RekeyAdvance"}}


@pytest.fixture(scope="module")
def connector(world: World) -> str:
    connector = world.new_connector()
    post_events(world, [UPGRADE, NO_VERSION], connector=connector).raise_for_status()
    return connector


def token_client(world: World, token: str | None = None) -> Cloudflare:
    return Cloudflare(api_token=token or world.read_token, base_url=world.server.base_url, max_retries=0)


def key_client(world: World, email: str | None = None, key: str | None = None) -> Cloudflare:
    return Cloudflare(
        api_email=email or world.email, api_key=key or world.api_key, base_url=world.server.base_url, max_retries=0
    )


@pytest.mark.parametrize(("t", "n"), [(T0, 3), (float(T0), 3.0), (float(T0), 3), (T0, 3.0)])
@pytest.mark.parametrize("client_of", [token_client, key_client], ids=["token", "email+key"])
def test_get_event_sync(world: World, connector: str, client_of, t, n):
    event = client_of(world).magic_transit.connectors.events.get(
        n, account_id=world.account, connector_id=connector, event_t=t
    )
    assert event.t == T0 and event.n == 3 and event.v == "2026.9.1"
    assert event.e.k == "StartUpgrade"
    assert event.e.to_dict() == UPGRADE["e"]  # payload fields kept exactly


def test_get_event_without_version(world: World, connector: str):
    event = token_client(world).magic_transit.connectors.events.get(
        0, account_id=world.account, connector_id=connector, event_t=T0 + 1
    )
    assert event.v is None and event.e.k == "RekeyAdvance"
    assert "v" not in event.to_dict()


def test_get_event_async(world: World, connector: str):
    async def fetch():
        client = AsyncCloudflare(api_token=world.read_token, base_url=world.server.base_url, max_retries=0)
        async with client:
            return await client.magic_transit.connectors.events.get(
                3.0, account_id=world.account, connector_id=connector, event_t=float(T0)
            )

    event = asyncio.run(fetch())
    assert (event.t, event.n, event.e.k) == (T0, 3, "StartUpgrade")


@pytest.mark.parametrize(
    ("make_client", "where", "error", "code"),
    [
        (lambda w: token_client(w), ("connector", T0, 99), cloudflare.NotFoundError, 20001),
        (lambda w: token_client(w), ("missing-connector", T0, 3), cloudflare.NotFoundError, 20002),
        (lambda w: token_client(w, "x" * 40), ("connector", T0, 3), cloudflare.AuthenticationError, 10000),
        (lambda w: token_client(w, w.other_write_token), ("connector", T0, 3), cloudflare.PermissionDeniedError, 10000),
        (lambda w: key_client(w, key="0" * 37), ("connector", T0, 3), cloudflare.PermissionDeniedError, 9103),
        (lambda w: token_client(w), ("connector", 1.5, 3), cloudflare.BadRequestError, 7003),
    ],
    ids=["unknown event", "unknown connector", "unknown token", "other account", "wrong key", "fractional t"],
)
def test_errors_map_to_sdk_error_classes(world: World, connector: str, make_client, where, error, code):
    connector_id, t, n = where
    with pytest.raises(error) as raised:
        make_client(world).magic_transit.connectors.events.get(
            n,
            account_id=world.account,
            connector_id=connector if connector_id == "connector" else connector_id,
            event_t=t,
        )
    assert raised.value.response.json()["errors"][0]["code"] == code
