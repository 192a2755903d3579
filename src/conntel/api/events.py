"""Telemetry event routes: Get Event (the hot path) and ingestion."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence

import msgspec
from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response

from conntel import ids
from conntel.api import pushes
from conntel.api.auth import Authenticator, RawHeaders
from conntel.api.cursor import CursorError, CursorSigner
from conntel.api.envelope import ok, ok_body, ok_items
from conntel.api.errors import (
    connector_not_found,
    event_not_found,
    invalid_cursor,
    invalid_event,
    invalid_query,
    no_route,
)
from conntel.api.observability import Metrics
from conntel.api.params import Param, parse_query
from conntel.api.routing import api_path, connector_scope
from conntel.api.streaming import PageChanged, in_parts, streamed
from conntel.config import Settings
from conntel.credentials import READ_ACCEPTS
from conntel.events import (
    Event,
    EventList,
    EventListItem,
    LatestEvents,
    decode_batch,
)
from conntel.kinds import KIND_NAMES
from conntel.store.base import EventQuery, Store, StoredEvent, fitting

LIST_QUERY = (
    Param("from", "Earliest `t` listed (inclusive), seconds since the epoch", required=True, integer=True),
    Param("to", "Latest `t` listed (inclusive), seconds since the epoch", required=True, integer=True),
    Param("limit", "Most events in one page", integer=True, low=1, high=1000, default=100),
    Param("k", "Only events of this kind", choices=KIND_NAMES),
    Param("cursor", "Where the previous page ended: its `cursor`, as returned"),
)
LATEST_LIMIT = 100
# Latest Events carries at most this many bytes of payloads (`e`): a page ends before the event
# that would go beyond (its `count` says how many it holds), with at least the newest event.
LATEST_MAX_BYTES = 8 << 20
_encode = msgspec.json.Encoder().encode


class EventRoutes:
    def __init__(
        self,
        store: Store,
        auth: Authenticator,
        settings: Settings,
        metrics: Metrics | None = None,
        on_ingested: Callable[[str], None] | None = None,
    ):
        self.store = store
        self.auth = auth
        self.settings = settings
        self.metrics = metrics
        self.on_ingested = on_ingested  # this process's live tails of the account: look now, not at the next poll
        self._signer: CursorSigner | None = None

    async def get_event(self, params: Mapping[str, str], headers: RawHeaders, path: str) -> bytes:
        """The Get Event response body; called by the hot-path endpoint (api/hotpath.py)."""
        account_id, connector_id = connector_scope(params, path)
        ref = ids.parse_event_ref(params["event_ref"])
        if ref is None:
            raise no_route(api_path(path))
        await self.auth.authorize(headers, account_id, READ_ACCEPTS)
        t, n = ref
        stored = await self.store.get_event(account_id, connector_id, t, n)
        if stored is None:
            await self._require_connector(account_id, connector_id)
            raise event_not_found(t, n, connector_id)
        return ok_body(Event.from_stored(stored))

    async def list_events(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        query = parse_query(request.query_params.multi_items(), LIST_QUERY)
        from_t, to_t, limit, kind = query["from"], query["to"], query["limit"], query["k"]
        if from_t > to_t:
            raise invalid_query(f"`from` ({from_t}) is after `to` ({to_t})")
        await self._require_connector(account_id, connector_id)
        signer = await self._cursor_signer()
        scope = "\0".join((account_id, connector_id, str(from_t), str(to_t), kind or ""))
        after = None
        if (cursor := query["cursor"]) is not None:
            try:
                after = signer.decode(scope, cursor)
            except CursorError as exc:
                raise invalid_cursor(exc) from None
        rows = await self.store.list_events(account_id, connector_id, EventQuery(from_t, to_t, kind, after, limit + 1))
        page = [EventListItem(row.a, row.k, row.n, row.t) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = signer.encode(scope, page[-1].t, page[-1].n) if more else UNSET
        return ok(EventList(len(page), page, next_cursor))

    async def latest_events(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        parse_query(request.query_params.multi_items(), ())
        await self._require_connector(account_id, connector_id)
        # Sizes first (the payloads are not read), then the payloads of what fits, part by part.
        sizes = await self.store.latest_event_sizes(account_id, connector_id, LATEST_LIMIT)
        page = sizes[: fitting([size for _, _, size in sizes], LATEST_MAX_BYTES)]
        parts = in_parts(page, lambda item: item[2])
        if len(parts) <= 1:
            rows = await self._latest_part(account_id, connector_id, page) if page else []
            return ok(LatestEvents(len(rows), [Event.from_stored(row) for row in rows]))
        return streamed(ok_items(len(page), self._latest_parts(account_id, connector_id, parts)), "application/json")

    async def _latest_part(
        self, account_id: str, connector_id: str, part: Sequence[tuple[int, int, int]]
    ) -> list[StoredEvent]:
        t, n, _ = part[0]
        return await self.store.latest_events(account_id, connector_id, len(part), through=(t, n))

    async def _latest_parts(
        self, account_id: str, connector_id: str, parts: list[Sequence[tuple[int, int, int]]]
    ) -> AsyncGenerator[bytes, None]:
        """A Latest Events page's items, read and encoded one part at a time."""
        for part in parts:
            rows = await self._latest_part(account_id, connector_id, part)
            if [(row.t, row.n) for row in rows] != [(t, n) for t, n, _ in part]:
                raise PageChanged(f"events of connector {connector_id} were deleted while a page of them was sent")
            encoded = b",".join(_encode(Event.from_stored(row)) for row in rows)
            del rows  # while the part waits for a slow reader, only its encoded bytes stay
            yield encoded

    async def _cursor_signer(self) -> CursorSigner:
        if self._signer is None:
            self._signer = CursorSigner(await self.store.server_secret("cursor"))
        return self._signer

    async def ingest(self, request: Request) -> Response:
        push = await pushes.receive(request, self.auth, self.settings)
        events = pushes.decode(
            push.body, lambda body: decode_batch(body, self.settings.max_batch_events), invalid_event
        )
        # An unknown connector or a conflicting event: a refusal, answered by errors.from_refusal.
        appended = await self.store.append_events(push.account_id, push.connector_id, events, int(time.time()))
        if self.metrics is not None:
            for kind, count in appended.new_kinds.items():
                self.metrics.events_ingested.labels(kind).inc(count)
        if self.on_ingested is not None and appended.new_kinds:
            self.on_ingested(push.account_id)
        return await pushes.answer(self.store, push, appended.result())

    async def _require_connector(self, account_id: str, connector_id: str) -> None:
        if not await self.store.connector_exists(account_id, connector_id):
            raise connector_not_found(connector_id)
