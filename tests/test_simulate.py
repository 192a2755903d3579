"""`conntel simulate`: a deterministic virtual fleet posting through the API."""

from __future__ import annotations

import itertools
import json
import random
import subprocess

import httpx
import msgspec
from helpers import CONNTEL, World, bearer

from conntel.client import metrics
from conntel.snapshots import Snapshot

START = 1_750_000_000


def simulate(world: World, *extra: str, speed: str = "20000", snapshots: bool = False) -> dict:
    """Run the simulator for 1.5 s; snapshots are left out unless asked for (they are what one test is about)."""
    done = subprocess.run(
        [
            *CONNTEL,
            "simulate",
            "--url",
            world.server.base_url,
            "--token",
            world.write_token,
            "--account",
            world.account,
            "--connectors",
            "3",
            "--speed",
            speed,
            "--duration",
            "1.5",
            "--start",
            str(START),
            "--json",
            "--snapshots" if snapshots else "--no-snapshots",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def fleet_connectors(world: World, seed: int) -> dict[str, str]:
    listed = httpx.get(
        f"{world.server.base_url}/accounts/{world.account}/magic/connectors", headers=bearer(world.read_token)
    ).json()["result"]
    prefix = f"SIM-{seed}-"
    return {
        c["device"]["serial_number"]: c["id"]
        for c in listed
        if c.get("device", {}).get("serial_number", "").startswith(prefix)
    }


def events_of(world: World, connector: str) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"from": START, "to": START + 10**7, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        result = httpx.get(world.events_url(connector), params=params, headers=bearer(world.read_token)).json()[
            "result"
        ]
        items += result["items"]
        cursor = result.get("cursor")
        if not cursor:
            return items


def test_fleet_creates_its_connectors_and_posts_realistic_lifecycles(world: World):
    stats = simulate(world, "--seed", "11")
    connectors = fleet_connectors(world, 11)
    assert sorted(connectors) == ["SIM-11-0000", "SIM-11-0001", "SIM-11-0002"]
    assert stats["posted"] > 100 and stats["retries"] == 0
    for connector in connectors.values():
        items = events_of(world, connector)
        keys = [(i["t"], i["n"]) for i in items]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        kinds = [i["k"] for i in items]
        assert kinds[:3] == ["Init", "HaInit", "StartAttestation"]
        assert {"Reconcile", "RekeyInstallBoth", "ConfigureCloudflaredTunnel"} <= set(kinds)
        state = httpx.get(
            f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}",
            headers=bearer(world.read_token),
        ).json()["result"]
        assert state["last_seen_version"]  # `v` travels with the events


def test_same_seed_same_fleet_and_events(world: World):
    simulate(world, "--seed", "12")
    first = {serial: events_of(world, cid) for serial, cid in fleet_connectors(world, 12).items()}
    again = simulate(world, "--seed", "12")  # reuses its connectors; re-sends are duplicates, never conflicts
    assert fleet_connectors(world, 12).keys() == first.keys()
    assert again["duplicates"] > 0
    for serial, cid in fleet_connectors(world, 12).items():
        now = events_of(world, cid)
        shared = min(len(now), len(first[serial]))
        strip = lambda items: [(i["t"], i["n"], i["k"]) for i in items]  # noqa: E731
        assert strip(now[:shared]) == strip(first[serial][:shared])


def test_a_read_token_is_refused_clearly(world: World):
    done = subprocess.run(
        [
            *CONNTEL,
            "simulate",
            "--url",
            world.server.base_url,
            "--token",
            world.read_token,
            "--account",
            world.account,
            "--connectors",
            "1",
            "--seed",
            "13",
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Authentication error" in done.stderr and "Traceback" not in done.stderr


def test_url_may_be_the_server_root_and_anything_else_is_one_clear_line(world: World):
    common = ["--token", world.write_token, "--account", world.account, "--connectors", "1", "--seed", "14"]
    done = subprocess.run(
        [*CONNTEL, "simulate", "--url", world.server.origin + "/", *common, "--duration", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert list(fleet_connectors(world, 14)) == ["SIM-14-0000"]
    for url in (f"{world.server.origin}/v4", "127.0.0.1:8787", f"{world.server.base_url}?x=1"):
        done = subprocess.run([*CONNTEL, "simulate", "--url", url, *common], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and done.stdout == "", url
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"Not a conntel API URL: {url!r}" in done.stderr
        assert "Pass the server's root (http://HOST:PORT) or its API base (http://HOST:PORT/client/v4)" in done.stderr


def snapshot_times(world: World, connector: str) -> list[int]:
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}/telemetry/snapshots"
    items, cursor = [], None
    while True:
        params = {"from": START, "to": START + 10**7, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        result = httpx.get(url, params=params, headers=bearer(world.read_token)).json()["result"]
        items += result["items"]
        cursor = result.get("cursor")
        if not cursor:
            return [item["t"] for item in items]


def get_snapshot(world: World, connector: str, t: int) -> dict:
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}/telemetry/snapshots/{t}"
    response = httpx.get(url, headers=bearer(world.read_token))
    assert response.status_code == 200, response.text
    return response.json()["result"]


def test_every_virtual_connector_reports_a_snapshot_every_simulated_minute(world: World):
    stats = simulate(world, "--seed", "15", speed="3000", snapshots=True)
    connectors = fleet_connectors(world, 15)
    assert len(connectors) == 3 and stats["snapshots"] > 3 * 40 and stats["retries"] == 0
    # The same seeds as the simulator: the fleet's snapshots are the metrics model's, byte for byte.
    rng = random.Random(15)
    seeds = [rng.random() for _ in connectors]
    for (serial, connector), seed in zip(sorted(connectors.items()), seeds, strict=True):
        times = snapshot_times(world, connector)
        assert len(times) > 40, serial
        assert all(b - a in (60, 120, 180) for a, b in itertools.pairwise(times))  # gaps only while rebooting
        stream = metrics.fleet_snapshots([seed], START, 0.05)[0]
        expected_by_t = {s["t"]: s for s in itertools.takewhile(lambda s, last=times[-1]: s["t"] <= last, stream)}
        assert sorted(expected_by_t) == times
        events = events_of(world, connector)
        for t in (times[0], times[len(times) // 2], times[-1]):
            snapshot = get_snapshot(world, connector, t)
            assert snapshot == expected_by_t[t]
            msgspec.convert(snapshot, Snapshot)
            # the snapshot tells the same story as the connector's events: its version and HA state
            before = [e for e in events if e["t"] <= t]
            assert snapshot["v"] == get_event_version(world, connector, before[-1])
            ha = [e["k"] for e in before if e["k"].startswith("Ha")][-1]
            assert snapshot["ha_state"] in HA_STATES[ha]


HA_STATES = {"HaInit": {"standby"}, "HaTransition": {"active", "standby"}, "HaError": {"fault"}, "HaLeave": {"stopped"}}


def get_event_version(world: World, connector: str, item: dict) -> str:
    response = httpx.get(f"{world.events_url(connector)}/{item['t']}.{item['n']}", headers=bearer(world.read_token))
    return response.json()["result"]["v"]
