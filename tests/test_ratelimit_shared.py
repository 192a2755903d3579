"""`--rate-limit-storage redis://...`: one limit per credential across processes, failing open.

Two real `conntel serve` processes (as on two hosts) count in one real Redis, started here on a
free port so that it can be stopped and started again without touching anyone else's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import CONNTEL, Server, bearer, build_world, free_port, global_key, wait_for

T0 = 1_700_000_000
LIMIT = 6


class Redis:
    """A throwaway redis-server on a free port, keeping nothing on disk."""

    def __init__(self, folder: Path):
        self.port, self.folder, self.proc = free_port(), folder, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answers)
        return self

    def answers(self) -> bool:
        done = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return done.stdout.strip() == "PONG"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[list[Server], Redis, object]]:
    world = build_world(tmp_path)
    world.server.stop()
    redis = Redis(tmp_path).start()
    args = ("--rate-limit", f"{LIMIT}/hour", "--rate-limit-storage", redis.url, "--no-access-log")
    servers = [Server(world.db, log_dir=tmp_path, extra_args=args).start() for _ in range(2)]
    yield servers, redis, world
    for server in servers:
        server.stop()
    redis.stop()


def get_event(server: Server, world, headers: dict[str, str]) -> int:
    url = f"{server.base_url}/accounts/{world.account}/magic/connectors/{world.connector}/telemetry/events/{T0}.0"
    return httpx.get(url, headers=headers).status_code


def unchecked(server: Server) -> float:
    found = re.search(r"^conntel_rate_limit_unchecked_total (\S+)$", httpx.get(f"{server.origin}/metrics").text, re.M)
    assert found is not None
    return float(found[1])


def test_two_processes_enforce_one_limit_per_credential(setup):
    servers, _, world = setup
    answers = [get_event(servers[i % 2], world, bearer(world.read_token)) for i in range(2 * LIMIT)]
    assert answers == [404] * LIMIT + [429] * LIMIT  # the limit once, not once per process
    # Each credential has its own budget, shared too.
    key = global_key(world.email, world.api_key)
    assert [get_event(servers[i % 2], world, key) for i in range(LIMIT + 1)] == [404] * LIMIT + [429]


def test_storage_away_fails_open_logged_once_and_limits_return_with_it(setup):
    servers, redis, world = setup
    token = bearer(world.write_token)
    redis.stop()
    assert [get_event(servers[i % 2], world, token) for i in range(3 * LIMIT)] == [404] * (3 * LIMIT)
    assert sum(unchecked(server) for server in servers) == 3 * LIMIT
    for server in servers:
        assert server.server_log().count("does not answer") == 1, server.server_log()
        assert "Traceback" not in server.server_log()

    redis.start()  # empty again: every credential's budget starts afresh

    def limited_again() -> bool:
        return get_event(servers[0], world, token) == 429

    wait_for(limited_again, timeout=15)
    assert get_event(servers[1], world, token) == 429
    assert "answers again" in servers[0].server_log()
    before = unchecked(servers[0])
    assert get_event(servers[0], world, token) == 429 and unchecked(servers[0]) == before


def test_storage_needs_a_rate_and_a_redis_url(tmp_path: Path):
    db = str(tmp_path / "x.db")
    done = subprocess.run([*CONNTEL, "serve", "--db", db, "--rate-limit-storage", "redis://127.0.0.1:1"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "give a --rate-limit too" in done.stderr
    done = subprocess.run(
        [*CONNTEL, "serve", "--db", db, "--rate-limit", "5/minute", "--rate-limit-storage", "http://u:pw@host"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "is not a rate-limit storage" in done.stderr
    assert "pw" not in done.stderr  # the password is never shown
