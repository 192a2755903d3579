"""The dashboard's fleet page at scale: a fleet of N connectors, a feeder of events, and the browser's driver.

Shared by tests/test_dashboard_scale.py (1,000 connectors, correctness) and bench/dashboard.py (5,000,
timed). The fleet: connectors named `fleet-00000`... (so that sorting by id is the same in Python and in
the page), made with the admin module on the running server's store; a tenth fail their latest upgrade,
a fifth never push anything (silent), the rest are healthy. Their events go through the ingestion API.
The feeder then posts `rate` events a second (Reconcile, which changes no health) spread over the
connectors that have reported, from a thread, until stopped.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from helpers import World, bearer, env_without_proxies

from conntel import admin
from conntel.store import open_store

HERE = Path(__file__).resolve().parent / "dashboard"
SCALE_DRIVER = HERE / "scale.mjs"
FEED_TICK = 0.1  # seconds between the feeder's rounds of posts
CONNECTORS_PER_TICK = 5  # each round posts to this many connectors, rate * FEED_TICK events in all


@dataclass
class Fleet:
    ids: list[str]
    health: dict[str, str]  # what the server's rules make of each

    def counts(self) -> dict[str, int]:
        counts = {"all": len(self.ids), "failing": 0, "silent": 0, "healthy": 0}
        for health in self.health.values():
            counts[health] += 1
        return counts

    def reporting(self) -> list[str]:
        return [cid for cid in self.ids if self.health[cid] != "silent"]


def connector_name(index: int) -> str:
    return f"fleet-{index:05d}"


def build_fleet(world: World, size: int) -> Fleet:
    """`size` connectors in the world's account besides its own (which never reports: silent)."""
    ids = [connector_name(i) for i in range(size)]

    async def create() -> None:
        store = open_store(str(world.db))
        await store.start()
        try:
            for cid in ids:
                await admin.create_connector(store, world.account, cid)
        finally:
            await store.close()

    asyncio.run(create())
    now = int(time.time())
    health = {world.connector: "silent"}
    batches: list[tuple[str, list[dict]]] = []
    for index, cid in enumerate(ids):
        if index % 5 == 1:
            health[cid] = "silent"  # never pushes anything
            continue
        failing = index % 10 == 3
        finish = "FinishUpgradeFailure" if failing else "FinishUpgradeSuccess"
        events = [
            {"t": now - 120, "n": 0, "e": {"k": "StartUpgrade", "url": "https://downloads.example.com/u.tar"},
             "v": "2026.3.1"},
            {"t": now - 60, "n": 0, "e": {"k": finish}, "v": "2026.3.1" if failing else "2026.3.2"},
        ]  # fmt: skip
        health[cid] = "failing" if failing else "healthy"
        batches.append((cid, events))
    with httpx.Client(headers=bearer(world.write_token), timeout=60) as client:

        def post(batch: tuple[str, list[dict]]) -> None:
            response = client.post(world.events_url(batch[0]), json=batch[1])
            assert response.status_code == 200, response.text

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, batches))
    return Fleet([world.connector, *ids], health)


def push_tunnel_down(world: World, connector: str) -> None:
    """A snapshot whose one tunnel (`t1`) is down."""
    snapshot = {
        "count_reclaim_failures": 0, "count_reclaimed_paths": 0, "count_record_failed": 0,
        "count_transmit_failures": 0, "t": int(time.time()), "v": "2026.3.2",
        "tunnels": [{"tunnel_id": "t1", "health_state": "down", "health_value": 3, "interface_name": "xfrm0"}],
    }  # fmt: skip
    url = world.events_url(connector).removesuffix("/events") + "/snapshots"
    response = httpx.post(url, json=[snapshot], headers=bearer(world.write_token), timeout=30)
    assert response.status_code == 200, response.text


def server_health(world: World) -> dict[str, dict]:
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/telemetry/health"
    items = httpx.get(url, headers=bearer(world.read_token), timeout=30).json()["result"]["items"]
    return {item["connector_id"]: item for item in items}


def tunnels_count(world: World, connector: str) -> bool:
    """Whether this server's health counts a tunnel down in a snapshot (and so announces health changes
    that no event explains on the stream): push one for `connector` and look. Fleet health from snapshots
    and health messages on the stream came together; a server without them leaves the connector healthy.
    """
    push_tunnel_down(world, connector)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if server_health(world)[connector]["reason"] == "tunnel_down":
            return True
        time.sleep(0.2)
    return False


@dataclass
class Feeder:
    """Posts `rate` events a second over `connectors` through the ingestion API, from a thread."""

    world: World
    connectors: list[str]
    rate: int
    posted: int = 0
    failed: int = 0
    started: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Feeder:
        assert self._thread is None, "the feeder is already running"
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        seconds = time.monotonic() - self.started
        if self._thread is not None:
            self._thread.join(timeout=30)
        return {"posted": self.posted, "failed": self.failed, "seconds": round(seconds, 1),
                "rate": round(self.posted / max(seconds, 1e-9))}  # fmt: skip

    def _run(self) -> None:
        per_post = max(1, round(self.rate * FEED_TICK / CONNECTORS_PER_TICK))
        started = self.started
        tick = 0
        n = 0
        with httpx.Client(headers=bearer(self.world.write_token), timeout=30) as client:
            while not self._stop.is_set():
                t = int(time.time())
                for slot in range(CONNECTORS_PER_TICK):
                    cid = self.connectors[(tick * CONNECTORS_PER_TICK + slot) % len(self.connectors)]
                    events = [
                        {"t": t, "n": n + i, "e": {"k": "Reconcile", "changed": False}, "v": "2026.3.2"}
                        for i in range(per_post)
                    ]
                    try:
                        response = client.post(self.world.events_url(cid), json=events)
                        ok = response.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        self.posted += per_post
                    else:
                        self.failed += per_post
                n += per_post  # (t, n) stays unique per connector within a second
                tick += 1
                time.sleep(max(0.0, started + tick * FEED_TICK - time.monotonic()))


def run_driver(node: str, script: Path, config: dict, answers: dict, log: Path, timeout: float = 240) -> dict:
    """Run a browser driver (drive.mjs, scale.mjs), answering its pauses from `answers`; return its report."""
    with open(log, "w+") as stderr:
        proc = subprocess.Popen(
            [node, str(script)],
            cwd=HERE,
            env={**env_without_proxies(), "DASHBOARD_CONFIG": json.dumps(config)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            report = None
            assert proc.stdout is not None and proc.stdin is not None
            for line in proc.stdout:
                message = json.loads(line)
                if "pause" not in message:
                    report = message
                    break
                proc.stdin.write(json.dumps(answers[message["pause"]]()) + "\n")
                proc.stdin.flush()
            proc.stdin.close()
            returncode = proc.wait(timeout=60)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
        stderr.seek(0)
        assert returncode == 0 and report is not None, f"{script.name} failed ({returncode}):\n{stderr.read()}"
    return report


def drive_scale(node: str, config: dict, answers: dict, log: Path, timeout: float = 240) -> dict:
    """Run scale.mjs, answering its pauses from `answers`; return its report."""
    return run_driver(node, SCALE_DRIVER, config, answers, log, timeout)
