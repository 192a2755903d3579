"""`conntel store check`: exit 0 only when the store is intact; read-only, on both backends."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path

import pytest
from helpers import CONNTEL, cli, drop_pg_database, new_store, store_args

from conntel.store.migrations import migrations


def _check(db, check: bool = True) -> dict:
    return cli("store", "check", db=db, check=check)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_intact_store_passes_with_its_schema_version_and_row_counts(tmp_path: Path, backend: str):
    db = new_store(tmp_path, backend)
    try:
        account = cli("accounts", "create", db=db)["id"]
        for _ in range(3):
            cli("connectors", "create", "--account", account, db=db)
        report = _check(db)
        latest = max(version for version, _ in migrations(backend))
        assert report["intact"] is True and report["problems"] == []
        assert report["schema_version"] == report["latest_schema_version"] == latest
        assert report["upgrade_pending"] is False
        assert report["tables"]["accounts"] == 1 and report["tables"]["connectors"] == 3
        assert report["tables"]["events"] == 0
        # The installed command end to end: exit status 0, a readable summary.
        done = subprocess.run([*CONNTEL, "store", "check", *store_args(db)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "intact" in done.stdout and "connectors: 3 rows" in done.stdout
    finally:
        if backend == "postgres":
            drop_pg_database(str(db))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_store_from_a_newer_conntel_is_not_intact(tmp_path: Path, backend: str):
    db = new_store(tmp_path, backend)
    try:
        cli("accounts", "create", db=db)
        _execute(db, "INSERT INTO schema_migrations VALUES (9999, 0)")
        report = _check(db, check=False)
        assert report["returncode"] == 1
        report = _check_json_anyway(db)
        assert report["intact"] is False
        assert "made by a newer conntel: schema version 9999" in report["problems"][0]
    finally:
        if backend == "postgres":
            drop_pg_database(str(db))


def test_a_damaged_sqlite_file_fails_integrity_check(tmp_path: Path):
    db = tmp_path / "conntel.db"
    account = cli("accounts", "create", db=db)["id"]
    for _ in range(200):  # enough rows for index and table pages of their own
        cli("connectors", "create", "--account", account, db=db)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'connectors'").fetchone()
    data = bytearray(db.read_bytes())
    start = (root - 1) * page_size
    data[start + 8 : start + 200] = b"\xa5" * 192  # scribble over the connectors' root page
    db.write_bytes(bytes(data))
    report = _check_json_anyway(db)
    assert report["intact"] is False
    assert any(problem.startswith(("integrity_check", "cannot be read")) for problem in report["problems"])
    assert _check(db, check=False)["returncode"] == 1


def test_what_is_not_a_conntel_store_is_not_intact(tmp_path: Path):
    missing = _check_json_anyway(tmp_path / "missing.db")
    assert missing["intact"] is False and missing["problems"] == [f"no such file: {tmp_path / 'missing.db'}"]
    assert not (tmp_path / "missing.db").exists()  # check never creates a store
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert _check_json_anyway(garbage)["intact"] is False
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert "not a conntel store" in _check_json_anyway(foreign)["problems"][0]


def _check_json_anyway(db) -> dict:
    from conntel.store.check import check_store

    return asyncio.run(check_store(str(db))).as_dict()


def _execute(db, sql: str) -> None:
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            conn.execute(sql)
    else:
        subprocess.run(["psql", db, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)
