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

    def boot(self, purge: bool = False) -> Iterator[dict[str, Any]]:
        self.wait(0, 5)
        yield self.event("Init")
        yield self.event("HaInit")
        while not (yield from self.attempt("Attestation", "TPM quote rejected")):
            self.wait(60, 300)
        if purge:  # its local state discarded: a new crypt key before the tunnels come back
            while not (yield from self.attempt("RotateCryptKey")):
                self.wait(30, 120)
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

    def run(self, since: int) -> Iterator[dict[str, Any]]:
        """Life after a boot at `since`: steady loops, an upgrade within the first day, then every few weeks."""
        next_upgrade = since + self.rng.randint(DAY // 4, DAY * 3 // 4)
        while True:
            yield from self.steady()
            if self.now >= next_upgrade:
                yield from self.upgrade()
                next_upgrade = self.now + self.rng.randint(14 * DAY, 42 * DAY)

    def leave(self) -> Iterator[dict[str, Any]]:
        yield self.event("HaLeave")
        yield self.event("Leave")

    def reboot(self, purge: bool) -> Iterator[dict[str, Any]]:
        """The whole appliance: the connector leaves, the machine goes down for a while, then boots."""
        yield from self.leave()
        self.wait(60, 180)  # shutdown, firmware, kernel
        since = self.now
        yield from self.boot(purge)
        yield from self.run(since)

    def restart(self, purge: bool) -> Iterator[dict[str, Any]]:
        """The connector's process only: the machine, its kernel and counters stay up; no attestation."""
        yield from self.leave()
        self.wait(3, 15)
        since = self.now
        yield self.event("Init", reason="restart")
        yield self.event("HaInit")
        if purge:
            yield from self.attempt("RotateCryptKey")
        self.wait(1, 10)
        yield self.event("ConfigureCloudflaredTunnel", tunnel="primary")
        self.wait(1, 5)
        yield self.event("RekeyInstallBoth")
        yield self.event("HaTransition", state=self.rng.choice(("active", "standby")))
        yield from self.run(since)


def connector_events(rng: random.Random, start: int, failure_rate: float = 0.2) -> Iterator[dict[str, Any]]:
    """An endless event stream of one connector from `start` on, (t, n) strictly increasing."""
    connector = _Connector(rng, start, failure_rate)
    yield from connector.boot()
    yield from connector.run(start)


class Appliance:
    """One connector's events as the simulator emits them: its lifecycle (as `connector_events`, the same
    events for the same seed), until an operation interrupts it at the simulated time it is executed."""

    def __init__(self, rng: random.Random, start: int, failure_rate: float):
        self._connector = _Connector(rng, start, failure_rate)
        self._stream: Iterator[dict[str, Any]] = self._life(start)
        self._pending: dict[str, Any] | None = None
        self._emitted = (-1, -1)  # (t, n) of the last event handed out by `due`

    def _life(self, start: int) -> Iterator[dict[str, Any]]:
        yield from self._connector.boot()
        yield from self._connector.run(start)

    def due(self, until: int) -> list[dict[str, Any]]:
        """The events recorded up to simulated time `until` (none any more once shut down)."""
        batch: list[dict[str, Any]] = []
        while True:
            if self._pending is None:
                self._pending = next(self._stream, None)
                if self._pending is None:  # shut down: silent
                    return batch
            if self._pending["t"] > until:
                return batch
            batch.append(self._pending)
            self._emitted = (self._pending["t"], self._pending["n"])
            self._pending = None

    def execute(self, action: str, purge: bool, at: int) -> None:
        """Interrupt the lifecycle at simulated time `at`: what was not yet recorded is not recorded."""
        connector = self._connector
        connector._last = self._emitted  # the pending event, made ahead, is dropped
        connector.now = max(at, self._emitted[0])
        self._pending = None
        if action == "reboot":
            self._stream = connector.reboot(purge)
        elif action == "restart":
            self._stream = connector.restart(purge)
        else:  # shutdown: it leaves, and records nothing more until powered on
            self._stream = connector.leave()


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
