"""Conformance: the official npm `cloudflare` SDK (5.2.0 and 7.3.0) against a live conntel server.

`get_event.mjs` makes the Get Event call in each SDK's own form — 5.2.0 the
reference page's `events.get(connectorId, eventT, eventN, { account_id })`,
7.3.0 `events.get(eventN, { account_id, connector_id, event_t })` — and prints
what the SDK returned or raised. The SDKs are installed from the committed
package-lock.json (`npm ci`) when they are not installed already (the
`node_sdk` fixture, conftest.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import World, env_without_proxies, post_events

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "get_event.mjs"
SDK_VERSIONS = {"v5": "5.2.0", "v7": "7.3.0"}

T = 1_700_000_000

# Events as a connector would send them: with and without `v`, with payload
# fields beyond `k` (which must come back exactly as recorded), kinds from the
# page and kinds only the newer SDKs know, and edge values of `t` and `n`.
UPGRADE = {
    "t": T,
    "n": 3,
    "e": {
        "k": "StartUpgrade",
        "url": "https://downloads.example.com/connector/2.0.0.tar.gz",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "attempt": 2,
        "nested": {"slots": ["a", "b"], "force": False, "note": None, "ratio": 0.5},
    },
    "v": "2024.11.1",
}
INIT_WITHOUT_VERSION = {"t": T, "n": 0, "e": {"k": "Init"}}
HA_TRANSITION = {"t": T + 1, "n": 7, "e": {"k": "HaTransition", "from": "standby", "to": "active"}, "v": "1.2.3"}
BIG_NUMBERS = {
    "t": 4_102_444_800,
    "n": 2**53 - 1,
    "e": {"k": "Reconcile", "unicode": "zürich ✓"},
    "v": "9.9.9-rc.1+build",
}
EVENTS = [UPGRADE, INIT_WITHOUT_VERSION, HA_TRANSITION, BIG_NUMBERS]


def run_sdk(
    node: str,
    world: World,
    connector: str,
    t: int,
    n: int,
    token: str,
    email: str | None = None,
    key: str | None = None,
    unknown_n: int | None = None,
) -> dict:
    env = {k: v for k, v in env_without_proxies().items() if not k.startswith("CLOUDFLARE_")}
    env.update(
        CONNTEL_BASE_URL=world.server.base_url,
        CONNTEL_TOKEN=token,
        CONNTEL_ACCOUNT=world.account,
        CONNTEL_CONNECTOR=connector,
        EVENT_T=str(t),
        EVENT_N=str(n),
    )
    if email and key:
        env.update(CONNTEL_EMAIL=email, CONNTEL_KEY=key)
    if unknown_n is not None:
        env["UNKNOWN_N"] = str(unknown_n)
    done = subprocess.run([node, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"get_event.mjs failed ({done.returncode}):\n{done.stderr}"
    report = json.loads(done.stdout)
    assert set(report) == set(SDK_VERSIONS)
    return report


def expected_result(event: dict) -> dict:
    result = {"e": event["e"], "n": event["n"], "t": event["t"]}
    if "v" in event:
        result["v"] = event["v"]
    return result


def error(name: str, status: int, *codes: int) -> dict:
    return {"error": {"name": name, "status": status, "codes": list(codes)}}


@pytest.fixture(scope="module")
def recorded(world: World) -> str:
    """A fresh connector holding EVENTS."""
    connector = world.new_connector()
    response = post_events(world, EVENTS, connector=connector)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"accepted": len(EVENTS), "duplicates": 0}
    return connector


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: f"{event['e']['k']}-{event['t']}.{event['n']}")
def test_get_event_in_both_sdks(node_sdk: str, world: World, recorded: str, event: dict) -> None:
    report = run_sdk(
        node_sdk,
        world,
        recorded,
        event["t"],
        event["n"],
        world.read_token,
        email=world.email,
        key=world.api_key,
        # JavaScript numbers are exact only up to 2**53 - 1: look for a missing event below it.
        unknown_n=event["n"] - 1 if event["n"] > 2**52 else None,
    )
    for sdk, cases in report.items():
        want = expected_result(event)
        assert cases["get"] == {"result": want}, sdk
        assert ("v" in cases["get"]["result"]) == ("v" in event), sdk
        assert cases["email_key"] == {"result": want}, sdk
        assert cases["unknown_event"] == error("NotFoundError", 404, 20001), sdk
        assert cases["unknown_connector"] == error("NotFoundError", 404, 20002), sdk
        assert cases["bad_token"] == error("AuthenticationError", 401, 10000), sdk
        assert set(cases) == {"get", "email_key", "unknown_event", "unknown_connector", "bad_token"}


def test_write_token_reads_too(node_sdk: str, world: World, recorded: str) -> None:
    """Magic WAN Write alone is an accepted permission for Get Event."""
    report = run_sdk(node_sdk, world, recorded, UPGRADE["t"], UPGRADE["n"], world.write_token)
    for sdk, cases in report.items():
        assert cases["get"] == {"result": expected_result(UPGRADE)}, sdk
        assert "email_key" not in cases


def test_event_without_version_has_no_v(node_sdk: str, world: World) -> None:
    connector = world.new_connector()
    event = {"t": T + 60, "n": 1, "e": {"k": "Leave"}}
    assert post_events(world, [event], connector=connector).status_code == 200
    report = run_sdk(node_sdk, world, connector, event["t"], event["n"], world.read_token)
    for sdk, cases in report.items():
        assert cases["get"] == {"result": {"e": {"k": "Leave"}, "n": 1, "t": T + 60}}, sdk


def test_credentials_of_another_account_are_denied(node_sdk: str, world: World, recorded: str) -> None:
    """A valid token or global key of the other account: 403, 10000, PermissionDeniedError."""
    report = run_sdk(
        node_sdk,
        world,
        recorded,
        UPGRADE["t"],
        UPGRADE["n"],
        world.other_write_token,
        email=world.other_email,
        key=world.other_api_key,
    )
    for sdk, cases in report.items():
        assert cases["get"] == error("PermissionDeniedError", 403, 10000), sdk
        assert cases["email_key"] == error("PermissionDeniedError", 403, 10000), sdk
        assert cases["bad_token"] == error("AuthenticationError", 401, 10000), sdk


def test_wrong_global_key_for_the_email(node_sdk: str, world: World, recorded: str) -> None:
    """A real email with someone else's global key: 403, 9103."""
    report = run_sdk(
        node_sdk,
        world,
        recorded,
        UPGRADE["t"],
        UPGRADE["n"],
        world.read_token,
        email=world.email,
        key=world.other_api_key,
    )
    for sdk, cases in report.items():
        assert cases["get"] == {"result": expected_result(UPGRADE)}, sdk
        assert cases["email_key"] == error("PermissionDeniedError", 403, 9103), sdk
