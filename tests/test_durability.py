"""An acknowledged batch survives kill -9; SIGTERM shuts down cleanly."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

import pytest

from helpers import Server, bearer, build_world, cli, drop_pg_database

T0 = 1_700_000_000


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_acknowledged_batches_survive_kill_9(tmp_path: Path, backend: str):
    world = build_world(tmp_path, backend)
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(headers=bearer(world.write_token), timeout=10) as client:
            batch_no = 0
            while not stop.is_set():
                t = T0 + worker * 1_000_000 + batch_no
                batch = [{"t": t, "n": n, "e": {"k": "Reconcile", "w": worker}} for n in range(200)]
                try:
                    response = client.post(world.events_url(), json=batch)
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    acknowledged.append(t)
                batch_no += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 40:
        threading.Event().wait(0.02)
    world.server.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join()

    server = Server(world.db, log_dir=tmp_path).start()
    try:
        with httpx.Client(headers=bearer(world.read_token), base_url=world.events_url().replace(world.server.base_url, server.base_url)) as client:
            for t in acknowledged:
                for n in (0, 199):  # first and last of each batch: all-or-nothing
                    response = client.get(f"/{t}.{n}")
                    assert response.status_code == 200, (t, n, response.text)
    finally:
        server.stop()
        if backend == "postgres":
            drop_pg_database(world.db)


def test_sigterm_finishes_cleanly(tmp_path: Path):
    world = build_world(tmp_path)
    # uvicorn re-raises the signal after its graceful shutdown, as a service manager expects.
    assert world.server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    log = world.server.server_log()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
    # The store was closed: SQLite folds the write-ahead log back when the last connection closes.
    assert not Path(f"{world.db}-wal").exists()
    # The store is consistent and usable by the CLI afterwards.
    assert cli("accounts", "create", "--id", "after", db=world.db) == {"id": "after", "name": "after"}
