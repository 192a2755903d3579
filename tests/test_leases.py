"""Leases: one process at a time among every process sharing a store, on both backends."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, drop_pg_database, new_store

from conntel.store import open_store

# Each process takes part in ROUNDS races: at the same wall-clock instants both try to take a
# fresh lease; each prints which it took.
ROUNDS = 15
RACER = """
import asyncio, json, sys, time
from conntel.store import open_store

async def main(database, start, who):
    store = open_store(database, pool_size=2)
    await store.start()
    won = []
    for i in range(int(sys.argv[4])):
        await asyncio.sleep(max(0.0, start + i * 0.15 - time.time()))
        if await store.acquire_lease(f"race-{i}", who, 60):
            won.append(i)
    await store.close()
    print(json.dumps(won))

asyncio.run(main(sys.argv[1], float(sys.argv[2]), sys.argv[3]))
"""


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path):
    store = new_store(tmp_path, request.param)
    asyncio.run(_started(str(store)))  # migrated once, so the racers do not race on that
    yield str(store)
    if request.param == "postgres":
        drop_pg_database(str(store))


async def _started(database: str) -> None:
    store = open_store(database)
    await store.start()
    await store.close()


def test_two_processes_racing_for_each_lease_never_both_take_it(database: str):
    start = time.time() + 2.0  # both processes are running by then
    env = {"PYTHONPATH": str(ROOT / "src")}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, database, str(start), who, str(ROUNDS)], stdout=subprocess.PIPE, env=env
        )
        for who in ("one", "two")
    ]
    won = [set(json.loads(racer.communicate(timeout=60)[0])) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert won[0].isdisjoint(won[1])
    assert won[0] | won[1] == set(range(ROUNDS))  # every lease went to exactly one of them


def test_a_lease_is_renewed_by_its_holder_released_or_taken_once_lapsed(database: str):
    async def scenario() -> None:
        first, second = open_store(database), open_store(database)  # two stores: two connections
        await first.start()
        await second.start()
        try:
            assert await first.acquire_lease("job", "A", 0.6)
            assert not await second.acquire_lease("job", "B", 0.6)
            assert await first.acquire_lease("job", "A", 0.6)  # renewed by its holder
            await asyncio.sleep(0.8)  # lapsed: A did not renew in time
            assert await second.acquire_lease("job", "B", 60)
            assert not await first.acquire_lease("job", "A", 60)  # A learns it lost it
            await first.release_lease("job", "A")  # not A's: changes nothing
            assert not await first.acquire_lease("job", "A", 60)
            await second.release_lease("job", "B")
            assert await first.acquire_lease("job", "A", 60)  # free at once once released
            assert await second.acquire_lease("other job", "B", 60)  # leases are independent
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())
