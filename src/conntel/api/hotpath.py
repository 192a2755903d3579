"""The hot path: Get Event (and Get Snapshot, bare check-ins) served as plain ASGI apps, ahead of the framework.

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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.routing import compile_path

from conntel.api.auth import RawHeaders
from conntel.api.envelope import error_body
from conntel.api.errors import REFUSALS, ApiError, from_refusal
from conntel.api.failures import unexpected
from conntel.api.observability import RequestRecorder
from conntel.api.params import refuse_undeclared
from conntel.api.routing import ASGIApp, Receive, Scope, Send
from conntel.store.base import Store

_JSON = (b"content-type", b"application/json")


async def send_json(send: Send, status: int, body: bytes, extra_headers: dict[str, str] | None = None) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if extra_headers:
        headers += [(name.lower().encode(), value.encode()) for name, value in extra_headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


Handler = Callable[[Mapping[str, str], RawHeaders, str], Awaitable[bytes]]  # (path params, headers, path) -> body


class HotEndpoint:
    """One route served ahead of the framework (Get Event, Get Snapshot, a bare check-in): its handler's
    answer or refusal as the v4 envelope, counted, timed and logged as Observe does for the rest."""

    def __init__(self, handler: Handler, store: Store, method: str, recorder: RequestRecorder | None = None):
        self.handler = handler
        self.store = store
        self.method = method
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path = scope["path"]
        extra_headers = None
        try:
            if scope["query_string"]:  # none of these routes takes query parameters
                refuse_undeclared(scope["query_string"], ())
            # The headers as sent: the authenticator reads the credential headers, refusing one sent twice.
            status, body = 200, await self.handler(scope["path_params"], scope["headers"], path)
        except ApiError as error:
            status, body, extra_headers = error.status, error_body(error), error.headers
        except REFUSALS as refusal:
            answer = from_refusal(refusal, scope["path_params"])
            status, body, extra_headers = answer.status, error_body(answer), answer.headers
        except Exception as error:
            failure = unexpected(error, self.method, path, self.store.is_unavailable(error))
            status, body, extra_headers = failure.status, error_body(failure), failure.headers
        try:
            await send_json(send, status, body, extra_headers)
        finally:
            if self.recorder is not None:
                self.recorder.record(scope, status, time.perf_counter() - started)


@dataclass(frozen=True)
class HotRoute:
    """A route served ahead of the framework: `method` requests on `path` (those `when` accepts, if given)."""

    path: str
    endpoint: ASGIApp
    method: str = "GET"
    when: Callable[[Scope], bool] | None = None


class HotRoutes:
    """Send each request of a hot route straight to its endpoint, everything else to `app`.

    One layer for all of them, routes looked up by method: each layer of ASGI app is a coroutine
    call per request.
    """

    def __init__(self, app: ASGIApp, routes: list[HotRoute]):
        self.app = app
        self._by_method: dict[str, list[tuple[re.Pattern[str], HotRoute]]] = {}
        for route in routes:
            self._by_method.setdefault(route.method, []).append((compile_path(route.path)[0], route))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for pattern, route in self._by_method.get(scope["method"], ()):
                match = pattern.match(scope["path"])
                if match is not None and (route.when is None or route.when(scope)):
                    scope["path_params"] = match.groupdict()
                    scope["route_path"] = route.path  # for metrics and logs, as Starlette's scope["route"]
                    return await route.endpoint(scope, receive, send)
        await self.app(scope, receive, send)
