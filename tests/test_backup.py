"""Backup and restore under live ingestion: `conntel store backup` (SQLite) and pg_dump/pg_restore
(PostgreSQL, the commands README gives); the copy served finds every event acknowledged before."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from helpers import CONNTEL, Server, bearer, cli, create_pg_database, drop_pg_database, new_store, wait_for

T0 = 1_700_000_000
BATCH = 50


class Ingestion:
    """Batches posted one after another on a thread; `acknowledged` lists each batch's `t` once answered 200."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.acknowledged: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Ingestion:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(headers=bearer(self.token), timeout=10) as client:
            t = T0
            while not self._stop.is_set():
                batch = [{"t": t, "n": n, "e": {"k": "Reconcile", "pad": "x" * 200}} for n in range(BATCH)]
                if client.post(self.url, json=batch).status_code == 200:
                    self.acknowledged.append(t)
                t += 1


def _fleet(db) -> tuple[str, str, str]:
    account = cli("accounts", "create", db=db)["id"]
    connector = cli("connectors", "create", "--account", account, db=db)["id"]
    permissions = ["--permission", "Magic WAN Read", "--permission", "Magic WAN Write"]
    token = cli("tokens", "create", "--account", account, *permissions, db=db)["value"]
    return account, connector, token


def _events_url(server: Server, account: str, connector: str) -> str:
    return f"{server.base_url}/accounts/{account}/magic/connectors/{connector}/telemetry/events"


def _backup_under_ingestion(db, tmp_path: Path, backup) -> tuple[list[int], str, str, str]:
    """Ingest, back up with `backup()` mid-stream, ingest on; the batches acknowledged before it began."""
    account, connector, token = _fleet(db)
    server = Server(db, log_dir=tmp_path).start()
    try:
        with Ingestion(_events_url(server, account, connector), token) as ingestion:
            wait_for(lambda: len(ingestion.acknowledged) >= 40, timeout=30)
            before = list(ingestion.acknowledged)
            backup()
            after_backup = len(ingestion.acknowledged)
            wait_for(lambda: len(ingestion.acknowledged) >= after_backup + 5, timeout=30)  # writes went on
    finally:
        server.stop()
    return before, account, connector, token


def _serves_every_event(db, tmp_path: Path, batches: list[int], account: str, connector: str, token: str) -> None:
    server = Server(db, log_dir=tmp_path).start()
    try:
        url = _events_url(server, account, connector)
        with httpx.Client(headers=bearer(token), timeout=10) as client:
            for t in batches:
                for n in (0, BATCH - 1):  # a batch is all or nothing: its first and last say it is there
                    response = client.get(f"{url}/{t}.{n}")
                    assert response.status_code == 200, (t, n, response.text)
    finally:
        server.stop()


def test_store_backup_of_a_live_sqlite_store_serves_everything_acknowledged_before(tmp_path: Path):
    db, copy = tmp_path / "conntel.db", tmp_path / "backup" / "copy.db"
    copy.parent.mkdir()
    done: list[subprocess.CompletedProcess[str]] = []

    def backup() -> None:  # the installed command, end to end
        done.append(subprocess.run([*CONNTEL, "store", "backup", "--db", str(db), "--to", str(copy), "--json"],
                                   capture_output=True, text=True))  # fmt: skip

    before, account, connector, token = _backup_under_ingestion(db, tmp_path, backup)
    assert done[0].returncode == 0, done[0].stderr
    assert os.stat(copy).st_mode & 0o077 == 0  # private, as the store is
    assert not list(copy.parent.glob("*.partial*"))
    assert cli("store", "check", db=copy)["intact"] is True
    _serves_every_event(copy, tmp_path, before, account, connector, token)
    again = subprocess.run([*CONNTEL, "store", "backup", "--db", str(db), "--to", str(copy)], capture_output=True)
    assert again.returncode == 1 and b"already exists" in again.stderr  # never overwrites


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed (apt install postgresql-client)")
def test_pg_dump_of_a_live_store_restores_into_a_new_database_that_serves_everything_acknowledged_before(
    tmp_path: Path,
):
    db, restored = new_store(tmp_path, "postgres"), create_pg_database()
    dump = tmp_path / "conntel.dump"
    try:

        def backup() -> None:  # README's commands
            subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), db], check=True, capture_output=True)

        before, account, connector, token = _backup_under_ingestion(db, tmp_path, backup)
        subprocess.run(["pg_restore", "--no-owner", "--dbname", restored, str(dump)], check=True, capture_output=True)
        assert cli("store", "check", db=restored)["intact"] is True
        _serves_every_event(restored, tmp_path, before, account, connector, token)
    finally:
        drop_pg_database(str(db))
        drop_pg_database(restored)
