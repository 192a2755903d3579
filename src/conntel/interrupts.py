"""Interrupts: operations an operator submits to a connector (reboot, restart, shutdown) and the
connector's side of them (check-in, executed reports).

The operator's wire types are those of the official SDKs
(`magic_transit.connectors.interrupts`); how a connector learns of and reports
an operation is conntel's own (README, "The device side").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from msgspec import UNSET, Meta, Struct, UnsetType

from conntel import ids

if TYPE_CHECKING:
    from conntel.store.base import Store

Action = Literal["reboot", "restart", "shutdown"]
ACTIONS: tuple[Action, ...] = get_args(Action)
# Interrupts List returns the newest this many (a bare array: the SDKs page nothing).
LIST_LIMIT = 100
OperationId = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class Purge(Struct, forbid_unknown_fields=True, kw_only=True):
    purge: bool = False  # "Purge connector state" (README: what it means)


class InterruptCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    """Exactly one of reboot, restart or shutdown, each with an optional purge."""

    reboot: Purge | UnsetType = UNSET
    restart: Purge | UnsetType = UNSET
    shutdown: Purge | UnsetType = UNSET

    def __post_init__(self) -> None:
        given = [action for action in ACTIONS if getattr(self, action) is not UNSET]
        if len(given) != 1:
            raise ValueError(f"exactly one of reboot, restart or shutdown is needed, got {len(given) or 'none'}")

    @property
    def action(self) -> Action:
        return next(action for action in ACTIONS if getattr(self, action) is not UNSET)

    @property
    def purge(self) -> bool:
        chosen = getattr(self, self.action)
        assert isinstance(chosen, Purge)
        return chosen.purge


class Interrupt(Struct, omit_defaults=True, kw_only=True):
    """An interrupt as the API returns it (the SDK's InterruptCreateResponse / InterruptListResponse),
    plus its `id`: what the connector reports back once it executed it."""

    id: str
    submitted_at: str
    reboot: Purge | None = None
    restart: Purge | None = None
    shutdown: Purge | None = None
    triggered_at: str | None = None


class Operation(Struct, kw_only=True):
    """A pending interrupt as a connector learns of it when it checks in."""

    id: str
    action: Action
    purge: bool
    submitted_at: str


class CheckIn(Struct, forbid_unknown_fields=True, kw_only=True):
    """A check-in's body (optional: no body is a bare heartbeat)."""

    executed: OperationId | UnsetType = UNSET  # the id of an operation the connector has executed


class CheckInResult(Struct, omit_defaults=True, kw_only=True):
    """What a check-in answers: the pending operation, absent when there is none."""

    operation: Operation | UnsetType = UNSET


@dataclasses.dataclass(frozen=True, slots=True)
class InterruptRecord:
    """An interrupt as the store keeps it (times in microseconds since the epoch)."""

    account_id: str
    connector_id: str
    interrupt_id: str
    action: Action
    purge: bool
    submitted_at: int
    triggered_at: int | None = None


def now_us() -> int:
    return time.time_ns() // 1000


def rfc3339(microseconds: int) -> str:
    """A stored time as the API writes times (the connector's `last_updated`): whole seconds, UTC."""
    return dt.datetime.fromtimestamp(microseconds // 1_000_000, dt.UTC).isoformat().replace("+00:00", "Z")


def to_wire(record: InterruptRecord) -> Interrupt:
    triggered = rfc3339(record.triggered_at) if record.triggered_at is not None else None
    wire = Interrupt(id=record.interrupt_id, submitted_at=rfc3339(record.submitted_at), triggered_at=triggered)
    setattr(wire, record.action, Purge(purge=record.purge))
    return wire


def to_operation(record: InterruptRecord) -> Operation:
    return Operation(
        id=record.interrupt_id, action=record.action, purge=record.purge, submitted_at=rfc3339(record.submitted_at)
    )


async def submit(store: Store, account_id: str, connector_id: str, request: InterruptCreate) -> InterruptRecord:
    """Record a pending interrupt; raises NotFound (no such connector) or InterruptPending."""
    record = InterruptRecord(account_id, connector_id, ids.new_id(), request.action, request.purge, now_us())
    await store.create_interrupt(record)
    return record
