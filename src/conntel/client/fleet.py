"""`conntel simulate`: a fleet of virtual connectors pushing events to a server, like real ones.

Each virtual connector follows conntel.client.lifecycles on a simulated
clock that starts at `start` and runs `speed` times faster than real time,
as an appliance (conntel.client.appliance): with its own credential it posts
the events it has recorded since its last turn through the ingestion API:
batched, retried on failure (a retry of an acknowledged batch is harmless:
identical events count as duplicates), (t, n) increasing, `v` following
upgrades; unless turned off, a full snapshot of its own metrics for every
simulated minute (conntel.client.snapshot_feed); a check-in every 10
simulated seconds; and it executes the operations it learns of. Without
operations, the same seed gives the same connectors, the same events and the
same snapshots relative to `start`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from conntel.client.appliance import HEARTBEAT_SECONDS, VirtualAppliance
from conntel.client.http import errors_text
from conntel.client.snapshot_feed import PushError, post_snapshots, snapshots_path
from conntel.client.urls import api_base

SERIAL_PREFIX = "SIM"  # simulated connectors are recognised by their device serial number
MIN_TICK = 0.05  # real seconds: at most 20 check-ins a second per connector, whatever the speed


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
    checkins: int = 0  # check-ins made (pushes are check-ins too, not counted here)
    executed: int = 0  # operations executed and reported


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


async def device_credentials(client: httpx.AsyncClient, opts: FleetOptions, ids: list[str]) -> list[str]:
    """Each connector's own credential, minted with the account token (which pushes nothing itself)."""
    path = f"/accounts/{opts.account}/magic/connectors/{{}}/credential"
    return [(await _call(client, "POST", path.format(cid)))["value"] for cid in ids]


async def run_fleet(opts: FleetOptions, progress: Callable[[FleetStats], None] | None = None) -> FleetStats:
    try:
        base = api_base(opts.url)
    except ValueError as exc:
        raise FleetError(str(exc)) from None
    stats = FleetStats()
    headers = {"Authorization": f"Bearer {opts.token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        ids = await ensure_connectors(client, opts)
        credentials = await device_credentials(client, opts, ids)
        start = opts.start if opts.start is not None else int(time.time())
        rng = random.Random(opts.seed)
        seeds = [rng.random() for _ in ids]
        fleet = [
            VirtualAppliance(cid, seed, start, opts.failure_rate, opts.snapshots)
            for cid, seed in zip(ids, seeds, strict=True)
        ]
        for appliance, credential in zip(fleet, credentials, strict=True):
            appliance.credential = credential
        # A tick is at most a heartbeat's worth of simulated time, so every connector checks in that often;
        # but no shorter than MIN_TICK of real time (at high speeds a check-in then covers more).
        tick = max(min(opts.interval, HEARTBEAT_SECONDS / opts.speed), MIN_TICK)
        began = time.monotonic()
        while True:
            elapsed = time.monotonic() - began
            until = start + int(elapsed * opts.speed)
            await asyncio.gather(*(_turn(client, opts, appliance, until, stats) for appliance in fleet))
            if progress is not None:
                progress(stats)
            if opts.duration is not None and elapsed >= opts.duration:
                return stats
            await asyncio.sleep(tick)


async def _turn(
    client: httpx.AsyncClient, opts: FleetOptions, appliance: VirtualAppliance, until: int, stats: FleetStats
) -> None:
    """One connector's turn: push what it recorded, check in when due, execute what it learns."""
    events, snapshots = appliance.due(until)
    appliance.note_events(events)
    headers = {"Authorization": f"Bearer {appliance.credential}"}
    if events:
        appliance.learn(await _push(client, opts, appliance.connector_id, events, headers, stats), until)
    if snapshots:
        path = snapshots_path(opts.account, appliance.connector_id)
        try:
            accepted, duplicates, retries, operation = await post_snapshots(
                client, path, snapshots, opts.max_retries, headers
            )
        except PushError as exc:
            raise FleetError(str(exc)) from None
        stats.snapshots += accepted
        stats.snapshot_duplicates += duplicates
        stats.retries += retries
        appliance.learn(operation, until)
    if events or snapshots:
        appliance.next_heartbeat = until + HEARTBEAT_SECONDS  # a push is a check-in too
    if appliance.may_check_in and (until >= appliance.next_heartbeat or appliance.to_report is not None):
        reported = appliance.to_report
        body = {"executed": reported} if reported is not None else None
        answer = await _request(client, opts, "/checkin", appliance.connector_id, body, headers, stats)
        appliance.next_heartbeat = until + HEARTBEAT_SECONDS
        stats.checkins += 1
        if reported is not None:
            appliance.to_report = None
            stats.executed += 1
        appliance.learn(answer.get("operation"), until)


async def _push(
    client: httpx.AsyncClient,
    opts: FleetOptions,
    connector_id: str,
    batch: list[dict[str, Any]],
    headers: dict[str, str],
    stats: FleetStats,
) -> dict[str, Any] | None:
    """Post a batch of events; the pending operation the answer carries, if any."""
    result = await _request(client, opts, "/telemetry/events", connector_id, batch, headers, stats)
    stats.posted += result["accepted"]
    stats.duplicates += result["duplicates"]
    stats.by_connector[connector_id] = stats.by_connector.get(connector_id, 0) + len(batch)
    operation: dict[str, Any] | None = result.get("operation")
    return operation


async def _request(
    client: httpx.AsyncClient,
    opts: FleetOptions,
    tail: str,
    connector_id: str,
    body: Any,
    headers: dict[str, str],
    stats: FleetStats,
) -> dict[str, Any]:
    """POST to one of the connector's device routes, retried with backoff on transport errors, 5xx and 429."""
    path = f"/accounts/{opts.account}/magic/connectors/{connector_id}{tail}"
    for attempt in range(opts.max_retries + 1):
        stats.requests += 1
        try:
            response = await client.post(path, json=body, headers=headers)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            result: dict[str, Any] = response.json()["result"]
            return result
        if response is not None and response.status_code < 500 and response.status_code != 429:
            what = "a batch" if tail.startswith("/telemetry") else "a check-in"
            raise FleetError(f"The server refused {what} of {connector_id}: {errors_text(response)}")
        stats.retries += 1
        await asyncio.sleep(min(0.25 * 2**attempt, 10))
    raise FleetError(f"Gave up on a request of {connector_id} after {opts.max_retries} retries")


async def _call(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise FleetError(f"Cannot reach {client.base_url}: {exc}") from None
    if response.status_code != 200:
        raise FleetError(f"{method} {path}: {errors_text(response)}")
    return response.json()["result"]
