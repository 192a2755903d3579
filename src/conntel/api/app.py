"""The ASGI application: routes, error rendering, store lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources

import msgspec
from starlette.applications import Starlette
from starlette.convertors import register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from conntel.api.auth import Authenticator
from conntel.api.connectors import LIST_QUERY as CONNECTOR_QUERY
from conntel.api.connectors import ConnectorRoutes
from conntel.api.envelope import error_response, ok
from conntel.api.errors import INTERNAL_ERROR, METHOD_NOT_ALLOWED, STORE_UNAVAILABLE, ApiError, no_route
from conntel.api.events import LIST_QUERY, EventRoutes
from conntel.api.failures import AnswerFailures
from conntel.api.hotpath import ASGIApp, GetEventEndpoint, Shortcut
from conntel.api.observability import METRICS_CONTENT_TYPE, AccessLog, Metrics, Observe, RequestRecorder
from conntel.api.openapi import Operation, build_openapi
from conntel.api.ratelimit import RateLimiter, parse_rate_limit
from conntel.api.routing import CONNECTOR, CONNECTORS, PREFIX, EventRefConvertor, api_path
from conntel.api.stream import StreamRoutes
from conntel.api.tokens import TokenRoutes, TokenStatus
from conntel.config import Settings
from conntel.connectors import Connector, ConnectorCreate, ConnectorEdit, ConnectorUpdate
from conntel.credentials import READ_ACCEPTS, WRITE_ACCEPTS
from conntel.events import AppendResult, Event, EventList, LatestEvents, NewEvent
from conntel.store.base import Store, StoreError

DASHBOARD_PAGE = (resources.files("conntel") / "web" / "index.html").read_bytes()


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(no_route(api_path(request.url.path)))
    if exc.status_code == 405:
        return error_response(
            ApiError(
                405,
                METHOD_NOT_ALLOWED,
                f"Method {request.method} not allowed on {api_path(request.url.path)}",
                headers=dict(exc.headers) if exc.headers is not None else None,
            )
        )
    return error_response(ApiError(exc.status_code, INTERNAL_ERROR, exc.detail))


# `event_ref` starts with a digit, so `.../events/latest` is not taken for an event.
register_url_convertor("event_ref", EventRefConvertor())
GET_EVENT = CONNECTOR + "/telemetry/events/{event_ref:event_ref}"


def create_app(store: Store, settings: Settings) -> ASGIApp:
    metrics = Metrics()
    access_log = AccessLog() if settings.access_log else None
    limiter = RateLimiter(parse_rate_limit(settings.rate_limit)) if settings.rate_limit else None
    auth = Authenticator(store, settings.credential_ttl_seconds, limiter, metrics.auth_failures)
    events = EventRoutes(store, auth, settings, metrics)
    connectors = ConnectorRoutes(store, auth, settings)
    tokens = TokenRoutes(auth)
    streams = StreamRoutes(store, auth)
    recorder = RequestRecorder(metrics, access_log)
    get_event = GetEventEndpoint(events)  # as Starlette's route (HEAD), inside Observe

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        yield
        recorder.flush()
        await store.close()

    operations = [
        Operation(
            "GET",
            GET_EVENT,
            get_event,
            "getEvent",
            "Get Event",
            READ_ACCEPTS,
            result=Event,
            doc_path=CONNECTOR + "/telemetry/events/{event_t}.{event_n}",
        ),
        Operation(
            "GET",
            CONNECTOR + "/telemetry/events/latest",
            events.latest_events,
            "listLatestEvents",
            "Latest Events, newest first",
            READ_ACCEPTS,
            result=LatestEvents,
        ),
        Operation(
            "GET",
            CONNECTOR + "/telemetry/events",
            events.list_events,
            "listEvents",
            "List Events",
            READ_ACCEPTS,
            query=LIST_QUERY,
            result=EventList,
        ),
        Operation(
            "POST",
            CONNECTOR + "/telemetry/events",
            events.ingest,
            "ingestEvents",
            "Ingest a batch of events (conntel's own)",
            WRITE_ACCEPTS,
            body=list[NewEvent],
            result=AppendResult,
        ),
        Operation(
            "GET",
            CONNECTORS,
            connectors.list,
            "listConnectors",
            "List Connectors",
            READ_ACCEPTS,
            query=CONNECTOR_QUERY,
            result=list[Connector],
        ),
        Operation(
            "POST",
            CONNECTORS,
            connectors.create,
            "createConnector",
            "Create Connector",
            WRITE_ACCEPTS,
            body=ConnectorCreate,
            result=Connector,
        ),
        Operation("GET", CONNECTOR, connectors.get, "getConnector", "Get Connector", READ_ACCEPTS, result=Connector),
        Operation(
            "PUT",
            CONNECTOR,
            connectors.update,
            "updateConnector",
            "Update Connector (every setting)",
            WRITE_ACCEPTS,
            body=ConnectorUpdate,
            result=Connector,
        ),
        Operation(
            "PATCH",
            CONNECTOR,
            connectors.edit,
            "editConnector",
            "Edit Connector (given settings only)",
            WRITE_ACCEPTS,
            body=ConnectorEdit,
            result=Connector,
        ),
        Operation(
            "DELETE",
            CONNECTOR,
            connectors.delete,
            "deleteConnector",
            "Delete Connector and its events",
            WRITE_ACCEPTS,
            result=Connector,
        ),
        Operation(
            "GET", PREFIX + "/user/tokens/verify", tokens.verify, "verifyToken", "Verify Token", result=TokenStatus
        ),
    ]
    openapi = msgspec.json.encode(build_openapi(operations))

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def metrics_page(request: Request) -> Response:
        recorder.flush()  # this process's counts up to now (other workers fold theirs every tick)
        return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        return ok({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await store.ping()
        except StoreError as exc:
            raise ApiError(503, STORE_UNAVAILABLE, str(exc)) from None
        return ok({"status": "ready"})

    async def dashboard_page(request: Request) -> Response:
        return Response(DASHBOARD_PAGE, media_type="text/html; charset=utf-8")

    routes = [
        # Live tails (Server-Sent Events): outside the OpenAPI document, which describes JSON operations.
        Route(CONNECTORS + "/telemetry/events/stream", streams.account_stream, methods=["GET"]),
        Route(CONNECTOR + "/telemetry/events/stream", streams.connector_stream, methods=["GET"]),
        *(Route(op.path, op.endpoint, methods=[op.method]) for op in operations),
        Route(PREFIX + "/openapi.json", openapi_json, methods=["GET"]),
        # Operability, outside the API prefix as infrastructure expects it.
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        # The dashboard: its page at `/`, its files at `/assets/`.
        Route("/", dashboard_page, methods=["GET"]),
        Mount("/assets", StaticFiles(packages=[("conntel", "web")])),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(AnswerFailures, is_unavailable=store.is_unavailable)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.router.redirect_slashes = False  # a trailing slash is another (unknown) route, not a redirect
    # GETs of one event skip Observe and Starlette: that endpoint records itself.
    return Shortcut(Observe(app, recorder), GET_EVENT, GetEventEndpoint(events, recorder))
