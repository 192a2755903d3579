"""The ASGI application: routes, error rendering, store lifetime."""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.convertors import register_url_convertor
from starlette.routing import Route

from conntel.api.auth import Authenticator
from conntel.api.envelope import error_response
from conntel.api.errors import INTERNAL_ERROR, METHOD_NOT_ALLOWED, ApiError, no_route
from conntel.api.events import EventRoutes
from conntel.api.ratelimit import RateLimiter, parse_rate_limit
from conntel.api.hotpath import ASGIApp, GetEventEndpoint, Shortcut
from conntel.api.connectors import ConnectorRoutes
from conntel.api.routing import CONNECTOR, CONNECTORS, PREFIX, EventRefConvertor, api_path
from conntel.api.tokens import TokenRoutes
from conntel.config import Settings
from conntel.store.base import Store

log = logging.getLogger("conntel")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(no_route(api_path(request.url.path)))
    if exc.status_code == 405:
        return error_response(
            ApiError(405, METHOD_NOT_ALLOWED, f"Method {request.method} not allowed on {api_path(request.url.path)}",
                     headers=exc.headers)
        )
    return error_response(ApiError(exc.status_code, INTERNAL_ERROR, exc.detail))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, api_path(request.url.path))
    return error_response(ApiError(500, INTERNAL_ERROR, "Internal server error"))


# `event_ref` starts with a digit, so `.../events/latest` is not taken for an event.
register_url_convertor("event_ref", EventRefConvertor())
GET_EVENT = CONNECTOR + "/telemetry/events/{event_ref:event_ref}"


def create_app(store: Store, settings: Settings) -> ASGIApp:
    limiter = RateLimiter(parse_rate_limit(settings.rate_limit)) if settings.rate_limit else None
    auth = Authenticator(store, settings.credential_ttl_seconds, limiter)
    events = EventRoutes(store, auth, settings)
    connectors = ConnectorRoutes(store, auth, settings)
    tokens = TokenRoutes(auth)
    get_event = GetEventEndpoint(events)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    routes = [
        Route(GET_EVENT, get_event, methods=["GET"]),
        Route(CONNECTOR + "/telemetry/events/latest", events.latest_events, methods=["GET"]),
        Route(CONNECTOR + "/telemetry/events", events.list_events, methods=["GET"]),
        Route(CONNECTOR + "/telemetry/events", events.ingest, methods=["POST"]),
        Route(CONNECTORS, connectors.list, methods=["GET"]),
        Route(CONNECTORS, connectors.create, methods=["POST"]),
        Route(CONNECTOR, connectors.get, methods=["GET"]),
        Route(CONNECTOR, connectors.update, methods=["PUT"]),
        Route(CONNECTOR, connectors.edit, methods=["PATCH"]),
        Route(CONNECTOR, connectors.delete, methods=["DELETE"]),
        Route(PREFIX + "/user/tokens/verify", tokens.verify, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected_error},
    )
    app.router.redirect_slashes = False  # a trailing slash is another (unknown) route, not a redirect
    return Shortcut(app, GET_EVENT, get_event)
