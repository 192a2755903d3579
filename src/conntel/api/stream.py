"""Live tail: new events as Server-Sent Events, for one connector or a whole account.

Each message's `id` is the event's position in its account (commit order), so a
client that reconnects with `Last-Event-ID` resumes with no gap and no repeat.
Streams are fed by the store, polled once per account per process however
many streams watch it (api/livefeed.py), which makes them work across any
number of server processes on one database: an event shows up within
`POLL_SECONDS` of being acknowledged. A stream that resumes from further back
reads that part itself, then joins the feed.

Health changes of the connectors a stream covers come on it too, as
`event: health` messages with no `id` (ids stay event positions, so resuming is
unaffected), read by the same poll. A resumed stream does not replay past ones:
a client reads Fleet health first, then follows the stream.

A stream is only as good as its credential: before every poll the feed
authorizes each of its credentials again (api/auth.py `still_allowed`),
reading it afresh from the store every `RECHECK_SECONDS` and checking expiry
against the clock every time. When the credential is revoked, expires, loses
the permission or the account, or a global key changes or its user leaves the
account, the stream sends one last `event: error` message (the refusal a new
request would get, with a `reason`) and ends, within a second. So does a
stream whose client reads too slowly (`reason: fell_behind`; its message
says the `Last-Event-ID` to resume from), unless the client, reading nothing
at all, has its connection reset first (`--send-timeout`: server/stalled.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Annotated

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType
from starlette.requests import Request
from starlette.responses import Response

from conntel import ids
from conntel.api.auth import CREDENTIAL_HEADERS, Authenticator
from conntel.api.envelope import error_body
from conntel.api.errors import ApiError, connector_not_found, invalid_query, store_unavailable, stream_fell_behind
from conntel.api.livefeed import BATCH, BATCH_BYTES, Ended, LiveHub, Watcher
from conntel.api.observability import Metrics
from conntel.api.params import parse_query
from conntel.api.routing import account_scope, connector_scope
from conntel.api.streaming import SEND_BYTES, streamed
from conntel.credentials import READ_ACCEPTS
from conntel.events import PAYLOAD_DOC
from conntel.health import HealthChange
from conntel.store.base import Store, StreamedEvent

KEEP_ALIVE_SECONDS = 15.0
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


def sse_health(change: HealthChange) -> bytes:
    return b"event: health\ndata: %s\n\n" % _encode(change)


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
    def __init__(self, store: Store, auth: Authenticator, metrics: Metrics):
        self.store = store
        self.auth = auth
        self.metrics = metrics
        self.hub = LiveHub(store, auth, sse_message, sse_health, metrics)

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
        messages = self._messages(account_id, Watcher(connector_id, credentials, position))
        return streamed(messages, "text/event-stream", headers)

    async def _messages(self, account_id: str, watcher: Watcher) -> AsyncGenerator[bytes, None]:
        sent = watcher.position
        self.metrics.live_streams.inc()
        # At once: the client knows it is connected, and where it is (to resume from, even before any event).
        yield b"id: %d\n: stream open\n\n" % sent
        try:
            joined_at = await self.hub.watch(account_id, watcher)
            async with contextlib.aclosing(self._catch_up(account_id, watcher, sent, joined_at)) as backlog:
                async for caught_up_to, message in backlog:
                    sent = caught_up_to
                    yield message
            while True:
                try:
                    # About a send's worth at a time: the rest stays in the mailbox, which bounds it.
                    mail = await watcher.take(KEEP_ALIVE_SECONDS, SEND_BYTES)
                except Ended as ended:
                    refusal = ended.refusal or (stream_fell_behind(sent), "fell_behind")
                    self.metrics.live_endings.labels(refusal[1]).inc()
                    yield sse_refusal(*refusal)
                    return
                if mail is None:
                    yield b": keep-alive\n\n"
                else:
                    sent, message = mail
                    yield message
        except Exception as error:
            if not self.store.is_unavailable(error):
                raise
            log.warning("database unavailable on a live tail: %s: %s; stream ended", type(error).__name__, error)
            self.metrics.live_endings.labels("store_unavailable").inc()
            yield sse_refusal(store_unavailable(1), "store_unavailable")
        finally:
            self.hub.leave(account_id, watcher)
            self.metrics.live_streams.dec()

    async def _catch_up(
        self, account_id: str, watcher: Watcher, position: int, until: int
    ) -> AsyncGenerator[tuple[int, bytes], None]:
        """What lies between a resumed stream's position and the feed it joined (which brings what follows)."""
        while position < until and not watcher.ended:
            events = await self.store.events_after(account_id, position, watcher.connector_id, BATCH, BATCH_BYTES)
            wanted = [event for event in events if event.seq <= until]
            if wanted:
                position = wanted[-1].seq
                yield position, b"".join(sse_message(event) for event in wanted)
            if len(wanted) < len(events) or not events:
                return
