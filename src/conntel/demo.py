"""`conntel demo`: a fresh store with a demo account, a simulated fleet and a token, then the server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click
import msgspec

from conntel import admin
from conntel.client.fleet import FleetError, FleetOptions, run_fleet
from conntel.client.lifecycles import fleet
from conntel.config import Settings
from conntel.credentials import MAGIC_WAN_READ, MAGIC_WAN_WRITE
from conntel.events import decode_batch
from conntel.server.run import run
from conntel.store import open_store
from conntel.store.sqlite import check_replaceable

DEMO_ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"  # the reference page's example account
DEMO_CONNECTORS = ["lisbon-branch-01", "porto-dc-01", "berlin-office-02", "austin-store-17"]
DEMO_HOURS = 24
DEMO_FAILURE_RATE = 0.35
FLEET_SIZE = 8  # live simulated connectors beside the seeded ones
FLEET_SPEED = 60.0


async def seed(database: str, seed_value: int) -> tuple[str, dict[str, Any]]:
    """Create the demo account, fleet and token; return the token and one event to show."""
    store = open_store(database)
    try:
        await store.start()
        await admin.create_account(store, DEMO_ACCOUNT, "Demo fleet")
        end = int(time.time())
        shown = None
        for connector_id, events in fleet(DEMO_CONNECTORS, seed_value, end - DEMO_HOURS * 3600, end, DEMO_FAILURE_RATE):
            await admin.create_connector(store, DEMO_ACCOUNT, connector_id)
            batch = decode_batch(msgspec.json.encode(events), max_events=len(events))
            await store.append_events(DEMO_ACCOUNT, connector_id, batch, end)
            upgrade = next((ev for ev in events if ev["e"]["k"] == "StartUpgrade"), None)
            shown = shown or (upgrade and {"connector": connector_id, **upgrade})
        token = await admin.create_token(
            store, DEMO_ACCOUNT, [MAGIC_WAN_READ, MAGIC_WAN_WRITE], name="demo", expires_on=None
        )
        return token.value, shown or {"connector": DEMO_CONNECTORS[0], **events[0]}
    finally:
        await store.close()


def run_demo(db: str, seed_value: int, settings: Settings) -> None:
    check_replaceable(db)  # only a conntel store (or nothing) is deleted and made anew
    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)
    token, event = asyncio.run(seed(db, seed_value))
    base = f"http://{settings.host}:{settings.port}/client/v4"
    path = f"/accounts/{DEMO_ACCOUNT}/magic/connectors/{event['connector']}/telemetry/events/{event['t']}.{event['n']}"
    click.echo(
        f"""
conntel demo: account {DEMO_ACCOUNT}, {len(DEMO_CONNECTORS)} connectors, last {DEMO_HOURS} hours of events in {db}

  export CLOUDFLARE_API_TOKEN={token}
  export CLOUDFLARE_BASE_URL={base}

Get one event (a StartUpgrade):
  curl -s -H "Authorization: Bearer {token}" {base}{path}

Dashboard: http://{settings.host}:{settings.port}/#token={token}&account={DEMO_ACCOUNT}
Live tail: conntel events tail --account {DEMO_ACCOUNT}
A simulated fleet of {FLEET_SIZE} more connectors is posting events live ({FLEET_SPEED:g}x real time).

Press Ctrl-C to stop.
"""
    )
    fleet = FleetOptions(base, token, DEMO_ACCOUNT, connectors=FLEET_SIZE, speed=FLEET_SPEED, seed=seed_value)

    async def live_fleet() -> None:
        try:
            await run_fleet(fleet)
        except FleetError as exc:  # the demo server keeps serving; say why the fleet stopped
            click.echo(f"simulated fleet stopped: {exc}", err=True)

    run(settings, alongside=live_fleet)
