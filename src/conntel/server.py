"""Running the API under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import uvicorn

from conntel.api.app import create_app
from conntel.config import Settings
from conntel.store import open_store


def run(settings: Settings) -> None:
    store = open_store(settings.database)  # fails here, before listening, if the database is unusable
    app = create_app(store, settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
        log_level="info",
    )
    uvicorn.Server(config).run()  # SIGTERM/SIGINT: stop accepting, finish requests, close the store
