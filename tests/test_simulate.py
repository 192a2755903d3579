"""`conntel simulate`: a deterministic virtual fleet posting through the API."""

from __future__ import annotations

import json
import subprocess

import httpx
from helpers import CONNTEL, World, bearer

START = 1_750_000_000


def simulate(world: World, *extra: str) -> dict:
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
            "20000",
            "--duration",
            "1.5",
            "--start",
            str(START),
            "--json",
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
