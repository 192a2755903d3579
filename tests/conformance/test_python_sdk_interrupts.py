"""The official Python SDK (PyPI cloudflare==5.9.0), sync and async, over interrupts, unchanged:
`magic_transit.connectors.interrupts.create` and `.list`, the 409 as the SDK's ConflictError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare.types.magic_transit.connectors import InterruptCreateResponse, InterruptListResponse
from family_data import near_now
from helpers import World, bearer, cli
from test_python_sdk_family import Api, fails


@pytest.fixture(params=["sync", "async"])
def sdk(request: pytest.FixtureRequest, world: World) -> Callable[..., Api]:
    def make(token: str | None = None) -> Api:
        return Api(world, request.param, api_token=token or world.write_token)

    return make


def interrupts(c: Any) -> Any:
    return c.magic_transit.connectors.interrupts


def report_executed(world: World, connector: str, interrupt_id: str) -> None:
    """What the connector does once it executed the operation (conntel's own check-in)."""
    secret = cli("connectors", "credential", "--account", world.account, "--connector", connector, db=world.db)
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}/checkin"
    httpx.post(url, json={"executed": interrupt_id}, headers=bearer(secret["value"])).raise_for_status()


def test_create_list_and_conflict(world: World, sdk):
    api, connector = sdk(), world.new_connector()
    assert sdk(world.read_token)(lambda c: interrupts(c).list(connector, account_id=world.account)) == []

    made = api(lambda c: interrupts(c).create(connector, account_id=world.account, reboot={"purge": True}))
    assert isinstance(made, InterruptCreateResponse)
    assert made.reboot is not None and made.reboot.purge is True
    assert made.restart is None and made.shutdown is None and made.triggered_at is None
    assert near_now(made.submitted_at)

    # One pending at a time: the SDK raises its ConflictError for the 409.
    conflict = fails(
        api, lambda c: interrupts(c).create(connector, account_id=world.account, shutdown={}), cloudflare.ConflictError,
        409, 20041,
    )  # fmt: skip
    assert "pending" in conflict.response.json()["errors"][0]["message"]

    report_executed(world, connector, made.to_dict()["id"])
    second = api(lambda c: interrupts(c).create(connector, account_id=world.account, restart={}))
    assert second.restart is not None and second.restart.purge is False

    listed = sdk(world.read_token)(lambda c: interrupts(c).list(connector, account_id=world.account))
    assert all(isinstance(item, InterruptListResponse) for item in listed)
    assert [item.restart is not None for item in listed] == [True, False]  # newest first
    assert listed[0].triggered_at is None and near_now(listed[1].triggered_at)
    assert listed[1].reboot is not None and listed[1].reboot.purge is True
    assert listed[1].submitted_at == made.submitted_at


def test_refusals_come_out_as_the_sdks_errors(world: World, sdk):
    connector = world.new_connector()
    bare = lambda c: interrupts(c).create(connector, account_id=world.account)  # noqa: E731
    fails(sdk(), bare, cloudflare.BadRequestError, 400, 20040)  # none of reboot, restart, shutdown
    both = lambda c: interrupts(c).create(connector, account_id=world.account, reboot={}, shutdown={})  # noqa: E731
    fails(sdk(), both, cloudflare.BadRequestError, 400, 20040)
    read_only = lambda c: interrupts(c).create(connector, account_id=world.account, reboot={})  # noqa: E731
    fails(sdk(world.read_token), read_only, cloudflare.PermissionDeniedError, 403, 10000)
    missing = lambda c: interrupts(c).list("nosuchconnector", account_id=world.account)  # noqa: E731
    fails(sdk(), missing, cloudflare.NotFoundError, 404, 20002)
    assert sdk()(lambda c: interrupts(c).list(connector, account_id=world.account)) == []
