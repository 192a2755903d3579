"""The hot path: Get Event served as a plain ASGI app, ahead of the framework.

Get Event is most of the traffic. Starlette's routing, middleware and
Request/Response objects cost more than the work itself, so GETs on the Get
Event path go straight to this endpoint, which counts, times and logs itself
as Observe does for the rest; everything else (other methods there included,
for their 405) goes through Observe and Starlette as usual. It holds the
rules every route holds: a query string is refused (Get Event takes no
parameters) and so is a credential header sent twice (by the authenticator,
which reads the headers as sent).
"""

from __future__ import annotations

import re
import time

from starlette.routing import compile_path

from conntel.api.envelope import error_body
from conntel.api.errors import ApiError
from conntel.api.events import EventRoutes
from conntel.api.failures import unexpected
from conntel.api.observability import RequestRecorder
from conntel.api.params import refuse_undeclared
from conntel.api.routing import ASGIApp, Receive, Scope, Send
from conntel.api.snapshots import SnapshotRoutes

_JSON = (b"content-type", b"application/json")


async def send_json(send: Send, status: int, body: bytes, extra_headers: dict[str, str] | None = None) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if extra_headers:
        headers += [(name.lower().encode(), value.encode()) for name, value in extra_headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GetEventEndpoint:
    def __init__(self, events: EventRoutes, recorder: RequestRecorder | None = None):
        self.events = events
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path = scope["path"]
        extra_headers = None
        try:
            if scope["query_string"]:  # Get Event takes no query parameters
                refuse_undeclared(scope["query_string"], ())
            # The headers as sent: the authenticator reads the credential headers, refusing one sent twice.
            status, body = 200, await self.events.get_event(scope["path_params"], scope["headers"], path)
        except ApiError as error:
            status, body, extra_headers = error.status, error_body(error), error.headers
        except Exception as error:
            failure = unexpected(error, "GET", path, self.events.store.is_unavailable(error))
            status, body, extra_headers = failure.status, error_body(failure), failure.headers
        try:
            await send_json(send, status, body, extra_headers)
        finally:
            if self.recorder is not None:
                self.recorder.record(scope, status, time.perf_counter() - started)


class GetSnapshotEndpoint:
    """Get Snapshot, served as Get Event is (GetEventEndpoint): ahead of the framework, recording itself."""

    def __init__(self, snapshots: SnapshotRoutes, recorder: RequestRecorder | None = None):
        self.snapshots = snapshots
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path = scope["path"]
        extra_headers = None
        try:
            if scope["query_string"]:  # Get Snapshot takes no query parameters
                refuse_undeclared(scope["query_string"], ())
            status, body = 200, await self.snapshots.get_snapshot(scope["path_params"], scope["headers"], path)
        except ApiError as error:
            status, body, extra_headers = error.status, error_body(error), error.headers
        except Exception as error:
            failure = unexpected(error, "GET", path, self.snapshots.store.is_unavailable(error))
            status, body, extra_headers = failure.status, error_body(failure), failure.headers
        try:
            await send_json(send, status, body, extra_headers)
        finally:
            if self.recorder is not None:
                self.recorder.record(scope, status, time.perf_counter() - started)


class Shortcut:
    """Send GETs on one route's path straight to its endpoint; the rest to `app`."""

    def __init__(self, app: ASGIApp, path: str, endpoint: ASGIApp):
        self.app = app
        self.path = path
        self.pattern: re.Pattern[str] = compile_path(path)[0]
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = self.pattern.match(scope["path"])
            if match is not None:
                scope["path_params"] = match.groupdict()
                scope["route_path"] = self.path  # for metrics and logs, as Starlette's scope["route"]
                return await self.endpoint(scope, receive, send)
        await self.app(scope, receive, send)
