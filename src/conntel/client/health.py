"""`conntel fleet`: the account's fleet health over the API, failing first (CONTRACT §10)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from conntel.client.reading import api_options, ndjson, new_table, out, when

if TYPE_CHECKING:
    from conntel.client.http import Client

ORDER = {"failing": 0, "silent": 1, "healthy": 2}
STYLE = {"failing": "bold red", "silent": "yellow", "healthy": "green"}
WATCH_SECONDS = 2.0


def ranked(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failing first, then silent, then healthy; the longest in that state first within each."""
    return sorted(items, key=lambda item: (ORDER.get(item["health"], 3), item["since"], item["connector_id"]))


def show(items: list[dict[str, Any]]) -> None:
    counts = {health: sum(item["health"] == health for item in items) for health in ORDER}
    table = new_table("connector", "health", "since (UTC)", "reason", "because of", "last heartbeat (UTC)")
    for item in ranked(items):
        table.add_row(
            item["connector_id"],
            f"[{STYLE.get(item['health'], '')}]{item['health']}[/]",
            when(item["since"]),
            item["reason"],
            because_of(item),
            when(item.get("last_heartbeat")),
        )
    out().print(table)
    out().print(", ".join(f"{count} {health}" for health, count in counts.items()))


def because_of(item: dict[str, Any]) -> str:
    """What made it so: `event T.N`, `snapshot T, tunnel ID`, `operation ID`, or `-`."""
    parts = []
    if event := item.get("event"):
        parts.append(f"event {event['t']}.{event['n']}")
    if snapshot := item.get("snapshot"):
        parts.append(f"snapshot {snapshot['t']}")
    if "tunnel_id" in item:
        parts.append(f"tunnel {item['tunnel_id']}")
    if "operation_id" in item:
        parts.append(f"operation {item['operation_id']}")
    return ", ".join(parts) or "-"


@click.command("fleet")
@click.option("--watch", is_flag=True, help="Keep the table current, redrawn as health changes, until Ctrl-C.")
@api_options
def fleet(client: Client, watch: bool, as_json: bool) -> None:
    """Every connector's health (failing, silent, healthy), since when and why, failing first."""
    shown: list[tuple[str, str, int, str]] | None = None
    while True:
        items = client.fleet_health()
        state = [(item["connector_id"], item["health"], item["since"], item["reason"]) for item in items]
        if state != shown:
            if as_json:
                ndjson(ranked(items))
            else:
                if shown is not None:
                    out().clear()
                show(items)
            shown = state
        if not watch:
            return
        time.sleep(WATCH_SECONDS)
