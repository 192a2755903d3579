"""Operability: /metrics, /healthz, /readyz and one structured log line per request."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
from helpers import Server, World, bearer, build_world, drop_pg_database, post_events

T0 = 1_700_000_000
EVENT_ROUTE = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events/{event_ref}"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def scrape(server: Server) -> str:
    response = httpx.get(server.origin + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return response.text


def test_metrics_count_requests_ingestion_and_refusals(world: World):
    before = scrape(world.server)
    connector = world.new_connector()
    batch = [{"t": T0 + i, "n": 0, "e": {"k": "HaInit" if i else "Init"}} for i in range(3)]
    post_events(world, batch, connector=connector).raise_for_status()
    post_events(world, batch, connector=connector).raise_for_status()  # duplicates: not ingested again
    for _ in range(2):
        httpx.get(f"{world.events_url(connector)}/{T0}.0", headers=bearer(world.read_token))
    httpx.get(f"{world.events_url(connector)}/{T0}.0")
    httpx.get(f"{world.events_url(connector)}/{T0}.0", headers=bearer(world.other_write_token))
    after = scrape(world.server)

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("conntel_requests_total", route=EVENT_ROUTE, method="GET", status="200") == 2
    assert grew("conntel_request_duration_seconds_count", route=EVENT_ROUTE, method="GET") == 4
    # The histogram is filled in batches (api/observability.py): its buckets and sum must add up too.
    latency = {"route": EVENT_ROUTE, "method": "GET"}
    assert grew("conntel_request_duration_seconds_bucket", le="+Inf", **latency) == 4
    assert grew("conntel_request_duration_seconds_bucket", le="5.0", **latency) == 4  # each well under 5 s
    assert grew("conntel_request_duration_seconds_bucket", le="0.0005", **latency) <= 4
    assert 0 < grew("conntel_request_duration_seconds_sum", **latency) < 4 * 5.0
    assert grew("conntel_events_ingested_total", kind="Init") == 1
    assert grew("conntel_events_ingested_total", kind="HaInit") == 2
    assert grew("conntel_auth_failures_total", reason="missing") == 1
    assert grew("conntel_auth_failures_total", reason="forbidden") == 1
    # No ids in metrics, but the account ids of conntel_connectors (fleet health: README, Operating it).
    assert connector not in after
    assert all(line.startswith("conntel_connectors{") for line in after.splitlines() if world.account in line)
    assert "Traceback" not in world.server.server_log()


def test_health_and_readiness(world: World):
    for path, status in (("/healthz", "ok"), ("/readyz", "ready")):
        response = httpx.get(world.server.origin + path)
        assert response.status_code == 200
        assert response.json() == {"result": {"status": status}, "success": True, "errors": [], "messages": []}


def test_readiness_fails_when_the_database_goes_away(tmp_path: Path):
    world = build_world(tmp_path, "postgres")
    try:
        drop_pg_database(world.db)  # WITH (FORCE): the server's connections are cut
        response = httpx.get(world.server.origin + "/readyz", timeout=10)
        assert response.status_code == 503 and response.json()["errors"][0]["code"] == 20017
        assert "password" not in response.text
        assert httpx.get(world.server.origin + "/healthz").status_code == 200  # alive, not ready
    finally:
        world.server.stop()


def test_one_json_log_line_per_request_without_secrets(world: World):
    marker = f"{T0}.424242"
    httpx.get(f"{world.events_url()}/{marker}", headers=bearer(world.read_token))
    deadline = time.monotonic() + 3  # lines are written in batches, a tenth of a second apart
    while not (lines := [json.loads(line) for line in world.server.server_log().splitlines() if marker in line]):
        assert time.monotonic() < deadline, "no log line"
        time.sleep(0.05)
    assert len(lines) == 1
    (line,) = lines
    assert line["method"] == "GET" and line["status"] == 404 and line["route"] == EVENT_ROUTE
    assert isinstance(line["ms"], float) and isinstance(line["time"], float)
    assert world.read_token not in world.server.server_log()


def test_metrics_add_up_every_worker_process(tmp_path: Path):
    world = build_world(tmp_path)
    world.server.stop()
    server = Server(world.db, log_dir=tmp_path, extra_args=("--workers", "2")).start()
    try:
        for _ in range(20):
            httpx.get(server.origin + "/healthz")
        # Spread over both processes, counted as one server: each process folds its counts into
        # the shared files every RequestRecorder.FLUSH_SECONDS (the scraped one at once).
        deadline = time.monotonic() + 2
        while (count := metric(scrape(server), "conntel_requests_total", route="/healthz", status="200")) < 20:
            assert time.monotonic() < deadline, f"only {count} of 20 requests counted"
            time.sleep(0.05)
        assert count == 20
    finally:
        server.stop()
