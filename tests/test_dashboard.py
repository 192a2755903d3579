"""The dashboard at `/`, in a real headless Chromium (Debian's `chromium`), against a real server.

A world of connectors — a simulated day for some, one whose latest upgrade
failed, one that never pushed an event — is ingested through the API; then
`tests/dashboard/drive.mjs` (playwright-core driving /usr/bin/chromium; no
browser is ever downloaded) signs in, reads the fleet, opens a connector's
timeline and an event, zooms, and watches events the test ingests arrive
through the live stream, also across a server restart. It prints what the page
showed; the assertions are here.

The screenshots go to the test's temporary folder; with
CONNTEL_UPDATE_SCREENSHOTS=1 (or when they are missing) they are also copied
to docs/dashboard.png and docs/dashboard-fleet.png.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from fleet_scale import run_driver
from helpers import ROOT, World, bearer, build_world, cli, env_without_proxies, post_events

from conntel.client import metrics
from conntel.client.lifecycles import fleet
from conntel.kinds import FAILURE_KINDS, KIND_NAMES

HERE = Path(__file__).resolve().parent / "dashboard"
DRIVER = HERE / "drive.mjs"
CHROMIUM = os.environ.get("CONNTEL_CHROMIUM", "/usr/bin/chromium")
DOCS = ROOT / "docs"

HEALTH_KINDS = {f"Finish{x}{outcome}" for x in ("Upgrade", "Attestation", "RotateCryptKey", "RotatePki")
                for outcome in ("Success", "Failure")}  # fmt: skip
SIMULATED = ["berlin-office-02", "austin-store-17", "madrid-edge-04", "oslo-lab-09"]
FAILING = "lisbon-branch-01"
# Payload text that would run if the page rendered data as HTML.
INJECTION = '<img src=x onerror="document.body.dataset.pwned=1"><b>bold</b>'


def expected_health(events: list[dict]) -> str:
    """The README's rule, as an oracle: the newest counted Finish decides failing; no events is silent."""
    if not events:
        return "silent"
    finishes = [ev for ev in events if ev["e"]["k"] in HEALTH_KINDS]
    newest = max(finishes, key=lambda ev: (ev["t"], ev["n"]), default=None)
    return "failing" if newest and newest["e"]["k"].endswith("Failure") else "healthy"


@pytest.fixture(scope="module")
def driver_ready() -> str:
    """`node`, with playwright-core installed from tests/dashboard/package-lock.json, and Debian's Chromium."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node, "node (20+) is required for the dashboard test"
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does)"
    if not (HERE / "node_modules" / "playwright-core" / "package.json").exists():
        assert npm, "npm is required: run `npm ci --prefix tests/dashboard`"
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return node


def ingest(world: World, connector: str, events: list[dict]) -> None:
    for start in range(0, len(events), 1000):
        response = post_events(world, events[start : start + 1000], connector=connector)
        assert response.status_code == 200, response.text


def make_fleet(world: World) -> tuple[dict[str, list[dict]], dict]:
    """Connectors and their events; returns them and the failing upgrade's events."""
    now = int(time.time())
    events: dict[str, list[dict]] = {world.connector: []}  # made by build_world: never pushes anything
    for name in [FAILING, *SIMULATED]:
        cli("connectors", "create", "--account", world.account, "--id", name, db=world.db)
    simulated = dict(fleet([FAILING, *SIMULATED], seed=7, start=now - 86_400, end=now - 1_800, failure_rate=0.35))
    # The failing connector's day ends with an upgrade that fails, then life goes on.
    upgrade = {
        "start": {"t": now - 900, "n": 0, "e": {"k": "StartUpgrade", "url": "https://downloads.example.com/b.tar"},
                  "v": "2026.3.1"},
        "finish": {"t": now - 780, "n": 0, "e": {"k": "FinishUpgradeFailure", "error": INJECTION}, "v": "2026.3.1"},
        "after": {"t": now - 600, "n": 0, "e": {"k": "Reconcile", "changed": False}, "v": "2026.3.1"},
    }  # fmt: skip
    simulated[FAILING] += list(upgrade.values())
    for name, evs in simulated.items():
        ingest(world, name, evs)
        events[name] = evs
    return events, upgrade


def post_snapshots(world: World, connector: str, start: int, end: int) -> list[dict]:
    """The failing connector's snapshots over [start, end), from the same seed as its simulated events."""
    seed = random.Random(7).random()  # lifecycles.fleet's first connector
    stream = metrics.fleet_snapshots([seed], start, 0.35)[0]
    snaps = list(itertools.takewhile(lambda s: s["t"] < end, stream))
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}/telemetry/snapshots"
    for first in range(0, len(snaps), 500):
        response = httpx.post(url, json=snaps[first : first + 500], headers=bearer(world.write_token), timeout=60)
        assert response.status_code == 200, response.text
    return snaps


def live(world: World, events: list[dict]) -> dict:
    ingest(world, FAILING, events)
    return {"keys": [f"{ev['t']}.{ev['n']}" for ev in events]}


def restart_then_ingest(world: World, events: list[dict]) -> dict:
    """Restart the server on its port, and ingest at once: before the page's stream reconnects."""
    world.server.stop()
    world.server.start()
    return live(world, events)


def connector_executes(world: World, connector: str) -> dict:
    """What the connector does at its next check-in: learn the pending reboot, execute it, report it."""
    secret = cli("connectors", "credential", "--account", world.account, "--connector", connector, db=world.db)
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}/checkin"
    learned = httpx.post(url, headers=bearer(secret["value"])).json()["result"]["operation"]
    assert learned["action"] == "reboot" and learned["purge"] is True, learned
    httpx.post(url, json={"executed": learned["id"]}, headers=bearer(secret["value"])).raise_for_status()
    return {"id": learned["id"]}


def drive(node: str, config: dict, answers: dict, tmp_path: Path) -> dict:
    """Run drive.mjs, answering its pauses; return its report."""
    return run_driver(node, DRIVER, config, answers, tmp_path / "driver.stderr")


@pytest.mark.timeout(300)  # a server, a fleet's history, then Chromium: the slowest single test
def test_dashboard_in_chromium(tmp_path: Path, driver_ready: str) -> None:
    world = build_world(tmp_path)
    try:
        run_dashboard(world, tmp_path, driver_ready)
    finally:
        world.server.stop()


def run_dashboard(world: World, tmp_path: Path, node: str) -> None:
    events, upgrade = make_fleet(world)
    now = int(time.time())
    snaps = post_snapshots(world, FAILING, now - 86_400, now - 1_800)
    expected = {name: expected_health(evs) for name, evs in events.items()}
    assert expected[FAILING] == "failing" and expected[world.connector] == "silent"
    assert "healthy" in expected.values()
    now = int(time.time())
    live_events = [
        {
            "t": now - 60,
            "n": 0,
            "e": {"k": "StartUpgrade", "url": "https://downloads.example.com/c.tar"},
            "v": "2026.3.1",
        },
        {"t": now - 30, "n": 0, "e": {"k": "FinishUpgradeSuccess"}, "v": "2026.3.2"},
    ]  # fmt: skip
    finish = upgrade["finish"]
    shots = {
        "fleet": str(tmp_path / "dashboard-fleet.png"),
        "connector": str(tmp_path / "dashboard.png"),
        "metrics": str(tmp_path / "dashboard-metrics.png"),
    }
    config = {
        "chromium": CHROMIUM,
        "origin": world.server.origin,
        "account": world.account,
        "token": world.read_token,
        "writeToken": world.write_token,
        "operate": SIMULATED[0],
        "badToken": "x" * 40,
        "connectorCount": len(events),
        "open": FAILING,
        "select": f"{finish['t']}.{finish['n']}",
        "kinds": list(KIND_NAMES),
        "screenshots": shots,
    }
    resumed_events = [{"t": now - 10, "n": 0, "e": {"k": "Reconcile", "changed": True}, "v": "2026.3.2"}]
    interrupts_url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{SIMULATED[0]}/interrupts"
    answers = {
        "live": lambda: live(world, live_events),
        "restart": lambda: restart_then_ingest(world, resumed_events),
        "cancelled": lambda: httpx.get(interrupts_url, headers=bearer(world.read_token)).json()["result"],
        "executed": lambda: connector_executes(world, SIMULATED[0]),
    }
    report = drive(node, config, answers, tmp_path)
    assert "error" not in report, (
        f"{report['error']}\nsteps done: {report['steps']}\n{world.server.server_log()[-3000:]}"
    )
    # Chromium logs the refused sign-in's 401s and the refused connections while the server restarts, and
    # the answers to the page's question whether its token may submit interrupts (403 no, 400 yes).
    expected_noise = (
        "status of 401 (Unauthorized)",
        "ERR_CONNECTION_REFUSED",
        "ERR_INCOMPLETE_CHUNKED_ENCODING",
        "status of 403 (Forbidden)",
        "status of 400 (Bad Request)",
    )
    console_errors = [m for m in report["consoleErrors"] if not any(noise in m for noise in expected_noise)]
    assert not report["pageErrors"] and not console_errors, (report["pageErrors"], console_errors)

    # Sign-in: a refused token says so; the token never stays in the address bar.
    assert "HTTP 401" in report["signinError"]
    assert report["afterReload"] == {"signinHidden": True}
    assert report["hashAfterLoad"] == "#/"
    assert report["session"] == {"token": True, "account": world.account}
    assert report["live"] == "live"

    # The fleet: every connector of the account, with the rule's health, from the server's fleet health
    # in one request (and the list of connectors in another): nothing asked per connector.
    shown = {row["id"]: row["health"] for row in report["fleet"]}
    assert shown == expected
    api = f"/client/v4/accounts/{world.account}/magic/connectors"
    loaded = [r for r in report["fleetLoadRequests"] if "/client/v4/accounts/" in r]
    assert sorted(loaded) == [f"GET {api}", f"GET {api}/telemetry/events/stream", f"GET {api}/telemetry/health"]
    versions = {row["id"]: row["version"] for row in report["fleet"]}
    assert versions[FAILING] == "2026.3.1" and versions[world.connector] == "—"

    # Every kind of the server's table has a family (a colour) in the page's table, and the same failures.
    assert set(report["kinds"]) == set(KIND_NAMES)
    assert all(kind["family"] != "other" for kind in report["kinds"].values()), report["kinds"]
    assert {name for name, kind in report["kinds"].items() if kind["failure"]} == FAILURE_KINDS

    # The timeline: spans with durations, the failed upgrade drawn as a failure.
    timeline = report["timeline"]
    assert report["url"].endswith(f"#/connectors/{FAILING}")
    assert len(timeline["spans"]) >= 2
    failed_span = [s for s in timeline["spans"] if s["key"] == config["select"]]
    assert len(failed_span) == 1 and "span-failure" in failed_span[0]["classes"]
    assert "StartUpgrade → FinishUpgradeFailure: 2m 00s" in failed_span[0]["title"]
    assert any(label.endswith("s") for label in timeline["spanLabels"])
    failure_marks = {m["key"] for m in timeline["marks"] if m["failure"]}
    assert config["select"] in failure_marks
    rows = {row["key"]: row for row in timeline["rows"]}
    assert rows[config["select"]]["failure"] and "FinishUpgradeFailure" in rows[config["select"]]["text"]
    assert "2m 00s" in rows[config["select"]]["text"]  # the "Took" column
    assert timeline["health"].startswith("failing")

    # The event: exactly what Get Event returns, and a curl that returns it too.
    event_url = f"{world.events_url(FAILING)}/{config['select']}"
    served = httpx.get(event_url, headers=bearer(world.read_token))
    assert served.status_code == 200
    detail = report["detail"]
    assert detail["raw"] == served.text
    assert json.loads(detail["pretty"]) == served.json()
    assert json.loads(detail["pretty"])["result"]["e"]["error"] == INJECTION  # shown as text
    assert report["injected"] == {"images": 0, "pwned": None}
    assert detail["request"] == f"GET {event_url}"
    assert detail["title"] == f"FinishUpgradeFailure · {config['select']}"
    assert detail["focused"] == "detail-close"
    assert report["detailHiddenAfterEscape"]
    curl = detail["curl"]
    assert curl == f"curl -sS -H \"Authorization: Bearer $CLOUDFLARE_API_TOKEN\" '{event_url}'"
    if shutil.which("curl") and shutil.which("sh"):
        env = {**env_without_proxies(), "CLOUDFLARE_API_TOKEN": world.read_token}
        ran = subprocess.run(["sh", "-c", curl], env=env, capture_output=True, text=True, timeout=30, check=False)
        assert ran.returncode == 0 and ran.stdout == served.text

    check_metrics(world, report, snaps)

    # Zoom: the failed upgrade's two minutes become a visible bar.
    assert "(zoomed)" in report["zoomed"]["status"]
    assert report["zoomedSpanWidth"] > 20, report["zoomedSpanWidth"]

    # Live: the new events, their span, and the connector's health follow within seconds.
    assert report["liveMs"] < 5000, report["liveMs"]
    after = report["timelineAfterLive"]
    live_keys = [f"{ev['t']}.{ev['n']}" for ev in live_events]
    assert {row["key"] for row in after["rows"]} >= set(live_keys)
    new_span = [s for s in after["spans"] if s["key"] == live_keys[1]]
    assert len(new_span) == 1 and "span-success" in new_span[0]["classes"]
    assert "StartUpgrade → FinishUpgradeSuccess: 30s" in new_span[0]["title"]
    assert after["health"].startswith("healthy")
    fleet_after = {row["id"]: row for row in report["fleetAfterLive"]}
    assert fleet_after[FAILING]["health"] == "healthy"
    assert fleet_after[FAILING]["version"] == "2026.3.2"
    assert "Reconcile" in fleet_after[FAILING]["text"]  # the event ingested while the server restarted

    # Reconnected after the restart with Last-Event-ID, so the event acknowledged before it was not lost.
    streams = [
        r
        for r in report["requests"]
        if r["url"].endswith("/telemetry/events/stream") and r["authorization"] == f"Bearer {world.read_token}"
    ]  # the read-only tab's (the operations tab, opened after, starts a stream of its own)
    assert streams[-1]["lastEventId"] is not None and streams[-1]["lastEventId"].isdigit()

    # Offline and private: every request stays on this server; the token only ever in the header.
    origin = world.server.origin + "/"
    assert report["requests"], "no requests recorded"
    for request in report["requests"]:
        assert request["url"].startswith(origin), request["url"]
        assert world.read_token not in request["url"]
        if "/client/v4/accounts/" in request["url"]:
            allowed = (f"Bearer {world.read_token}", f"Bearer {world.write_token}", "Bearer " + "x" * 40)
            assert request["authorization"] in allowed, request
    assert any(r["url"].endswith("/telemetry/events/stream") for r in report["requests"])
    assert world.read_token not in world.server.server_log()

    # Operations: none offered to a read-only token; with Write, a reboot behind a confirmation (cancel
    # submits nothing), pending until the connector reports it executed.
    assert report["readOnlyOperations"] == {
        "permission": "read",
        "controlsHidden": True,
        "status": "No operations yet.",
    }
    operations = report["operations"]
    assert operations["before"] == "No operations yet."
    assert operations["question"].startswith(f"Reboot {SIMULATED[0]}: the whole appliance restarts")
    assert operations["cancelHides"] and operations["afterCancel"] == []
    assert operations["purgeQuestion"].endswith("discarding its local state (purge)?")
    assert operations["confirmLabel"] == "Reboot"
    assert operations["pending"].startswith("Pending: reboot with purge, submitted")
    assert operations["buttonsDisabledWhilePending"] and operations["buttonsEnabledAfter"]
    assert operations["executed"].startswith("Last: reboot with purge, executed")

    shown_shots = (
        ("dashboard.png", "connector"),
        ("dashboard-fleet.png", "fleet"),
        ("dashboard-metrics.png", "metrics"),
    )
    for name, path in ((name, shots[key]) for name, key in shown_shots):
        assert Path(path).stat().st_size > 10_000
        if os.environ.get("CONNTEL_UPDATE_SCREENSHOTS") == "1" or not (DOCS / name).exists():
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(path, DOCS / name)


def check_metrics(world: World, report: dict, snaps: list[dict]) -> None:
    """The charts: CPU, memory, load, throughput per interface, tunnel health; hover values; Get Snapshot on click."""
    charts = {chart["name"]: chart for chart in report["charts"]["charts"]}
    assert list(charts) == ["cpu", "memory", "load", "throughput", "tunnels"]
    listed = int(report["charts"]["status"].split(" snapshots")[0])  # the window ends now: the oldest may be out
    assert len(snaps) - 60 <= listed <= len(snaps), report["charts"]["status"]
    for name in ("cpu", "memory", "load", "throughput"):
        assert charts[name]["series"] and all(s["points"] > 100 for s in charts[name]["series"]), charts[name]
    assert [s["name"] for s in charts["load"]["series"]] == ["1m", "5m", "15m"]
    netdevs = [d["name"] for d in snaps[-1]["netdevs"] if d["name"] != "lo"]
    assert [s["name"] for s in charts["throughput"]["series"]] == netdevs
    health = set(charts["tunnels"]["health"])
    assert "health-healthy" in health and health <= {f"health-{h}" for h in ("healthy", "degraded", "down", "unknown")}
    # On the timeline's time axis: the same left edge and width.
    assert report["chartAlignment"]["timeline"] == report["chartAlignment"]["cpu"]

    # A click opens exactly what Get Snapshot returns, and a curl that returns it too.
    detail = report["snapshotDetail"]
    t = int(detail["title"].split(" · ")[1])
    snapshot = next(s for s in snaps if s["t"] == t)
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{FAILING}/telemetry/snapshots/{t}"
    served = httpx.get(url, headers=bearer(world.read_token))
    assert served.status_code == 200 and served.json()["result"] == snapshot
    assert detail["raw"] == served.text and detail["operation"] == "Get Snapshot"
    assert detail["request"] == f"GET {url}" and detail["selectedLines"] == 5
    assert detail["curl"] == f"curl -sS -H \"Authorization: Bearer $CLOUDFLARE_API_TOKEN\" '{url}'"

    # Hovering shows that snapshot's values in every chart.
    hover = report["hover"]
    clock = dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")  # the browser and the test share a zone
    assert all(clock in text for text in hover.values()), (clock, hover)
    used = 100 * (snapshot["memory_total_bytes"] - snapshot["memory_available_bytes"]) / snapshot["memory_total_bytes"]
    assert hover["memory"].startswith(f"memory {used:.0f}%")
    loads = " / ".join(f"{snapshot[f'load_average_{m}']:.2f}" for m in ("1m", "5m", "15m"))
    assert hover["load"].startswith(f"load {loads} ({snapshot['cpu_count']} cores)")
    states = " · ".join(f"{x['interface_name']} {x['health_state']}" for x in snapshot["tunnels"])
    assert hover["tunnels"].startswith(states)
    assert hover["cpu"].startswith("CPU ") and "%" in hover["cpu"]

    # Throughput is a rate from the byte counters, also across a counter reset (a reboot).
    assert report["rates"] == {"steady": 100, "reset": 20, "first": 10}
