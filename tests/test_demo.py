"""`conntel demo` seeds a fleet, prints a curl that works as printed, and keeps the terminal readable."""

from __future__ import annotations

import errno
import json
import os
import pty
import re
import select
import shlex
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
from helpers import CONNTEL, free_port, wait_for


class Terminal:
    """What a program writes to a pseudo-terminal (so it sees a terminal, as under `make demo`)."""

    def __init__(self, master: int):
        self.master = master
        self.text = ""
        self.closed = False

    def read(self, seconds: float) -> None:
        """Take what arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while not self.closed and (left := deadline - time.monotonic()) > 0:
            if select.select([self.master], [], [], left)[0]:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError as exc:  # EIO: every writer closed
                    assert exc.errno == errno.EIO
                    chunk = b""
                self.closed = not chunk
                self.text += chunk.decode(errors="replace")

    def read_until(self, marker: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.text:
            assert not self.closed and time.monotonic() < deadline, f"no {marker!r} in:\n{self.text}"
            self.read(0.2)
        return self.text


def test_demo_prints_a_working_curl_and_keeps_the_terminal_readable(tmp_path: Path):
    port = free_port()
    db = tmp_path / "demo.db"
    master, replica = pty.openpty()
    proc = subprocess.Popen(
        [*CONNTEL, "demo", "--db", str(db), "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=replica,
        stderr=replica,
    )
    os.close(replica)
    terminal = Terminal(master)
    try:
        output = terminal.read_until("Press Ctrl-C to stop.", timeout=60).replace("\r\n", "\n")
        banner_lines = output.count("\n")
        curl = re.search(r"^\s*(curl .*)$", output, re.M).group(1)
        args = shlex.split(curl)
        token = args[args.index("-H") + 1].removeprefix("Authorization: Bearer ")
        url = args[-1]

        def answers() -> bool:
            try:
                return httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
            except httpx.TransportError:  # not listening yet
                return False

        wait_for(answers, timeout=30)
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        assert result["e"]["k"] == "StartUpgrade" and result["e"]["url"].startswith("https://")
        # A few hundred realistic events, including an upgrade that failed and was retried.
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
        # And the same day of snapshots, one a minute (none while rebooting).
        snapshots = url.split("/telemetry/")[0] + "/telemetry/snapshots"
        now = int(time.time())
        listed = httpx.get(
            snapshots,
            params={"from": now - 86_400, "to": now, "limit": 1000},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["result"]
        assert listed["count"] == 1000 and "cursor" in listed
        latest = httpx.get(f"{snapshots}/latest", headers={"Authorization": f"Bearer {token}"}).json()["result"]
        assert latest["count"] > 0 and latest["items"][0]["t"] > now - 120

        # And a simulated fleet posts live beside the seeded connectors.
        base = url.split("/accounts/")[0]
        account = url.split("/accounts/")[1].split("/")[0]

        def fleet_is_live() -> bool:
            listed = httpx.get(
                f"{base}/accounts/{account}/magic/connectors", headers={"Authorization": f"Bearer {token}"}
            ).json()["result"]
            live = [c for c in listed if c.get("device", {}).get("serial_number", "").startswith("SIM-")]
            return len(live) == 8 and all(c.get("last_heartbeat") for c in live)

        wait_for(fleet_is_live, timeout=15, interval=0.5)
        assert "Dashboard: http://" in output and "#token=" in output

        # A few seconds of a live fleet later, the banner is still all there is, and one line refreshed in place.
        terminal.read(2.5)
        after_banner = terminal.text.replace("\r\n", "\n")[len(output) :]
        assert after_banner.strip("\n").count("\n") == 0, after_banner  # nothing scrolls
        refreshes = [part for part in after_banner.split("\r") if part.strip()]
        assert len(refreshes) >= 2, after_banner
        assert re.fullmatch(
            r"live: [0-9.,]+ events/s posted by the fleet, [0-9,]+ events, 12 connectors\x1b\[K", refreshes[-1]
        ), refreshes[-1]
        assert banner_lines < 25
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=20)
        terminal.read(1)
        os.close(master)
    assert "Stopped: " in terminal.text and "demo.log" in terminal.text

    # The server's own output went to demo.log beside the database: one JSON line per request, no secrets.
    log = (tmp_path / "demo.log").read_text()
    assert token not in log
    requests = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert {"method", "path", "status", "ms"} <= requests[0].keys()
    assert any(r["method"] == "POST" and r["path"].endswith("/telemetry/events") for r in requests)
    assert any(r["method"] == "GET" and r["path"] in url for r in requests)
    assert "Application startup complete" in log
