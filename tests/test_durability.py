"""An acknowledged batch survives kill -9; SIGTERM shuts down cleanly."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import Server, bearer, build_world, cli, drop_pg_database

T0 = 1_700_000_000


BATCH = 200


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_under_six_writers_loses_no_acknowledged_batch_and_tears_none(tmp_path: Path, backend: str):
    world = build_world(tmp_path, backend)
    attempted: list[int] = []
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(headers=bearer(world.write_token), timeout=10) as client:
            batch_no = 0
            while not stop.is_set():
                t = T0 + worker * 1_000_000 + batch_no  # one `t` per batch, n = 0..BATCH-1
                batch = [{"t": t, "n": n, "e": {"k": "Reconcile", "w": worker}} for n in range(BATCH)]
                attempted.append(t)
                try:
                    response = client.post(world.events_url(), json=batch)
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    acknowledged.append(t)
                batch_no += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 60:
        time.sleep(0.01)
    world.server.stop(signal.SIGKILL)  # mid-stream: requests are in flight
    stop.set()
    for thread in threads:
        thread.join()

    server = Server(world.db, log_dir=tmp_path).start()  # the store opens cleanly after the crash
    try:
        url = world.events_url().replace(world.server.base_url, server.base_url)
        with httpx.Client(headers=bearer(world.read_token), timeout=10) as client:
            stored = {}
            for t in attempted:
                result = client.get(url, params={"from": t, "to": t, "limit": 1000}).json()["result"]
                stored[t] = result["count"]
        assert all(stored[t] == BATCH for t in acknowledged), "an acknowledged batch is incomplete"
        assert all(count in (0, BATCH) for count in stored.values()), "a batch was written in part"
        if backend == "sqlite":
            with sqlite3.connect(world.db) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        server.stop()
        if backend == "postgres":
            drop_pg_database(world.db)


def test_sigterm_finishes_cleanly(tmp_path: Path):
    world = build_world(tmp_path)
    assert world.server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # a clean exit, or the signal re-raised
    log = world.server.server_log()
    assert "Traceback" not in log and "ERROR" not in log
    # The store was closed: SQLite folds the write-ahead log back when the last connection closes.
    assert not Path(f"{world.db}-wal").exists()
    # The store is consistent and usable by the CLI afterwards.
    assert cli("accounts", "create", "--id", "after", db=world.db) == {"id": "after", "name": "after"}
