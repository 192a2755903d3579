"""Stores made by earlier releases open, migrate and serve everything; a newer conntel's store is refused.

The fixtures (tests/fixtures/upgrades/) were written by the releases themselves, each installed from
this repository's history into its own virtualenv and filled through its own CLI and API
(make_fixtures.py, committed beside them, with a manifest of what each old server answered).
Here the CURRENT server starts on each (migrating it) and the official Python SDK reads it all back.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import cloudflare
import httpx
import pytest
from cloudflare import Cloudflare
from helpers import CONNTEL, ROOT, Server, bearer, create_pg_database, drop_pg_database, store_args

FIXTURES = ROOT / "tests" / "fixtures" / "upgrades"
CASES = sorted(path.stem for path in FIXTURES.glob("*.json"))  # RELEASE-BACKEND
NEWER = 9999  # a schema version no conntel has yet


def test_every_release_and_backend_has_a_fixture():
    assert {case.rsplit("-", 1)[1] for case in CASES} == {"sqlite", "postgres"}
    assert {case.rsplit("-", 1)[0] for case in CASES} >= {"f6acaae", "174f0e8"}


def restore(case: str, folder: Path) -> Path | str:
    """The fixture's store restored as a new SQLite file or a new PostgreSQL database."""
    backend = case.rsplit("-", 1)[1]
    if backend == "sqlite":
        db = folder / "store.db"
        shutil.copyfile(FIXTURES / f"{case}.db", db)
        db.chmod(0o600)
        return db
    url = create_pg_database()
    subprocess.run(
        ["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(FIXTURES / f"{case}.sql")],
        check=True,
        capture_output=True,
    )
    return url


def discard(store: Path | str) -> None:
    if isinstance(store, str):
        drop_pg_database(store)


@pytest.fixture(scope="module", params=CASES)
def upgraded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    manifest = json.loads((FIXTURES / f"{request.param}.json").read_text())
    store = restore(request.param, tmp_path_factory.mktemp(request.param))
    server = Server(store).start()  # the current conntel: migrates the old store as it starts
    yield manifest, server
    server.stop()
    discard(store)


def sdk(server: Server, token: str) -> Cloudflare:
    return Cloudflare(api_token=token, base_url=server.base_url, max_retries=0)


def as_before(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """`now` limited to the fields the old release answered (a newer one may add fields)."""
    return {key: now.get(key) for key in before}


def test_connectors_read_back_through_the_sdk(upgraded):
    manifest, server = upgraded
    client = sdk(server, manifest["tokens"]["read"]["value"])
    listed = [c.to_dict() for c in client.magic_transit.connectors.list(account_id=manifest["account"])]
    assert [c["id"] for c in listed] == [c["id"] for c in manifest["connector_list"]]
    assert [as_before(now, then) for now, then in zip(listed, manifest["connector_list"], strict=True)] == manifest[
        "connector_list"
    ]
    for connector_id, before in manifest["connectors"].items():
        now = client.magic_transit.connectors.get(connector_id, account_id=manifest["account"]).to_dict()
        assert as_before(now, before) == before
    with pytest.raises(cloudflare.NotFoundError):
        client.magic_transit.connectors.get(manifest["deleted_connector"], account_id=manifest["account"])


def test_events_read_back_through_the_sdk(upgraded):
    manifest, server = upgraded
    client = sdk(server, manifest["tokens"]["read"]["value"])
    events = client.magic_transit.connectors.events
    for connector_id, before in manifest["events"].items():
        walked: list[dict[str, Any]] = []
        cursor: Any = cloudflare.omit
        while True:
            page = events.list(connector_id, account_id=manifest["account"], from_=1, to=2**40, limit=37, cursor=cursor)
            walked += [item.to_dict() for item in page.items]
            if not page.cursor:
                break
            cursor = page.cursor
        assert walked == [{key: item[key] for key in ("a", "k", "n", "t")} for item in before]
        for item in before:
            got = events.get(item["n"], account_id=manifest["account"], connector_id=connector_id, event_t=item["t"])
            assert got.to_dict() == item["full"]
        latest = events.latest.list(connector_id, account_id=manifest["account"]).to_dict()
        assert latest == manifest["latest"][connector_id]
    assert sum(len(items) for items in manifest["events"].values()) > 150


def test_credentials_still_authenticate_and_stay_refused(upgraded):
    manifest, server = upgraded
    tokens, account = manifest["tokens"], manifest["account"]
    assert sdk(server, tokens["write"]["value"]).user.tokens.verify().status == "active"
    assert sdk(server, tokens["read"]["value"]).user.tokens.verify().id == tokens["read"]["id"]
    user = manifest["user"]
    by_key = Cloudflare(api_email=user["email"], api_key=user["api_key"], base_url=server.base_url, max_retries=0)
    assert [c.id for c in by_key.magic_transit.connectors.list(account_id=account)] == [
        c["id"] for c in manifest["connector_list"]
    ]
    for name in ("revoked", "expired"):
        with pytest.raises(cloudflare.AuthenticationError):
            sdk(server, tokens[name]["value"]).magic_transit.connectors.list(account_id=account)
    with pytest.raises(cloudflare.PermissionDeniedError):  # accounts stay apart
        sdk(server, tokens["other_write"]["value"]).magic_transit.connectors.list(account_id=account)


def test_the_upgraded_store_takes_writes(upgraded):
    manifest, server = upgraded
    # The other account's connector: the tests above read the first account's, in any order.
    token, account = manifest["tokens"]["other_write"]["value"], manifest["other_account"]
    connector_id = manifest["other_connector"]
    event = {"t": 1_790_000_000, "n": 0, "e": {"k": "FinishUpgradeSuccess", "from": manifest["release"]}, "v": "next"}
    url = f"{server.base_url}/accounts/{account}/magic/connectors/{connector_id}/telemetry/events"
    sent = httpx.post(url, json=[event], headers=bearer(token))
    assert sent.status_code == 200 and sent.json()["result"]["accepted"] == 1
    got = sdk(server, token).magic_transit.connectors.events.get(
        0, account_id=account, connector_id=connector_id, event_t=event["t"]
    )
    assert got.to_dict() == {key: event[key] for key in ("t", "n", "e", "v")}
    edited = sdk(server, token).magic_transit.connectors.edit(connector_id, account_id=account, notes="upgraded")
    assert edited.notes == "upgraded"


def test_the_upgraded_store_keeps_health_with_the_new_rules(upgraded):
    """Migrated health columns: a tunnel down in a new snapshot makes the connector failing (unless an outcome
    failure already does)."""
    manifest, server = upgraded
    token, account = manifest["tokens"]["other_write"]["value"], manifest["other_account"]
    connector_id = manifest["other_connector"]
    base = f"{server.base_url}/accounts/{account}/magic/connectors"
    snapshot = {
        "count_reclaim_failures": 0, "count_reclaimed_paths": 0, "count_record_failed": 0,
        "count_transmit_failures": 0, "t": 1_795_000_000, "v": "next",
        "tunnels": [{"tunnel_id": "up-1", "health_state": "down", "health_value": 3, "interface_name": "xfrm1"}],
    }  # fmt: skip
    sent = httpx.post(f"{base}/{connector_id}/telemetry/snapshots", json=[snapshot], headers=bearer(token))
    assert sent.status_code == 200, sent.text
    items = httpx.get(f"{base}/telemetry/health", headers=bearer(token)).json()["result"]["items"]
    item = next(item for item in items if item["connector_id"] == connector_id)
    assert item["health"] == "failing"
    assert item["reason"] == "tunnel_down" or item["reason"].endswith("Failure"), item


# -- a store from a newer conntel --


def fingerprint(store: Path | str) -> str:
    """Everything a store holds: the SQLite file's bytes, or a full pg_dump (schema and data)."""
    if isinstance(store, Path):
        return hashlib.sha256(store.read_bytes()).hexdigest()
    dump = subprocess.run(["pg_dump", "--no-owner", store], check=True, capture_output=True).stdout
    # pg_dump's \restrict lines carry a random key each run; everything else is the database.
    kept = [line for line in dump.splitlines() if not line.startswith((b"\\restrict ", b"\\unrestrict "))]
    return hashlib.sha256(b"\n".join(kept)).hexdigest()


def mark_newer(store: Path | str) -> None:
    """Record a migration this conntel does not have, as a newer conntel would have."""
    sql = f"INSERT INTO schema_migrations VALUES ({NEWER}, 1900000000)"
    if isinstance(store, Path):
        with sqlite3.connect(store) as conn:
            conn.execute(sql)
        conn.close()
    else:
        subprocess.run(["psql", store, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_newer_conntels_store_is_refused_and_left_as_it_was(backend: str, tmp_path: Path):
    store = restore(f"f6acaae-{backend}", tmp_path)  # an OLD store too: refused before any migration runs
    try:
        mark_newer(store)
        before = fingerprint(store)
        for command in (["serve", "--port", "1"], ["accounts", "create"]):
            done = subprocess.run([*CONNTEL, *command, *store_args(store)], capture_output=True, text=True, timeout=60)
            assert done.returncode == 1, done
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, done.stderr
            assert "was made by a newer conntel (schema version 9999" in lines[0]
            assert "refusing to open it" in lines[0]
        assert fingerprint(store) == before
    finally:
        discard(store)
