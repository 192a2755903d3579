"""Retention: deleting telemetry collected longer ago than the operator keeps it, a little at a time.

Rows go by `a`, when conntel collected them (never the connector's own clock), in small
transactions with rests between them, so ingestion and reads keep the store nearly all the time.
`conntel serve --retain-events/--retain-snapshots` runs `prune_pass` in the background in one
process at a time (server/exclusive.py); `conntel store prune` runs it once.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping

from conntel.store.base import Store

# Rows per transaction: a few milliseconds of the SQLite writer (or a PostgreSQL connection).
BATCH = 100
# After each batch, rest this many times as long as the batch took, and at least REST seconds: the
# pruner holds the writer a twentieth of the time at most, and deletes at most BATCH / REST rows a
# second (200: deletions write as many pages as insertions, and share the disk with them). In
# steady state it deletes what arrived a retention ago, far less; a backlog of millions of rows
# (retention turned on for a year of data) takes hours, and holds nothing up meanwhile.
PACE = 19.0
REST = 0.5
LEASE = "retention"  # the lease name: one process prunes at a time

_DURATION = re.compile(r"([0-9]{1,9})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 100 * 365 * 86400


def parse_duration(text: str) -> int:
    """`45s`, `30m`, `12h`, `90d` as seconds (more than 0, at most a century); ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError("a number followed by s, m, h or d, e.g. 90d")
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    if not 0 < seconds <= MAX_DURATION:
        raise ValueError("more than 0 and at most 36500d")
    return seconds


def policy(events: int | None, snapshots: int | None) -> dict[str, int]:
    """The tables to prune and how many seconds of each to keep (a table left out is kept forever)."""
    keep = {"events": events, "snapshots": snapshots}
    return {table: seconds for table, seconds in keep.items() if seconds is not None}


def check_interval(keep: Mapping[str, int]) -> float:
    """How often a server looks for rows past retention: a tenth of the shortest retention, 1 s to 60 s,
    so a row outlives its retention by at most about a tenth of it (or a minute)."""
    return min(60.0, max(1.0, min(keep.values()) / 10))


async def prune_pass(
    store: Store,
    keep: Mapping[str, int],
    now: float | None = None,
    still_held: Callable[[], Awaitable[bool]] | None = None,
    batch: int = BATCH,
    paced: bool = True,
) -> dict[str, int]:
    """Delete every row collected more than its table's retention before `now`; rows deleted per table.

    Stops early when `still_held` says this process no longer holds the retention lease. `paced=False`
    skips the rests (bench/retention.py, which simulates the clock)."""
    now = time.time() if now is None else now
    deleted: dict[str, int] = {}
    for table, seconds in keep.items():
        before = int(now - seconds)
        deleted[table] = 0
        while True:
            started = time.monotonic()
            count = await store.prune(table, before, batch)
            deleted[table] += count
            if count < batch or (still_held is not None and not await still_held()):
                break
            if paced:
                await asyncio.sleep(max(REST, PACE * (time.monotonic() - started)))
    pruned = [table for table, count in deleted.items() if count]
    if pruned:
        await store.reclaim(pruned)
    return deleted


async def count_pass(store: Store, keep: Mapping[str, int], now: float | None = None) -> dict[str, int]:
    """What prune_pass would delete now, per table (`conntel store prune --dry-run`)."""
    now = time.time() if now is None else now
    return {table: await store.count_older(table, int(now - seconds)) for table, seconds in keep.items()}
