"""When the database cannot be used just now: 503 with code 20017 and Retry-After, never a 500,
and recovery without a restart."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cloudflare import Cloudflare
from helpers import CREDENTIAL_TTL, Server, TcpProxy, World, bearer, build_world, drop_pg_database, post_events
from test_stream_credentials import Tail

T0 = 1_700_000_000


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert [error["code"] for error in body["errors"]] == [20017]


def assert_logged_as_unavailable(log: str, method: str) -> None:
    """One line per refused request, and none of the lines a bug leaves (the driver may log its own retries)."""
    assert f"database unavailable on {method} /accounts/" in log
    assert "unexpected error" not in log and "Exception in ASGI application" not in log


def every_operation(world: World, client: httpx.Client) -> list[httpx.Response]:
    """One request of each kind that needs the database: Get Event, List, Latest, ingestion, connectors."""
    read, write = bearer(world.read_token), bearer(world.write_token)
    return [
        client.get(f"{world.events_url()}/{T0}.0", headers=read),
        client.get(world.events_url(), params={"from": T0, "to": T0 + 10}, headers=read),
        client.get(f"{world.events_url()}/latest", headers=read),
        client.post(world.events_url(), json=[{"t": T0 + 1, "n": 0, "e": {"k": "Init"}}], headers=write),
        client.get(f"{world.server.base_url}/accounts/{world.account}/magic/connectors", headers=read),
    ]


@pytest.fixture
def proxied_postgres_world(tmp_path: Path):
    """A PostgreSQL world whose server reaches the database through a proxy the test can cut."""
    world = build_world(tmp_path, "postgres")
    post_events(world, [{"t": T0, "n": 0, "e": {"k": "Init"}}]).raise_for_status()
    world.server.stop()
    direct = urlsplit(world.db)
    proxy = TcpProxy((direct.hostname, direct.port or 5432)).start()
    credentials, _, _ = direct.netloc.rpartition("@")
    proxied_url = direct._replace(netloc=f"{credentials}@127.0.0.1:{proxy.port}".lstrip("@")).geturl()
    world.server = Server(
        proxied_url, log_dir=tmp_path, extra_args=("--pool-size", "4", "--credential-ttl", str(CREDENTIAL_TTL))
    ).start()
    yield world, proxy
    world.server.stop()
    proxy.cut()
    drop_pg_database(world.db)


def test_postgresql_out_of_reach_is_503_and_the_server_recovers_by_itself(proxied_postgres_world):
    world, proxy = proxied_postgres_world
    with httpx.Client(timeout=30) as client:
        assert [r.status_code for r in every_operation(world, client)] == [200] * 5
        proxy.cut()
        time.sleep(0.2)  # the server notices its connections closing
        for response in every_operation(world, client):
            assert_unavailable(response)
        assert client.get(f"{world.server.origin}/readyz").status_code == 503
        proxy.restore()
        assert [r.status_code for r in every_operation(world, client)] == [200] * 5
    assert_logged_as_unavailable(world.server.server_log(), "GET")


def test_the_official_sdk_rides_out_a_short_outage_with_its_own_retries(proxied_postgres_world):
    world, proxy = proxied_postgres_world
    client = Cloudflare(api_token=world.read_token, base_url=world.server.base_url)  # the SDK's default retries
    events = client.magic_transit.connectors.events
    assert events.get(0, account_id=world.account, connector_id=world.connector, event_t=T0).t == T0
    proxy.cut()
    time.sleep(CREDENTIAL_TTL + 0.1)  # past the credential cache: the token lookup meets the outage too
    back = threading.Timer(0.5, proxy.restore)  # the database is back within the SDK's first wait
    back.start()
    started = time.monotonic()
    try:
        event = events.get(0, account_id=world.account, connector_id=world.connector, event_t=T0)
    finally:
        back.join()
    assert event.t == T0 and event.e.k == "Init"
    assert time.monotonic() - started >= 0.9  # it waited as Retry-After said, after a 503
    assert "database unavailable on GET /accounts/" in world.server.server_log()


def test_sqlite_write_lock_held_past_the_busy_timeout_is_503_while_reads_go_on(tmp_path: Path):
    world = build_world(tmp_path)
    post_events(world, [{"t": T0, "n": 0, "e": {"k": "Init"}}]).raise_for_status()
    holder = sqlite3.connect(world.db, isolation_level=None)  # another program holding the write lock
    try:
        holder.execute("BEGIN IMMEDIATE")
        with httpx.Client(timeout=30) as client:
            started = time.monotonic()
            batch = [{"t": T0 + 1, "n": 0, "e": {"k": "Init"}}]
            assert_unavailable(client.post(world.events_url(), json=batch, headers=bearer(world.write_token)))
            assert time.monotonic() - started >= 9  # the busy timeout (10 s) came first
            got = client.get(f"{world.events_url()}/{T0}.0", headers=bearer(world.read_token))
            assert got.status_code == 200  # WAL: readers never wait for the writer
        holder.execute("ROLLBACK")
        assert post_events(world, [{"t": T0 + 1, "n": 0, "e": {"k": "Init"}}]).status_code == 200
    finally:
        holder.close()
        world.server.stop()
    assert_logged_as_unavailable(world.server.server_log(), "POST")


def test_a_live_tail_ends_with_a_last_message_when_postgresql_goes_away(proxied_postgres_world):
    world, proxy = proxied_postgres_world
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/telemetry/events/stream"
    tail = Tail(url, bearer(world.read_token))
    assert tail.status == 200
    proxy.cut()
    tail.wait_end(within=10)
    kind, data = tail.last()
    assert kind == "error" and data["reason"] == "store_unavailable", tail.messages
    assert [error["code"] for error in data["errors"]] == [20017]
    log = world.server.server_log()
    # asyncpg's pool may log its own reconnect attempts (with their tracebacks) while the database is
    # away; what must not appear is an error of conntel's: an unexpected one, or a frame of its code.
    assert "database unavailable on a live tail" in log
    assert "unexpected error" not in log and "src/conntel/" not in log, log
    # (Recovery once the database is back is the first test's: restoring here adds nothing but a port race.)
