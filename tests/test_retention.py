"""Retention by collection time: `serve --retain-events` in the background, in one process at a
time, and `conntel store prune` once; on both backends."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from helpers import Server, Store, bearer, cli, drop_pg_database, new_store, wait_for

T_PAST = 1_000_000_000  # the connector's clock says 2001: retention goes by when conntel collected it
T_FUTURE = 4_000_000_000  # ... or 2096


@dataclass
class Fleet:
    """A store with one connector and a token that reads and writes it (servers come and go per test)."""

    db: Store
    account: str
    connector: str
    token: str

    def url(self, server: Server) -> str:
        return f"{server.base_url}/accounts/{self.account}/magic/connectors/{self.connector}/telemetry/events"


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path):
    db = new_store(tmp_path, request.param)
    account = cli("accounts", "create", db=db)["id"]
    connector = cli("connectors", "create", "--account", account, db=db)["id"]
    permissions = ["--permission", "Magic WAN Read", "--permission", "Magic WAN Write"]
    token = cli("tokens", "create", "--account", account, *permissions, db=db)["value"]
    yield Fleet(db, account, connector, token)
    if request.param == "postgres":
        drop_pg_database(str(db))


def _post(world: Fleet, server: Server, t: int, count: int = 3) -> None:
    batch = [{"t": t, "n": n, "e": {"k": "Reconcile"}} for n in range(count)]
    response = httpx.post(world.url(server), json=batch, headers=bearer(world.token))
    assert response.status_code == 200, response.text


def _post_snapshot(world: Fleet, server: Server, t: int) -> None:
    snapshot = {"count_reclaim_failures": 0, "count_reclaimed_paths": 0, "count_record_failed": 0,
                "count_transmit_failures": 0, "t": t, "v": "2025.9.1"}  # fmt: skip
    url = world.url(server).removesuffix("/events") + "/snapshots"
    response = httpx.post(url, json=[snapshot], headers=bearer(world.token))
    assert response.status_code == 200, response.text


def _snapshot_stored(world: Fleet, server: Server, t: int) -> bool:
    url = world.url(server).removesuffix("/events") + f"/snapshots/{t}"
    status = httpx.get(url, headers=bearer(world.token)).status_code
    assert status in (200, 404)
    return status == 200


def _stored(world: Fleet, server: Server, t: int, n: int = 0) -> bool:
    status = httpx.get(world.url(server) + f"/{t}.{n}", headers=bearer(world.token)).status_code
    assert status in (200, 404)
    return status == 200


def test_serve_deletes_events_collected_longer_ago_than_retention_whatever_their_t(world, tmp_path: Path):
    retention = ("--retain-events", "2s", "--retain-snapshots", "8s")
    server = Server(world.db, log_dir=tmp_path, extra_args=retention).start()
    try:
        posted = time.time()  # before conntel collected them
        _post(world, server, T_PAST)
        _post(world, server, T_FUTURE)
        _post_snapshot(world, server, T_FUTURE)
        assert _stored(world, server, T_PAST) and _stored(world, server, T_FUTURE)
        wait_for(lambda: not _stored(world, server, T_FUTURE) and not _stored(world, server, T_PAST), timeout=20)
        assert time.time() - posted > 2  # never before retention (`a` is whole seconds: a < int(now - 2))
        assert _snapshot_stored(world, server, T_FUTURE)  # kept longer: each table its own retention
        wait_for(lambda: not _snapshot_stored(world, server, T_FUTURE), timeout=20)
        assert time.time() - posted > 8
        _post(world, server, T_PAST + 1)  # collected now: kept for the next 2 s
        assert _stored(world, server, T_PAST + 1)
        assert "retention: took lease" in server.server_log()
    finally:
        server.stop()


def test_two_servers_with_retention_prune_in_one_process_at_a_time_and_hand_over(world, tmp_path: Path):
    servers = [Server(world.db, log_dir=tmp_path, extra_args=("--retain-events", "2s")).start() for _ in range(2)]
    try:
        holders = lambda: [s for s in servers if "retention: took lease" in s.server_log()]  # noqa: E731
        wait_for(lambda: len(holders()) == 1)
        time.sleep(1.5)  # more than one round of renewal: still only one
        assert len(holders()) == 1
        holder = holders()[0]
        other = next(s for s in servers if s is not holder)
        holder.stop(signal.SIGTERM)  # gives the lease up as it stops
        wait_for(lambda: "retention: took lease" in other.server_log(), timeout=10)
        _post(world, other, T_PAST)
        wait_for(lambda: not _stored(world, other, T_PAST), timeout=20)  # the new holder prunes
    finally:
        for server in servers:
            server.stop()


def test_store_prune_deletes_only_what_is_older_and_dry_run_deletes_nothing(world, tmp_path: Path):
    server = Server(world.db, log_dir=tmp_path).start()
    try:
        _post(world, server, T_FUTURE, count=5)
        _post_snapshot(world, server, T_FUTURE)
        first = time.time()
        wait_for(lambda: time.time() >= first + 6, timeout=10)
        _post(world, server, T_PAST, count=2)  # collected 6 s after the first batch: 4 s of margin either way
        _post_snapshot(world, server, T_PAST)
        both = ("--events-older-than", "4s", "--snapshots-older-than", "4s")
        dry = cli("store", "prune", *both, "--dry-run", db=world.db)
        assert dry["dry_run"] is True and dry["tables"]["events"]["rows"] == 5
        assert dry["tables"]["snapshots"]["rows"] == 1
        assert _stored(world, server, T_FUTURE) and _snapshot_stored(world, server, T_FUTURE)
        done = cli("store", "prune", *both, db=world.db)
        assert done["tables"]["events"]["rows"] == 5 and done["tables"]["snapshots"]["rows"] == 1
        assert not any(_stored(world, server, T_FUTURE, n) for n in range(5))
        assert not _snapshot_stored(world, server, T_FUTURE)
        assert all(_stored(world, server, T_PAST, n) for n in range(2)) and _snapshot_stored(world, server, T_PAST)
    finally:
        server.stop()


def test_store_prune_refuses_while_a_server_runs_retention(world, tmp_path: Path):
    server = Server(world.db, log_dir=tmp_path, extra_args=("--retain-events", "90d")).start()
    try:
        wait_for(lambda: "retention: took lease" in server.server_log())
        refused = cli("store", "prune", "--events-older-than", "1d", db=world.db, check=False)
        assert refused["returncode"] == 1
        assert "Retention is running in another process" in refused["stderr"]
    finally:
        server.stop()
    done = cli("store", "prune", "--events-older-than", "1d", db=world.db)  # the lease was given up
    assert done["tables"]["events"]["rows"] == 0


@pytest.mark.parametrize("value", ["0s", "12", "3w", "1.5d", "-1d", "99999999d", ""])
def test_a_duration_that_is_not_one_is_a_usage_error(tmp_path: Path, value: str):
    from click.testing import CliRunner

    from conntel.cli import main

    for args in (["serve", "--retain-events", value], ["store", "prune", "--events-older-than", value]):
        done = CliRunner().invoke(main, [*args, "--db", str(tmp_path / "x.db")])
        assert done.exit_code == 2, (args, done.output)
        assert "is not a duration" in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_store_prune_needs_a_duration(tmp_path: Path):
    from click.testing import CliRunner

    from conntel.cli import main

    done = CliRunner().invoke(main, ["store", "prune", "--db", str(tmp_path / "x.db")])
    assert done.exit_code == 2 and "--events-older-than" in done.stderr
