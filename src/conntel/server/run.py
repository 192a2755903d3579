"""Running the API under uvicorn (uvloop + httptools), in one process or several."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import uvicorn
import uvloop

from conntel.api.app import create_app
from conntel.api.routing import ASGIApp
from conntel.config import Settings
from conntel.server import guards
from conntel.store import exposure_warning, open_store

# How `--workers N` hands the settings to each worker process.
SETTINGS_ENV = "CONNTEL_SERVER_SETTINGS"
GRACEFUL_SHUTDOWN_SECONDS = 5


def app_from_environment() -> ASGIApp:
    """uvicorn's app factory in each worker process."""
    settings = msgspec.json.decode(os.environ[SETTINGS_ENV], type=Settings)
    apply_connection_limits(settings)
    return create_app(open_store(settings.database, settings.pool_size), settings)


def apply_connection_limits(settings: Settings) -> None:
    guards.LIMITS = guards.ConnectionLimits(
        settings.max_header_bytes, settings.header_timeout, settings.max_connections
    )


def check_uvicorn() -> None:
    """Refuse to serve on a uvicorn whose insides the guards no longer fit (guards.UVICORN_INTERNALS)."""
    problems = guards.uvicorn_internals_problems()
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SystemExit(f"Error: {problems[0]}{more}")


def check_store(settings: Settings) -> None:
    """Open the store once (applying migrations) so a bad database fails before anything listens."""

    async def check() -> None:
        store = open_store(settings.database, pool_size=1)
        try:
            await store.start()
        finally:
            await store.close()

    asyncio.run(check())
    warning = exposure_warning(settings.database)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)


def run(settings: Settings, alongside: Callable[[], Awaitable[None]] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; `alongside` (one process only) runs as a task once the server listens."""
    check_uvicorn()
    check_store(settings)
    apply_connection_limits(settings)
    options: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=guards.GuardedHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        server_header=False,
        # conntel never reads the client's address, so uvicorn need not rewrite it from X-Forwarded-*.
        proxy_headers=False,
        # Live tails never end on their own: give requests in flight this long to finish on shutdown.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_level="info",
    )
    # SIGTERM/SIGINT: stop accepting, finish requests in flight, close the store.
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = msgspec.json.encode(settings).decode()
        # Workers count their metrics in files here, so /metrics adds up every process (prometheus_client).
        metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="conntel-metrics-"))
        try:
            uvicorn.run("conntel.server.run:app_from_environment", factory=True, workers=settings.workers, **options)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    else:
        app = create_app(open_store(settings.database, settings.pool_size), settings)
        server = uvicorn.Server(uvicorn.Config(app, **options))
        uvloop.run(_serve(server, alongside))


async def _serve(server: uvicorn.Server, alongside: Callable[[], Awaitable[None]] | None) -> None:
    async def when_listening(then: Callable[[], Awaitable[None]]) -> None:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for this)
            await asyncio.sleep(0.05)
        await then()

    task = asyncio.create_task(when_listening(alongside)) if alongside is not None else None
    try:
        await server.serve()
    finally:
        if task is not None:
            task.cancel()
