"""The simulator as a faithful appliance, end to end: an operator's SDK call on one server process, the
simulated connector (pushing with its own credential, through another process) executing it, and the
operator seeing it executed and the reboot in the connector's events and snapshots. Both backends."""

from __future__ import annotations

import subprocess
import time

import httpx
from cloudflare import Cloudflare
from helpers import CONNTEL, Server, World, bearer, cli, wait_for

SEED = 41


def simulator(world: World, server: Server, token: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CONNTEL, "simulate", "--url", server.base_url, "--token", token, "--account", world.account,
         "--connectors", "1", "--speed", "60", "--seed", str(SEED), "--duration", "90", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def events(world: World, server: Server, connector: str) -> list[dict]:
    url = f"{server.base_url}/accounts/{world.account}/magic/connectors/{connector}/telemetry/events"
    params = {"from": 0, "to": 2**53 - 1, "limit": 1000}
    return httpx.get(url, params=params, headers=bearer(world.read_token)).json()["result"]["items"]


def test_reboot_from_the_sdk_executed_by_the_simulated_connector(world: World, tmp_path):
    other = Server(world.db, log_dir=tmp_path).start()  # the operator's process; the fleet uses world.server
    sim_token = world.new_token("Magic WAN Write")
    fleet = simulator(world, world.server, sim_token["value"])
    try:
        listed = httpx.get(
            f"{other.base_url}/accounts/{world.account}/magic/connectors", headers=bearer(world.read_token)
        )
        connectors = lambda: [  # noqa: E731
            c["id"]
            for c in httpx.get(
                f"{other.base_url}/accounts/{world.account}/magic/connectors", headers=bearer(world.read_token)
            ).json()["result"]
            if c.get("device", {}).get("serial_number") == f"SIM-{SEED}-0000"
        ]
        assert listed.status_code == 200
        wait_for(lambda: bool(connectors()) and len(events(world, other, connectors()[0])) >= 3, timeout=30)
        connector = connectors()[0]
        # Its account token is revoked: from here on, only the connector's own credential is at work.
        cli("tokens", "revoke", sim_token["id"], db=world.db)
        time.sleep(0.5)  # past the servers' credential TTL (0.2 s in tests)

        sdk = Cloudflare(api_token=world.write_token, base_url=other.base_url, max_retries=0)
        made = sdk.magic_transit.connectors.interrupts.create(connector, account_id=world.account, reboot={})
        assert made.triggered_at is None

        def executed() -> bool:
            listed = list(sdk.magic_transit.connectors.interrupts.list(connector, account_id=world.account))
            return listed[0].triggered_at is not None

        wait_for(executed, timeout=40, interval=0.2)
        # The boot, then the reboot: Leave, down for a while, and the machine coming back through Init,
        # attestation and its tunnels.
        back = lambda: [item["k"] for item in events(world, other, connector)]  # noqa: E731
        wait_for(lambda: "ConfigureCloudflaredTunnel" in back()[back().index("Leave") :], timeout=30)
        items = events(world, other, connector)
        kinds = [item["k"] for item in items]
        assert kinds.count("Init") == 2, kinds
        leave = kinds.index("Leave")
        assert kinds[leave - 1] == "HaLeave" and kinds[leave + 1 : leave + 3] == ["Init", "HaInit"], kinds
        assert "FinishAttestationSuccess" in kinds[leave:], kinds
        init_t = items[leave + 1]["t"]
        assert init_t - items[leave]["t"] >= 60
        listed_after = list(sdk.magic_transit.connectors.interrupts.list(connector, account_id=world.account))
        assert listed_after[0].reboot is not None and listed_after[0].triggered_at is not None

        # Its snapshots: none while it was down, and the kernel (and so its counters) new after it.
        url = f"{other.base_url}/accounts/{world.account}/magic/connectors/{connector}/telemetry/snapshots/latest"

        def snapshots() -> list[dict]:
            return httpx.get(url, headers=bearer(world.read_token)).json()["result"]["items"]

        wait_for(lambda: snapshots()[0]["t"] > init_t, timeout=30)
        taken = snapshots()
        before = [s for s in taken if s["t"] < items[leave]["t"]]
        after = [s for s in taken if s["t"] > init_t]
        assert not [s for s in taken if items[leave]["t"] < s["t"] < init_t]
        assert before and after and after[-1]["kernel_btime"] > before[0]["kernel_btime"]
        assert after[-1]["kernel_btime"] >= items[leave]["t"]
        assert fleet.poll() is None, fleet.stderr.read() if fleet.stderr else ""
    finally:
        fleet.terminate()
        fleet.wait(timeout=20)
        other.stop()
