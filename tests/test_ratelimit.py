"""`--rate-limit`: per-credential limits answered with 429, 971 and Retry-After."""

from __future__ import annotations

from pathlib import Path

import httpx
from helpers import Server, bearer, build_world, global_key

T0 = 1_700_000_000


def test_each_credential_is_limited_on_its_own(tmp_path: Path):
    world = build_world(tmp_path)
    world.server.stop()
    server = Server(world.db, extra_args=("--rate-limit", "5/minute")).start()
    try:
        url = f"{world.events_url().replace(world.server.base_url, server.base_url)}/{T0}.0"
        answers = [httpx.get(url, headers=bearer(world.read_token)) for _ in range(6)]
        assert [a.status_code for a in answers] == [404] * 5 + [429]
        limited = answers[-1]
        assert limited.json() == {
            "result": None,
            "success": False,
            "errors": [{"code": 971, "message": "Please wait and consider throttling your request speed"}],
            "messages": [],
        }
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # Ingestion through the same credential is limited too...
        ingest = httpx.post(url.rsplit("/", 1)[0], json=[], headers=bearer(world.read_token))
        assert ingest.status_code == 429
        # ...but other credentials have their own budget.
        assert httpx.get(url, headers=bearer(world.write_token)).status_code == 404
        assert httpx.get(url, headers=global_key(world.email, world.api_key)).status_code == 404
    finally:
        server.stop()


def test_unreadable_rate_limit_is_refused_at_start(tmp_path: Path):
    import subprocess

    from helpers import CONNTEL

    done = subprocess.run(
        [*CONNTEL, "serve", "--db", str(tmp_path / "x.db"), "--rate-limit", "lots"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "is not a rate such as" in done.stderr
