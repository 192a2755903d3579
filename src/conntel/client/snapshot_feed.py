"""The simulator's snapshots: every virtual connector reports a full snapshot each simulated minute.

Each connector's snapshots come from conntel.client.metrics, walking a copy of
the same event stream the fleet posts (same seed, same events), so the metrics
tell the story the events tell. Due snapshots are posted to
`POST .../telemetry/snapshots` in bounded batches, retried on failure like
events (a retry of an acknowledged batch is harmless: identical snapshots count
as duplicates).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from conntel.client.http import errors_text

BATCH = 100  # snapshots per request: about 1.3 MB of JSON, well under the server's 8 MB body bound


class PushError(RuntimeError):
    pass


@dataclass
class SnapshotFeed:
    connector_id: str
    stream: Iterator[dict[str, Any]]
    pending: dict[str, Any] | None = None

    def due(self, until: int) -> list[dict[str, Any]]:
        """The snapshots recorded up to simulated time `until`."""
        batch: list[dict[str, Any]] = []
        while True:
            if self.pending is None:
                self.pending = next(self.stream)
            if self.pending["t"] > until:
                return batch
            batch.append(self.pending)
            self.pending = None


def snapshots_path(account: str, connector_id: str) -> str:
    return f"/accounts/{account}/magic/connectors/{connector_id}/telemetry/snapshots"


async def post_snapshots(
    client: httpx.AsyncClient, path: str, snapshots: list[dict[str, Any]], max_retries: int
) -> tuple[int, int, int]:
    """Post in batches of BATCH, retrying 5xx, 429 and lost connections: (accepted, duplicates, retries)."""
    accepted = duplicates = retries = 0
    for start in range(0, len(snapshots), BATCH):
        batch = snapshots[start : start + BATCH]
        for attempt in range(max_retries + 1):
            try:
                response = await client.post(path, json=batch)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                result = response.json()["result"]
                accepted += result["accepted"]
                duplicates += result["duplicates"]
                break
            if response is not None and response.status_code < 500 and response.status_code != 429:
                raise PushError(f"The server refused snapshots at {path}: {errors_text(response)}")
            retries += 1
            await asyncio.sleep(min(0.25 * 2**attempt, 10))
        else:
            raise PushError(f"Gave up on snapshots at {path} after {max_retries} retries")
    return accepted, duplicates, retries
