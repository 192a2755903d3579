"""`conntel demo` seeds a fleet and prints a curl that works as printed."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from pathlib import Path

import httpx
from helpers import CONNTEL, free_port


def test_demo_prints_a_working_curl(tmp_path: Path):
    port = free_port()
    db = tmp_path / "demo.db"
    proc = subprocess.Popen(
        [*CONNTEL, "demo", "--db", str(db), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Application startup complete" in line:
                break
        output = "".join(lines)
        curl = re.search(r"^\s*(curl .*)$", output, re.M).group(1)
        args = shlex.split(curl)
        token = args[args.index("-H") + 1].removeprefix("Authorization: Bearer ")
        url = args[-1]
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        assert result["e"]["k"] == "StartUpgrade" and result["e"]["url"].startswith("https://")
        # A few hundred realistic events, including an upgrade that failed and was retried.
        import sqlite3

        with sqlite3.connect(db) as conn:
            kinds = dict(conn.execute("SELECT k, count(*) FROM events GROUP BY k").fetchall())
        assert 200 <= sum(kinds.values()) <= 2000
        for kind in (
            "Init",
            "FinishAttestationSuccess",
            "FinishRotateCryptKeySuccess",
            "FinishRotatePkiSuccess",
            "FinishUpgradeFailure",
            "FinishUpgradeSuccess",
            "HaTransition",
            "RekeyComplete",
        ):
            assert kinds.get(kind, 0) > 0, kind
        assert kinds["StartUpgrade"] > kinds["FinishUpgradeSuccess"]  # a failed upgrade was retried

        # And a simulated fleet posts live beside the seeded connectors.
        base = url.split("/accounts/")[0]
        account = url.split("/accounts/")[1].split("/")[0]
        deadline = time.monotonic() + 15
        while True:
            listed = httpx.get(
                f"{base}/accounts/{account}/magic/connectors", headers={"Authorization": f"Bearer {token}"}
            ).json()["result"]
            live = [c for c in listed if c.get("device", {}).get("serial_number", "").startswith("SIM-")]
            if len(live) == 8 and all(c.get("last_heartbeat") for c in live):
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.5)
        assert "Dashboard: http://" in output and "#token=" in output
    finally:
        proc.terminate()
        proc.wait(timeout=20)
