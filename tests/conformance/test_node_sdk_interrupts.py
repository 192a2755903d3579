"""The official npm `cloudflare` SDK 7.3.0 over interrupts, in its own call forms
(node_modules/cloudflare-7/resources/magic-transit/connectors/interrupts.d.ts):

  client.magicTransit.connectors.interrupts.create(connectorID, {account_id, reboot|restart|shutdown})
  client.magicTransit.connectors.interrupts.list(connectorID, {account_id})   -> SinglePage, `for await`

The 409 of a second pending interrupt comes out as the SDK's ConflictError.
"""

from __future__ import annotations

import httpx
from family_data import near_now
from helpers import World, bearer, cli
from test_node_sdk_family import BAD_REQUEST, DENIED, NOT_FOUND, error, run, step

INTERRUPTS = "magicTransit.connectors.interrupts"


def test_create_list_conflict_and_refusals(node_sdk: str, world: World):
    connector = world.new_connector()
    at = {"account_id": world.account}
    write, read = world.write_token, world.read_token
    first = run(
        node_sdk,
        world,
        [
            step("empty", f"{INTERRUPTS}.list", connector, at, token=read, mode="iterate"),
            step("reboot", f"{INTERRUPTS}.create", connector, {**at, "reboot": {"purge": True}}, token=write),
            step("conflict", f"{INTERRUPTS}.create", connector, {**at, "shutdown": {}}, token=write),
            step("none", f"{INTERRUPTS}.create", connector, at, token=write),
            step("two", f"{INTERRUPTS}.create", connector, {**at, "reboot": {}, "restart": {}}, token=write),
            step("read_only", f"{INTERRUPTS}.create", connector, {**at, "restart": {}}, token=read),
            step("unknown", f"{INTERRUPTS}.list", "nosuchconnector", at, token=read, mode="iterate"),
        ],
    )
    made = first["reboot"]["result"]
    assert near_now(made["submitted_at"])
    assert made == {"id": made["id"], "submitted_at": made["submitted_at"], "reboot": {"purge": True}}
    assert first["empty"] == {"result": []}
    assert first["conflict"] == error("ConflictError", 409, 20041)
    assert first["none"] == error(BAD_REQUEST, 400, 20040)
    assert first["two"] == error(BAD_REQUEST, 400, 20040)
    assert first["read_only"] == error(DENIED, 403, 10000)
    assert first["unknown"] == error(NOT_FOUND, 404, 20002)

    # The connector reports it executed (conntel's own check-in); then another may be created.
    secret = cli("connectors", "credential", "--account", world.account, "--connector", connector, db=world.db)
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}/checkin"
    httpx.post(url, json={"executed": made["id"]}, headers=bearer(secret["value"])).raise_for_status()
    second = run(
        node_sdk,
        world,
        [
            step("restart", f"{INTERRUPTS}.create", connector, {**at, "restart": {}}, token=write),
            step("list", f"{INTERRUPTS}.list", connector, at, token=read, mode="iterate"),
        ],
    )
    restart = second["restart"]["result"]
    assert restart["restart"] == {"purge": False}
    listed = second["list"]["result"]
    assert [item["id"] for item in listed] == [restart["id"], made["id"]]  # newest first
    assert listed[0] == restart
    assert near_now(listed[1]["triggered_at"]) and listed[1]["reboot"] == {"purge": True}
