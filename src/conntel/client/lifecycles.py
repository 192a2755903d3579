"""A simulated connector fleet: realistic, deterministic event streams.

Each connector boots, attests, configures its tunnel, blesses its boot slot,
runs its HA subsystem and IPsec-style rekeys, rotates its crypt key and PKI
now and then, reconciles regularly, and takes an upgrade every few weeks (the
first within its first day) that sometimes fails and is retried. The same
seed gives the same events.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Generator, Iterator
from typing import Any

UPGRADE_URL = "https://downloads.example.com/connector/{version}/bundle.tar.zst"
DAY = 86_400


class _Connector:
    """One connector's clock, version and (t, n) sequence."""

    def __init__(self, rng: random.Random, start: int, failure_rate: float):
        self.rng = rng
        self.now = start
        self.failure_rate = failure_rate
        self.version = f"2026.{rng.randint(1, 9)}.{rng.randint(0, 5)}"
        self._last = (-1, -1)

    def wait(self, low: int, high: int) -> int:
        self.now += self.rng.randint(low, high)
        return self.now

    def event(self, kind: str, **payload: Any) -> dict[str, Any]:
        last_t, last_n = self._last
        t, n = (last_t, last_n + 1) if self.now <= last_t else (self.now, 0)
        self._last = (t, n)
        return {"t": t, "n": n, "e": {"k": kind, **payload}, "v": self.version}

    def fails(self) -> bool:
        return self.rng.random() < self.failure_rate

    def attempt(self, name: str, error: str = "timed out") -> Generator[dict[str, Any], None, bool]:
        """Start<name>, then Finish<name>Success or Failure; returns whether it succeeded."""
        self.wait(1, 30)
        yield self.event(f"Start{name}")
        self.wait(5, 120)
        failed = self.fails()
        yield self.event(f"Finish{name}Failure", error=error) if failed else self.event(f"Finish{name}Success")
        return not failed

    def boot(self) -> Iterator[dict[str, Any]]:
        self.wait(0, 5)
        yield self.event("Init")
        yield self.event("HaInit")
        while not (yield from self.attempt("Attestation", "TPM quote rejected")):
            self.wait(60, 300)
        self.wait(1, 10)
        yield self.event("ConfigureCloudflaredTunnel", tunnel="primary")
        self.wait(1, 10)
        yield self.event("BlessSlotPending", slot="A")
        if self.rng.random() < self.failure_rate / 4:
            self.wait(30, 90)
            yield self.event("BlessSlotFailure", slot="A", error="health check failed")
            self.wait(60, 120)
            yield self.event("BlessSlotPending", slot="A")
        self.wait(30, 90)
        yield self.event("BlessSlotSuccess", slot="A")
        self.wait(1, 5)
        yield self.event("RekeyInstallBoth")
        yield self.event("HaTransition", state=self.rng.choice(("active", "standby")))

    def upgrade(self) -> Iterator[dict[str, Any]]:
        major, minor, patch = self.version.split(".")
        target = f"{major}.{minor}.{int(patch) + 1}"
        for tries_left in (2, 1, 0):  # three tries at most
            self.wait(1, 30)
            yield self.event("StartUpgrade", url=UPGRADE_URL.format(version=target))
            self.wait(60, 300)
            if tries_left and self.fails():
                yield self.event("FinishUpgradeFailure", error="bundle signature mismatch")
                self.wait(300, 900)
                continue
            yield self.event("HaLeave")
            yield self.event("Leave")
            self.version = target
            self.wait(30, 90)
            yield self.event("FinishUpgradeSuccess")
            yield from self.boot()
            return

    def rekey(self) -> Iterator[dict[str, Any]]:
        self.wait(0, 2)
        yield self.event("RekeyStart")
        if self.rng.random() < 0.1:
            self.wait(1, 5)
            yield self.event("RekeyRestart")
        self.wait(1, 10)
        yield self.event("RekeyAdvance")
        self.wait(1, 10)
        yield self.event("RekeyComplete")

    def steady(self) -> Iterator[dict[str, Any]]:
        """Between upgrades: reconcile loops with rekeys, rotations and HA hiccups."""
        self.wait(600, 1800)
        yield self.event("Reconcile", changed=self.rng.random() < 0.1)
        roll = self.rng.random()
        if roll < 0.15:
            yield from self.rekey()
        elif roll < 0.2:
            yield from self.attempt("RotateCryptKey")
        elif roll < 0.23:
            yield from self.attempt("RotatePki")
        elif roll < 0.25:
            self.wait(0, 5)
            yield self.event("HaError", error="peer unreachable")
            self.wait(1, 30)
            yield self.event("HaTransition", state="active")
        elif roll < 0.26:
            self.wait(0, 5)
            yield self.event("RekeyReset")
            self.wait(1, 5)
            yield self.event("RekeyInstallBoth")


def connector_events(rng: random.Random, start: int, failure_rate: float = 0.2) -> Iterator[dict[str, Any]]:
    """An endless event stream of one connector from `start` on, (t, n) strictly increasing."""
    connector = _Connector(rng, start, failure_rate)
    yield from connector.boot()
    next_upgrade = start + rng.randint(DAY // 4, DAY * 3 // 4)
    while True:
        yield from connector.steady()
        if connector.now >= next_upgrade:
            yield from connector.upgrade()
            next_upgrade = connector.now + rng.randint(14 * DAY, 42 * DAY)


def connector_timeline(rng: random.Random, start: int, end: int, failure_rate: float = 0.2) -> list[dict[str, Any]]:
    """One connector's events recorded in [start, end)."""
    return list(itertools.takewhile(lambda ev: ev["t"] < end, connector_events(rng, start, failure_rate)))


def fleet(
    connector_ids: list[str], seed: int, start: int, end: int, failure_rate: float = 0.2
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Each connector with its events in [start, end)."""
    rng = random.Random(seed)
    for connector_id in connector_ids:
        yield connector_id, connector_timeline(random.Random(rng.random()), start, end, failure_rate)
