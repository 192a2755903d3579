"""`conntel store copy`: an SQLite store moved into PostgreSQL, checked through the HTTP API of both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from helpers import (
    CONNTEL,
    Server,
    World,
    bearer,
    build_world,
    cli,
    create_pg_database,
    drop_pg_database,
    global_key,
)

T0 = 1_700_000_000
TABLES = ["server_secrets", "accounts", "events", "snapshots", "connectors", "users", "memberships", "tokens"]


@pytest.fixture
def world(tmp_path: Path):
    """A running server on a fresh SQLite store (the copy's source)."""
    built = build_world(tmp_path)
    yield built
    built.server.stop()


@pytest.fixture
def pg_url():
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def copy(source: Path, destination: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CONNTEL, "store", "copy", "--db", str(source), "--to", destination, *options],
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_json(source: Path, destination: str, *options: str) -> dict:
    done = copy(source, destination, "--json", *options)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)  # one JSON object and nothing else


def pg(url: str, sql: str) -> str:
    return subprocess.run(["psql", url, "-Atc", sql], check=True, capture_output=True, text=True).stdout.strip()


def pg_count(url: str, table: str = "events") -> int:
    done = subprocess.run(["psql", url, "-Atc", f"SELECT count(*) FROM {table}"], capture_output=True, text=True)
    return int(done.stdout) if done.returncode == 0 else 0  # no table yet: the copy has not made the schema


def connectors_url(server: Server, account: str, connector: str | None = None) -> str:
    base = f"{server.base_url}/accounts/{account}/magic/connectors"
    return f"{base}/{connector}" if connector else base


def events_url(server: Server, account: str, connector: str) -> str:
    return connectors_url(server, account, connector) + "/telemetry/events"


def result_of(response: httpx.Response):
    assert response.status_code == 200, response.text
    return response.json()["result"]


def events_for(connector_index: int, count: int, start: int = 0) -> list[dict]:
    """Events with and without `v`, with payload extras of every JSON type, several per second."""
    events = []
    for i in range(start, start + count):
        event = {"t": T0 + i // 4, "n": i % 4}
        if i % 3 == 0:
            event["e"] = {"k": "StartUpgrade", "url": f"https://example.com/{connector_index}/{i}.img"}
        elif i % 3 == 1:
            event["e"] = {
                "k": "HaTransition",
                "from": "standby",
                "extra": {"nested": [1, 2.5, "x", None, True], "note": "çà ✓ \u2028"},
                "big": 2**53 - 1,
            }
        else:
            event["e"] = {"k": "Reconcile"}
        if i % 2 == 0:
            event["v"] = f"2024.{connector_index}.{i}"
        events.append(event)
    return events


def ingest(world: World, connector: str, events: list[dict], other_account: bool = False) -> None:
    account, token = world.account, world.write_token
    if other_account:
        account, token = world.other_account, world.other_write_token
    for start in range(0, len(events), 5000):
        response = httpx.post(
            events_url(world.server, account, connector), json=events[start : start + 5000], headers=bearer(token)
        )
        assert response.status_code == 200, response.text


def metrics_for(count: int) -> list[dict]:
    """`count` snapshots a minute apart, with an unknown field (kept as sent)."""
    required = {"count_reclaim_failures": 0, "count_reclaimed_paths": 0, "count_record_failed": 0}
    return [
        required | {"count_transmit_failures": i, "t": T0 + 60 * i, "v": "2025.9.1", "cpu_count": 4, "new": [i, "x"]}
        for i in range(count)
    ]


def ingest_snapshots(world: World, connector: str, snapshots: list[dict]) -> None:
    url = events_url(world.server, world.account, connector).removesuffix("/events") + "/snapshots"
    for start in range(0, len(snapshots), 1000):
        response = httpx.post(url, json=snapshots[start : start + 1000], headers=bearer(world.write_token))
        assert response.status_code == 200, response.text


def snapshot(server: Server, world: World, headers: dict, bodies: bool = True) -> dict:
    """What the API shows of the main account: connectors, their event and snapshot lists, and (bodies) every
    event and every 50th snapshot as bytes."""
    seen: dict = {}
    with httpx.Client(headers=headers, timeout=30) as client:
        listed = result_of(client.get(connectors_url(server, world.account)))
        seen["connectors"] = listed
        for connector in listed:
            cid = connector["id"]
            seen[cid, "get"] = result_of(client.get(connectors_url(server, world.account, cid)))
            seen[cid, "latest"] = client.get(events_url(server, world.account, cid) + "/latest").content
            items, cursor = [], None
            while True:
                params = {"from": 0, "to": T0 + 10**6, "limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = result_of(client.get(events_url(server, world.account, cid), params=params))
                items += page["items"]
                cursor = page.get("cursor")
                if cursor is None:
                    break
            seen[cid, "items"] = items
            for item in items if bodies else ():
                response = client.get(events_url(server, world.account, cid) + f"/{item['t']}.{item['n']}")
                assert response.status_code == 200
                seen[cid, item["t"], item["n"]] = response.content
            snapshots_url = events_url(server, world.account, cid).removesuffix("/events") + "/snapshots"
            seen[cid, "latest snapshots"] = client.get(snapshots_url + "/latest").content
            params = {"from": 0, "to": T0 + 10**6, "limit": 1000}
            seen[cid, "snapshots"] = listed_snapshots = result_of(client.get(snapshots_url, params=params))["items"]
            for item in listed_snapshots[::50] if bodies else ():
                seen[cid, "snapshot", item["t"]] = client.get(snapshots_url + f"/{item['t']}").content
    return seen


def test_copy_moves_everything_and_the_api_answers_the_same(world: World, pg_url: str, tmp_path: Path):
    # Connectors of every sort: made by the CLI, managed, licensed, with edited settings.
    headers = bearer(world.write_token)
    managed = result_of(
        httpx.post(
            connectors_url(world.server, world.account), headers=headers, json={"device": {"serial_number": "CF-9"}}
        )
    )
    licensed = result_of(
        httpx.post(
            connectors_url(world.server, world.account),
            headers=headers,
            json={"device": {"provision_license": True}, "notes": "virtual", "timezone": "Europe/Lisbon"},
        )
    )
    result_of(
        httpx.patch(
            connectors_url(world.server, world.account, managed["id"]),
            headers=headers,
            json={
                "activated": True,
                "interrupt_window_embargo_dates": ["2026-12-24"],
                "interrupt_window_hour_of_day": 3,
            },
        )
    )
    connectors = [world.connector, managed["id"], licensed["id"], world.new_connector()]
    counts = [2600, 900, 300, 0]  # several chunks of 1000, across connectors; one connector without events
    for index, (connector, count) in enumerate(zip(connectors, counts, strict=False)):
        ingest(world, connector, events_for(index, count))
    ingest(world, world.other_connector, events_for(9, 50), other_account=True)
    total = sum(counts) + 50
    ingest_snapshots(world, world.connector, metrics_for(1500))  # two chunks of 1000
    ingest_snapshots(world, managed["id"], metrics_for(20))

    # A revoked token, and a List Events cursor issued by the source (its signing key is a server secret).
    revoked = world.new_token("Magic WAN Read")
    cli("tokens", "revoke", revoked["id"], db=world.db)
    first_page = result_of(
        httpx.get(
            events_url(world.server, world.account, world.connector),
            headers=bearer(world.read_token),
            params={"from": 0, "to": T0 + 10**6, "limit": 10},
        )
    )
    before = snapshot(world.server, world, bearer(world.read_token))

    report = copy_json(world.db, pg_url, "--batch-size", "1000")
    assert report["verified"] is True
    tables = report["tables"]
    assert list(tables) == TABLES
    assert tables["events"] == {"source": total, "destination": total, "copied": total, "updated": 0, "missing": 0}
    assert tables["accounts"]["copied"] == 2
    assert tables["connectors"]["copied"] == len(connectors) + 1
    assert tables["users"]["copied"] == 2 and tables["memberships"]["copied"] == 2
    assert tables["tokens"]["copied"] == 4
    assert tables["server_secrets"]["copied"] == 1
    assert tables["snapshots"]["copied"] == 1520
    assert all(t["source"] == t["destination"] == t["copied"] for t in tables.values())
    assert int(pg(pg_url, "SELECT count(*) FROM events")) == total

    # The readable summary: a table, then the verdict.
    again = copy(world.db, pg_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0].split() == ["table", "source", "destination", "copied", "updated"]
    assert "Verified" in again.stdout and f"{total:,}" in again.stdout
    assert "events:" in again.stderr  # progress

    moved = Server(pg_url, log_dir=tmp_path).start()
    try:
        # Same tokens, same global keys, same answers, byte for byte.
        assert snapshot(moved, world, bearer(world.read_token)) == before
        by_key = snapshot(moved, world, global_key(world.email, world.api_key), bodies=False)
        assert by_key == {key: value for key, value in before.items() if key in by_key}
        verify = [
            httpx.get(f"{server.base_url}/user/tokens/verify", headers=bearer(world.read_token)).json()
            for server in (world.server, moved)
        ]
        assert verify[0] == verify[1] and verify[0]["result"]["status"] == "active"
        # The source's cursor goes on walking on the destination.
        params = {"from": 0, "to": T0 + 10**6, "limit": 10, "cursor": first_page["cursor"]}
        pages = [
            result_of(
                httpx.get(
                    events_url(server, world.account, world.connector), headers=bearer(world.read_token), params=params
                )
            )
            for server in (world.server, moved)
        ]
        assert pages[0] == pages[1] and pages[0]["count"] == 10
        # Revocations, permissions and account boundaries hold.
        one = events_url(moved, world.account, world.connector) + f"/{T0}.0"
        assert httpx.get(one, headers=bearer(revoked["value"])).status_code == 401
        assert httpx.get(one, headers=bearer(world.other_write_token)).status_code == 403
        assert httpx.get(one, headers=global_key(world.other_email, world.other_api_key)).status_code == 403
        other = events_url(moved, world.other_account, world.other_connector) + "/latest"
        assert result_of(httpx.get(other, headers=bearer(world.other_write_token)))["count"] == 50
        assert result_of(httpx.get(other, headers=global_key(world.other_email, world.other_api_key)))["count"] == 50
        # The write token writes there; a retry of a copied event is a duplicate, a changed one a conflict.
        new = [{"t": T0 + 10**5, "n": 0, "e": {"k": "Init"}, "v": "9.9"}]
        response = httpx.post(
            events_url(moved, world.account, world.connector), headers=bearer(world.write_token), json=new
        )
        assert result_of(response) == {"accepted": 1, "duplicates": 0}
        copied_event = events_for(0, 1)
        response = httpx.post(
            events_url(moved, world.account, world.connector), headers=bearer(world.write_token), json=copied_event
        )
        assert result_of(response) == {"accepted": 0, "duplicates": 1}
        copied_event[0]["e"]["url"] = "https://example.com/other.img"
        response = httpx.post(
            events_url(moved, world.account, world.connector), headers=bearer(world.write_token), json=copied_event
        )
        assert response.status_code == 409
    finally:
        moved.stop()


def test_an_interrupted_copy_resumes_without_duplicates(world: World, pg_url: str):
    total = 20_000
    ingest(world, world.connector, events_for(0, total))

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [*CONNTEL, "store", "copy", "--db", str(world.db), "--to", pg_url, "--batch-size", "20"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for_more_than(proc: subprocess.Popen, count: int) -> None:
        deadline = time.monotonic() + 60
        while pg_count(pg_url) <= count:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)

    # Ctrl-C: a clear word, exit 130, what is copied is kept.
    proc = start()
    wait_for_more_than(proc, 0)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err.lower() and "Traceback" not in err
    first = pg_count(pg_url)
    assert 0 < first < total

    # kill -9 in the middle of a chunk's transaction: that chunk is simply not there.
    proc = start()
    wait_for_more_than(proc, first)
    proc.kill()
    proc.wait(timeout=30)
    second = pg_count(pg_url)
    assert first < second < total

    report = copy_json(world.db, pg_url, "--batch-size", "1000")
    assert report["verified"] is True
    events = report["tables"]["events"]
    assert events["source"] == events["destination"] == total
    assert 0 < events["copied"] <= total - second
    assert pg_count(pg_url) == total
    assert pg(pg_url, "SELECT count(DISTINCT (t, n)) FROM events") == str(total)


def test_copy_again_brings_over_what_changed_on_the_source(world: World, pg_url: str, tmp_path: Path):
    ingest(world, world.connector, events_for(0, 300))
    doomed = world.new_token("Magic WAN Read")
    assert copy_json(world.db, pg_url)["verified"] is True

    # The source lives on: more events (new heartbeat and version), a settings change,
    # a revocation, a new connector.
    ingest(world, world.connector, events_for(0, 200, start=300))
    result_of(
        httpx.patch(
            connectors_url(world.server, world.other_account, world.other_connector),
            headers=bearer(world.other_write_token),
            json={"notes": "moved"},
        )
    )
    cli("tokens", "revoke", doomed["id"], db=world.db)
    fresh = world.new_connector()

    report = copy_json(world.db, pg_url)
    tables = report["tables"]
    assert report["verified"] is True
    assert tables["events"]["copied"] == 200 and tables["events"]["destination"] == 500
    assert tables["connectors"]["copied"] == 1 and tables["connectors"]["updated"] == 2
    assert tables["tokens"]["copied"] == 0 and tables["tokens"]["updated"] == 1
    assert tables["accounts"]["copied"] == 0

    moved = Server(pg_url, log_dir=tmp_path).start()
    try:
        for account, connector, token in [
            (world.account, world.connector, world.read_token),
            (world.account, fresh, world.read_token),
            (world.other_account, world.other_connector, world.other_write_token),
        ]:
            urls = [connectors_url(server, account, connector) for server in (world.server, moved)]
            source, destination = (result_of(httpx.get(url, headers=bearer(token))) for url in urls)
            assert source == destination
        one = events_url(moved, world.account, world.connector) + f"/{T0}.0"
        assert httpx.get(one, headers=bearer(doomed["value"])).status_code == 401
        assert httpx.get(one, headers=bearer(world.read_token)).status_code == 200
    finally:
        moved.stop()


def test_different_content_under_the_same_key_is_never_overwritten(world: World, pg_url: str, tmp_path: Path):
    ingest(world, world.connector, events_for(0, 100))
    assert copy_json(world.db, pg_url, "--batch-size", "30")["verified"] is True

    # An event of the destination changed behind the copy's back.
    key = f"account_id = '{world.account}' AND connector_id = '{world.connector}' AND t = {T0 + 10} AND n = 1"
    original = pg(pg_url, f"SELECT encode(e, 'hex') FROM events WHERE {key}")
    pg(pg_url, f"""UPDATE events SET e = convert_to('{{"k":"Reconcile","forged":true}}', 'UTF8') WHERE {key}""")
    done = copy(world.db, pg_url, "--json", "--batch-size", "30")
    assert done.returncode == 1 and done.stdout == ""
    assert f"event {T0 + 10}.1 of connector {world.connector} in account {world.account}" in done.stderr
    assert "different content (differing: e)" in done.stderr and "Nothing was overwritten" in done.stderr
    assert "Traceback" not in done.stderr
    assert pg(pg_url, f"SELECT e FROM events WHERE {key}") == "\\x" + b'{"k":"Reconcile","forged":true}'.hex()
    pg(pg_url, f"UPDATE events SET e = decode('{original}', 'hex') WHERE {key}")

    # A connector edited on a server already running on the destination: newer there, so a conflict.
    moved = Server(pg_url, log_dir=tmp_path).start()
    try:
        time.sleep(1.1)
        result_of(
            httpx.patch(
                connectors_url(moved, world.account, world.connector),
                headers=bearer(world.write_token),
                json={"notes": "edited on PostgreSQL"},
            )
        )
    finally:
        moved.stop()
    done = copy(world.db, pg_url)
    assert done.returncode == 1
    assert f"connector {world.connector} in account {world.account} is already in the destination" in done.stderr
    assert "settings" in done.stderr and "Traceback" not in done.stderr
    assert "edited on PostgreSQL" in pg(
        pg_url, f"SELECT convert_from(settings, 'UTF8') FROM connectors WHERE connector_id = '{world.connector}'"
    )


def test_clear_errors(tmp_path: Path, pg_url: str):
    db = tmp_path / "src.db"
    cli("accounts", "create", "--id", "acme", db=db)
    cases = [
        (["--db", str(tmp_path / "missing.db"), "--to", pg_url], "No SQLite database at"),
        (["--db", str(db), "--to", "postgresql://conntel:s3cr3t-pw@127.0.0.1:1/nowhere"], "Cannot open the database"),
        (["--db", str(db), "--to", "sqlite:///elsewhere.db"], "must be a postgresql:// URL"),
        (["--db", str(tmp_path), "--to", pg_url], "Invalid value for '--db'"),
        (["--to", pg_url], "Missing option '--db'"),
    ]
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello, this is not a database" * 100)
    cases.append((["--db", str(not_sqlite), "--to", pg_url], "not a database"))
    without_db = {k: v for k, v in os.environ.items() if k != "CONNTEL_DB"}
    for args, message in cases:
        done = subprocess.run(
            [*CONNTEL, "store", "copy", *args, "--json"], capture_output=True, text=True, timeout=60, env=without_db
        )
        assert done.returncode != 0 and done.stdout == "", args
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and "s3cr3t-pw" not in done.stderr
    unreachable = subprocess.run(
        [*CONNTEL, "store", "copy", "--db", str(db), "--to", "postgresql://conntel:s3cr3t-pw@127.0.0.1:1/nowhere"],
        capture_output=True,
        text=True,
    )
    assert unreachable.returncode == 1 and "conntel:***@127.0.0.1:1" in unreachable.stderr
    # A source that cannot be read leaves the destination untouched.
    assert pg_count(pg_url, "accounts") == 0
    # The source may also come from CONNTEL_DB, like --db everywhere.
    done = subprocess.run(
        [*CONNTEL, "store", "copy", "--to", pg_url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONNTEL_DB": str(db)},
    )
    assert done.returncode == 0 and json.loads(done.stdout)["tables"]["accounts"]["copied"] == 1
