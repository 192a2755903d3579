"""Live tail: new events as Server-Sent Events, for one connector or a whole account.

Each message's `id` is the event's position in its account (commit order), so a
client that reconnects with `Last-Event-ID` resumes with no gap and no repeat.
Streams poll the store, which makes them work across any number of server
processes on one database: an event shows up within `POLL_SECONDS` of being
acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from conntel.api.auth import Authenticator
from conntel.api.errors import connector_not_found
from conntel.api.params import invalid, parse_query
from conntel.api.routing import account_scope, connector_scope
from conntel.credentials import READ_ACCEPTS
from conntel.events import MAX_PAYLOAD_BYTES, PAYLOAD_DOC
from conntel.store.base import Store, StreamedEvent

POLL_SECONDS = 0.25
KEEP_ALIVE_SECONDS = 15.0
BATCH = 500
# At most this many bytes of payloads read and sent at once (or one event): a catching-up stream's
# memory is bounded by bytes, not by its count of events. A batch over BATCH_BYTES - MAX_PAYLOAD_BYTES
# may have been cut short of the next event, so the next poll follows at once.
BATCH_BYTES = 2 << 20
_encode = msgspec.json.Encoder().encode


class LiveEvent(Struct, omit_defaults=True):
    """One message's `data`: the event, its connector and its collection time."""

    connector_id: str
    a: int
    e: Annotated[Raw, PAYLOAD_DOC]
    n: int
    t: int
    v: str | UnsetType = UNSET


def sse_message(event: StreamedEvent) -> bytes:
    data = LiveEvent(event.connector_id, event.a, Raw(event.e_json), event.n, event.t,
                     UNSET if event.v is None else event.v)  # fmt: skip
    return b"id: %d\nevent: event\ndata: %s\n\n" % (event.seq, _encode(data))


class StreamRoutes:
    def __init__(self, store: Store, auth: Authenticator):
        self.store = store
        self.auth = auth

    async def connector_stream(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        parse_query(request.query_params.multi_items(), ())
        if not await self.store.connector_exists(account_id, connector_id):
            raise connector_not_found(connector_id)
        return await self._stream(request, account_id, connector_id)

    async def account_stream(self, request: Request) -> Response:
        account_id = account_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        parse_query(request.query_params.multi_items(), ())
        return await self._stream(request, account_id, None)

    async def _stream(self, request: Request, account_id: str, connector_id: str | None) -> Response:
        last = request.headers.get("last-event-id")
        if last is None:
            position = await self.store.stream_position(account_id)
        elif last.isdigit() and last.isascii():
            position = int(last)
        else:
            raise invalid(f"Last-Event-ID must be a position this stream sent, not {last!r}")
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            self._messages(account_id, connector_id, position), media_type="text/event-stream", headers=headers
        )

    async def _messages(self, account_id: str, connector_id: str | None, position: int) -> AsyncIterator[bytes]:
        # At once: the client knows it is connected, and where it is (to resume from, even before any event).
        yield b"id: %d\n: stream open\n\n" % position
        quiet_since = time.monotonic()
        while True:
            events = await self.store.events_after(account_id, position, connector_id, BATCH, BATCH_BYTES)
            if events:
                position = events[-1].seq
                quiet_since = time.monotonic()
                yield b"".join(sse_message(event) for event in events)
                if len(events) == BATCH or sum(len(ev.e_json) for ev in events) > BATCH_BYTES - MAX_PAYLOAD_BYTES:
                    continue  # catching up: no pause
            elif time.monotonic() - quiet_since >= KEEP_ALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await asyncio.sleep(POLL_SECONDS)
