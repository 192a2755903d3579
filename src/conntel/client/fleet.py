"""`conntel simulate`: a fleet of virtual connectors pushing events to a server, like real ones.

Each virtual connector follows conntel.client.lifecycles on a simulated
clock that starts at `start` and runs `speed` times faster than real time.
Every `interval` seconds each connector posts the events it has recorded
since, through the ingestion API: batched, retried on failure (a retry of
an acknowledged batch is harmless: identical events count as duplicates),
(t, n) increasing, `v` following upgrades; and, unless turned off, a full
snapshot of its own metrics for every simulated minute
(conntel.client.snapshot_feed). The same seed gives the same connectors, the
same events and the same snapshots relative to `start`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from conntel.client import lifecycles, metrics
from conntel.client.http import errors_text
from conntel.client.snapshot_feed import PushError, SnapshotFeed, post_snapshots, snapshots_path
from conntel.client.urls import api_base

SERIAL_PREFIX = "SIM"  # simulated connectors are recognised by their device serial number


@dataclass(frozen=True)
class FleetOptions:
    url: str  # the API base (http://127.0.0.1:8787/client/v4) or the server's root (http://127.0.0.1:8787)
    token: str
    account: str
    connectors: int = 10
    speed: float = 60.0
    failure_rate: float = 0.05
    seed: int = 1
    duration: float | None = None  # real seconds; None: until stopped
    start: int | None = None  # simulated clock start (epoch seconds); None: now
    interval: float = 1.0  # real seconds between posts
    max_retries: int = 8
    snapshots: bool = True  # report a snapshot every simulated minute too


@dataclass
class FleetStats:
    posted: int = 0  # events acknowledged by the server
    duplicates: int = 0
    retries: int = 0
    requests: int = 0
    by_connector: dict[str, int] = field(default_factory=dict)
    snapshots: int = 0  # snapshots acknowledged by the server
    snapshot_duplicates: int = 0


@dataclass
class _Virtual:
    connector_id: str
    stream: Iterator[dict[str, Any]]
    pending: dict[str, Any] | None = None

    def due(self, until: int) -> list[dict[str, Any]]:
        """The events recorded up to simulated time `until`."""
        batch: list[dict[str, Any]] = []
        while True:
            if self.pending is None:
                self.pending = next(self.stream)
            if self.pending["t"] > until:
                return batch
            batch.append(self.pending)
            self.pending = None


class FleetError(RuntimeError):
    pass


def serial_number(seed: int, index: int) -> str:
    return f"{SERIAL_PREFIX}-{seed}-{index:04d}"


async def ensure_connectors(client: httpx.AsyncClient, opts: FleetOptions) -> list[str]:
    """The fleet's connector ids, creating through the API those that do not exist yet."""
    path = f"/accounts/{opts.account}/magic/connectors"
    existing = await _call(client, "GET", path)
    by_serial = {c.get("device", {}).get("serial_number"): c["id"] for c in existing}
    ids = []
    for index in range(opts.connectors):
        serial = serial_number(opts.seed, index)
        if serial not in by_serial:
            body = {"device": {"serial_number": serial}, "notes": f"conntel simulate --seed {opts.seed}"}
            by_serial[serial] = (await _call(client, "POST", path, json=body))["id"]
        ids.append(by_serial[serial])
    return ids


async def run_fleet(opts: FleetOptions, progress: Callable[[FleetStats], None] | None = None) -> FleetStats:
    try:
        base = api_base(opts.url)
    except ValueError as exc:
        raise FleetError(str(exc)) from None
    stats = FleetStats()
    headers = {"Authorization": f"Bearer {opts.token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        ids = await ensure_connectors(client, opts)
        start = opts.start if opts.start is not None else int(time.time())
        rng = random.Random(opts.seed)
        seeds = [rng.random() for _ in ids]
        fleet = [
            _Virtual(cid, lifecycles.connector_events(random.Random(seed), start, opts.failure_rate))
            for cid, seed in zip(ids, seeds, strict=True)
        ]
        feeds = snapshot_feeds(ids, seeds, start, opts) if opts.snapshots else []
        began = time.monotonic()
        while True:
            elapsed = time.monotonic() - began
            until = start + int(elapsed * opts.speed)
            await asyncio.gather(
                *(_push(client, opts, v, v.due(until), stats) for v in fleet),
                *(_push_snapshots(client, opts, feed, feed.due(until), stats) for feed in feeds),
            )
            if progress is not None:
                progress(stats)
            if opts.duration is not None and elapsed >= opts.duration:
                return stats
            await asyncio.sleep(opts.interval)


async def _push(
    client: httpx.AsyncClient, opts: FleetOptions, virtual: _Virtual, batch: list[dict[str, Any]], stats: FleetStats
) -> None:
    if not batch:
        return
    path = f"/accounts/{opts.account}/magic/connectors/{virtual.connector_id}/telemetry/events"
    for attempt in range(opts.max_retries + 1):
        stats.requests += 1
        try:
            response = await client.post(path, json=batch)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            result = response.json()["result"]
            stats.posted += result["accepted"]
            stats.duplicates += result["duplicates"]
            stats.by_connector[virtual.connector_id] = stats.by_connector.get(virtual.connector_id, 0) + len(batch)
            return
        if response is not None and response.status_code < 500 and response.status_code != 429:
            raise FleetError(f"The server refused a batch of {virtual.connector_id}: {errors_text(response)}")
        stats.retries += 1
        await asyncio.sleep(min(0.25 * 2**attempt, 10))
    raise FleetError(f"Gave up on a batch of {virtual.connector_id} after {opts.max_retries} retries")


def snapshot_feeds(ids: list[str], seeds: list[float], start: int, opts: FleetOptions) -> list[SnapshotFeed]:
    """Each connector's snapshots, from the same seeds (so the same events) as its event stream."""
    streams = metrics.fleet_snapshots(seeds, start, opts.failure_rate)
    return [SnapshotFeed(cid, stream) for cid, stream in zip(ids, streams, strict=True)]


async def _push_snapshots(
    client: httpx.AsyncClient, opts: FleetOptions, feed: SnapshotFeed, batch: list[dict[str, Any]], stats: FleetStats
) -> None:
    if not batch:
        return
    try:
        accepted, duplicates, retries = await post_snapshots(
            client, snapshots_path(opts.account, feed.connector_id), batch, opts.max_retries
        )
    except PushError as exc:
        raise FleetError(str(exc)) from None
    stats.snapshots += accepted
    stats.snapshot_duplicates += duplicates
    stats.retries += retries


async def _call(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise FleetError(f"Cannot reach {client.base_url}: {exc}") from None
    if response.status_code != 200:
        raise FleetError(f"{method} {path}: {errors_text(response)}")
    return response.json()["result"]
