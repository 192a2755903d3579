"""Telemetry event routes: Get Event (the hot path) and ingestion."""

from __future__ import annotations

import time
from typing import Mapping

from starlette.requests import Request
from starlette.responses import Response

from conntel import ids
from conntel.api.auth import Authenticator
from conntel.api.envelope import ok, ok_body
from conntel.api.errors import (
    BATCH_TOO_LARGE,
    BODY_TOO_LARGE,
    CONNECTOR_NOT_FOUND,
    EVENT_CONFLICT,
    EVENT_NOT_FOUND,
    INVALID_EVENT,
    MALFORMED_JSON,
    ApiError,
    no_route,
)
from conntel.api.routing import api_path, connector_scope
from conntel.config import Settings
from conntel.credentials import READ_ACCEPTS, WRITE_ACCEPTS
from conntel.model import BatchTooLarge, Event, InvalidBatch, MalformedJson, decode_batch
from conntel.store.base import EventConflict, NotFound, Store


class EventRoutes:
    def __init__(self, store: Store, auth: Authenticator, settings: Settings):
        self.store = store
        self.auth = auth
        self.settings = settings

    async def get_event(self, params: Mapping[str, str], headers: Mapping[str, str], path: str) -> bytes:
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
            raise ApiError(404, EVENT_NOT_FOUND, f"No event {t}.{n} on connector {connector_id}")
        return ok_body(Event.from_stored(stored))

    async def ingest(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, WRITE_ACCEPTS)
        body = await read_body(request, self.settings.max_body_bytes)
        try:
            events = decode_batch(body, self.settings.max_batch_events)
        except MalformedJson as exc:
            raise ApiError(400, MALFORMED_JSON, str(exc)) from None
        except BatchTooLarge as exc:
            raise ApiError(413, BATCH_TOO_LARGE, str(exc)) from None
        except InvalidBatch as exc:
            raise ApiError(400, INVALID_EVENT, f"Invalid event: {exc}") from None
        try:
            result = await self.store.append_events(account_id, connector_id, events, int(time.time()))
        except NotFound:
            raise connector_not_found(connector_id) from None
        except EventConflict as exc:
            raise ApiError(409, EVENT_CONFLICT, f"{exc}; nothing in this batch was written") from None
        return ok(result)

    async def _require_connector(self, account_id: str, connector_id: str) -> None:
        if not await self.store.connector_exists(account_id, connector_id):
            raise connector_not_found(connector_id)


def connector_not_found(connector_id: str) -> ApiError:
    return ApiError(404, CONNECTOR_NOT_FOUND, f"No connector {connector_id}")


async def read_body(request: Request, limit: int) -> bytes:
    too_large = ApiError(413, BODY_TOO_LARGE, f"Request body exceeds {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
