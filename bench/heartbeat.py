"""Bare check-ins (heartbeats with nothing pending) vs the bare ASGI hello world, in the Get Event rounds.

A heartbeat is the most frequent request a fleet makes; it must cost no more
than a Get Event. In every round, right after Get Event on a backend, the same
server takes `wrk` with bench/heartbeat.lua: POSTs without a body to
`.../connectors/{id}/checkin`, each connector with its own device credential
(minted once per store), none with an operation pending. Its ratio is its
req/s over the hello world's of the same round (getevent.py).
"""

from __future__ import annotations

import httpx
from harness import WORK, BenchError, cli_json, log
from stores import Dataset

CHECKIN = "/client/v4/accounts/{account}/magic/connectors/{connector}/checkin"
SCRIPT = "heartbeat.lua"
TARGET_SQLITE = 0.40  # README "The device side" / bench/RESULTS.md: a heartbeat costs no more than a Get Event


def checkins_file(ds: Dataset) -> str:
    """`PATH CREDENTIAL` lines, one per connector of the dataset, credentials minted for this run."""
    path = WORK / f"checkins-{ds.backend.name}.txt"
    lines = []
    for connector in ds.connector_ids:
        made = cli_json(
            "connectors", "credential", "--account", ds.account, "--connector", connector,
            *ds.backend.store_args(ds.store),
        )  # fmt: skip
        lines.append(f"{CHECKIN.format(account=ds.account, connector=connector)} {made['value']}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def precheck(port: int, file: str) -> None:
    """Every check-in answers 200 with nothing pending: a benchmark of refusals is worthless."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for line in open(file).read().splitlines():
            path, credential = line.split(" ")
            response = http.post(path, headers={"Authorization": f"Bearer {credential}"})
            if response.status_code != 200 or response.json().get("result") != {}:
                raise BenchError(f"pre-check: POST {path} -> {response.status_code}: {response.text[:300]}")
    log("pre-check: every connector's bare check-in answered 200, nothing pending")
