"""The ASGI application: the routes' collaborators, error rendering, store lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route

from conntel.api.auth import Authenticator
from conntel.api.checkin import CheckInRoutes, Heartbeats, bare
from conntel.api.connectors import ConnectorRoutes
from conntel.api.envelope import error_response
from conntel.api.errors import REFUSALS, ApiError, from_refusal, internal_error, method_not_allowed, no_route
from conntel.api.events import EventRoutes
from conntel.api.failures import AnswerFailures
from conntel.api.health import HealthRoutes, sweeper
from conntel.api.hotpath import HotEndpoint, HotRoute, HotRoutes
from conntel.api.infra import infra_routes
from conntel.api.interrupts import InterruptRoutes
from conntel.api.observability import AccessLog, Metrics, Observe, RequestRecorder
from conntel.api.operations import CHECKIN, GET_EVENT, GET_SNAPSHOT, api_routes, operations_table
from conntel.api.ratelimit import RateLimiter, parse_rate_limit
from conntel.api.routing import ASGIApp, api_path
from conntel.api.snapshots import SnapshotRoutes
from conntel.api.stream import StreamRoutes
from conntel.api.tokens import TokenRoutes
from conntel.config import Settings
from conntel.retention import LEASE, check_interval, policy, prune_pass
from conntel.server.delivery import Deliverer
from conntel.server.exclusive import Exclusive
from conntel.server.stalled import StalledReaders
from conntel.store.base import Store


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _refusal(request: Request, exc: Exception) -> Response:
    return error_response(from_refusal(exc, request.path_params))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = api_path(request.url.path)
    if exc.status_code == 404:
        return error_response(no_route(path))
    if exc.status_code == 405:
        return error_response(method_not_allowed(request.method, path, _methods_served(request)))
    return error_response(internal_error())  # no other refusal of the framework's is reachable


def _methods_served(request: Request) -> set[str]:
    """Every method some route serves on the request's path (a path can have several routes, one per method)."""
    served: set[str] = set()
    # The request as it reached the router (a Mount has since moved part of the path into root_path).
    probe = {"type": "http", "method": request.method, "path": request.scope["path"],
             "root_path": request.scope.get("app_root_path", "")}  # fmt: skip
    for candidate in request.app.router.routes:
        if candidate.matches(probe)[0] is Match.NONE:
            continue
        if isinstance(candidate, Route) and candidate.methods:
            served |= candidate.methods
        elif isinstance(candidate, Mount):  # the dashboard's files
            served |= {"GET", "HEAD"}
    return served


def create_app(store: Store, settings: Settings, on_start: Callable[[], None] | None = None) -> ASGIApp:
    """The app on `store`; `on_start` is called in its event loop once it has started (the server's own watch)."""
    metrics = Metrics()
    access_log = AccessLog() if settings.access_log else None
    limiter = (
        RateLimiter(parse_rate_limit(settings.rate_limit), settings.rate_limit_storage, metrics.rate_limit_unchecked)
        if settings.rate_limit
        else None
    )
    auth = Authenticator(store, settings.credential_ttl_seconds, limiter, metrics.auth_failures)
    streams = StreamRoutes(store, auth, metrics)
    events = EventRoutes(store, auth, settings, metrics, on_ingested=streams.hub.nudge)
    snapshots = SnapshotRoutes(store, auth, settings)
    recorder = RequestRecorder(metrics, access_log)
    heartbeats = Heartbeats(store)
    checkins = CheckInRoutes(store, auth, settings, heartbeats)
    operations = operations_table(
        events,
        ConnectorRoutes(store, auth, settings),
        TokenRoutes(auth),
        HotEndpoint(events.get_event, store, "GET"),  # as Starlette's route (HEAD), inside Observe
        InterruptRoutes(store, auth, settings),
        checkins,
        snapshots,
        HotEndpoint(snapshots.get_snapshot, store, "GET"),  # as Starlette's route (HEAD), inside Observe
        HealthRoutes(store, auth),
    )

    keep = policy(settings.retain_events, settings.retain_snapshots)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        # Retention in the background, in one process at a time among all sharing the store.
        retention = Exclusive(
            store, LEASE, check_interval(keep), lambda still_held: prune_pass(store, keep, None, still_held)
        ) if keep else None  # fmt: skip
        if retention is not None:
            retention.start()
        silence = sweeper(store, settings.silent_after)  # fleet health: connectors that went quiet
        silence.start()
        deliverer = Deliverer(store, metrics)  # webhooks: the outbox, sent by one process at a time
        deliverer.start()
        stalled = StalledReaders(settings.port, settings.send_timeout, metrics)  # clients that stopped reading
        stalled.start()
        if on_start is not None:
            on_start()
        async with heartbeats.running():
            yield
        await stalled.stop()
        await deliverer.stop()
        await silence.stop()
        if retention is not None:
            await retention.stop()
        recorder.flush()
        await store.close()

    app = Starlette(
        routes=[*api_routes(operations, streams), *infra_routes(store, metrics, recorder)],
        lifespan=lifespan,
        middleware=[Middleware(AnswerFailures, is_unavailable=store.is_unavailable)],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            **dict.fromkeys(REFUSALS, _refusal),
        },
    )
    app.router.redirect_slashes = False  # a trailing slash is another (unknown) route, not a redirect
    # GETs of one event or one snapshot, and bare check-ins, skip Observe and Starlette: those endpoints
    # record themselves. Get Event, most of the traffic, is looked for first.
    return HotRoutes(
        Observe(app, recorder),
        [
            HotRoute(GET_EVENT, HotEndpoint(events.get_event, store, "GET", recorder)),
            HotRoute(GET_SNAPSHOT, HotEndpoint(snapshots.get_snapshot, store, "GET", recorder)),
            HotRoute(CHECKIN, HotEndpoint(checkins.check_in, store, "POST", recorder), "POST", when=bare),
        ],
    )
