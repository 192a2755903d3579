"""Running the API under granian (its Rust HTTP/1.1 server, uvloop in each worker), in one process or several.

granian itself bounds what uvicorn left to a protocol layer of conntel's own
(README, "Configuration"): the header buffer (431), the time to send headers
(the connection is closed), the connections each process serves at once
(`backpressure`: beyond it, new connections wait until others close). Its
refusals are its own, not v4 envelopes; everything the app answers is.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings
from granian.server import Server

from conntel.api.routing import ASGIApp
from conntel.config import Settings
from conntel.store import exposure_warning, open_store

# How the settings reach each worker process (granian imports the app factory there).
SETTINGS_ENV = "CONNTEL_SERVER_SETTINGS"
MAIN_PID_ENV = "CONNTEL_SERVER_MAIN_PID"  # so that a worker can tell its main process already ended
_PR_SET_PDEATHSIG = 1  # prctl(2)
_MAIN_PROCESS_LOOK_SECONDS = 1.0
# Live tails never end on their own: requests in flight get this long to finish on shutdown.
GRACEFUL_SHUTDOWN_SECONDS = 5
# hyper's smallest read buffer: the header cap cannot go below it.
MIN_HEADER_BUFFER = 8192
# Tracked allocations (net) between two young collections; CPython's default is 700 (see _tune_the_collector).
GC_YOUNG_THRESHOLD = 50_000


def app_from_environment() -> ASGIApp:
    """granian's app factory in each worker process."""
    _end_with_the_main_process()
    # Imported here, not in the main process: granian forks its workers from it, and prometheus_client picks
    # its multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by run) when first imported.
    from conntel.api.app import create_app

    settings = msgspec.json.decode(os.environ[SETTINGS_ENV], type=Settings)
    app = create_app(open_store(settings.database, settings.pool_size), settings, on_start=_watch_the_main_process)
    _tune_the_collector()
    return app


def _tune_the_collector() -> None:
    """Fewer, shorter runs of the cyclic garbage collector in a worker (bench/RESULTS.md, 2026-12-08).

    What a worker holds once started (modules, the app) lives as long as it does: frozen, full collections
    no longer walk it. A batch being ingested holds thousands of tracked objects at once (decoded JSON,
    rows) that reference counting frees when the batch is done: at the default threshold they set off
    about seven young collections a batch of 1,000 events, which made up more than half of decoding it.
    Cycles are still collected, a little later.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _end_with_the_main_process() -> None:
    """Have this worker sent SIGTERM when granian's main process ends, however it ends.

    granian stops its workers when it is stopped, but a main process killed outright (SIGKILL, the OOM
    killer) cannot, and its workers would go on serving the port and writing the store, orphaned, until
    killed one by one. Linux's parent-death signal covers that (elsewhere nothing changes). Workers are
    forked by the main process's main thread, whose end is the signal's trigger.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        return  # not allowed here (a seccomp sandbox, say): as before
    if os.getppid() != int(os.environ.get(MAIN_PID_ENV, os.getppid())):  # the main process ended before that
        os.kill(os.getpid(), signal.SIGTERM)


def _watch_the_main_process() -> None:
    """Once the worker serves, look every second whether granian's main process still runs; if not, stop.

    The parent-death signal can arrive while the worker is still starting (the app's lifespan), before
    granian serves: granian's handler takes it then, and the worker would go on to serve, orphaned (seen
    once under load, in tests/test_multiprocess.py with --workers 2).
    """
    loop = asyncio.get_running_loop()
    main = int(os.environ.get(MAIN_PID_ENV, os.getppid()))

    def look() -> None:
        if os.getppid() != main:
            os.kill(os.getpid(), signal.SIGTERM)  # granian's handler, now serving: a graceful stop
        else:
            loop.call_later(_MAIN_PROCESS_LOOK_SECONDS, look)

    loop.call_later(_MAIN_PROCESS_LOOK_SECONDS, look)


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


def server_options(settings: Settings) -> dict[str, Any]:
    """granian's settings for conntel: its own limits stand in for conntel's (README, "Operations")."""
    return dict(
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.worker_count(),
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        # Requests in flight per process; further connections wait in the listen backlog.
        backpressure=settings.max_connections,
        backlog=max(1024, settings.max_connections),
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.header_timeout * 1000),
            max_buffer_size=max(MIN_HEADER_BUFFER, settings.max_header_bytes),
        ),
        log_access=False,
        # granian's own messages on stderr, as a server's log (its default is stdout).
        log_dictconfig={
            "handlers": {
                "console": {"formatter": "generic", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
                "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
            }
        },
        workers_kill_timeout=GRACEFUL_SHUTDOWN_SECONDS,
        factory=True,
    )


def run(settings: Settings, alongside: Callable[[], Awaitable[None]] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; `alongside` runs in a thread of the main process while the server runs."""
    check_store(settings)
    os.environ[SETTINGS_ENV] = msgspec.json.encode(settings).decode()
    os.environ[MAIN_PID_ENV] = str(os.getpid())
    metrics_dir = None
    if settings.worker_count() > 1:
        if "prometheus_client" in sys.modules:  # forked workers would keep its one-process mode (see above)
            raise RuntimeError("conntel.server.run.run: prometheus_client was imported before the workers forked")
        # Workers count their metrics in files here, so /metrics adds up every process (prometheus_client).
        metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="conntel-metrics-"))
    server = Server("conntel.server.run:app_from_environment", **server_options(settings))
    if alongside is not None:
        side = threading.Thread(target=_when_listening, args=(settings, alongside), daemon=True, name="alongside")
        side.start()
    try:
        # SIGTERM/SIGINT: stop accepting, let requests in flight finish, close the store (lifespan).
        server.serve()
    except RuntimeError as exc:  # granian's socket errors (a port in use, ...), with a Rust backtrace below
        reason = str(exc).splitlines()[0]
        raise SystemExit(f"Error: cannot serve on {settings.host}:{settings.port}: {reason}") from None
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _when_listening(settings: Settings, then: Callable[[], Awaitable[None]]) -> None:
    """Run `then` (in this thread, on its own loop) once the server accepts connections on its port."""
    while True:
        try:
            socket.create_connection((settings.host, settings.port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    asyncio.run(then())  # type: ignore[arg-type]  # a coroutine
