"""The PostgreSQL store: asyncpg with a connection pool.

Several conntel processes can share one database: every write is one
transaction, migrations run under an advisory lock, and nothing is cached
here (the API's credential cache is bounded to one second).
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from conntel.events import AppendResult, ValidEvent
from conntel.health import HEALTH_CHANGES_KEPT_SECONDS, ConnectorHealth, Report
from conntel.store import snapshot_codec
from conntel.store.base import (
    AlreadyExists,
    Appended,
    ConnectorRecord,
    DeviceRecord,
    EventQuery,
    EventSummary,
    ForeignDatabase,
    HealthPosition,
    InterruptPending,
    InterruptRecord,
    NewerStore,
    NotedHealth,
    NotFound,
    SnapshotQuery,
    SnapshotSummary,
    StoredEvent,
    StoredSnapshot,
    StoreUnavailable,
    StreamedEvent,
    TokenRecord,
    TooManyConnectors,
    TooManyWebhooks,
    UnknownInterrupt,
    UserRecord,
    fitting,
)
from conntel.store.coalesce import Coalescer
from conntel.store.migrations import migrations, unknown_versions
from conntel.store.sql import (
    HEALTH_CHANGE_COLUMNS,
    HEALTH_ROW,
    INTERRUPT_COLUMNS,
    Statements,
    check_retry,
    check_snapshot_retry,
    connector_record,
    connector_row,
    health_change,
    health_item,
    interrupt_record,
    interrupt_row,
    newest_tunnels,
    numbered,
    permissions_json,
    redecided,
    snapshot_rows,
    swept,
    token_record,
    unique_events,
    unique_snapshots,
    webhook_record,
)
from conntel.store.urls import redacted
from conntel.webhooks import DueMessage, WebhookRecord

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    from conntel.snapshots import ValidSnapshot

    Conn = PoolConnectionProxy[asyncpg.Record]  # a connection as the pool lends it

_RECLAIM_SHARE = 0.05  # reclaim: VACUUM a table once this share of its rows was pruned
_MIGRATION_LOCK = 0x636F6E6E74656C  # "conntel": one advisory lock id for schema changes

# Errors that mean the database cannot be used just now (PostgresStore.is_unavailable).
_UNAVAILABLE = (
    StoreUnavailable,
    OSError,  # cannot connect
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08, and a connection lost mid-statement
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up, terminated
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
)

# Rewritten once into asyncpg's $N placeholders; leases go by the database server's clock.
SQL = Statements(numbered, now="extract(epoch from clock_timestamp())::float8")

# What only PostgreSQL says: row locks, and a batch as arrays (unnest).
# KEY SHARE: a concurrent delete of the connector waits for the batch (and then removes it).
_LOCK_CONNECTOR = SQL.connector_exists + " FOR KEY SHARE"
_GET_CONNECTOR_FOR_UPDATE = SQL.get_connector + " FOR UPDATE"
_LOCK_ACCOUNT = SQL.account_exists + " FOR UPDATE"  # (account_id): concurrent creates count one after another
# (account_id, connector_id, received_at, t[], n[], k[], v[], e[], first position): the keys it inserted.
_INSERT_EVENTS = (
    "INSERT INTO events (account_id, connector_id, t, n, a, k, v, e, seq)"
    " SELECT $1, $2, t, n, $3, k, v, e, $9 + ordinality - 1"
    " FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bytea[])"
    " WITH ORDINALITY AS b(t, n, k, v, e, ordinality)"
    " ON CONFLICT DO NOTHING RETURNING t, n, k"
)
# (account_id, connector_id, t[], n[], v[], e[]) of events already recorded: in one round trip, those whose
# stored bytes differ from the batch's, in batch order (each may still be the same payload in another key order).
_DIFFERING_EVENTS = (
    "SELECT b.t, b.n, s.e, s.v"
    " FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::bytea[]) WITH ORDINALITY AS b(t, n, v, e, ordinality)"
    " JOIN events s ON s.account_id = $1 AND s.connector_id = $2 AND s.t = b.t AND s.n = b.n"
    " WHERE s.e IS DISTINCT FROM b.e OR s.v IS DISTINCT FROM b.v ORDER BY b.ordinality"
)

# Health changes for the live feeds. Writers commit in any order, so a feed reads only rows of transactions
# older than every one still running (its statement's snapshot's xmin), in (txid, seq) order: none can
# appear later before a position it read (migration 0009).
_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_HEALTH_CHANGES_AFTER = (
    f"SELECT txid, seq, {HEALTH_CHANGE_COLUMNS} FROM health_changes WHERE account_id = $1 AND (txid, seq) > ($2, $3)"
    " AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint ORDER BY txid, seq LIMIT $4"
)
# What health is decided from, locked until the decision is written: a concurrent writer of the same connector
# (events and a snapshot at once) decides after this one, from what it wrote. NO KEY UPDATE, as an UPDATE locks.
_HEALTH_ROW_LOCKED = SQL.health_row + " FOR NO KEY UPDATE"
# (account_id[], connector_id[]): which of these connectors are silent, as health rows, locked in key order (as
# note_checkin and the sweep lock them).
_SILENT_AMONG = (
    f"SELECT {HEALTH_ROW} FROM connectors WHERE (account_id, connector_id) IN"
    " (SELECT * FROM unnest($1::text[], $2::text[])) AND health = 'silent' ORDER BY account_id, connector_id"
    " FOR NO KEY UPDATE"
)

# (account_id, connector_id, received_at, t[], size[], body[]): the `t` it inserted.
_INSERT_SNAPSHOTS = (
    "INSERT INTO snapshots (account_id, connector_id, t, a, size, body)"
    " SELECT $1, $2, t, $3, size, body FROM unnest($4::bigint[], $5::integer[], $6::bytea[]) AS b(t, size, body)"
    " ON CONFLICT DO NOTHING RETURNING t"
)
# (account_id, connector_id, t[], body[]) of snapshots already recorded: those whose frame differs from the batch's.
_DIFFERING_SNAPSHOTS = (
    "SELECT b.t, s.body FROM unnest($3::bigint[], $4::bytea[]) WITH ORDINALITY AS b(t, body, ordinality)"
    " JOIN snapshots s ON s.account_id = $1 AND s.connector_id = $2 AND s.t = b.t"
    " WHERE s.body IS DISTINCT FROM b.body ORDER BY b.ordinality"
)


T = TypeVar("T")


class ReadLane:
    """A few of the pool's connections kept aside for one-statement reads on the hot path (Get Event).

    asyncpg's Pool.acquire/release cost more than the lookup's own Python side
    (a queue, and a shielded task per release: ~11% of Get Event's time in the
    profiles). The lane borrows up to `size` connections from the pool once
    and hands them out from a free list; callers beyond that wait in line. A
    connection whose statement failed or was cancelled, or that was lost while
    idle, goes back to the pool, which resets or replaces it, and the lane
    borrows afresh when next needed.
    """

    def __init__(self, pool: asyncpg.Pool, size: int):
        self._pool = pool
        self.size = size
        self._borrowed = 0
        self._idle: list[Conn] = []
        self._waiters: deque[asyncio.Future[Conn | None]] = deque()

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        return await self._on_a_connection(lambda conn: conn.fetchrow(sql, *args))

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return await self._on_a_connection(lambda conn: conn.fetch(sql, *args))

    async def _on_a_connection(self, statement: Callable[[Conn], Awaitable[T]]) -> T:
        conn = await self._take()
        try:
            result = await statement(conn)
        except BaseException:
            await self._give_back_to_pool(conn)
            raise
        self._hand_on(conn)
        return result

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._give_back_to_pool(conn)

    async def _take(self) -> Conn:
        while self._idle:
            conn = self._idle.pop()
            if _alive(conn):
                return conn
            await self._give_back_to_pool(conn)  # lost while idle (a database restart): the pool replaces it
        if self._borrowed < self.size:
            self._borrowed += 1
            try:
                return await self._pool.acquire()
            except BaseException:
                self._borrowed -= 1
                self._wake_one(None)
                raise
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as this caller gave up: pass it on
                handed = waiter.result()
                if handed is not None:
                    self._hand_on(handed)
                else:
                    self._wake_one(None)
            raise
        return conn if conn is not None else await self._take()  # None: a slot came free, borrow anew

    def _hand_on(self, conn: Conn) -> None:
        if not self._wake_one(conn):
            self._idle.append(conn)

    def _wake_one(self, conn: Conn | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    async def _give_back_to_pool(self, conn: Conn) -> None:
        self._borrowed -= 1
        try:
            await self._pool.release(conn)
        finally:
            self._wake_one(None)


EventKey = tuple[str, str, int, int]  # (account_id, connector_id, t, n)
ConnectorKey = tuple[str, str]  # (account_id, connector_id)
K = TypeVar("K")
# Keys per query beyond one, of the hot path's coalesced lookups (Get Event, a bare check-in's pending
# operation): the sizes of their statements.
_BATCH_SIZES = (2, 4, 8, 16, 32)


def _padded(keys: list[K]) -> tuple[int, list[K]]:
    """The smallest statement size that holds `keys`, and the keys padded to it with the last one: a few
    prepared statements serve every batch."""
    size = next(size for size in _BATCH_SIZES if size >= len(keys))
    return size, keys + [keys[-1]] * (size - len(keys))


@functools.cache
def _events_by_keys(size: int) -> str:
    """Get Event's columns (a, v, e) and each key's place for `size` keys: a join with a VALUES list of exactly
    that many rows, which PostgreSQL plans as `size` primary-key lookups (and so plans once per connection)."""
    keys = ", ".join(f"(${4 * i + 1}::text, ${4 * i + 2}::text, ${4 * i + 3}::bigint, ${4 * i + 4}::bigint, {i})"
                     for i in range(size))  # fmt: skip
    return (
        f"SELECT e.a, e.v, e.e, k.i FROM (VALUES {keys}) AS k (account_id, connector_id, t, n, i)"
        " JOIN events e USING (account_id, connector_id, t, n)"
    )


@functools.cache
def _pending_by_keys(size: int) -> str:
    """The pending operation (if any) of each of `size` connectors and the connector's place: a join with a
    VALUES list, planned as `size` lookups in the unique index of pending operations."""
    keys = ", ".join(f"(${2 * i + 1}::text, ${2 * i + 2}::text, {i})" for i in range(size))
    return (
        f"SELECT {', '.join(INTERRUPT_COLUMNS)}, k.i FROM (VALUES {keys}) AS k (account_id, connector_id, i)"
        " JOIN interrupts USING (account_id, connector_id) WHERE triggered_at IS NULL"
    )


def _alive(conn: Conn) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # lost, and so already taken back by the pool, which detached it
        return False


class PostgresStore:
    def __init__(self, url: str, pool_size: int = 10):
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._reads: ReadLane | None = None
        self._event_lookups: Coalescer[EventKey, asyncpg.Record | None] | None = None
        self._pending_lookups: Coalescer[ConnectorKey, asyncpg.Record | None] | None = None
        self._deleted: Counter[str] = Counter()  # rows pruned per table since this process last VACUUMed it

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "start() the store first"
        return self._pool

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size, reset=_keep_session)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"Cannot open the database {redacted(self.url)}: {exc}") from None
        except ValueError:  # an unreadable URL; its text may quote the password, so it is not shown
            raise StoreUnavailable(f"Cannot open the database {redacted(self.url)}: not a valid URL") from None
        # Half the pool at most, so that writes and other reads always find connections.
        self._reads = ReadLane(self._pool, max(1, self.pool_size // 2))
        self._event_lookups = Coalescer(self._get_events, slots=self._reads.size, largest=_BATCH_SIZES[-1])
        self._pending_lookups = Coalescer(self._get_pending, slots=self._reads.size, largest=_BATCH_SIZES[-1])
        try:
            async with self.pool.acquire() as conn:
                await self._migrate(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"Cannot prepare the database {redacted(self.url)}: {exc}") from None

    async def _migrate(self, conn: Conn) -> None:
        """Apply missing migrations under an advisory lock; write nothing when the schema is up to date
        (a read-only database, e.g. a standby, still opens: /readyz says it cannot be written).
        Raises ForeignDatabase when the current schema holds tables but no conntel schema."""
        tables = [
            row[0]
            for row in await conn.fetch(
                "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
                " AND relkind IN ('r', 'p', 'v', 'm', 'f')"
            )
        ]
        columns = [
            row[0]
            for row in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = 'schema_migrations' ORDER BY ordinal_position"
            )
        ]
        if tables and columns != ["version", "applied_on"]:
            raise ForeignDatabase(redacted(self.url), tables)
        known = migrations("postgres")
        if columns:
            applied = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            if unknown_versions("postgres", applied):
                raise NewerStore(redacted(self.url), applied, (version for version, _ in known))
            if applied >= {version for version, _ in known}:
                return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_on bigint)"
            )
            applied = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, sql in known:
                if version not in applied:
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, extract(epoch from now())::bigint)", version
                    )

    async def ping(self) -> None:
        try:
            # One round trip: a standby (in recovery), a read-only database or session, and a role
            # that may not write the tables all make every write fail: not ready.
            row = await self.pool.fetchrow(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on',"
                " has_table_privilege('events', 'INSERT') AND has_table_privilege('connectors', 'INSERT, UPDATE')",
                timeout=2,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"The database {redacted(self.url)} does not answer: {exc}") from None
        assert row is not None
        in_recovery, read_only, may_write = row
        if in_recovery or read_only or not may_write:
            why = "it is a standby" if in_recovery else "it is read-only" if read_only else "no write permission"
            raise StoreUnavailable(f"The database {redacted(self.url)} cannot be written: {why}")

    def is_unavailable(self, error: Exception) -> bool:
        return isinstance(error, _UNAVAILABLE)

    async def close(self) -> None:
        for lookups in (self._event_lookups, self._pending_lookups):
            if lookups is not None:
                await lookups.close()
        if self._reads is not None:
            await self._reads.close()
        if self._pool is not None:
            await self._pool.close()

    # -- telemetry events --
    async def get_event(self, account_id: str, connector_id: str, t: int, n: int) -> StoredEvent | None:
        assert self._event_lookups is not None, "start() the store first"
        row = await self._event_lookups.get((account_id, connector_id, t, n))
        return None if row is None else StoredEvent(t, n, row[0], row[1], row[2])

    async def _get_events(self, keys: list[EventKey]) -> list[asyncpg.Record | None]:
        """Get Event's rows for `keys` (in their order; None where no event), in one query."""
        assert self._reads is not None, "start() the store first"
        if len(keys) == 1:
            return [await self._reads.fetchrow(SQL.get_event, *keys[0])]
        size, padded = _padded(keys)
        rows = await self._reads.fetch(_events_by_keys(size), *[part for key in padded for part in key])
        found = {row[3]: row for row in rows}
        return [found.get(i) for i in range(len(keys))]

    async def connector_exists(self, account_id: str, connector_id: str) -> bool:
        return await self.pool.fetchrow(SQL.connector_exists, account_id, connector_id) is not None

    async def append_events(
        self, account_id: str, connector_id: str, events: Sequence[ValidEvent], received_at: int
    ) -> Appended:
        unique = unique_events(events)
        payloads = [ev.e_json for ev in unique]
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchrow(_LOCK_CONNECTOR, account_id, connector_id) is None:
                raise NotFound(f"No connector {connector_id} in account {account_id}")
            # Taking positions locks the account row until commit: positions follow commit order.
            first_seq = await conn.fetchval(SQL.take_positions, account_id, len(unique))
            inserted = await conn.fetch(
                _INSERT_EVENTS,
                account_id,
                connector_id,
                received_at,
                [ev.t for ev in unique],
                [ev.n for ev in unique],
                [ev.kind for ev in unique],
                [ev.v for ev in unique],
                payloads,
                first_seq,
            )
            if len(inserted) < len(unique):
                # Some keys were already recorded: each must be an identical retry, all checked in one statement.
                fresh = {(row[0], row[1]) for row in inserted}
                recorded = [(ev, e) for ev, e in zip(unique, payloads, strict=True) if (ev.t, ev.n) not in fresh]
                differing = await conn.fetch(
                    _DIFFERING_EVENTS,
                    account_id,
                    connector_id,
                    [ev.t for ev, _ in recorded],
                    [ev.n for ev, _ in recorded],
                    [ev.v for ev, _ in recorded],
                    [e for _, e in recorded],
                )
                if differing:
                    batch = {(ev.t, ev.n): ev for ev, _ in recorded}
                    for t, n, stored_e, stored_v in differing:
                        check_retry(batch[t, n], stored_e, stored_v)
            for sql, params in SQL.activity(account_id, connector_id, unique, received_at):
                await conn.execute(sql, *params)
            if unique:
                last = max(unique, key=lambda ev: (ev.t, ev.n))
                await _decide_health(conn, account_id, connector_id, received_at, Report(last.t, last.n))
        return Appended(len(inserted), len(events) - len(inserted), Counter(row[2] for row in inserted))

    async def list_events(self, account_id: str, connector_id: str, query: EventQuery) -> list[EventSummary]:
        after_t, after_n = query.after or (query.from_t, -1)
        if query.kind:
            rows = await self.pool.fetch(
                SQL.list_events_of_kind, account_id, connector_id, query.kind, after_t, after_n, query.to_t, query.limit
            )
        else:
            rows = await self.pool.fetch(
                SQL.list_events, account_id, connector_id, after_t, after_n, query.to_t, query.limit
            )
        return [EventSummary(*row) for row in rows]

    async def stream_position(self, account_id: str) -> int:
        value: int | None = await self.pool.fetchval(SQL.stream_position, account_id)
        return value or 0

    async def events_after(
        self, account_id: str, after: int, connector_id: str | None, limit: int, max_bytes: int | None = None
    ) -> list[StreamedEvent]:
        if max_bytes is not None:
            # First how many fit (sizes only), then only those. Positions follow commit order, so a
            # batch committed meanwhile comes after these.
            sizes = await self.pool.fetch(SQL.event_sizes_after, account_id, after, connector_id, limit)
            if not sizes:
                return []
            limit = fitting([row[0] for row in sizes], max_bytes)
        rows = await self.pool.fetch(SQL.events_after, account_id, after, connector_id, limit)
        return [StreamedEvent(*row) for row in rows]

    async def latest_events(
        self, account_id: str, connector_id: str, limit: int, through: tuple[int, int] | None = None
    ) -> list[StoredEvent]:
        if through is None:
            rows = await self.pool.fetch(SQL.latest_events, account_id, connector_id, limit)
        else:
            rows = await self.pool.fetch(SQL.latest_events_through, account_id, connector_id, *through, limit)
        return [StoredEvent(*row) for row in rows]

    async def latest_event_sizes(self, account_id: str, connector_id: str, limit: int) -> list[tuple[int, int, int]]:
        rows = await self.pool.fetch(SQL.latest_event_sizes, account_id, connector_id, limit)
        return [(row[0], row[1], row[2]) for row in rows]

    # -- retention --
    async def prune(self, table: str, before: int, limit: int) -> int:
        statement = SQL.prune[table]
        async with self.pool.acquire() as conn, conn.transaction():
            deleted = 0
            for (account_id,) in await conn.fetch(SQL.account_ids):
                status = await conn.execute(statement, account_id, before, limit - deleted)
                deleted += int(status.split()[-1])  # "DELETE n"
                if deleted >= limit:
                    break
        self._deleted[table] += deleted
        return deleted

    async def count_older(self, table: str, before: int) -> int:
        statement = SQL.count_older[table]
        async with self.pool.acquire() as conn:
            return sum([await conn.fetchval(statement, row[0], before) for row in await conn.fetch(SQL.account_ids)])

    async def reclaim(self, tables: Sequence[str]) -> None:
        """VACUUM (not FULL: it blocks no reads or writes) a table once this process has deleted 5% of its
        rows since the last one, so their space is reused by new rows instead of growing the table, and
        without scanning every index after every small pass (autovacuum's default waits for 20%)."""
        async with self.pool.acquire() as conn:
            for table in tables:
                if table not in SQL.prune:  # a closed set: never an arbitrary name in SQL text
                    continue
                rows = await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = $1::regclass", table)
                if self._deleted[table] >= _RECLAIM_SHARE * max(rows or 0, 0):
                    await conn.execute(f"VACUUM {table}")
                    self._deleted[table] = 0

    # -- fleet health --
    async def fleet_health(self, account_id: str) -> list[ConnectorHealth]:
        return [health_item(tuple(row)) for row in await self.pool.fetch(SQL.fleet_health, account_id)]

    async def sweep_health(self, now: int, default_seconds: int) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(SQL.mark_overdue, now, default_seconds)
            await conn.execute(SQL.unmark_overdue)
            # Locked in key order, as note_heartbeats locks them: a heartbeat between the read and the write
            # cannot be missed, and the two cannot deadlock. NO KEY UPDATE, as an UPDATE locks: it does not wait
            # for ingestion's KEY SHARE on its connector (taken before the account's row: waiting for it could
            # close a cycle through that row).
            rows = await conn.fetch(SQL.sweep_candidates + " FOR NO KEY UPDATE", now, default_seconds)
            updates = [update for row in rows if (update := swept(tuple(row), now)) is not None]
            if updates:
                await conn.executemany(SQL.set_health, updates)
            await conn.execute(SQL.prune_health_changes, now - HEALTH_CHANGES_KEPT_SECONDS)
        return len(updates)

    async def health_position(self, account_id: str) -> HealthPosition:
        return await self.pool.fetchval(_XMIN), 0

    async def health_changes_after(self, account_id: str, after: HealthPosition, limit: int) -> list[NotedHealth]:
        rows = await self.pool.fetch(_HEALTH_CHANGES_AFTER, account_id, *after, limit)
        return [NotedHealth((row[0], row[1]), health_change(tuple(row)[2:])) for row in rows]

    async def health_counts(self) -> list[tuple[str, str, int]]:
        return [(row[0], row[1], row[2]) for row in await self.pool.fetch(SQL.health_counts)]

    async def set_silent_after(self, account_id: str, seconds: int | None) -> None:
        if await self.pool.execute(SQL.set_silent_after, seconds, account_id) == "UPDATE 0":
            raise NotFound(f"No account {account_id}")

    # -- webhooks --
    async def create_webhook(self, record: WebhookRecord, secret: str, max_per_account: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(_LOCK_ACCOUNT, record.account_id) is None:  # concurrent creates count in turn
                raise NotFound(f"No account {record.account_id}")
            if await conn.fetchval(SQL.count_webhooks, record.account_id) >= max_per_account:
                raise TooManyWebhooks(record.account_id, max_per_account)
            await conn.execute(SQL.insert_webhook, record.webhook_id, record.account_id, record.url, secret,
                               json.dumps(record.event_types), record.created_on)  # fmt: skip

    async def list_webhooks(self, account_id: str | None) -> list[WebhookRecord]:
        return [webhook_record(tuple(row)) for row in await self.pool.fetch(SQL.list_webhooks, account_id)]

    async def webhook_secret(self, webhook_id: str) -> tuple[str, str]:
        row = await self.pool.fetchrow(SQL.webhook_secret, webhook_id)
        if row is None:
            raise NotFound(f"No webhook {webhook_id}")
        return row[0], row[1]

    async def delete_webhook(self, webhook_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.execute(SQL.delete_webhook, webhook_id) == "DELETE 0":
                raise NotFound(f"No webhook {webhook_id}")
            await conn.execute(SQL.delete_webhook_messages, webhook_id)

    async def due_webhook_messages(self, now: int, limit: int) -> list[DueMessage]:
        return [DueMessage(*row) for row in await self.pool.fetch(SQL.due_messages, now, limit)]

    async def record_webhook_attempt(
        self,
        message: DueMessage,
        now: int,
        status: int | None,
        error: str | None,
        retry_at: int | None,
        disable_failing_since: int,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for sql, params in SQL.attempt(message, now, status, error, retry_at):
                await conn.execute(sql, *params)
            if await conn.execute(SQL.disable_webhook, message.webhook_id, now, disable_failing_since) != "UPDATE 0":
                await conn.execute(SQL.give_up_messages, message.webhook_id, now)

    async def webhook_outbox_depth(self) -> int:
        return int(await self.pool.fetchval(SQL.outbox_depth))

    # -- leases --
    async def acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        return await self.pool.fetchval(SQL.acquire_lease, name, holder, seconds) is not None

    async def release_lease(self, name: str, holder: str) -> None:
        await self.pool.execute(SQL.release_lease, name, holder)

    # -- snapshots --
    async def append_snapshots(
        self, account_id: str, connector_id: str, snapshots: Sequence[ValidSnapshot], received_at: int
    ) -> AppendResult:
        unique = unique_snapshots(snapshots)
        rows = snapshot_rows(account_id, connector_id, unique, received_at)
        ts, bodies = [row[2] for row in rows], [row[5] for row in rows]
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchrow(_LOCK_CONNECTOR, account_id, connector_id) is None:
                raise NotFound(f"No connector {connector_id} in account {account_id}")
            inserted = await conn.fetch(
                _INSERT_SNAPSHOTS, account_id, connector_id, received_at, ts, [row[4] for row in rows], bodies
            )
            if len(inserted) < len(rows):
                # Some were already recorded: each must be an identical retry (frames compared in one statement,
                # then the differing ones by content).
                fresh = {row[0] for row in inserted}
                recorded = [(s, body) for s, body in zip(unique, bodies, strict=True) if s.t not in fresh]
                differing = await conn.fetch(
                    _DIFFERING_SNAPSHOTS,
                    account_id,
                    connector_id,
                    [s.t for s, _ in recorded],
                    [body for _, body in recorded],
                )
                batch = {s.t: s for s, _ in recorded}
                for t, body in differing:
                    check_snapshot_retry(batch[t], body)
            await conn.execute(SQL.note_checkin, account_id, connector_id, received_at)  # a push is a heartbeat
            if unique:
                await conn.execute(SQL.note_tunnels, *newest_tunnels(account_id, connector_id, unique))
                newest = max(s.t for s in unique)
                await _decide_health(conn, account_id, connector_id, received_at, Report(snapshot_t=newest))
        return AppendResult(len(inserted), len(snapshots) - len(inserted))

    async def get_snapshot(self, account_id: str, connector_id: str, t: int) -> StoredSnapshot | None:
        assert self._reads is not None, "start() the store first"
        row = await self._reads.fetchrow(SQL.get_snapshot, account_id, connector_id, t)
        return None if row is None else StoredSnapshot(t, row[0], snapshot_codec.decompress(row[1]))

    async def list_snapshots(self, account_id: str, connector_id: str, query: SnapshotQuery) -> list[SnapshotSummary]:
        after = query.from_t - 1 if query.after is None else query.after
        rows = await self.pool.fetch(SQL.list_snapshots, account_id, connector_id, after, query.to_t, query.limit)
        return [SnapshotSummary(row[0], row[1]) for row in rows]

    async def latest_snapshots(
        self, account_id: str, connector_id: str, through: int, limit: int
    ) -> list[StoredSnapshot]:
        rows = await self.pool.fetch(SQL.latest_snapshots, account_id, connector_id, through, limit)
        return [StoredSnapshot(row[0], row[1], snapshot_codec.decompress(row[2])) for row in rows]

    async def latest_snapshot_sizes(self, account_id: str, connector_id: str, limit: int) -> list[tuple[int, int]]:
        rows = await self.pool.fetch(SQL.latest_snapshot_sizes, account_id, connector_id, limit)
        return [(row[0], row[1]) for row in rows]

    # -- connectors --
    async def create_connector(self, record: ConnectorRecord, max_per_account: int | None = None) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if max_per_account is None:
                await _require_account(conn, record.account_id)
            else:
                if await conn.fetchval(_LOCK_ACCOUNT, record.account_id) is None:
                    raise NotFound(f"No account {record.account_id}")
                if await conn.fetchval(SQL.count_connectors, record.account_id) >= max_per_account:
                    raise TooManyConnectors(record.account_id, max_per_account)
            await _insert_new(conn, SQL.insert_connector, connector_row(record), f"Connector {record.connector_id}")

    async def get_connector(self, account_id: str, connector_id: str) -> ConnectorRecord | None:
        row = await self.pool.fetchrow(SQL.get_connector, account_id, connector_id)
        return None if row is None else connector_record(row)

    async def list_connectors(
        self, account_id: str, device_type: str | None, after: str, limit: int
    ) -> list[ConnectorRecord]:
        rows = await self.pool.fetch(SQL.list_connectors, account_id, device_type, after, limit)
        return [connector_record(row) for row in rows]

    async def update_connector(
        self, account_id: str, connector_id: str, change: Callable[[ConnectorRecord], ConnectorRecord]
    ) -> ConnectorRecord:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_GET_CONNECTOR_FOR_UPDATE, account_id, connector_id)
            if row is None:
                raise NotFound(f"No connector {connector_id}")
            changed = change(connector_record(row))
            await conn.execute(SQL.update_connector, account_id, connector_id, *connector_row(changed)[2:])
            return changed

    async def delete_connector(self, account_id: str, connector_id: str) -> ConnectorRecord:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(SQL.delete_connector, account_id, connector_id)
            if row is None:
                raise NotFound(f"No connector {connector_id}")
            for sql in (SQL.delete_events, SQL.delete_snapshots, SQL.delete_device_credential, SQL.delete_interrupts):
                await conn.execute(sql, account_id, connector_id)
            return connector_record(row)

    # -- the device side --
    async def create_interrupt(self, record: InterruptRecord) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # KEY SHARE: a concurrent delete of the connector waits, then removes this interrupt too.
            if await conn.fetchrow(_LOCK_CONNECTOR, record.account_id, record.connector_id) is None:
                raise NotFound(f"No connector {record.connector_id}")
            try:
                await conn.execute(SQL.insert_interrupt, *interrupt_row(record))
            except asyncpg.UniqueViolationError:  # interrupts_pending: one is pending already
                raise InterruptPending(record.connector_id) from None

    async def list_interrupts(self, account_id: str, connector_id: str, limit: int) -> list[InterruptRecord]:
        rows = await self.pool.fetch(SQL.list_interrupts, account_id, connector_id, limit)
        return [interrupt_record(row) for row in rows]

    async def pending_interrupt(self, account_id: str, connector_id: str) -> InterruptRecord | None:
        """A check-in's question, as frequent as Get Event: coalesced like it (the hot path's lane)."""
        assert self._pending_lookups is not None, "start() the store first"
        row = await self._pending_lookups.get((account_id, connector_id))
        return None if row is None else interrupt_record(row[: len(INTERRUPT_COLUMNS)])

    async def _get_pending(self, keys: list[ConnectorKey]) -> list[asyncpg.Record | None]:
        """The pending operation's row of each connector of `keys` (in their order; None where none), in one
        query."""
        assert self._reads is not None, "start() the store first"
        if len(keys) == 1:
            return [await self._reads.fetchrow(SQL.pending_interrupt, *keys[0])]
        size, padded = _padded(keys)
        rows = await self._reads.fetch(_pending_by_keys(size), *[part for key in padded for part in key])
        found = {row[-1]: row for row in rows}
        return [found.get(i) for i in range(len(keys))]

    async def report_executed(
        self, account_id: str, connector_id: str, interrupt_id: str, triggered_at: int
    ) -> InterruptRecord | None:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(SQL.trigger_interrupt, account_id, connector_id, interrupt_id, triggered_at)
            if status == "UPDATE 0":
                raise UnknownInterrupt(connector_id, interrupt_id)
            if await conn.execute(SQL.clear_overdue, account_id, connector_id, interrupt_id) != "UPDATE 0":
                await _decide_health(conn, account_id, connector_id, triggered_at // 1_000_000, Report())
            row = await conn.fetchrow(SQL.pending_interrupt, account_id, connector_id)
        return None if row is None else interrupt_record(row)

    async def note_heartbeats(self, beats: Sequence[tuple[str, str, int]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # In key order, so two processes flushing at once take the row locks in the same order.
            await conn.executemany(SQL.note_checkin, sorted(beats))
            # Those that were silent report again: found in one statement (usually none).
            at = {(account_id, connector_id): seconds for account_id, connector_id, seconds in beats}
            keys = sorted(at)
            rows = await conn.fetch(_SILENT_AMONG, [k[0] for k in keys], [k[1] for k in keys])
            updates = [u for row in map(tuple, rows) if (u := redecided(row, at[row[0], row[1]], None, Report()))]
            if updates:
                await conn.executemany(SQL.set_health, updates)

    async def server_secret(self, name: str) -> bytes:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(SQL.insert_secret, name, secrets.token_bytes(32))
            secret: bytes = await conn.fetchval(SQL.server_secret, name)
            return secret

    # -- credentials --
    async def find_token(self, secret_hash: bytes) -> TokenRecord | None:
        row = await self.pool.fetchrow(SQL.find_token, secret_hash)
        return None if row is None else token_record(secret_hash, row)

    async def find_user(self, email: str) -> UserRecord | None:
        async with self.pool.acquire() as conn:
            key_hash = await conn.fetchval(SQL.find_user, email)
            if key_hash is None:
                return None
            accounts = await conn.fetch(SQL.user_accounts, email)
        return UserRecord(email, key_hash, frozenset(row[0] for row in accounts))

    async def find_device(self, secret_hash: bytes) -> DeviceRecord | None:
        row = await self.pool.fetchrow(SQL.find_device, secret_hash)
        return None if row is None else DeviceRecord(row[0], row[1], secret_hash)

    async def set_device_credential(
        self, account_id: str, connector_id: str, secret_hash: bytes, created_on: int
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchrow(_LOCK_CONNECTOR, account_id, connector_id) is None:
                raise NotFound(f"No connector {connector_id} in account {account_id}")
            await conn.execute(SQL.set_device_credential, account_id, connector_id, secret_hash, created_on)

    # -- administration --
    async def create_account(self, account_id: str, name: str, created_on: int) -> None:
        async with self.pool.acquire() as conn:
            await _insert_new(conn, SQL.insert_account, (account_id, name, created_on), f"Account {account_id}")

    async def create_user(self, email: str, api_key_hash: bytes, account_id: str, created_on: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await _require_account(conn, account_id)
            await _insert_new(conn, SQL.insert_user, (email, api_key_hash, created_on), f"User {email}")
            await conn.execute(SQL.insert_membership, email, account_id)

    async def create_token(
        self,
        token_id: str,
        secret_hash: bytes,
        account_id: str,
        name: str,
        permissions: Sequence[str],
        expires_on: int | None,
        created_on: int,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await _require_account(conn, account_id)
            permissions_text = permissions_json(permissions)
            row = (token_id, secret_hash, account_id, name, permissions_text, expires_on, created_on)
            await conn.execute(SQL.insert_token, *row)

    async def revoke_token(self, token_id: str, revoked_on: int) -> None:
        status = await self.pool.execute(SQL.revoke_token, revoked_on, token_id)
        if status == "UPDATE 0":
            raise NotFound(f"No token {token_id}")

    async def remove_membership(self, email: str, account_id: str) -> None:
        status = await self.pool.execute(
            "DELETE FROM memberships WHERE email = $1 AND account_id = $2", email, account_id
        )
        if status == "DELETE 0":
            raise NotFound(f"User {email} is not a member of account {account_id}")

    async def set_user_key(self, email: str, api_key_hash: bytes) -> None:
        status = await self.pool.execute("UPDATE users SET api_key_hash = $1 WHERE email = $2", api_key_hash, email)
        if status == "UPDATE 0":
            raise NotFound(f"No user {email}")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset of a connection going back to the pool (a second round trip per request).

    Safe because conntel leaves no session state on pooled connections: no
    SET, no LISTEN, no session advisory locks (the migration lock is
    transaction-scoped), and every transaction ends before release.
    """


async def _decide_health(conn: Conn, account_id: str, connector_id: str, now: int, report: Report) -> None:
    """Decide anew the health of a connector just heard from (health.decide), in the writing transaction."""
    row = await conn.fetchrow(_HEALTH_ROW_LOCKED, account_id, connector_id)
    update = None if row is None else redecided(tuple(row), now, None, report)
    if update is not None:
        await conn.execute(SQL.set_health, *update)


async def _require_account(conn: Conn, account_id: str) -> None:
    if await conn.fetchval(SQL.account_exists, account_id) is None:
        raise NotFound(f"No account {account_id}")


async def _insert_new(conn: Conn, sql: str, params: tuple[Any, ...], what: str) -> None:
    try:
        await conn.execute(sql, *params)
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(f"{what} already exists") from None
