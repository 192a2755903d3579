"""Snapshot routes (CONTRACT §8): List, Get and Latest Snapshots, and ingestion.

Same auth, permissions, envelope and codes as the event routes (api/events.py).
A snapshot is served as the JSON text it was recorded with, never re-encoded.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence

from msgspec import UNSET, Raw
from starlette.requests import Request
from starlette.responses import Response

from conntel import ids
from conntel.api import pushes
from conntel.api.auth import Authenticator, RawHeaders
from conntel.api.cursor import CursorError, CursorSigner
from conntel.api.envelope import ok, ok_body, ok_items
from conntel.api.errors import (
    connector_not_found,
    invalid_cursor,
    invalid_query,
    invalid_snapshot,
    no_route,
    snapshot_not_found,
)
from conntel.api.params import Param, parse_query
from conntel.api.routing import api_path, connector_scope
from conntel.api.streaming import PageChanged, in_parts, streamed
from conntel.config import Settings
from conntel.credentials import READ_ACCEPTS
from conntel.snapshots import LatestSnapshots, SnapshotList, SnapshotListItem, decode_batch
from conntel.store.base import SnapshotQuery, Store, fitting

LIST_QUERY = (
    Param("from", "Earliest `t` listed (inclusive), seconds since the epoch", required=True, integer=True),
    Param("to", "Latest `t` listed (inclusive), seconds since the epoch", required=True, integer=True),
    Param("limit", "Most snapshots in one page", integer=True, low=1, high=1000, default=100),
    Param("cursor", "Where the previous page ended: its `cursor`, as returned"),
)
# Latest Snapshots: at most this many, newest first, and at most this many bytes of snapshot JSON
# (a page ends before the snapshot that would go beyond; it holds at least the newest one). A larger
# page is read and sent in parts, as Latest Events is (api/streaming.py).
LATEST_LIMIT = 100
LATEST_MAX_BYTES = 8 << 20
# A number as a client may write `snapshot_t` (`1700000000`, `1700000000.0`, `1.7e+09`).
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,3})?")


class SnapshotRoutes:
    def __init__(self, store: Store, auth: Authenticator, settings: Settings):
        self.store = store
        self.auth = auth
        self.settings = settings
        self._signer: CursorSigner | None = None

    async def get_snapshot(self, params: Mapping[str, str], headers: RawHeaders, path: str) -> bytes:
        """The Get Snapshot response body; called by its hot-path endpoint (api/hotpath.py)."""
        account_id, connector_id = connector_scope(params, path)
        text = params["snapshot_t"]
        t = ids.integral(text)
        if t is None and not (len(text) <= 80 and _NUMBER.fullmatch(text)):
            raise no_route(api_path(path))
        await self.auth.authorize(headers, account_id, READ_ACCEPTS)
        stored = None if t is None else await self.store.get_snapshot(account_id, connector_id, t)
        if stored is None:  # also a number that is no whole second: no snapshot is ever recorded there
            await self._require_connector(account_id, connector_id)
            raise snapshot_not_found(text, connector_id)
        return ok_body(Raw(stored.json))

    async def list_snapshots(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        query = parse_query(request.query_params.multi_items(), LIST_QUERY)
        from_t, to_t, limit = query["from"], query["to"], query["limit"]
        if from_t > to_t:
            raise invalid_query(f"`from` ({from_t}) is after `to` ({to_t})")
        await self._require_connector(account_id, connector_id)
        signer = await self._cursor_signer()
        # "snapshots" in the scope: a List Events cursor is not one for List Snapshots.
        scope = "\0".join(("snapshots", account_id, connector_id, str(from_t), str(to_t)))
        after = None
        if (cursor := query["cursor"]) is not None:
            try:
                after, _ = signer.decode(scope, cursor)
            except CursorError as exc:
                raise invalid_cursor(exc) from None
        rows = await self.store.list_snapshots(account_id, connector_id, SnapshotQuery(from_t, to_t, after, limit + 1))
        page = [SnapshotListItem(row.a, row.t) for row in rows[:limit]]
        next_cursor = signer.encode(scope, page[-1].t, 0) if len(rows) > limit else UNSET
        return ok(SnapshotList(len(page), page, next_cursor))

    async def latest_snapshots(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        parse_query(request.query_params.multi_items(), ())
        await self._require_connector(account_id, connector_id)
        # Sizes first (no snapshot is read), then the snapshots that fit, part by part (api/streaming.py).
        sizes = await self.store.latest_snapshot_sizes(account_id, connector_id, LATEST_LIMIT)
        page = sizes[: fitting([size for _, size in sizes], LATEST_MAX_BYTES)]
        parts = in_parts(page, lambda item: item[1])
        if len(parts) <= 1:
            rows = await self.store.latest_snapshots(account_id, connector_id, page[0][0], len(page)) if page else []
            return ok(LatestSnapshots(len(rows), [Raw(row.json) for row in rows]))
        return streamed(ok_items(len(page), self._latest_parts(account_id, connector_id, parts)), "application/json")

    async def _latest_parts(
        self, account_id: str, connector_id: str, parts: list[Sequence[tuple[int, int]]]
    ) -> AsyncGenerator[bytes, None]:
        """A Latest Snapshots page's items, read one part at a time (as recorded, never re-encoded)."""
        for part in parts:
            rows = await self.store.latest_snapshots(account_id, connector_id, part[0][0], len(part))
            if [row.t for row in rows] != [t for t, _ in part]:
                raise PageChanged(f"snapshots of connector {connector_id} were deleted while a page of them was sent")
            encoded = b",".join(row.json for row in rows)
            del rows  # while the part waits for a slow reader, only its bytes stay
            yield encoded

    async def ingest(self, request: Request) -> Response:
        push = await pushes.receive(request, self.auth, self.settings)
        snapshots = pushes.decode(push.body, decode_batch, invalid_snapshot)
        # An unknown connector or a conflicting snapshot: a refusal, answered by errors.from_refusal.
        result = await self.store.append_snapshots(push.account_id, push.connector_id, snapshots, int(time.time()))
        return await pushes.answer(self.store, push, result)

    async def _cursor_signer(self) -> CursorSigner:
        if self._signer is None:
            self._signer = CursorSigner(await self.store.server_secret("cursor"))
        return self._signer

    async def _require_connector(self, account_id: str, connector_id: str) -> None:
        if not await self.store.connector_exists(account_id, connector_id):
            raise connector_not_found(connector_id)
