"""Fleet health on the server: failing, silent and healthy, since when and why, for a whole account at once."""

from __future__ import annotations

import json
import re
import time

import httpx
from helpers import World, bearer, cli, post_events, wait_for
from test_reading_cli import run as run_cli

T0 = 1_700_400_000


def health_url(world: World, account: str | None = None) -> str:
    return f"{world.server.base_url}/accounts/{account or world.account}/magic/connectors/telemetry/health"


def fleet(world: World, account: str | None = None, token: str | None = None) -> dict[str, dict]:
    response = httpx.get(health_url(world, account), headers=bearer(token or world.read_token))
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["count"] == len(result["items"])
    return {item["connector_id"]: item for item in result["items"]}


def event(t: int, kind: str = "Reconcile", n: int = 0) -> dict:
    payload: dict = {"k": kind}
    if kind.startswith("Finish") and kind.endswith("Failure"):
        payload["e"] = "it broke"
    return {"t": t, "n": n, "e": payload, "v": "2025.1.0"}


def test_a_new_connector_is_silent_until_it_reports_then_healthy(world: World):
    before = int(time.time())
    connector = world.new_connector()
    item = fleet(world)[connector]
    assert item["health"] == "silent" and item["reason"] == "never_reported"
    assert item["since"] >= before - 1 and item["last_heartbeat"] is None and "event" not in item

    post_events(world, [event(T0), event(T0 + 5, n=1)], connector=connector).raise_for_status()
    item = fleet(world)[connector]
    assert item["health"] == "healthy" and item["reason"] == "reporting"
    assert item["event"] == {"t": T0 + 5, "n": 1}  # the newest event it reported again with
    assert item["since"] == item["last_heartbeat"] >= before - 1


def test_the_newest_outcome_decides_failing_and_a_newer_success_clears_it(world: World):
    connector = world.new_connector()
    post_events(world, [event(T0), event(T0 + 10, "FinishUpgradeFailure")], connector=connector).raise_for_status()
    item = fleet(world)[connector]
    assert (item["health"], item["reason"], item["event"]) == (
        "failing",
        "FinishUpgradeFailure",
        {"t": T0 + 10, "n": 0},
    )
    # An older success (by t) changes nothing; other kinds neither.
    post_events(world, [event(T0 + 5, "FinishAttestationSuccess"), event(T0 + 20)], connector=connector)
    assert fleet(world)[connector]["health"] == "failing"
    # A newer success of any of the four clears it, and says so.
    post_events(world, [event(T0 + 30, "FinishRotatePkiSuccess")], connector=connector).raise_for_status()
    item = fleet(world)[connector]
    assert (item["health"], item["reason"], item["event"]) == (
        "healthy",
        "FinishRotatePkiSuccess",
        {"t": T0 + 30, "n": 0},
    )
    # A failure again, in the same batch as later ordinary events: failing, by the failure.
    post_events(
        world, [event(T0 + 40, "FinishRotateCryptKeyFailure"), event(T0 + 41)], connector=connector
    ).raise_for_status()
    item = fleet(world)[connector]
    assert (item["health"], item["event"]) == ("failing", {"t": T0 + 40, "n": 0})


def test_a_quiet_connector_turns_silent_by_itself_and_healthy_when_it_reports(world: World):
    account = cli("accounts", "create", db=world.db)["id"]
    token = cli("tokens", "create", "--account", account, "--permission", "Magic WAN Write", db=world.db)["value"]
    quiet, failing = (cli("connectors", "create", "--account", account, db=world.db)["id"] for _ in range(2))
    assert cli("accounts", "silent-after", "--account", account, "1s", db=world.db)["silent_after_seconds"] == 1

    def url(connector: str) -> str:
        return f"{world.server.base_url}/accounts/{account}/magic/connectors/{connector}/telemetry/events"

    httpx.post(url(quiet), json=[event(T0)], headers=bearer(token)).raise_for_status()
    httpx.post(url(failing), json=[event(T0, "FinishUpgradeFailure")], headers=bearer(token)).raise_for_status()
    assert fleet(world, account, token)[quiet]["health"] == "healthy"

    # No request needed: the server notices (within its sweep interval of the threshold).
    wait_for(lambda: fleet(world, account, token)[quiet]["health"] == "silent", timeout=15)
    items = fleet(world, account, token)
    assert items[quiet]["reason"] == "no_heartbeat" and "event" not in items[quiet]
    assert items[quiet]["since"] == items[quiet]["last_heartbeat"] + 1
    assert items[failing]["health"] == "failing"  # failing outranks silent

    httpx.post(url(quiet), json=[event(T0 + 60)], headers=bearer(token)).raise_for_status()
    item = fleet(world, account, token)[quiet]
    assert (item["health"], item["reason"]) == ("healthy", "reporting")
    assert cli("accounts", "silent-after", "--account", account, "default", db=world.db)["silent_after_seconds"] is None


def test_fleet_health_takes_read_or_write_on_its_own_account_only(world: World):
    assert httpx.get(health_url(world), headers=bearer(world.write_token)).status_code == 200
    assert httpx.get(health_url(world)).status_code == 400  # no credentials
    assert httpx.get(health_url(world, world.other_account), headers=bearer(world.read_token)).status_code == 403
    refused = httpx.get(health_url(world) + "?health=failing", headers=bearer(world.read_token))
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == 20010


def test_metrics_count_connectors_by_account_and_health(world: World):
    def counted() -> dict[str, float]:
        text = httpx.get(world.server.origin + "/metrics").text
        found = {
            health: re.search(
                rf'^conntel_connectors\{{account_id="{world.account}",health="{health}"\}} (\S+)$', text, re.M
            )
            for health in ("healthy", "failing", "silent")
        }
        return {health: float(match.group(1)) if match else 0 for health, match in found.items()}

    def agree() -> bool:
        """The same counts as Fleet health's (read again while an earlier test's last check-in is written)."""
        items = fleet(world)
        return counted() == {h: sum(i["health"] == h for i in items.values()) for h in ("healthy", "failing", "silent")}

    wait_for(agree, timeout=10, interval=0.5)


def test_conntel_fleet_lists_failing_first(world: World):
    connector = world.new_connector()
    post_events(world, [event(T0 + 100, "FinishUpgradeFailure")], connector=connector).raise_for_status()
    done = run_cli(world, "fleet", "--json")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows[0]["health"] == "failing" and {row["connector_id"] for row in rows} == set(fleet(world))
    order = {"failing": 0, "silent": 1, "healthy": 2}
    assert [order[row["health"]] for row in rows] == sorted(order[row["health"]] for row in rows)
    table = run_cli(world, "fleet").stdout
    assert connector in table and "FinishUpgradeFailure" in table and "failing" in table


# -- health from snapshots: a tunnel down in the newest one --


def snapshot(t: int, *tunnels: tuple[str, str, int]) -> dict:
    """A snapshot with the required fields and these tunnels (tunnel_id, health_state, health_value)."""
    return {
        "count_reclaim_failures": 0, "count_reclaimed_paths": 0, "count_record_failed": 0,
        "count_transmit_failures": 0, "t": t, "v": "2025.9.1",
        "tunnels": [
            {"tunnel_id": tunnel_id, "health_state": state, "health_value": value, "interface_name": f"xfrm{i}"}
            for i, (tunnel_id, state, value) in enumerate(tunnels)
        ],
    }  # fmt: skip


UP, DOWN = ("healthy", 1), ("down", 3)


def push_snapshots(world: World, connector: str, *snapshots: dict) -> None:
    url = world.events_url(connector).removesuffix("/events") + "/snapshots"
    httpx.post(url, json=list(snapshots), headers=bearer(world.write_token), timeout=30).raise_for_status()


def why(item: dict) -> tuple:
    return item["health"], item["reason"], item.get("snapshot"), item.get("tunnel_id"), item.get("event")


def test_a_tunnel_down_in_the_newest_snapshot_makes_it_failing_until_a_newer_one_has_none(world: World):
    connector = world.new_connector()
    push_snapshots(world, connector, snapshot(T0, ("a", *UP), ("b", *DOWN), ("c", *DOWN)))
    assert why(fleet(world)[connector]) == ("failing", "tunnel_down", {"t": T0}, "b", None)
    since = fleet(world)[connector]["since"]
    rows = [json.loads(line) for line in run_cli(world, "fleet", "--json").stdout.splitlines()]
    assert next(row for row in rows if row["connector_id"] == connector)["tunnel_id"] == "b"
    assert "tunnel_down" in run_cli(world, "fleet").stdout
    # An older snapshot with every tunnel up changes nothing.
    push_snapshots(world, connector, snapshot(T0 - 60, ("a", *UP), ("b", *UP)))
    assert why(fleet(world)[connector]) == ("failing", "tunnel_down", {"t": T0}, "b", None)
    # A newer one with every tunnel up (or degraded) clears it.
    push_snapshots(world, connector, snapshot(T0 + 60, ("a", *UP), ("b", "degraded", 2)))
    assert why(fleet(world)[connector]) == ("healthy", "tunnels_up", {"t": T0 + 60}, None, None)
    # "down" by its state alone is down too; in a batch, its newest snapshot decides.
    push_snapshots(world, connector, snapshot(T0 + 120, ("a", "down", 2)))
    assert why(fleet(world)[connector])[:4] == ("failing", "tunnel_down", {"t": T0 + 120}, "a")
    push_snapshots(world, connector, snapshot(T0 + 240, ("a", *UP)), snapshot(T0 + 180, ("a", *DOWN)))
    assert why(fleet(world)[connector])[:3] == ("healthy", "tunnels_up", {"t": T0 + 240})
    # A snapshot without tunnels has none down.
    push_snapshots(world, connector, snapshot(T0 + 300, ("z", *DOWN)))
    push_snapshots(world, connector, {k: v for k, v in snapshot(T0 + 360).items() if k != "tunnels"})
    assert why(fleet(world)[connector])[:2] == ("healthy", "tunnels_up")
    assert fleet(world)[connector]["since"] >= since


def test_an_outcome_failure_outranks_a_tunnel_down_and_the_tunnel_is_then_the_reason(world: World):
    connector = world.new_connector()
    post_events(world, [event(T0, "FinishUpgradeFailure")], connector=connector).raise_for_status()
    push_snapshots(world, connector, snapshot(T0 + 1, ("t1", *DOWN)))
    failing = fleet(world)[connector]
    assert why(failing) == ("failing", "FinishUpgradeFailure", None, None, {"t": T0, "n": 0})
    post_events(world, [event(T0 + 2, "FinishUpgradeSuccess")], connector=connector).raise_for_status()
    item = fleet(world)[connector]
    assert why(item) == ("failing", "tunnel_down", {"t": T0 + 1}, "t1", None)
    assert item["since"] == failing["since"]  # failing all along: since when stays


# -- an operation pending for longer than the threshold --


def test_an_operation_pending_too_long_makes_a_reporting_connector_failing_and_a_silent_one_stays_silent(
    world: World,
):
    account = cli("accounts", "create", db=world.db)["id"]
    token = cli("tokens", "create", "--account", account, "--permission", "Magic WAN Write", db=world.db)["value"]
    reporting, quiet = (cli("connectors", "create", "--account", account, db=world.db)["id"] for _ in range(2))
    cli("accounts", "silent-after", "--account", account, "3s", db=world.db)
    base = f"{world.server.base_url}/accounts/{account}/magic/connectors"

    def check_in(connector: str, body: dict | None = None) -> dict:
        response = httpx.post(f"{base}/{connector}/checkin", json=body, headers=bearer(token))
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def items() -> dict[str, dict]:
        return fleet(world, account, token)

    check_in(reporting)
    check_in(quiet)  # then nothing more: it goes silent
    wait_for(lambda: items()[reporting]["health"] == "healthy", timeout=15)
    operations = {}
    for connector in (reporting, quiet):
        made = httpx.post(f"{base}/{connector}/interrupts", json={"reboot": {}}, headers=bearer(token))
        operations[connector] = made.json()["result"]["id"]

    def pending_too_long() -> bool:
        check_in(reporting)  # keeps reporting all along
        return items()[reporting]["reason"] == "operation_pending"

    wait_for(pending_too_long, timeout=30, interval=0.3)
    item = items()[reporting]
    assert (item["health"], item["operation_id"]) == ("failing", operations[reporting])
    assert "event" not in item and "snapshot" not in item
    quiet_item = items()[quiet]
    assert (quiet_item["health"], quiet_item["reason"]) == ("silent", "no_heartbeat")  # its silence explains it

    # Executed: the failure is cleared at once.
    assert check_in(reporting, {"executed": operations[reporting]}) == {}
    item = items()[reporting]
    assert (item["health"], item["reason"], item["operation_id"]) == (
        "healthy",
        "operation_done",
        operations[reporting],
    )
    # The silent one reports again with its operation still pending (for too long): failing, by it.
    check_in(quiet)  # (marked pending too long by the sweep within 2 s of crossing the threshold, if not yet)
    wait_for(lambda: items()[quiet]["reason"] == "operation_pending", timeout=15)
    assert (items()[quiet]["health"], items()[quiet]["operation_id"]) == ("failing", operations[quiet])
