"""Live tail: new events as Server-Sent Events, for one connector or a whole account.

Each message's `id` is the event's position in its account (commit order), so a
client that reconnects with `Last-Event-ID` resumes with no gap and no repeat.
Streams poll the store, which makes them work across any number of server
processes on one database: an event shows up within `POLL_SECONDS` of being
acknowledged.

A stream is only as good as its credential: before every poll it is
authorized again (api/auth.py `still_allowed`), reading the credential afresh
from the store every `RECHECK_SECONDS` and checking expiry against the clock
every time. When the credential is revoked, expires, loses the permission or
the account, or a global key changes or its user leaves the account, the
stream sends one last `event: error` message (the refusal a new request would
get, with a `reason`) and ends, within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from conntel import ids
from conntel.api.auth import CREDENTIAL_HEADERS, Authenticator
from conntel.api.envelope import error_body
from conntel.api.errors import ApiError, connector_not_found, invalid_query, store_unavailable
from conntel.api.params import parse_query
from conntel.api.routing import account_scope, connector_scope
from conntel.credentials import READ_ACCEPTS
from conntel.events import MAX_PAYLOAD_BYTES, PAYLOAD_DOC
from conntel.store.base import Store, StreamedEvent

POLL_SECONDS = 0.25
# How often a stream reads its credential afresh from the store: with a poll's wait on top it stays within
# the second revocation takes everywhere else (the credential cache's TTL).
RECHECK_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0
BATCH = 500
# At most this many bytes of payloads read and sent at once (or one event): a catching-up stream's
# memory is bounded by bytes, not by its count of events. A batch over BATCH_BYTES - MAX_PAYLOAD_BYTES
# may have been cut short of the next event, so the next poll follows at once.
BATCH_BYTES = 2 << 20
_encode = msgspec.json.Encoder().encode
log = logging.getLogger("conntel")


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


def sse_refusal(refusal: ApiError, reason: str) -> bytes:
    """The last message of a stream that ends: the v4 error envelope a request would get now, plus why."""
    data = msgspec.json.decode(error_body(refusal))
    data["reason"] = reason
    return b"event: error\ndata: %s\n\n" % _encode(data)


_CREDENTIAL_NAMES = tuple(sorted(name.decode() for name in CREDENTIAL_HEADERS))


def _position(last_event_id: str) -> int:
    """A `Last-Event-ID`: a position from 0 to ids.MAX_SEQUENCE (a bigint in every store), else 400 (20010)."""
    text = last_event_id.strip(" ")
    if len(text) <= _MAX_POSITION_DIGITS and text.isascii() and text.isdigit() and int(text) <= ids.MAX_SEQUENCE:
        return int(text)
    shown = last_event_id if len(last_event_id) <= 40 else last_event_id[:40] + "..."
    raise invalid_query(f"Last-Event-ID must be a position this stream sent (0 to {ids.MAX_SEQUENCE}), not {shown!r}")


_MAX_POSITION_DIGITS = len(str(ids.MAX_SEQUENCE))


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
        else:
            position = _position(last)
        credentials = {name: request.headers[name] for name in _CREDENTIAL_NAMES if name in request.headers}
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        messages = self._messages(account_id, connector_id, position, credentials)
        return StreamingResponse(messages, media_type="text/event-stream", headers=headers)

    async def _messages(
        self, account_id: str, connector_id: str | None, position: int, credentials: dict[str, str]
    ) -> AsyncIterator[bytes]:
        # At once: the client knows it is connected, and where it is (to resume from, even before any event).
        yield b"id: %d\n: stream open\n\n" % position
        try:
            async with contextlib.aclosing(self._poll(account_id, connector_id, position, credentials)) as polled:
                async for message in polled:
                    yield message
        except Exception as error:
            if not self.store.is_unavailable(error):
                raise
            # As a request would get a 503: one log line, and a last message the client can act on (reconnect
            # with Last-Event-ID once the database is back: nothing is lost).
            log.warning("database unavailable on a live tail: %s: %s; stream ended", type(error).__name__, error)
            yield sse_refusal(store_unavailable(1), "store_unavailable")

    async def _poll(
        self, account_id: str, connector_id: str | None, position: int, credentials: dict[str, str]
    ) -> AsyncGenerator[bytes, None]:
        quiet_since = checked = time.monotonic()
        while True:
            fresh = time.monotonic() - checked >= RECHECK_SECONDS
            if fresh:
                checked = time.monotonic()
            refused = await self.auth.still_allowed(credentials, account_id, READ_ACCEPTS, fresh)
            if refused is not None:
                yield sse_refusal(*refused)
                return
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
