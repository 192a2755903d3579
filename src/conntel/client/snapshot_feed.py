"""The simulator's snapshots: every virtual connector reports a full snapshot each simulated minute.

Each connector's snapshots come from conntel.client.metrics, fed the events
the connector records (client/appliance.py), so the metrics tell the story
the events tell. Due snapshots are posted to
`POST .../telemetry/snapshots` in bounded batches, retried on failure like
events (a retry of an acknowledged batch is harmless: identical snapshots count
as duplicates).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from conntel.client.http import errors_text

BATCH = 100  # snapshots per request: about 1.3 MB of JSON, well under the server's 8 MB body bound


class PushError(RuntimeError):
    pass


def snapshots_path(account: str, connector_id: str) -> str:
    return f"/accounts/{account}/magic/connectors/{connector_id}/telemetry/snapshots"


async def post_snapshots(
    client: httpx.AsyncClient,
    path: str,
    snapshots: list[dict[str, Any]],
    max_retries: int,
    headers: dict[str, str] | None = None,
) -> tuple[int, int, int, dict[str, Any] | None]:
    """Post in batches of BATCH, retrying 5xx, 429 and lost connections: (accepted, duplicates, retries,
    the pending operation the last answer carried)."""
    accepted = duplicates = retries = 0
    operation = None
    for start in range(0, len(snapshots), BATCH):
        batch = snapshots[start : start + BATCH]
        for attempt in range(max_retries + 1):
            try:
                response = await client.post(path, json=batch, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                result = response.json()["result"]
                accepted += result["accepted"]
                duplicates += result["duplicates"]
                operation = result.get("operation")
                break
            if response is not None and response.status_code < 500 and response.status_code != 429:
                raise PushError(f"The server refused snapshots at {path}: {errors_text(response)}")
            retries += 1
            await asyncio.sleep(min(0.25 * 2**attempt, 10))
        else:
            raise PushError(f"Gave up on snapshots at {path} after {max_retries} retries")
    return accepted, duplicates, retries, operation
