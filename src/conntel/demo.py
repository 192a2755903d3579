"""`conntel demo`: a fresh store with a demo account, a simulated fleet and a token, then the server.

The terminal keeps what a newcomer needs: the token, the exports, a curl, the
dashboard's address, and one summary line refreshed in place. The server's own
output (one JSON line per request, uvicorn's messages) goes to a log file
beside the database (demo.db: demo.log).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import msgspec

from conntel import admin
from conntel.client import metrics
from conntel.client.fleet import FleetError, FleetOptions, FleetStats, run_fleet
from conntel.client.lifecycles import fleet
from conntel.config import Settings
from conntel.credentials import MAGIC_WAN_READ, MAGIC_WAN_WRITE
from conntel.events import decode_batch
from conntel.server.run import run
from conntel.snapshots import decode_batch as decode_snapshots
from conntel.store import open_store
from conntel.store.sqlite import check_replaceable

DEMO_ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"  # the reference page's example account
DEMO_CONNECTORS = ["lisbon-branch-01", "porto-dc-01", "berlin-office-02", "austin-store-17"]
DEMO_HOURS = 24
DEMO_FAILURE_RATE = 0.35
FLEET_SIZE = 8  # live simulated connectors beside the seeded ones
FLEET_SPEED = 60.0
RATE_WINDOW_SECONDS = 10  # the summary's events/s: over this many seconds


async def seed(database: str, seed_value: int) -> tuple[str, dict[str, Any], int]:
    """Create the demo account, fleet and token; return the token, one event to show and the events seeded."""
    store = open_store(database)
    try:
        await store.start()
        await admin.create_account(store, DEMO_ACCOUNT, "Demo fleet")
        end = int(time.time())
        shown = None
        seeded = 0
        start = end - DEMO_HOURS * 3600
        # The connectors' snapshots come from the same seeds as their events (lifecycles.fleet draws them so).
        draw = random.Random(seed_value)
        snapshots = metrics.fleet_snapshots([draw.random() for _ in DEMO_CONNECTORS], start, DEMO_FAILURE_RATE)
        for (connector_id, events), stream in zip(
            fleet(DEMO_CONNECTORS, seed_value, start, end, DEMO_FAILURE_RATE), snapshots, strict=True
        ):
            await admin.create_connector(store, DEMO_ACCOUNT, connector_id)
            batch = decode_batch(msgspec.json.encode(events), max_events=len(events))
            await store.append_events(DEMO_ACCOUNT, connector_id, batch, end)
            recorded = list(itertools.takewhile(lambda s: s["t"] < end, stream))
            for first in range(0, len(recorded), 500):
                chunk = decode_snapshots(msgspec.json.encode(recorded[first : first + 500]))
                await store.append_snapshots(DEMO_ACCOUNT, connector_id, chunk, end)
            seeded += len(events)
            upgrade = next((ev for ev in events if ev["e"]["k"] == "StartUpgrade"), None)
            shown = shown or (upgrade and {"connector": connector_id, **upgrade})
        token = await admin.create_token(
            store, DEMO_ACCOUNT, [MAGIC_WAN_READ, MAGIC_WAN_WRITE], name="demo", expires_on=None
        )
        return token.value, shown or {"connector": DEMO_CONNECTORS[0], **events[0]}, seeded
    finally:
        await store.close()


class Summary:
    """The one live line: the fleet's rate, the events in the store, the connectors. Refreshed in place on a
    terminal; elsewhere (a pipe, a file) it stays silent, so the output is the banner alone."""

    def __init__(self, seeded: int, connectors: int, live: bool):
        self.seeded = seeded
        self.connectors = connectors
        self.live = live
        self.posted = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def update(self, stats: FleetStats) -> None:
        now = time.monotonic()
        self.posted = stats.posted
        self._samples.append((now, stats.posted))
        while self._samples[0][0] < now - RATE_WINDOW_SECONDS:
            self._samples.popleft()
        if self.live:
            self.show()

    def rate(self) -> float:
        (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        return (last - first) / (last_at - first_at) if last_at > first_at else 0.0

    def line(self) -> str:
        rate = f"{self.rate():,.1f} events/s posted by the fleet" if self._samples else "the fleet is starting"
        return f"live: {rate}, {self.seeded + self.posted:,} events, {self.connectors} connectors"

    def show(self) -> None:
        """Rewrite the line in place (carriage return, erase to the end), cut to the terminal's width."""
        width = shutil.get_terminal_size().columns - 1
        sys.stdout.write(f"\r{self.line()[:width]}\x1b[K")
        sys.stdout.flush()


@contextlib.contextmanager
def stderr_to(log: Path) -> Iterator[None]:
    """Send everything written to stderr (this process's and its children's) to `log`, then restore it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def run_demo(db: str, seed_value: int, settings: Settings) -> None:
    check_replaceable(db)  # only a conntel store (or nothing) is deleted and made anew
    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)
    log = Path(db).with_suffix(".log")
    token, event, seeded = asyncio.run(seed(db, seed_value))
    base = f"http://{settings.host}:{settings.port}/client/v4"
    path = f"/accounts/{DEMO_ACCOUNT}/magic/connectors/{event['connector']}/telemetry/events/{event['t']}.{event['n']}"
    click.echo(
        f"""
conntel demo: account {DEMO_ACCOUNT}, {len(DEMO_CONNECTORS)} connectors, their last {DEMO_HOURS} hours in {db}

  export CLOUDFLARE_API_TOKEN={token}
  export CLOUDFLARE_BASE_URL={base}

Get one event (a StartUpgrade):
  curl -s -H "Authorization: Bearer {token}" {base}{path}

Dashboard: http://{settings.host}:{settings.port}/#token={token}&account={DEMO_ACCOUNT}
Live tail: conntel events tail --account {DEMO_ACCOUNT}
Its metrics: conntel snapshots latest --account {DEMO_ACCOUNT} --connector {event["connector"]}
A simulated fleet of {FLEET_SIZE} more connectors is posting events and snapshots live ({FLEET_SPEED:g}x real time).
The server's log (one JSON line per request) is in {log}.

Press Ctrl-C to stop.
"""
    )
    summary = Summary(seeded, len(DEMO_CONNECTORS) + FLEET_SIZE, live=sys.stdout.isatty())
    fleet = FleetOptions(base, token, DEMO_ACCOUNT, connectors=FLEET_SIZE, speed=FLEET_SPEED, seed=seed_value)

    async def live_fleet() -> None:
        if summary.live:
            summary.show()
        try:
            await run_fleet(fleet, summary.update)
        except FleetError as exc:  # the demo server keeps serving; say why the fleet stopped
            click.echo(f"\nsimulated fleet stopped: {exc}")

    try:
        with stderr_to(log):
            run(settings, alongside=live_fleet)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down gracefully, then raised it again
        pass
    except SystemExit as exc:
        if exc.code:  # uvicorn could not start (a port in use, ...): its reason is in the log
            raise SystemExit(f"\nThe server stopped (exit status {exc.code}):\n{_tail(log)}") from None
    total = summary.seeded + summary.posted
    click.echo(f"\nStopped: {total:,} events in {db}; the server's log is in {log}.")


def _tail(log: Path, lines: int = 5) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
