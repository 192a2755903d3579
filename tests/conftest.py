from __future__ import annotations

import pytest

from helpers import World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """One server shared by the read-mostly tests; each test uses its own connectors where it writes."""
    built = build_world(tmp_path_factory.mktemp("world"))
    yield built
    built.server.stop()
