"""PostgreSQL's read lane (store/postgres.py ReadLane): Get Event's connections kept out of the pool.

More callers than lane connections wait in line and all get their answer;
other operations still find pool connections meanwhile; and when the lane's
connections are killed under it, the lane gives them back and borrows anew.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from helpers import Server, bearer, build_world, cut_pg_connections, drop_pg_database, post_events

T0 = 1_700_000_000
EVENTS = 40


def _start_small(tmp_path: Path):
    """A PostgreSQL world whose server has a pool of 2: one lane connection, one for the rest."""
    world = build_world(tmp_path, "postgres")
    post_events(world, [{"t": T0 + i, "n": i, "e": {"k": "Init"}} for i in range(EVENTS)]).raise_for_status()
    world.server.stop()
    world.server = Server(world.db, log_dir=tmp_path, extra_args=("--pool-size", "2")).start()
    return world


def test_more_callers_than_lane_connections_all_get_their_event(tmp_path: Path):
    world = _start_small(tmp_path)
    try:

        async def burst() -> tuple[list[httpx.Response], list[httpx.Response]]:
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(headers=bearer(world.read_token), limits=limits, timeout=30) as client:
                gets = [client.get(f"{world.events_url()}/{T0 + i % EVENTS}.{i % EVENTS}") for i in range(200)]
                lists = [client.get(world.events_url(), params={"from": T0, "to": T0 + EVENTS}) for _ in range(10)]
                answers = await asyncio.gather(*gets, *lists)
            return answers[:200], answers[200:]

        gets, lists = asyncio.run(burst())
        assert [r.status_code for r in gets] == [200] * 200
        for i, response in enumerate(gets):
            assert (response.json()["result"]["t"], response.json()["result"]["n"]) == (T0 + i % EVENTS, i % EVENTS)
        assert [r.json()["result"]["count"] for r in lists] == [EVENTS] * 10  # the rest of the pool still served
    finally:
        world.server.stop()
        drop_pg_database(world.db)


def test_the_lane_recovers_when_its_connections_are_killed(tmp_path: Path):
    world = _start_small(tmp_path)
    url = f"{world.events_url()}/{T0}.0"
    try:
        assert httpx.get(url, headers=bearer(world.read_token)).status_code == 200
        cut_pg_connections(world.db)
        time.sleep(0.2)  # the server sees its connections close
        # The lane gives the lost connection back and borrows a new one: no request fails.
        statuses = [httpx.get(url, headers=bearer(world.read_token), timeout=10).status_code for _ in range(4)]
        assert statuses == [200] * 4, statuses
    finally:
        world.server.stop()
        drop_pg_database(world.db)


def test_get_events_waiting_together_go_in_few_queries_and_each_gets_its_own(tmp_path: Path):
    """Lookups that arrive together share queries (store/coalesce.py): each still gets exactly its own event,
    or None for one that does not exist (another connector's key, a missing `n`, a repeated key)."""
    from conntel.store.postgres import PostgresStore

    world = _start_small(tmp_path)
    world.server.stop()
    keys = [(world.account, world.connector, T0 + i % EVENTS, i % EVENTS) for i in range(150)]
    keys += [(world.account, world.connector, T0 + i, i + 1) for i in range(20)]  # no such n
    keys += [(world.account, "0" * 32, T0, 0), ("1" * 32, world.connector, T0, 0)]  # no such connector/account
    keys += keys[:10]  # the same key twice in one batch

    async def lookups() -> tuple[list, list, int]:
        store = PostgresStore(world.db, pool_size=4)
        await store.start()
        try:
            together = await asyncio.gather(*(store.get_event(*key) for key in keys))
            assert store._event_lookups is not None
            queries = store._event_lookups.queries
            one_by_one = [await store.get_event(*key) for key in keys]
            return together, one_by_one, queries
        finally:
            await store.close()

    try:
        together, one_by_one, queries = asyncio.run(lookups())
        assert together == one_by_one
        found = [(event.t, event.n) if event is not None else None for event in together]
        assert found[:150] == [(T0 + i % EVENTS, i % EVENTS) for i in range(150)]
        assert found[150:172] == [None] * 22
        assert found[172:] == found[:10]
        assert queries < len(keys) / 4, queries  # 182 lookups in a handful of queries (32 keys at most each)
    finally:
        drop_pg_database(world.db)
