"""Fleet health: what each connector's health is, and why (CONTRACT §10).

The rules are the dashboard's, now kept by the server:

- failing: its newest (by `t`, `n`) event among the eight outcome kinds (upgrade, attestation,
  crypt key rotation, PKI rotation; Success or Failure) is a Failure. A newer Success clears it.
- silent: not failing, and no events pushed for longer than the account's threshold (default
  `--silent-after`, 15 minutes: config.Settings), or never pushed anything.
- healthy: otherwise.

The store keeps each connector's health, since when and why, as events arrive (in the ingestion's
own transaction) and as time passes (`sweep_silent`, run by one server process at a time).
"""

from __future__ import annotations

from typing import Literal

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
# How often a server looks for connectors that have gone quiet: a connector is marked silent within this
# many seconds of crossing its threshold.
SWEEP_SECONDS = 2.0
LEASE = "fleet-health"


class EventRef(Struct):
    """The event that made a connector's health what it is (Get Event: `{t}.{n}`)."""

    t: int
    n: int


class ConnectorHealth(Struct, omit_defaults=True):
    connector_id: str
    health: Health
    since: int  # seconds since the epoch (conntel's clock)
    reason: str
    last_heartbeat: int | None
    event: EventRef | UnsetType = UNSET


class FleetHealth(Struct):
    count: int
    items: list[ConnectorHealth]
