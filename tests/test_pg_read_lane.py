"""PostgreSQL's read lane (store/postgres.py ReadLane): Get Event's connections kept out of the pool.

More callers than lane connections wait in line and all get their answer;
other operations still find pool connections meanwhile; and when the lane's
connections are killed under it, the lane gives them back and borrows anew.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from helpers import Server, bearer, build_world, cli, cut_pg_connections, drop_pg_database, post_events

from conntel.store.coalesce import Coalescer
from conntel.store.postgres import PostgresStore

T0 = 1_700_000_000
EVENTS = 40


def _start_small(tmp_path: Path):
    """A PostgreSQL world whose server has a pool of 2: one lane connection, one for the rest."""
    world = build_world(tmp_path, "postgres")
    post_events(world, [{"t": T0 + i, "n": i, "e": {"k": "Init"}} for i in range(EVENTS)]).raise_for_status()
    world.server.stop()
    world.server = Server(world.db, log_dir=tmp_path, extra_args=("--pool-size", "2")).start()
    return world


def _asked_together_then_one_by_one(
    db: str,
    keys: list[tuple],
    ask: Callable[[PostgresStore], Callable[..., Awaitable[Any]]],
    coalescer: Callable[[PostgresStore], Coalescer | None],
    prepare: Callable[[PostgresStore], Awaitable[None]] | None = None,
) -> tuple[list, list, int]:
    """Every key asked of a fresh store (pool of 4) all at once, then one at a time: both answers, and the
    queries the coalescer sent for the first."""

    async def run() -> tuple[list, list, int]:
        store = PostgresStore(db, pool_size=4)
        await store.start()
        try:
            if prepare is not None:
                await prepare(store)
            together = await asyncio.gather(*(ask(store)(*key) for key in keys))
            lookups = coalescer(store)
            assert lookups is not None
            queries = lookups.queries
            one_by_one = [await ask(store)(*key) for key in keys]
            return together, one_by_one, queries
        finally:
            await store.close()

    return asyncio.run(run())


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
    world = _start_small(tmp_path)
    world.server.stop()
    keys = [(world.account, world.connector, T0 + i % EVENTS, i % EVENTS) for i in range(150)]
    keys += [(world.account, world.connector, T0 + i, i + 1) for i in range(20)]  # no such n
    keys += [(world.account, "0" * 32, T0, 0), ("1" * 32, world.connector, T0, 0)]  # no such connector/account
    keys += keys[:10]  # the same key twice in one batch

    try:
        together, one_by_one, queries = _asked_together_then_one_by_one(
            world.db, keys, lambda store: store.get_event, lambda store: store._event_lookups
        )
        assert together == one_by_one
        found = [(event.t, event.n) if event is not None else None for event in together]
        assert found[:150] == [(T0 + i % EVENTS, i % EVENTS) for i in range(150)]
        assert found[150:172] == [None] * 22
        assert found[172:] == found[:10]
        assert queries < len(keys) / 4, queries  # 182 lookups in a handful of queries (32 keys at most each)
    finally:
        drop_pg_database(world.db)


def test_pending_operations_asked_together_go_in_few_queries_and_each_gets_its_own(tmp_path: Path):
    """A bare check-in's question (its connector's pending operation) is coalesced like Get Event: asked
    together, each connector still gets exactly its own operation, or None (none pending, one already
    executed, another account's connector, an unknown one, the same connector twice in one batch)."""
    from conntel.interrupts import InterruptRecord

    world = _start_small(tmp_path)
    world.server.stop()
    connectors = [world.connector] + [cli("connectors", "create", "--account", world.account, db=world.db)["id"]
                                      for _ in range(5)]  # fmt: skip
    pending = {c: InterruptRecord(world.account, c, f"{i + 1:032x}", "reboot", i % 2 == 0, T0 * 10**6 + i)
               for i, c in enumerate(connectors[:3])}  # fmt: skip
    executed = InterruptRecord(world.account, connectors[3], "f" * 32, "restart", False, T0 * 10**6, T0 * 10**6 + 9)
    keys = [(world.account, connectors[i % len(connectors)]) for i in range(120)]
    keys += [
        (world.other_account, world.other_connector),
        (world.account, "0" * 32),
        (world.other_account, connectors[0]),
    ]
    keys += keys[:10]

    async def submit(store: PostgresStore) -> None:
        for record in [*pending.values(), executed]:
            await store.create_interrupt(record)

    try:
        together, one_by_one, queries = _asked_together_then_one_by_one(
            world.db, keys, lambda store: store.pending_interrupt, lambda store: store._pending_lookups, submit
        )
        assert together == one_by_one
        expected = [pending.get(connector) if account == world.account else None for account, connector in keys]
        assert together == expected
        assert sum(answer is not None for answer in together) == 3 * 20 + 6  # 20 rounds of 6, then the first 10 again
        assert queries < len(keys) / 4, queries
    finally:
        drop_pg_database(world.db)
