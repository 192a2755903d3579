"""A full disk on SQLite: ingestion answers 503 and the store stays intact (every acknowledged batch
readable, `store check` passes); pruning and backing up on a full disk fail cleanly. On a small
tmpfs made for the test (root only: CI runs as root)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import CONNTEL, Server, bearer, cli

T0 = 1_700_000_000
BATCH = 50


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fleet(db: Path) -> tuple[str, str, str]:
    account = cli("accounts", "create", db=db)["id"]
    connector = cli("connectors", "create", "--account", account, db=db)["id"]
    permissions = ["--permission", "Magic WAN Read", "--permission", "Magic WAN Write"]
    token = cli("tokens", "create", "--account", account, *permissions, db=db)["value"]
    return account, connector, token


def _batch(t: int) -> list[dict]:
    return [{"t": t, "n": n, "e": {"k": "Reconcile", "pad": "x" * 1000}} for n in range(BATCH)]


def test_a_full_disk_is_a_503_and_leaves_the_store_intact_with_every_acknowledged_batch(tmp_path: Path):
    with small_disk(tmp_path / "disk", "3m") as disk:
        db = disk / "conntel.db"
        account, connector, token = _fleet(db)
        server = Server(db, log_dir=tmp_path).start()
        url = f"{server.base_url}/accounts/{account}/magic/connectors/{connector}/telemetry/events"
        acknowledged, refused = [], []
        try:
            with httpx.Client(headers=bearer(token), timeout=30) as client:
                t = T0
                while len(refused) < 5 and t < T0 + 1000:  # 3 MB hold about 50 batches
                    response = client.post(url, json=_batch(t))
                    assert response.status_code in (200, 503), response.text
                    if response.status_code == 200:
                        acknowledged.append(t)
                    else:
                        assert response.json()["errors"][0]["code"] == 20017
                        assert response.headers["Retry-After"] == "1"
                        refused.append(t)
                    t += 1
                assert len(refused) == 5 and acknowledged
                for t in acknowledged:  # still served, each batch whole
                    for n in (0, BATCH - 1):
                        assert client.get(f"{url}/{t}.{n}").status_code == 200, (t, n)
                for t in refused:  # and nothing of a refused batch
                    assert client.get(f"{url}/{t}.0").status_code == 404
                assert client.get(f"{server.origin}/readyz").status_code in (200, 503)
        finally:
            server.stop()
        assert "Traceback" not in server.server_log()
        assert cli("store", "check", db=db)["intact"] is True

        # Pruning on the full disk: done, or refused in one line; either way the store stays intact.
        pruned = subprocess.run([*CONNTEL, "store", "prune", "--db", str(db), "--events-older-than", "1s"],
                                capture_output=True, text=True)  # fmt: skip
        assert pruned.returncode in (0, 1) and "Traceback" not in pruned.stderr, pruned.stderr
        if pruned.returncode == 1:
            assert "disk is full" in pruned.stderr
        report = cli("store", "check", db=db)
        assert report["intact"] is True
        assert report["tables"]["events"] in (0, len(acknowledged) * BATCH)


def test_a_backup_onto_a_full_disk_fails_cleanly_and_leaves_nothing_behind(tmp_path: Path):
    db = tmp_path / "conntel.db"
    account, connector, token = _fleet(db)
    server = Server(db, log_dir=tmp_path).start()
    url = f"{server.base_url}/accounts/{account}/magic/connectors/{connector}/telemetry/events"
    try:
        with httpx.Client(headers=bearer(token), timeout=30) as client:
            for t in range(T0, T0 + 20):  # about 1 MB
                assert client.post(url, json=_batch(t)).status_code == 200
    finally:
        server.stop()
    with small_disk(tmp_path / "disk", "256k") as disk:
        done = subprocess.run([*CONNTEL, "store", "backup", "--db", str(db), "--to", str(disk / "copy.db")],
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "failed" in done.stderr and "full" in done.stderr, done.stderr
        assert list(disk.iterdir()) == []  # no copy, no partial file
    assert cli("store", "check", db=db)["intact"] is True
