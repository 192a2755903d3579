"""The fleet page with 1,000 connectors in headless Chromium, while 500 events a second arrive.

tests/fleet_scale.py builds the fleet (a tenth failing, a fifth silent) and feeds it; tests/dashboard/
scale.mjs opens the page, sorts and filters while the feeder posts, and watches a failure and a silent
connector's first event reach their rows, and, when the server counts tunnels in snapshots, a tunnel
going down, which only the stream's `health` message can tell the page. Asserted here: every
connector is there with the server's health (the counts by health, the last connector reachable by
scrolling), the page asked nothing per connector, sorting and filtering gave the right rows, and the
live changes arrived. The timings are bench/dashboard.py's business (5,000 connectors, in
`make bench`); this test prints them only.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fleet_scale import Feeder, build_fleet, drive_scale, push_tunnel_down, server_health, tunnels_count
from helpers import bearer, build_world, drop_pg_database
from test_dashboard import CHROMIUM, driver_ready  # noqa: F401 (a fixture)

SIZE = 1000
RATE = 500


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_fleet_page_at_scale(tmp_path: Path, driver_ready: str, backend: str) -> None:  # noqa: F811
    world = build_world(tmp_path, backend)
    try:
        fleet = build_fleet(world, SIZE)
        reporting = fleet.reporting()
        fail_id, probe_id, tunnel_id = [cid for cid in reporting if fleet.health[cid] == "healthy"][:3]
        # A change only the server's health message can tell the page (no event explains it): with a
        # server that counts tunnels in snapshots, one connector's tunnel goes down while the page is open.
        if tunnels_count(world, probe_id):
            fleet.health[probe_id] = "failing"
        else:
            tunnel_id = None
        expected = fleet.counts()
        assert {cid: item["health"] for cid, item in server_health(world).items()} == fleet.health
        wake_id = next(cid for cid in fleet.ids if fleet.health[cid] == "silent" and cid != world.connector)
        feeder = Feeder(world, [cid for cid in reporting if cid != fail_id], RATE)
        now = int(time.time())
        answers = {
            "feed": lambda: feeder.start() and {},
            "fail": lambda: post(world, fail_id, "FinishUpgradeFailure", now),
            "wake": lambda: post(world, wake_id, "Reconcile", now),
            "tunnel": lambda: push_tunnel_down(world, tunnel_id) or {},
            "stop": feeder.stop,
        }
        config = {
            "chromium": CHROMIUM,
            "origin": world.server.origin,
            "account": world.account,
            "token": world.read_token,
            "count": len(fleet.ids),
            "lastId": max(fleet.ids),
            "failId": fail_id,
            "wakeId": wake_id,
            "tunnelId": tunnel_id,
            "opensUnderFeed": 1,
            "rounds": 1,
        }
        report = drive_scale(driver_ready, config, answers, tmp_path / "scale.stderr")
    finally:
        world.server.stop()
        if backend == "postgres":
            drop_pg_database(world.db)
    assert "error" not in report, f"{report['error']}\nsteps done: {report['steps']}"
    assert not report["pageErrors"] and not report["consoleErrors"], (report["pageErrors"], report["consoleErrors"])
    timings = ", ".join(f"{x['name']} {x['ms']} ms" for x in report["latencies"])
    opened = f"all rows in {report['allRowsMs']} ms, {report['allRowsUnderFeedMs']} ms under the feed"
    print(f"\n{backend}, {len(fleet.ids)} connectors: {opened}; {timings}; long tasks {report['longTasks']}")

    # Every connector, with the server's health; the page asked for the list, the health and the stream.
    assert report["counts"] == expected
    assert report["countsUnderFeed"] == expected  # opened again while the feeder posts
    api = f"/client/v4/accounts/{world.account}/magic/connectors"
    asked = sorted(r for r in report["loadRequests"] if "/client/v4/accounts/" in r)
    assert asked == [f"GET {api}", f"GET {api}/telemetry/events/stream", f"GET {api}/telemetry/health"]
    first = report["first"]
    assert first["rowCount"] == len(fleet.ids)
    assert 0 < len(first["rows"]) < 100  # the rows in view, not a thousand
    assert all(row["health"] == fleet.health[row["id"]] for row in first["rows"])
    assert [row["id"] for row in first["rows"][:3]] == sorted(c for c in fleet.ids if fleet.health[c] == "failing")[:3]

    # Reachable: the bottom of the page, sorted by id, is the last connector at its index.
    bottom = {row["id"]: row["index"] for row in report["bottom"]["rows"]}
    assert bottom[max(fleet.ids)] == len(fleet.ids) - 1

    # Sorted and filtered under the feed: the right rows.
    assert report["sortedById"] == sorted(fleet.ids)[:5]
    for health in ("failing", "silent", "healthy"):
        shown = report[f"filter-{health}"]
        assert shown == {"rowCount": expected[health], "healths": [health]}
    assert report["filter-all"]["rowCount"] == len(fleet.ids)
    assert [row["id"] for row in report["textFilter"]["rows"]] == [max(fleet.ids)]
    assert report["liveBefore"] == "live" and report["liveAfter"] == "live"
    assert report["feeder"]["posted"] > 0 and report["feeder"]["failed"] == 0

    # Live: the failure and the silent connector's first event reach their rows, and the counts.
    assert [(row["id"], row["health"]) for row in report["failRow"]] == [(fail_id, "failing")]
    assert "FinishUpgradeFailure" in report["failRow"][0]["text"]
    assert [(row["id"], row["health"]) for row in report["wakeRow"]] == [(wake_id, "healthy")]
    after = {**expected, "failing": expected["failing"] + 1, "silent": expected["silent"] - 1}
    if tunnel_id is not None:
        assert [(row["id"], row["health"]) for row in report["tunnelRow"]] == [(tunnel_id, "failing")]
        assert "tunnel t1 down" in report["tunnelRow"][0]["text"]
        after = {**after, "failing": after["failing"] + 1, "healthy": after["healthy"] - 1}
    else:
        print("(this server does not count tunnels in snapshots: the page's health messages were not exercised)")
    assert report["countsAfter"] == after


def post(world, connector: str, kind: str, now: int) -> dict:
    event = {"t": now + 5, "n": 0, "e": {"k": kind}, "v": "2026.3.2"}
    if kind == "Reconcile":
        event["e"]["changed"] = True
    response = httpx.post(world.events_url(connector), json=[event], headers=bearer(world.write_token), timeout=30)
    assert response.status_code == 200, response.text
    return {"t": event["t"]}
