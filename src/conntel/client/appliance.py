"""One simulated connector as a real appliance behaves: it pushes its telemetry with its own credential,
checks in every 10 simulated seconds even when it has nothing to send, and executes the operations it
learns of (README, "The device side"), reporting each executed once, never twice.

Its events come from conntel.client.lifecycles.Appliance; its snapshots from
conntel.client.metrics, fed the very events it records (so a reboot's `Init`
starts the counters from zero).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from conntel.client import lifecycles, metrics

HEARTBEAT_SECONDS = 10  # simulated seconds between two check-ins


class MetricsClock:
    """A snapshot every `interval` simulated seconds, from the events recorded so far (as
    metrics.connector_snapshots, whose snapshots it repeats when no operation interrupts the events)."""

    def __init__(self, rng: random.Random, start: int, interval: int = metrics.INTERVAL):
        self._metrics = metrics.ConnectorMetrics(rng, metrics.make_profile(rng))
        self._t = start + rng.randint(0, interval - 1)
        self._interval = interval
        self._events: deque[dict[str, Any]] = deque()

    def due(self, events: list[dict[str, Any]], until: int) -> list[dict[str, Any]]:
        self._events.extend(events)
        taken = []
        while self._t <= until:
            while self._events and self._events[0]["t"] <= self._t:
                self._metrics.observe(self._events.popleft())
            self._metrics.run_until(self._t)
            if self._metrics.up:
                taken.append(self._metrics.snapshot(self._t))
            self._t += self._interval
        return taken


class VirtualAppliance:
    def __init__(self, connector_id: str, seed: float, start: int, failure_rate: float, snapshots: bool):
        self.connector_id = connector_id
        self.events = lifecycles.Appliance(random.Random(seed), start, failure_rate)
        self.metrics = MetricsClock(metrics.metrics_random(seed), start) if snapshots else None
        self.credential = ""
        self.next_heartbeat = start
        self.executed: set[str] = set()  # ids of operations executed: kept, so a retry never executes twice
        self.to_report: str | None = None  # executed, not yet acknowledged by the server
        self.off = False  # shut down: silent until the simulator is started again (README)
        self.down = False  # a reboot or restart under way: no check-ins until it is back

    def due(self, until: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The events and snapshots recorded up to `until`."""
        events = self.events.due(until)
        snapshots = self.metrics.due(events, until) if self.metrics is not None else []
        return events, snapshots

    def learn(self, operation: dict[str, Any] | None, now: int) -> None:
        """What a push or check-in answered: execute a new operation at simulated time `now`."""
        if operation is None:
            return
        if operation["id"] in self.executed:  # our report was lost, or crossed this answer: report again
            self.to_report = operation["id"]
            return
        self.executed.add(operation["id"])
        action = operation["action"]
        self.events.execute(action, bool(operation["purge"]), now)
        self.to_report = operation["id"]
        self.down = True  # no check-in until its `Leave` is pushed (shutdown) or it is back (its `Init`)
        self.off = action == "shutdown"  # reported on the way down, with its last events: silent after

    def note_events(self, events: list[dict[str, Any]]) -> None:
        """Events recorded and about to be pushed: a reboot or restart is over at its `Init`."""
        back = "Leave" if self.off else "Init"
        if self.down and any(event["e"]["k"] == back for event in events):
            self.down = False

    @property
    def may_check_in(self) -> bool:
        """Not while it reboots or restarts; once shut down, only to report that on the way down."""
        return not self.down and (not self.off or self.to_report is not None)
