from __future__ import annotations

import pytest
from helpers import World, build_world, drop_pg_database

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test that takes a server runs on the embedded store and on PostgreSQL."""
    return request.param


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, backend: str) -> World:
    """One server per backend shared by the read-mostly tests; tests that write use their own connectors."""
    built = build_world(tmp_path_factory.mktemp(f"world-{backend}"), backend)
    yield built
    built.server.stop()
    if backend == "postgres":
        drop_pg_database(built.db)
