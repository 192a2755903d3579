"""Health changes on the live streams: `event: health` messages, from any writer and any process."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from helpers import Server, World, bearer, cli, drop_pg_database, new_store, post_events
from test_fleet_health import event, fleet, push_snapshots, snapshot
from test_stream import SseReader, stream_url

from conntel import admin
from conntel.events import ValidEvent, decode_batch
from conntel.health import HEALTH_CHANGES_KEPT_SECONDS
from conntel.snapshots import decode_batch as decode_snapshots
from conntel.store import Store, open_store
from conntel.store.base import HealthPosition, NotedHealth

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


# -- the store's record of health changes, read as the feeds read it --


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path):
    store = new_store(tmp_path, request.param)
    yield str(store)
    if request.param == "postgres":
        drop_pg_database(str(store))


async def _store_with_connectors(database: str, count: int) -> tuple[Store, str, list[str]]:
    store = open_store(database)
    await store.start()
    account = (await admin.create_account(store))["id"]
    connectors = [(await admin.create_connector(store, account))["id"] for _ in range(count)]
    return store, account, connectors


def test_health_changes_are_read_in_order_then_pruned_after_an_hour(database: str):
    async def run() -> None:
        store, account, connectors = await _store_with_connectors(database, 2)
        try:
            start = await store.health_position(account)
            now = int(time.time())
            for i, connector in enumerate(connectors):
                await store.append_events(account, connector, [_event(T0 + i, "FinishUpgradeFailure")], now)
            noted = await _read(store, account, start, 2)
            assert [(n.change.connector_id, n.change.health, n.change.previous) for n in noted] == [
                (connector, "failing", "silent") for connector in connectors
            ]
            assert [n.position for n in noted] == sorted(n.position for n in noted)
            assert await store.health_changes_after(account, noted[-1].position, 100) == []
            assert [n.change for n in await store.health_changes_after(account, noted[0].position, 100)] == [
                noted[1].change
            ]
            await store.sweep_health(now + HEALTH_CHANGES_KEPT_SECONDS - 5, 10**6)
            assert len(await _read(store, account, start, 2)) == 2  # not an hour old yet
            await store.sweep_health(now + HEALTH_CHANGES_KEPT_SECONDS + 5, 10**6)
            assert await store.health_changes_after(account, start, 100) == []
        finally:
            await store.close()

    asyncio.run(run())


async def _read(store: Store, account: str, after: HealthPosition, count: int) -> list[NotedHealth]:
    """The changes after `after` once there are `count`. On PostgreSQL a change is read once every transaction
    older than it has ended, on the whole server: other tests' transactions may delay it a little."""
    deadline = time.monotonic() + 20
    while len(noted := await store.health_changes_after(account, after, 100)) < count:
        assert time.monotonic() < deadline, f"{len(noted)} of {count} changes"
        await asyncio.sleep(0.05)
    return noted


def _event(t: int, kind: str) -> ValidEvent:
    [valid] = decode_batch(json.dumps([event(t, kind)]).encode(), 1)
    return valid


def test_postgres_a_change_committed_late_is_not_skipped(tmp_path: Path):
    """Two writers: the one that took the lower `seq` commits last. A feed that read in between must still
    get it (it sees neither until the older transaction ends), and then both in order."""
    database = new_store(tmp_path, "postgres")

    async def run() -> None:
        store, account, (first, second) = await _store_with_connectors(str(database), 2)
        slow, fast = await asyncpg.connect(str(database)), await asyncpg.connect(str(database))
        try:
            start = await store.health_position(account)
            change = "UPDATE connectors SET health = 'failing', health_reason = 'x' WHERE connector_id = $1"
            slow_tx, fast_tx = slow.transaction(), fast.transaction()
            await slow_tx.start()
            await slow.execute(change, first)  # the lower seq, and the older transaction
            await fast_tx.start()
            await fast.execute(change, second)
            await fast_tx.commit()
            assert await store.health_changes_after(account, start, 100) == []  # not the fast one alone
            await slow_tx.commit()
            noted = await _read(store, account, start, 2)
            assert [n.change.connector_id for n in noted] == [first, second]
        finally:
            await slow.close()
            await fast.close()
            await store.close()
            drop_pg_database(str(database))

    asyncio.run(run())


def test_writers_and_the_sweep_at_once_leave_every_health_as_its_facts_decide(database: str):
    """Events, snapshots, check-ins, an executed operation and the sweep on the same connectors at once: no
    deadlock, no lost decision (each connector's kept health is what its final facts decide), and a health
    change recorded for each change."""

    async def run() -> None:
        store, account, connectors = await _store_with_connectors(database, 4)
        try:
            start = await store.health_position(account)
            t = int(time.time())

            async def events(connector: str) -> None:
                for i in range(12):
                    kind = "FinishUpgradeSuccess" if i % 2 else "FinishUpgradeFailure"  # the last: a Success
                    await store.append_events(account, connector, [_event(T0 + i, kind)], int(time.time()))

            async def snapshots(connector: str, down_at_last: bool) -> None:
                for i in range(12):
                    state = ("down", 3) if i % 3 == 0 or (i == 11 and down_at_last) else ("healthy", 1)
                    body = json.dumps([snapshot(T0 + i, ("t1", *state))]).encode()
                    await store.append_snapshots(account, connector, decode_snapshots(body), int(time.time()))

            async def beats() -> None:
                for _ in range(12):
                    await store.note_heartbeats([(account, c, int(time.time())) for c in reversed(connectors)])

            async def sweeps() -> None:
                for i in range(12):
                    await store.sweep_health(t + i, 1)  # a threshold of 1 s: silence comes and goes

            pushes = [snapshots(c, i < 2) for i, c in enumerate(connectors)]
            await asyncio.gather(*(events(c) for c in connectors), *pushes, beats(), sweeps())
            # Every connector reports once more (those the sweeps made silent are heard from again), then a sweep
            # with a threshold nothing crosses: the rules alone decide.
            await store.note_heartbeats([(account, c, int(time.time()) + 60) for c in connectors])
            await store.sweep_health(int(time.time()), 10**6)
            items = {item.connector_id: item for item in await store.fleet_health(account)}
            # The newest outcome is a Success everywhere; the newest snapshot has a tunnel down for the first two.
            assert [(items[c].health, items[c].reason == "tunnel_down") for c in connectors] == [
                ("failing", True), ("failing", True), ("healthy", False), ("healthy", False)]  # fmt: skip
            noted = await _read(store, account, start, len(connectors))
            last = {n.change.connector_id: n.change for n in noted}  # the last change told of each
            assert {c: (last[c].health, last[c].reason) for c in connectors} == {
                c: (items[c].health, items[c].reason) for c in connectors
            }
        finally:
            await store.close()

    asyncio.run(run())
