"""The snapshots the SDK conformance tests record and read back (Python and TypeScript alike)."""

from __future__ import annotations

from typing import Any

from cloudflare.types.magic_transit.connectors import snapshot_get_response as sdk
from test_snapshot_types import filled, required_only

T0 = 1_700_000_000


def full(t: int) -> dict[str, Any]:
    """Every field of the SDK's type tree filled, nested objects included, and one field the SDK does not know."""
    return filled(sdk.SnapshotGetResponse) | {"t": t, "v": "2025.9.1", "cpu_count": 8, "added_later": {"x": [1]}}


def minimal(t: int) -> dict[str, Any]:
    """Only the six required fields."""
    return required_only() | {"t": t}


# A minute apart: the full one first, then minimal ones; the newest is the last.
SNAPSHOTS = [full(T0)] + [minimal(T0 + 60 * i) for i in range(1, 12)]
