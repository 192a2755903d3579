"""A simulated connector fleet: realistic, deterministic event timelines.

Each connector boots, attests, configures its tunnel, blesses its boot slot,
runs its HA subsystem and IPsec-style rekeys, rotates its crypt key and PKI on
schedules, reconciles regularly, and takes an upgrade that sometimes fails and
is retried. The same seed gives the same events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterator

UPGRADE_URL = "https://downloads.example.com/connector/{version}/bundle.tar.zst"


@dataclass
class Timeline:
    """Events of one connector, with (t, n) strictly increasing."""

    version: str
    events: list[dict[str, Any]] = field(default_factory=list)
    _last: tuple[int, int] = (-1, -1)

    def add(self, t: int, kind: str, **payload: Any) -> None:
        last_t, last_n = self._last
        n = last_n + 1 if t <= last_t else 0
        t = max(t, last_t)
        self._last = (t, n)
        self.events.append({"t": t, "n": n, "e": {"k": kind, **payload}, "v": self.version})


def _bump(version: str) -> str:
    major, minor, patch = (int(part) for part in version.split("."))
    return f"{major}.{minor}.{patch + 1}"


def connector_timeline(rng: random.Random, start: int, end: int, failure_rate: float = 0.2) -> list[dict[str, Any]]:
    line = Timeline(version=f"2026.{rng.randint(1, 9)}.{rng.randint(0, 5)}")
    now = start

    def step(low: int, high: int) -> int:
        nonlocal now
        now += rng.randint(low, high)
        return now

    def attempt(prefix: str, payload_fail: dict[str, Any] | None = None) -> bool:
        line.add(step(1, 30), f"Start{prefix}")
        if rng.random() < failure_rate:
            line.add(step(5, 120), f"Finish{prefix}Failure", **(payload_fail or {"error": "timed out"}))
            return False
        line.add(step(5, 120), f"Finish{prefix}Success")
        return True

    def boot() -> None:
        line.add(step(0, 5), "Init")
        line.add(now, "HaInit")
        while not attempt("Attestation", {"error": "TPM quote rejected"}):
            step(60, 300)
        line.add(step(1, 10), "ConfigureCloudflaredTunnel", tunnel="primary")
        line.add(step(1, 10), "BlessSlotPending", slot="A")
        line.add(step(30, 90), "BlessSlotSuccess", slot="A")
        line.add(step(1, 5), "RekeyInstallBoth")
        line.add(now, "HaTransition", state="active" if rng.random() < 0.5 else "standby")

    boot()
    upgrade_at = start + (end - start) * rng.randint(30, 70) // 100
    upgraded = False
    while now < end:
        step(600, 1800)
        line.add(now, "Reconcile", changed=rng.random() < 0.1)
        roll = rng.random()
        if roll < 0.15:
            line.add(step(0, 2), "RekeyStart")
            if rng.random() < 0.1:
                line.add(step(1, 5), "RekeyRestart")
            line.add(step(1, 10), "RekeyAdvance")
            line.add(step(1, 10), "RekeyComplete")
        elif roll < 0.2:
            attempt("RotateCryptKey")
        elif roll < 0.23:
            attempt("RotatePki")
        elif roll < 0.25:
            line.add(step(0, 5), "HaError", error="peer unreachable")
            line.add(step(1, 30), "HaTransition", state="active")
        elif roll < 0.26:
            line.add(step(0, 5), "RekeyReset")
            line.add(step(1, 5), "RekeyInstallBoth")
        if not upgraded and now >= upgrade_at:
            upgraded = True
            target = _bump(line.version)
            # An upgrade fails now and then; the connector retries (three tries at most).
            for tries_left in (2, 1, 0):
                line.add(step(1, 30), "StartUpgrade", url=UPGRADE_URL.format(version=target))
                if tries_left and rng.random() < failure_rate:
                    line.add(step(60, 300), "FinishUpgradeFailure", error="bundle signature mismatch")
                    step(300, 900)
                    continue
                line.add(step(60, 300), "HaLeave")
                line.add(now, "Leave")
                line.version = target
                line.add(step(30, 90), "FinishUpgradeSuccess")
                boot()
                break
    return line.events


def fleet(
    connector_ids: list[str], seed: int, start: int, end: int, failure_rate: float = 0.2
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rng = random.Random(seed)
    for connector_id in connector_ids:
        yield connector_id, connector_timeline(rng, start, end, failure_rate)
