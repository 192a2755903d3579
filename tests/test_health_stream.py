"""Health changes on the live streams: `event: health` messages, from any writer and any process."""

from __future__ import annotations

import httpx
from helpers import Server, World, bearer, cli, post_events
from test_fleet_health import event, fleet, push_snapshots, snapshot
from test_stream import SseReader, stream_url

T0 = 1_700_500_000


def test_a_connector_stream_sees_its_connector_fail_then_recover_and_no_other(world: World):
    connector, other = world.new_connector(), world.new_connector()
    reader = SseReader(stream_url(world, connector), bearer(world.read_token))
    try:
        post_events(world, [event(T0)], connector=connector).raise_for_status()
        post_events(world, [event(T0)], connector=other).raise_for_status()  # another connector's change
        post_events(world, [event(T0 + 10, "FinishUpgradeFailure", n=3)], connector=connector).raise_for_status()
        post_events(world, [event(T0 + 20, "FinishUpgradeSuccess")], connector=connector).raise_for_status()
        reporting, failing, healthy = reader.take(3, within=10, health=True)
        assert reporting == {
            "connector_id": connector,
            "health": "healthy",
            "previous": "silent",
            "since": reporting["since"],
            "reason": "reporting",
            "event": {"t": T0, "n": 0},
        }
        assert failing == {
            "connector_id": connector,
            "health": "failing",
            "previous": "healthy",
            "since": failing["since"],
            "reason": "FinishUpgradeFailure",
            "event": {"t": T0 + 10, "n": 3},
        }
        assert (healthy["health"], healthy["previous"], healthy["reason"]) == (
            "healthy",
            "failing",
            "FinishUpgradeSuccess",
        )
        assert healthy["event"] == {"t": T0 + 20, "n": 0}
        # The same as Fleet health says.
        item = fleet(world)[connector]
        assert {key: item[key] for key in ("health", "since", "reason", "event")} == {
            key: healthy[key] for key in ("health", "since", "reason", "event")
        }
        # The events themselves came as ever, with their positions.
        assert [m["data"]["t"] for m in reader.take(3)] == [T0, T0 + 10, T0 + 20]
        assert reader.health.empty()  # nothing of the other connector
    finally:
        reader.close()


def test_an_account_stream_sees_changes_made_through_another_process(world: World):
    other = Server(world.db, log_dir=world.server.log.parent).start()  # a second process on the same database
    connector = world.new_connector()
    reader = SseReader(stream_url(world), bearer(world.read_token))  # on the first process
    try:
        post_events(world_through(world, other), [event(T0, "FinishAttestationFailure")], connector=connector)
        changes = reader.health_until(lambda change: change["connector_id"] == connector)
        assert (changes[-1]["health"], changes[-1]["previous"]) == ("failing", "silent")
        assert changes[-1]["reason"] == "FinishAttestationFailure"
    finally:
        reader.close()
        other.stop()


def world_through(world: World, server: Server) -> World:
    """The same world, its requests sent to another process."""
    return World(**{**world.__dict__, "server": server})


def test_the_sweep_s_silence_reaches_a_stream_and_other_accounts_see_nothing(world: World):
    account = cli("accounts", "create", db=world.db)["id"]
    token = cli("tokens", "create", "--account", account, "--permission", "Magic WAN Write", db=world.db)["value"]
    connector = cli("connectors", "create", "--account", account, db=world.db)["id"]
    cli("accounts", "silent-after", "--account", account, "1s", db=world.db)
    reader = SseReader(stream_url(world, connector, account=account), bearer(token))
    outsider = SseReader(stream_url(world), bearer(world.read_token))  # the world's account: not this one
    try:
        url = f"{world.server.base_url}/accounts/{account}/magic/connectors/{connector}/telemetry/events"
        httpx.post(url, json=[event(T0)], headers=bearer(token)).raise_for_status()
        changes = reader.health_until(lambda change: change["health"] == "silent", within=20)
        assert [change["health"] for change in changes] == ["healthy", "silent"]
        assert changes[-1]["reason"] == "no_heartbeat" and changes[-1]["previous"] == "healthy"
        assert "event" not in changes[-1]
        while not outsider.health.empty():
            assert outsider.health.get()["connector_id"] != connector
    finally:
        reader.close()
        outsider.close()


def test_a_credential_without_access_never_sees_health_changes(world: World):
    connector = world.new_connector()
    assert httpx.get(stream_url(world, connector), headers=bearer(world.other_write_token)).status_code == 403
    token = world.new_token("Magic WAN Read")
    reader = SseReader(stream_url(world), bearer(token["value"]))
    try:
        cli("tokens", "revoke", token["id"], db=world.db)
        ended = reader.take(1, within=10)[0]
        assert ended["event"] == "error" and ended["data"]["reason"] == "revoked"
        post_events(world, [event(T0, "FinishUpgradeFailure")], connector=connector).raise_for_status()
        assert fleet(world)[connector]["health"] == "failing"
        assert reader.health.empty()
    finally:
        reader.close()


def test_a_tunnel_down_comes_with_its_snapshot_and_tunnel(world: World):
    connector = world.new_connector()
    reader = SseReader(stream_url(world, connector), bearer(world.read_token))
    try:
        push_snapshots(world, connector, snapshot(T0, ("t1", "healthy", 1), ("t2", "down", 3)))
        [change] = reader.take(1, within=10, health=True)
        assert change == {
            "connector_id": connector,
            "health": "failing",
            "previous": "silent",
            "since": change["since"],
            "reason": "tunnel_down",
            "snapshot": {"t": T0},
            "tunnel_id": "t2",
        }
    finally:
        reader.close()
