"""`conntel snapshots list|get|latest` over the HTTP API, against a real server."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess

import httpx
import pytest
from helpers import CONNTEL, World, bearer

from conntel.client import metrics


def run(world: World, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CLOUDFLARE_API_TOKEN": world.read_token,
        "CLOUDFLARE_BASE_URL": world.server.base_url,
        "CLOUDFLARE_ACCOUNT_ID": world.account,
    }
    return subprocess.run([*CONNTEL, *args], capture_output=True, text=True, env=env, timeout=60)


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line]


@pytest.fixture(scope="module")
def recorded(world: World) -> tuple[str, list[dict]]:
    """A connector with 90 minutes of the metrics model's snapshots, posted through the API."""
    connector = world.new_connector()
    snaps = list(itertools.islice(metrics.sample_snapshots(seed=3, connectors=1, count=90), 90))
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}/telemetry/snapshots"
    response = httpx.post(url, json=snaps, headers=bearer(world.write_token), timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["result"]["accepted"] == len(snaps)
    return connector, snaps


def test_list_gives_every_snapshot_time_in_the_range(world: World, recorded):
    connector, snaps = recorded
    first, last = snaps[10]["t"], snaps[70]["t"]
    listed = run(world, "snapshots", "list", "--connector", connector, "--from", str(first), "--to", str(last),
                 "--page-size", "7", "--json")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    items = ndjson(listed.stdout)
    assert [i["t"] for i in items] == [s["t"] for s in snaps[10:71]]
    assert all(isinstance(i["a"], int) for i in items)

    iso = dt.datetime.fromtimestamp(first, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    table = run(world, "snapshots", "list", "--connector", connector, "--from", iso, "--to", str(last))
    assert table.returncode == 0, table.stderr
    assert "61 snapshots" in table.stderr
    assert str(first) in table.stdout and str(last) in table.stdout and iso.replace("T", " ") in table.stdout


def test_get_prints_the_snapshot_or_a_summary_a_person_reads(world: World, recorded):
    connector, snaps = recorded
    snap = snaps[42]
    got = run(world, "snapshots", "get", str(snap["t"]), "--connector", connector, "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == snap
    as_float = run(world, "snapshots", "get", f"{snap['t']}.0", "--connector", connector, "--json")
    assert json.loads(as_float.stdout) == snap  # what the Python SDK sends for a float

    table = run(world, "snapshots", "get", str(snap["t"]), "--connector", connector)
    assert table.returncode == 0, table.stderr
    assert f"{snap['load_average_1m']:.2f}" in table.stdout and snap["v"] in table.stdout
    assert snap["ha_state"] in table.stdout
    for interface in snap["interfaces"]:
        assert interface["name"] in table.stdout and interface["ip_addresses"][0]["ip_address"] in table.stdout
    for tunnel in snap["tunnels"]:
        assert tunnel["tunnel_id"][:12] in table.stdout
    used = 100 * (snap["memory_total_bytes"] - snap["memory_available_bytes"]) / snap["memory_total_bytes"]
    assert f"{used:.0f}%" in table.stdout


def test_get_of_a_time_without_a_snapshot_is_one_clear_line(world: World, recorded):
    connector, snaps = recorded
    missing = run(world, "snapshots", "get", str(snaps[0]["t"] - 1), "--connector", connector)
    assert missing.returncode == 1 and missing.stdout == ""
    assert "HTTP 404" in missing.stderr and "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0


def test_latest_is_newest_first_with_cpu_over_the_minute_before(world: World, recorded):
    connector, snaps = recorded
    latest = run(world, "snapshots", "latest", "--connector", connector, "--json")
    assert latest.returncode == 0, latest.stderr
    items = ndjson(latest.stdout)
    assert items[0] == snaps[-1] and [i["t"] for i in items] == sorted((i["t"] for i in items), reverse=True)

    table = run(world, "snapshots", "latest", "--connector", connector)
    assert table.returncode == 0, table.stderr
    newest, before = snaps[-1], snaps[-2]
    parts = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    deltas = {p: newest[f"cpu_time_{p}_ms"] - before[f"cpu_time_{p}_ms"] for p in parts}
    busy = 100 * (1 - deltas["idle"] / sum(deltas.values()))
    first_row = next(line for line in table.stdout.splitlines() if str(newest["t"]) in line)
    assert f"{busy:.0f}%" in first_row
    healthy = sum(t["health_state"] == "healthy" for t in newest["tunnels"])
    assert f"{healthy}/{len(newest['tunnels'])} healthy" in first_row
