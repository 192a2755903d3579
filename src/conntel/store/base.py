"""The storage port: what the API, the CLI and the demo need from a store.

The Store protocol, the records it takes and returns, and its exceptions;
nothing else. The adapters (sqlite.py, postgres.py) share their SQL through
sql.py; nothing above this package speaks SQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from conntel.connectors import ConnectorRecord
from conntel.events import AppendResult, ValidEvent
from conntel.health import ConnectorHealth, HealthChange
from conntel.interrupts import InterruptRecord
from conntel.webhooks import DueMessage, WebhookRecord

if TYPE_CHECKING:  # the snapshot types take a while to build: a CLI command that never meets one skips them
    from conntel.snapshots import ValidSnapshot

__all__ = [  # ConnectorRecord lives with its resource (conntel.connectors); the port takes and returns it
    "AlreadyExists",
    "Appended",
    "ConnectorRecord",
    "DeviceRecord",
    "EventConflict",
    "EventQuery",
    "EventSummary",
    "HealthPosition",
    "InterruptPending",
    "InterruptRecord",
    "NotFound",
    "NotedHealth",
    "SnapshotConflict",
    "SnapshotQuery",
    "SnapshotSummary",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredEvent",
    "StoredSnapshot",
    "StreamedEvent",
    "TokenRecord",
    "UnknownInterrupt",
    "UserRecord",
]


class StoredEvent(NamedTuple):  # a tuple: the hot path builds one per request
    t: int
    n: int
    a: int
    v: str | None
    e_json: bytes  # the payload as recorded, JSON-encoded


@dataclass(frozen=True, slots=True)
class EventSummary:
    t: int
    n: int
    a: int
    k: str


@dataclass(frozen=True, slots=True)
class Appended:
    """What an ingested batch did: the wire result, and the kinds of the events that were new."""

    accepted: int
    duplicates: int
    new_kinds: Counter[str]

    def result(self) -> AppendResult:
        return AppendResult(accepted=self.accepted, duplicates=self.duplicates)


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    seq: int  # the account's position of this event: commit order
    connector_id: str
    t: int
    n: int
    a: int
    v: str | None
    e_json: bytes


# Where a live feed stands in its account's health changes: (transaction, sequence) on PostgreSQL,
# (0, sequence) on SQLite (store/migrations: the health_changes tables).
HealthPosition = tuple[int, int]


class NotedHealth(NamedTuple):
    """A health change as the store recorded it, and its position."""

    position: HealthPosition
    change: HealthChange


@dataclass(frozen=True, slots=True)
class EventQuery:
    """List Events: `from_t`..`to_t` inclusive, optionally one kind, after a (t, n) position."""

    from_t: int
    to_t: int
    kind: str | None
    after: tuple[int, int] | None
    limit: int


class StoredSnapshot(NamedTuple):
    t: int
    a: int
    json: bytes  # the snapshot as recorded


class SnapshotSummary(NamedTuple):
    t: int
    a: int


@dataclass(frozen=True, slots=True)
class SnapshotQuery:
    """List Snapshots: `from_t`..`to_t` inclusive, after a `t` (a cursor's position)."""

    from_t: int
    to_t: int
    after: int | None
    limit: int


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    secret_hash: bytes
    account_id: str
    permissions: frozenset[str]
    revoked: bool
    not_before: int | None
    expires_on: int | None


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A connector's own credential (a minted one, or its license key), as found by its hash."""

    account_id: str
    connector_id: str
    secret_hash: bytes


@dataclass(frozen=True, slots=True)
class UserRecord:
    email: str
    api_key_hash: bytes
    accounts: frozenset[str]


class StoreError(Exception):
    """A store refused an operation for a reason the caller can report."""


class StoreUnavailable(StoreError):
    """The database cannot be opened or reached."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class TooManyConnectors(StoreError):
    def __init__(self, account_id: str, limit: int):
        super().__init__(f"Account {account_id} already has {limit:,} connectors, the most allowed")
        self.limit = limit


class TooManyWebhooks(StoreError):
    def __init__(self, account_id: str, limit: int):
        super().__init__(f"Account {account_id} has {limit} webhooks already, the most it may have")


class ForeignDatabase(StoreError):
    """The database holds tables but not conntel's schema: conntel will not add its tables to it."""

    def __init__(self, database: str, tables: Sequence[str]):
        listed = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        super().__init__(
            f"The database {database} holds tables that are not conntel's ({listed}) and no conntel schema:"
            " refusing to add conntel's tables to it. Name a new or empty database, or a conntel one."
        )


class InterruptPending(StoreError):
    def __init__(self, connector_id: str):
        super().__init__(f"Connector {connector_id} already has an interrupt pending: one at a time")


class UnknownInterrupt(StoreError):
    def __init__(self, connector_id: str, interrupt_id: str):
        super().__init__(f"No operation {interrupt_id} on connector {connector_id}")


class NewerStore(StoreError):
    """The database was made by a newer conntel: its schema has migrations this one does not know.

    Refused before anything is written, so the newer conntel can still open it as it left it."""

    def __init__(self, database: str, versions: Iterable[int], known: Iterable[int]):
        newest, ours = max(versions), max(known, default=0)
        super().__init__(
            f"The database {database} was made by a newer conntel (schema version {newest}; this conntel knows"
            f" up to {ours}): refusing to open it. Run that newer conntel, or restore a backup made before it."
        )


class EventConflict(StoreError):
    def __init__(self, t: int, n: int):
        super().__init__(f"Event {t}.{n} is already recorded with different content")
        self.t, self.n = t, n


class SnapshotConflict(StoreError):
    def __init__(self, t: int):
        super().__init__(f"Snapshot {t} is already recorded with different content")
        self.t = t


class Store(Protocol):
    async def start(self) -> None:
        """Connect and apply missing migrations; safe when several processes start at once."""
        ...

    # -- telemetry events (the hot path) --
    async def get_event(self, account_id: str, connector_id: str, t: int, n: int) -> StoredEvent | None: ...

    async def append_events(
        self, account_id: str, connector_id: str, events: Sequence[ValidEvent], received_at: int
    ) -> Appended:
        """All or nothing. Raises NotFound (no such connector) or EventConflict."""
        ...

    async def list_events(self, account_id: str, connector_id: str, query: EventQuery) -> list[EventSummary]:
        """At most query.limit events in (t, n) order."""
        ...

    async def latest_events(
        self, account_id: str, connector_id: str, limit: int, through: tuple[int, int] | None = None
    ) -> list[StoredEvent]:
        """The newest events, newest first; with `through`, those at or before that (t, n)."""
        ...

    async def latest_event_sizes(self, account_id: str, connector_id: str, limit: int) -> list[tuple[int, int, int]]:
        """(t, n, bytes of `e`) of the newest events, newest first, without reading the payloads."""
        ...

    async def connector_exists(self, account_id: str, connector_id: str) -> bool: ...

    # -- snapshots (stored compressed: store/snapshot_codec.py) --
    async def append_snapshots(
        self, account_id: str, connector_id: str, snapshots: Sequence[ValidSnapshot], received_at: int
    ) -> AppendResult:
        """All or nothing. Raises NotFound (no such connector) or SnapshotConflict."""
        ...

    async def get_snapshot(self, account_id: str, connector_id: str, t: int) -> StoredSnapshot | None: ...

    async def list_snapshots(self, account_id: str, connector_id: str, query: SnapshotQuery) -> list[SnapshotSummary]:
        """At most query.limit snapshots in `t` order."""
        ...

    async def latest_snapshots(
        self, account_id: str, connector_id: str, through: int, limit: int
    ) -> list[StoredSnapshot]:
        """The newest snapshots at or before `t` = `through`, newest first, at most `limit`."""
        ...

    async def latest_snapshot_sizes(self, account_id: str, connector_id: str, limit: int) -> list[tuple[int, int]]:
        """(t, bytes of JSON) of the newest snapshots, newest first, without reading them."""
        ...

    async def stream_position(self, account_id: str) -> int:
        """The account's latest event position (0 when none): where a new live stream starts."""
        ...

    async def events_after(
        self, account_id: str, after: int, connector_id: str | None, limit: int, max_bytes: int | None = None
    ) -> list[StreamedEvent]:
        """Events past position `after`, in position order, optionally of one connector.

        At most `limit` events, and with `max_bytes` only as many as fit in that many bytes of
        payload (`e`), but always at least one.
        """
        ...

    # -- connectors --
    async def create_connector(self, record: ConnectorRecord, max_per_account: int | None = None) -> None:
        """Raises NotFound (no such account), AlreadyExists, or TooManyConnectors when the account already
        has `max_per_account` connectors (counted in the inserting transaction)."""
        ...

    async def get_connector(self, account_id: str, connector_id: str) -> ConnectorRecord | None: ...

    async def list_connectors(
        self, account_id: str, device_type: str | None, after: str, limit: int
    ) -> list[ConnectorRecord]:
        """At most `limit` of the account's connectors (of `device_type`, when given) whose ids sort after
        `after` ('' for the first), in id order: a keyset page, so pages read one after another list each
        connector once, whatever is created or deleted between them."""
        ...

    async def update_connector(
        self, account_id: str, connector_id: str, change: Callable[[ConnectorRecord], ConnectorRecord]
    ) -> ConnectorRecord:
        """Apply `change` to the stored record atomically; raises NotFound."""
        ...

    async def delete_connector(self, account_id: str, connector_id: str) -> ConnectorRecord:
        """Delete the connector, its events and snapshots, its device credential and interrupts; raises NotFound."""
        ...

    # -- the device side: interrupts and check-ins --
    async def create_interrupt(self, record: InterruptRecord) -> None:
        """Raises NotFound (no such connector) or InterruptPending (one is pending already)."""
        ...

    async def list_interrupts(self, account_id: str, connector_id: str, limit: int) -> list[InterruptRecord]:
        """The newest interrupts, newest first."""
        ...

    async def pending_interrupt(self, account_id: str, connector_id: str) -> InterruptRecord | None:
        """The connector's pending interrupt (the hot path of every check-in)."""
        ...

    async def report_executed(
        self, account_id: str, connector_id: str, interrupt_id: str, triggered_at: int
    ) -> InterruptRecord | None:
        """Set the interrupt's triggered_at unless it is set already (a retried report changes nothing);
        return what is pending afterwards. Raises UnknownInterrupt."""
        ...

    async def note_heartbeats(self, beats: Sequence[tuple[str, str, int]]) -> None:
        """(account_id, connector_id, seconds since the epoch): a check-in's time as the connector's
        last_heartbeat (never moved back). Connectors deleted meanwhile are skipped."""
        ...

    async def server_secret(self, name: str) -> bytes:
        """A random secret shared by every process on this store, made on first use."""
        ...

    # -- credentials --
    async def find_token(self, secret_hash: bytes) -> TokenRecord | None: ...

    async def find_user(self, email: str) -> UserRecord | None: ...

    async def find_device(self, secret_hash: bytes) -> DeviceRecord | None:
        """The connector whose minted credential or license key has this hash."""
        ...

    async def set_device_credential(
        self, account_id: str, connector_id: str, secret_hash: bytes, created_on: int
    ) -> None:
        """The connector's minted credential, replacing any earlier one; raises NotFound."""
        ...

    # -- administration (raise AlreadyExists / NotFound) --
    async def create_account(self, account_id: str, name: str, created_on: int) -> None: ...

    async def create_user(self, email: str, api_key_hash: bytes, account_id: str, created_on: int) -> None: ...

    async def create_token(
        self,
        token_id: str,
        secret_hash: bytes,
        account_id: str,
        name: str,
        permissions: Sequence[str],
        expires_on: int | None,
        created_on: int,
    ) -> None: ...

    async def revoke_token(self, token_id: str, revoked_on: int) -> None: ...

    async def remove_membership(self, email: str, account_id: str) -> None:
        """The user's global key no longer acts on the account (NotFound when it did not)."""
        ...

    async def set_user_key(self, email: str, api_key_hash: bytes) -> None:
        """Replace the user's global key: the old one stops working (NotFound for no such user)."""
        ...

    # -- retention (by `a`, when conntel collected a row) --
    async def prune(self, table: str, before: int, limit: int) -> int:
        """Delete at most `limit` rows of the telemetry `table` (a key of sql.TELEMETRY_KEYS) collected
        before `before` (seconds since the epoch), in one short transaction; how many it deleted."""
        ...

    async def count_older(self, table: str, before: int) -> int:
        """How many rows of the telemetry `table` were collected before `before` (what prune would delete)."""
        ...

    async def reclaim(self, tables: Sequence[str]) -> None:
        """Make the space of deleted rows reusable now, without blocking reads or writes (PostgreSQL:
        VACUUM; SQLite reuses freed pages by itself: nothing to do)."""
        ...

    # -- fleet health (conntel/health.py) --
    async def fleet_health(self, account_id: str) -> list[ConnectorHealth]:
        """Every connector of the account with its health, since when and why, by connector id."""
        ...

    async def sweep_health(self, now: int, default_seconds: int) -> int:
        """Decide anew the health of connectors that time may have changed (health.py): those quiet for
        longer than their account's threshold (else `default_seconds`), and those with an operation pending
        for longer than it (or no longer); prune health changes older than HEALTH_CHANGES_KEPT_SECONDS. How
        many changed. Each change is made once, whichever processes sweep at once."""
        ...

    async def health_position(self, account_id: str) -> HealthPosition:
        """Where the account's record of health changes stands now: a new live feed reads what follows."""
        ...

    async def health_changes_after(self, account_id: str, after: HealthPosition, limit: int) -> list[NotedHealth]:
        """At most `limit` of the account's health changes past `after`, in the order they are to be told.

        Positions are the adapter's own (compare them only with each other): no change can later appear
        at or before a position this returned."""
        ...

    async def health_counts(self) -> list[tuple[str, str, int]]:
        """(account_id, health, connectors) for every account and health that has any."""
        ...

    async def set_silent_after(self, account_id: str, seconds: int | None) -> None:
        """The account's own silence threshold (None: the server's default); NotFound without the account."""
        ...

    # -- webhooks (conntel/webhooks.py) --
    async def create_webhook(self, record: WebhookRecord, secret: str, max_per_account: int) -> None:
        """NotFound without the account; TooManyWebhooks when it has `max_per_account` already."""
        ...

    async def list_webhooks(self, account_id: str | None) -> list[WebhookRecord]: ...

    async def webhook_secret(self, webhook_id: str) -> tuple[str, str]:
        """(url, secret) of an endpoint; NotFound without it."""
        ...

    async def delete_webhook(self, webhook_id: str) -> None:
        """The endpoint and its messages; NotFound without it."""
        ...

    async def due_webhook_messages(self, now: int, limit: int) -> list[DueMessage]: ...

    async def record_webhook_attempt(
        self,
        message: DueMessage,
        now: int,
        status: int | None,
        error: str | None,
        retry_at: int | None,
        disable_failing_since: int,
    ) -> None:
        """One attempt's outcome: delivered (a 2xx `status`), else retried at `retry_at` or given up (None).
        An endpoint failing since `disable_failing_since` or earlier is disabled, its messages given up."""
        ...

    async def webhook_outbox_depth(self) -> int: ...

    # -- leases: one process at a time, among every process sharing the store --
    async def acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take the lease `name` for `holder` for `seconds` (by the database's clock), or renew it when
        `holder` has it. False while another holder's lease has not lapsed."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (when `holder` has it), so another process may take it at once."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers and can be written (readiness)."""
        ...

    def is_unavailable(self, error: Exception) -> bool:
        """Whether an error out of this store means the database cannot be used just now (it is
        restarting or unreachable, a connection was lost, a lock was held past the timeout, the disk
        is full) rather than a bug: the API answers 503 and the client may retry."""
        ...

    async def close(self) -> None: ...


def fitting(sizes: Sequence[int], max_bytes: int) -> int:
    """How many of `sizes`, taken in order, fit in `max_bytes` (at least one, when there is one).

    The one rule every byte-bounded read follows (Latest Events and Latest Snapshots pages, live tail batches)."""
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if total > max_bytes and count > 0:
            return count
    return len(sizes)
