"""Outside the API prefix: /healthz, /readyz and /metrics for infrastructure, the dashboard at `/` and /assets.

/healthz, /readyz and /metrics take no query parameters (one is refused, 400
20010, as everywhere in the API). The dashboard's page and files ignore them:
browsers and caches add their own (`?v=...`), and nothing there acts on one.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from conntel.api.envelope import ok
from conntel.api.errors import not_ready
from conntel.api.observability import METRICS_CONTENT_TYPE, Metrics, RequestRecorder, store_exposition
from conntel.api.routing import route
from conntel.store.base import Store, StoreError

DASHBOARD_PAGE = (resources.files("conntel") / "web" / "index.html").read_bytes()


def infra_routes(store: Store, metrics: Metrics, recorder: RequestRecorder) -> list[BaseRoute]:
    async def metrics_page(request: Request) -> Response:
        recorder.flush()  # this process's counts up to now (other workers fold theirs every tick)
        try:
            fleet = store_exposition(await store.health_counts(), await store.webhook_outbox_depth())
        except StoreError:  # the database away: the process's own metrics still answer
            fleet = b""
        return Response(metrics.exposition() + fleet, media_type=METRICS_CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        return ok({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await store.ping()
        except StoreError as exc:
            raise not_ready(str(exc)) from None
        return ok({"status": "ready"})

    async def dashboard_page(request: Request) -> Response:
        return Response(DASHBOARD_PAGE, media_type="text/html; charset=utf-8")

    return [
        route("/metrics", metrics_page, ["GET"]),
        route("/healthz", healthz, ["GET"]),
        route("/readyz", readyz, ["GET"]),
        Route("/", dashboard_page, methods=["GET"]),
        Mount("/assets", StaticFiles(packages=[("conntel", "web")])),
    ]
