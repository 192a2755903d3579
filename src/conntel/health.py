"""Fleet health: what each connector's health is, and why (CONTRACT §10).

Three healths, decided here (`decide`) and nowhere else, in this order of precedence:

1. failing, when one of these holds (the first that holds is the reason):
   a. its newest (by `t`, `n`) event among the eight outcome kinds (upgrade, attestation, crypt key
      rotation, PKI rotation; Success or Failure) is a Failure (reason: that kind, with the `event`).
      A newer Success clears it;
   b. a tunnel is down (`health_value` 3 or `health_state` "down") in its newest snapshot (by `t`):
      reason `tunnel_down`, with the `snapshot` and the `tunnel_id` (the first down one). A newer
      snapshot with no tunnel down (or none at all) clears it.
   Failing this way outranks silent: a connector that failed and then went quiet stays failing.
2. silent: no events, snapshots or check-ins for longer than the account's threshold (default
   `--silent-after`, 15 minutes: config.Settings), or never any (`no_heartbeat`, `never_reported`).
3. failing: an operation (interrupt) pending for longer than that same threshold while the connector
   keeps reporting: reason `operation_pending`, with the `operation_id`. A silent connector stays silent
   (its silence explains the pending operation). Executing it clears it.
4. healthy: otherwise. Its reason says what made it so: `reporting` (reporting again after a silence,
   with the event or snapshot it came back with), the Success kind that cleared an outcome failure,
   `tunnels_up` (a snapshot with no tunnel down cleared `tunnel_down`) or `operation_done`.

The store keeps each connector's health, since when and why: as events, snapshots and check-ins arrive
and operations are executed (in the writing transaction), and as time passes (`sweep`, run by one server
process at a time every SWEEP_SECONDS: silence, and operations pending too long). Every change (of health,
reason or reference) is recorded in the same transaction for the live streams (`health_changes`, pruned
after HEALTH_CHANGES_KEPT_SECONDS) and, when the health itself changes, for webhooks.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from msgspec import UNSET, Struct, UnsetType

from conntel.kinds import KINDS

HEALTHY, FAILING, SILENT = "healthy", "failing", "silent"
Health = Literal["healthy", "failing", "silent"]
# Whose newest one decides "failing".
OUTCOME_KINDS = tuple(kind.name for kind in KINDS if kind.name.startswith("Finish"))
assert len(OUTCOME_KINDS) == 8, OUTCOME_KINDS
FAILURE_SUFFIX = "Failure"
# Reasons besides an outcome kind's name (`FinishUpgradeFailure`, `FinishUpgradeSuccess`, ...).
NEVER_REPORTED = "never_reported"  # silent: created, and nothing pushed since
NO_HEARTBEAT = "no_heartbeat"  # silent: nothing pushed for longer than the threshold
REPORTING = "reporting"  # healthy: pushing again after a silence
TUNNEL_DOWN = "tunnel_down"  # failing: a tunnel down in the newest snapshot
TUNNELS_UP = "tunnels_up"  # healthy: a newer snapshot with no tunnel down cleared it
OPERATION_PENDING = "operation_pending"  # failing: an operation pending for longer than the threshold
OPERATION_DONE = "operation_done"  # healthy: that operation was executed
# A tunnel item of a snapshot is down when either says so (conntel/snapshots.py TUNNEL).
TUNNEL_DOWN_VALUE = 3
TUNNEL_DOWN_STATE = "down"
# How often a server looks for connectors that have gone quiet or whose operation is pending too long:
# either is noticed within this many seconds of crossing its threshold.
SWEEP_SECONDS = 2.0
LEASE = "fleet-health"
# Health changes are kept this long for the live streams (which read them within a poll), then pruned.
HEALTH_CHANGES_KEPT_SECONDS = 3600


class EventRef(Struct):
    """The event that made a connector's health what it is (Get Event: `{t}.{n}`)."""

    t: int
    n: int


class SnapshotRef(Struct):
    """The snapshot that made a connector's health what it is (Get Snapshot: `{t}`)."""

    t: int


class ConnectorHealth(Struct, omit_defaults=True):
    connector_id: str
    health: Health
    since: int  # seconds since the epoch (conntel's clock)
    reason: str
    last_heartbeat: int | None
    event: EventRef | UnsetType = UNSET
    snapshot: SnapshotRef | UnsetType = UNSET
    tunnel_id: str | UnsetType = UNSET  # reason tunnel_down: the (first) tunnel reported down
    operation_id: str | UnsetType = UNSET  # reason operation_pending / operation_done: the interrupt's id


class FleetHealth(Struct):
    count: int
    items: list[ConnectorHealth]


class HealthChange(Struct, omit_defaults=True):
    """A live stream's `event: health` message (api/stream.py): a connector's health, reason or reference
    changed. `previous` is the health before (equal to `health` when only the reason changed)."""

    connector_id: str
    health: Health
    previous: Health
    since: int
    reason: str
    event: EventRef | UnsetType = UNSET
    snapshot: SnapshotRef | UnsetType = UNSET
    tunnel_id: str | UnsetType = UNSET
    operation_id: str | UnsetType = UNSET


class HealthState(NamedTuple):
    """A connector's kept health, as the store's health columns hold it."""

    health: str
    since: int | None
    reason: str
    event_t: int | None = None
    event_n: int | None = None
    snapshot_t: int | None = None
    tunnel_id: str | None = None
    operation_id: str | None = None


class HealthFacts(NamedTuple):
    """What a connector's health is decided from, as the store keeps it."""

    outcome_t: int | None  # its newest outcome event (one of OUTCOME_KINDS)
    outcome_n: int | None
    outcome_k: str | None
    tunnel_t: int | None  # its newest snapshot, and a tunnel reported down in it (None: none)
    tunnel_down: str | None
    operation_overdue: str | None  # an operation pending for longer than the threshold (set by the sweep)
    last_heartbeat: int | None
    created_on: int


class Report(NamedTuple):
    """What just arrived from the connector, if anything: what `reporting` refers to."""

    event_t: int | None = None
    event_n: int | None = None
    snapshot_t: int | None = None


def decide(current: HealthState, facts: HealthFacts, now: int, silent_since: int | None, report: Report) -> HealthState:
    """The connector's health now (the rules and their precedence: the module's docstring).

    `silent_since`: when it crossed its silence threshold, None while it reports (any writer but the sweep
    has just heard from it). `report`: what it just reported, if anything. Returns `current` itself when
    nothing changes."""
    if facts.outcome_k is not None and facts.outcome_k.endswith(FAILURE_SUFFIX):
        target = HealthState(FAILING, now, facts.outcome_k, facts.outcome_t, facts.outcome_n)
    elif facts.tunnel_down is not None:
        target = HealthState(FAILING, now, TUNNEL_DOWN, snapshot_t=facts.tunnel_t, tunnel_id=facts.tunnel_down)
    elif silent_since is not None:
        if current.health == SILENT:
            return current
        reason = NEVER_REPORTED if facts.last_heartbeat is None else NO_HEARTBEAT
        target = HealthState(SILENT, silent_since, reason)
    elif facts.operation_overdue is not None:
        target = HealthState(FAILING, now, OPERATION_PENDING, operation_id=facts.operation_overdue)
    elif current.health == HEALTHY:
        return current
    elif current.health == SILENT:
        target = HealthState(HEALTHY, now, REPORTING, *report)
    else:  # failing no more: what cleared it
        target = _cleared(current, facts, now)
    if target.health == current.health:  # the same health for another reason: since when it holds stays
        target = target._replace(since=current.since)
    return current if target == current else target


def _cleared(current: HealthState, facts: HealthFacts, now: int) -> HealthState:
    if current.reason == TUNNEL_DOWN:
        return HealthState(HEALTHY, now, TUNNELS_UP, snapshot_t=facts.tunnel_t)
    if current.reason == OPERATION_PENDING:
        return HealthState(HEALTHY, now, OPERATION_DONE, operation_id=current.operation_id)
    if facts.outcome_k is not None:  # the Success that cleared a Failure
        return HealthState(HEALTHY, now, facts.outcome_k, facts.outcome_t, facts.outcome_n)
    return HealthState(HEALTHY, now, REPORTING)


def tunnel_down(tunnels: object) -> str | None:
    """The id of the first tunnel reported down among a snapshot's `tunnels` (decoded), None when none is."""
    if not isinstance(tunnels, list):
        return None
    for tunnel in tunnels:
        if tunnel.health_value == TUNNEL_DOWN_VALUE or tunnel.health_state == TUNNEL_DOWN_STATE:
            return str(tunnel.tunnel_id)
    return None
