"""The embedded store: one SQLite file in WAL mode.

Reads run inline on the calling thread (a primary-key lookup costs
microseconds, less than a hop to a thread); the reads of one turn of the
event loop share a read transaction (see `_read`). Writes go to one writer
thread so that fsync never blocks the event loop and writers never contend
with each other. Commits use synchronous=FULL: an acknowledged write
survives a crash of the process and of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import sqlite3
import stat
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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
from conntel.store.migrations import migrations, unknown_versions
from conntel.store.sql import (
    HEALTH_CHANGE_COLUMNS,
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
    permissions_json,
    redecided,
    snapshot_rows,
    swept,
    token_record,
    unique_events,
    unique_snapshots,
    webhook_record,
)
from conntel.store.write_turns import WriteTurns
from conntel.webhooks import DueMessage, WebhookRecord

if TYPE_CHECKING:  # the snapshot types are built where snapshots are decoded (api), not on a CLI start
    from conntel.snapshots import ValidSnapshot

T = TypeVar("T")

SQL = Statements()  # written in SQLite's style
# Health changes for the live feeds: writes are one at a time, so `seq` follows commit order.
_HEALTH_POSITION = "SELECT coalesce(max(seq), 0) FROM health_changes WHERE account_id = ?"
_HEALTH_CHANGES_AFTER = (
    f"SELECT seq, {HEALTH_CHANGE_COLUMNS} FROM health_changes WHERE account_id = ? AND seq > ? ORDER BY seq LIMIT ?"
)

_BUSY_TIMEOUT_MS = 10_000

# SQLite's primary result codes that mean the database cannot be used just now (SqliteStore.is_unavailable):
# busy or locked past the busy timeout, read-only, an I/O error, a full disk, cannot open, WAL-index protocol.
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)


# The read connection's page cache (SQLite's default is 2 MiB): big enough for the B-trees' inner pages
# of a store of millions of events, so that a lookup reads about one page (its leaf) from the file
# instead of two; +24 MiB resident, pread(2) per Get Event 1.88 -> 1.03 at 1M events (bench/RESULTS.md).
_READ_CACHE_KIB = 16 * 1024


def _connect(path: str, wal: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    if wal:  # start() first checks the file is conntel's: switching to WAL writes to it
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def create_private(path: str) -> None:
    """Create the database file, readable by its owner only, when it does not exist yet.

    It holds credential hashes and the cursor-signing secret. SQLite gives the -wal and -shm files
    it makes beside it the database file's mode, so they are private too.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def exposed_files(path: str) -> list[tuple[str, int]]:
    """The database's files (itself, -wal, -shm) that users other than the owner can read or write."""
    exposed = []
    for name in (path, path + "-wal", path + "-shm"):
        try:
            mode = os.stat(name).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and mode & 0o066:
            exposed.append((name, stat.S_IMODE(mode)))
    return exposed


def _foreign_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables of a database that holds tables but no conntel schema; [] for an empty or a conntel one."""
    tables = [
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')")
        if not name.startswith("sqlite_")
    ]
    if not tables:
        return []
    if "schema_migrations" in tables:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")]
        if columns == ["version", "applied_on"]:
            return []
    return tables


def check_replaceable(path: str) -> None:
    """Raise ForeignDatabase (or StoreUnavailable) unless the file at `path` is missing, empty, or a
    conntel store: what may be deleted and made anew (`conntel demo`)."""
    if not os.path.exists(path) or (os.path.isfile(path) and os.path.getsize(path) == 0):
        return
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            foreign = _foreign_tables(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"{path} is not a conntel database ({exc}): refusing to replace it") from None
    if foreign:
        raise ForeignDatabase(path, foreign)


def migrate(conn: sqlite3.Connection, path: str = "") -> None:
    """Put the database in WAL mode and apply missing migrations; safe when several processes start at once.

    Raises ForeignDatabase when the file holds tables but not conntel's schema. Writes nothing when
    the schema is up to date, so a read-only database still opens (and /readyz says it cannot be written).
    """
    foreign = _foreign_tables(conn)
    if foreign:
        raise ForeignDatabase(path, foreign)
    known = migrations("sqlite")
    has_table = conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'schema_migrations'").fetchone()
    recorded = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")} if has_table else set()
    if unknown_versions("sqlite", recorded):  # before WAL mode too: that writes to the file
        raise NewerStore(path, recorded, (v for v, _ in known))
    conn.execute("PRAGMA journal_mode = WAL")
    if recorded >= {v for v, _ in known}:
        return
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_on INTEGER)")
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for version, sql in known:
        if version in applied:
            continue
        try:
            # One script, one transaction: recording the version first makes a
            # concurrent starter's copy fail on the primary key and roll back.
            conn.executescript(
                f"BEGIN IMMEDIATE;INSERT INTO schema_migrations VALUES ({version}, unixepoch());{sql};COMMIT;"
            )
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")


class SqliteStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._readers = threading.local()
        self._reader_conns: set[sqlite3.Connection] = set()
        self._writer_conn: sqlite3.Connection | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conntel-sqlite-writer")
        # Turns among conntel's processes writing this file (store/write_turns.py), waited for at most the busy timeout.
        self._turns = WriteTurns(self.path, _BUSY_TIMEOUT_MS / 1000)

    # -- plumbing --
    def _read(self) -> sqlite3.Connection:
        """This thread's read connection, inside the read transaction of this turn of the event loop.

        Beginning and ending a read transaction (locks on the WAL index, a stat of the file) costs
        about as much as a primary-key lookup, so the reads of one turn of the loop share one. It
        begins with the turn's first read and ends in a callback queued then, behind every callback
        already ready: those run inside it, and each was queued after what it waits on had happened
        (a request's bytes arriving, a write acknowledged by this or another process), so before
        the snapshot began. Callbacks queued later run after its end and begin a new one. No read
        misses a write it could know of (tests/test_multiprocess.py, tests/test_sqlite_reads.py).
        """
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self._readers.conn = _connect(self.path)
            conn.execute(f"PRAGMA cache_size = -{_READ_CACHE_KIB}")
            self._reader_conns.add(conn)
        if not conn.in_transaction:
            conn.execute("BEGIN")
            asyncio.get_running_loop().call_soon(self._end_read, conn)
        return conn

    def _end_read(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            # Closed by close() meanwhile; or, never seen, unable to end: either way no read may
            # stay on an old snapshot, so the thread's next read opens a fresh connection.
            conn.close()
            if getattr(self._readers, "conn", None) is conn:
                del self._readers.conn
            self._reader_conns.discard(conn)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one IMMEDIATE transaction on the writer thread."""

        def run() -> T:
            if self._writer_conn is None:
                self._writer_conn = _connect(self.path)
            conn = self._writer_conn
            with self._turns.turn():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back by itself (a full disk, an I/O error): a ROLLBACK then fails
                    # and would hide the error that matters; a failed COMMIT may leave the transaction open.
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            return result

        return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def start(self) -> None:
        if self.path in ("", ":memory:"):
            raise StoreUnavailable("An in-memory SQLite database cannot be shared between connections: name a file")
        try:
            create_private(self.path)
            conn = _connect(self.path, wal=False)
            try:
                migrate(conn, self.path)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"Cannot open the database {self.path}: {exc}") from None
        except OSError as exc:  # creating the file: a missing folder, no permission
            raise StoreUnavailable(f"Cannot open the database {self.path}: {exc.strerror or exc}") from None

    async def ping(self) -> None:
        try:
            self._read().execute("SELECT 1 FROM accounts LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"The database {self.path} does not answer: {exc}") from None
        try:
            # A write that changes nothing still takes the write lock and needs a writable file, WAL
            # and shared-memory index: a read-only file or folder fails here, as every write would.
            await self._write(lambda conn: conn.execute("UPDATE schema_migrations SET version = version WHERE 0"))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"The database {self.path} cannot be written: {exc}") from None

    def is_unavailable(self, error: Exception) -> bool:
        if isinstance(error, StoreUnavailable):
            return True
        code = getattr(error, "sqlite_errorcode", None)  # extended code: the primary one in its low byte
        return isinstance(error, sqlite3.Error) and code is not None and code & 0xFF in _UNAVAILABLE_CODES

    async def close(self) -> None:
        self._writer.shutdown(wait=True)  # pending writes finish first
        if self._writer_conn is not None:
            self._writer_conn.close()
        self._turns.close()
        for conn in self._reader_conns:
            conn.close()
        self._reader_conns.clear()

    # -- telemetry events --
    async def get_event(self, account_id: str, connector_id: str, t: int, n: int) -> StoredEvent | None:
        row = self._read().execute(SQL.get_event, (account_id, connector_id, t, n)).fetchone()
        return None if row is None else StoredEvent(t, n, row[0], row[1], row[2])

    async def connector_exists(self, account_id: str, connector_id: str) -> bool:
        return _connector_exists(self._read(), account_id, connector_id)

    async def append_events(
        self, account_id: str, connector_id: str, events: Sequence[ValidEvent], received_at: int
    ) -> Appended:
        unique = unique_events(events)
        rows = [(account_id, connector_id, ev.t, ev.n, received_at, ev.kind, ev.v, ev.e_json) for ev in unique]

        def work(conn: sqlite3.Connection) -> Appended:
            if not _connector_exists(conn, account_id, connector_id):
                raise NotFound(f"No connector {connector_id} in account {account_id}")
            (first_seq,) = conn.execute(SQL.take_positions, (account_id, len(rows))).fetchone()
            before = conn.total_changes
            _insert_events(conn, [(*row, first_seq + i) for i, row in enumerate(rows)])
            inserted = conn.total_changes - before
            new = unique
            if inserted < len(rows):
                # Some keys were already recorded: each must be an identical retry. The new rows
                # are those that took this batch's positions.
                new = []
                for i, ev in enumerate(unique):
                    stored_e, stored_v, seq = conn.execute(
                        "SELECT e, v, seq FROM events WHERE account_id = ? AND connector_id = ? AND t = ? AND n = ?",
                        (account_id, connector_id, ev.t, ev.n),
                    ).fetchone()
                    if seq == first_seq + i:
                        new.append(ev)
                    else:
                        check_retry(ev, stored_e, stored_v)
            for sql, params in SQL.activity(account_id, connector_id, unique, received_at):
                conn.execute(sql, params)
            if unique:
                last = max(unique, key=lambda ev: (ev.t, ev.n))
                _decide_health(conn, account_id, connector_id, received_at, Report(last.t, last.n))
            return Appended(inserted, len(events) - inserted, Counter(ev.kind for ev in new))

        return await self._write(work)

    async def list_events(self, account_id: str, connector_id: str, query: EventQuery) -> list[EventSummary]:
        after_t, after_n = query.after or (query.from_t, -1)
        if query.kind:
            rows = self._read().execute(
                SQL.list_events_of_kind,
                (account_id, connector_id, query.kind, after_t, after_n, query.to_t, query.limit),
            )
        else:
            rows = self._read().execute(
                SQL.list_events, (account_id, connector_id, after_t, after_n, query.to_t, query.limit)
            )
        return [EventSummary(*row) for row in rows]

    async def stream_position(self, account_id: str) -> int:
        row = self._read().execute(SQL.stream_position, (account_id,)).fetchone()
        return 0 if row is None else row[0]

    async def events_after(
        self, account_id: str, after: int, connector_id: str | None, limit: int, max_bytes: int | None = None
    ) -> list[StreamedEvent]:
        conn = self._read()
        if max_bytes is not None:  # first how many fit (sizes only), then only those
            sizes = conn.execute(SQL.event_sizes_after, (account_id, after, connector_id, limit)).fetchall()
            if not sizes:
                return []
            limit = fitting([size for (size,) in sizes], max_bytes)
        rows = conn.execute(SQL.events_after, (account_id, after, connector_id, limit))
        return [StreamedEvent(*row) for row in rows]

    async def latest_events(
        self, account_id: str, connector_id: str, limit: int, through: tuple[int, int] | None = None
    ) -> list[StoredEvent]:
        if through is None:
            rows = self._read().execute(SQL.latest_events, (account_id, connector_id, limit))
        else:
            rows = self._read().execute(SQL.latest_events_through, (account_id, connector_id, *through, limit))
        return [StoredEvent(*row) for row in rows]

    async def latest_event_sizes(self, account_id: str, connector_id: str, limit: int) -> list[tuple[int, int, int]]:
        rows = self._read().execute(SQL.latest_event_sizes, (account_id, connector_id, limit))
        return [(t, n, size) for t, n, size in rows]

    # -- retention --
    async def prune(self, table: str, before: int, limit: int) -> int:
        statement = SQL.prune[table]

        def work(conn: sqlite3.Connection) -> int:
            deleted = 0
            for (account_id,) in conn.execute(SQL.account_ids).fetchall():
                deleted += conn.execute(statement, (account_id, before, limit - deleted)).rowcount
                if deleted >= limit:
                    break
            return deleted

        return await self._write(work)

    async def count_older(self, table: str, before: int) -> int:
        conn = self._read()
        statement = SQL.count_older[table]
        return sum(
            conn.execute(statement, (account_id, before)).fetchone()[0]
            for (account_id,) in conn.execute(SQL.account_ids).fetchall()
        )

    async def reclaim(self, tables: Sequence[str]) -> None:
        """Nothing to do: SQLite puts a deleted row's pages on its freelist and reuses them for new rows."""

    # -- fleet health --
    async def fleet_health(self, account_id: str) -> list[ConnectorHealth]:
        return [health_item(row) for row in self._read().execute(SQL.fleet_health, (account_id,))]

    async def sweep_health(self, now: int, default_seconds: int) -> int:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute(SQL.mark_overdue, (now, default_seconds))
            conn.execute(SQL.unmark_overdue)
            rows = conn.execute(SQL.sweep_candidates, (now, default_seconds)).fetchall()
            updates = [update for row in rows if (update := swept(row, now)) is not None]
            conn.executemany(SQL.set_health, updates)
            conn.execute(SQL.prune_health_changes, (now - HEALTH_CHANGES_KEPT_SECONDS,))
            return len(updates)

        return await self._write(work)

    async def health_position(self, account_id: str) -> HealthPosition:
        return 0, self._read().execute(_HEALTH_POSITION, (account_id,)).fetchone()[0]

    async def health_changes_after(self, account_id: str, after: HealthPosition, limit: int) -> list[NotedHealth]:
        rows = self._read().execute(_HEALTH_CHANGES_AFTER, (account_id, after[1], limit))
        return [NotedHealth((0, row[0]), health_change(row[1:])) for row in rows]

    async def health_counts(self) -> list[tuple[str, str, int]]:
        return [(account, health, count) for account, health, count in self._read().execute(SQL.health_counts)]

    async def set_silent_after(self, account_id: str, seconds: int | None) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute(SQL.set_silent_after, (seconds, account_id)).rowcount == 0:
                raise NotFound(f"No account {account_id}")

        await self._write(work)

    # -- webhooks --
    async def create_webhook(self, record: WebhookRecord, secret: str, max_per_account: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute(SQL.account_exists, (record.account_id,)).fetchone() is None:
                raise NotFound(f"No account {record.account_id}")
            if conn.execute(SQL.count_webhooks, (record.account_id,)).fetchone()[0] >= max_per_account:
                raise TooManyWebhooks(record.account_id, max_per_account)
            conn.execute(SQL.insert_webhook, (record.webhook_id, record.account_id, record.url, secret,
                                              json.dumps(record.event_types), record.created_on))  # fmt: skip

        await self._write(work)

    async def list_webhooks(self, account_id: str | None) -> list[WebhookRecord]:
        return [webhook_record(row) for row in self._read().execute(SQL.list_webhooks, (account_id,))]

    async def webhook_secret(self, webhook_id: str) -> tuple[str, str]:
        row = self._read().execute(SQL.webhook_secret, (webhook_id,)).fetchone()
        if row is None:
            raise NotFound(f"No webhook {webhook_id}")
        return row[0], row[1]

    async def delete_webhook(self, webhook_id: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute(SQL.delete_webhook, (webhook_id,)).rowcount == 0:
                raise NotFound(f"No webhook {webhook_id}")
            conn.execute(SQL.delete_webhook_messages, (webhook_id,))

        await self._write(work)

    async def due_webhook_messages(self, now: int, limit: int) -> list[DueMessage]:
        return [DueMessage(*row) for row in self._read().execute(SQL.due_messages, (now, limit))]

    async def record_webhook_attempt(
        self,
        message: DueMessage,
        now: int,
        status: int | None,
        error: str | None,
        retry_at: int | None,
        disable_failing_since: int,
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            for sql, params in SQL.attempt(message, now, status, error, retry_at):
                conn.execute(sql, params)
            if conn.execute(SQL.disable_webhook, (message.webhook_id, now, disable_failing_since)).rowcount:
                conn.execute(SQL.give_up_messages, (message.webhook_id, now))

        await self._write(work)

    async def webhook_outbox_depth(self) -> int:
        return int(self._read().execute(SQL.outbox_depth).fetchone()[0])

    # -- leases --
    async def acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute(SQL.acquire_lease, (name, holder, seconds)).fetchone() is not None

        return await self._write(work)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._write(lambda conn: conn.execute(SQL.release_lease, (name, holder)))

    # -- snapshots --
    async def append_snapshots(
        self, account_id: str, connector_id: str, snapshots: Sequence[ValidSnapshot], received_at: int
    ) -> AppendResult:
        unique = unique_snapshots(snapshots)

        def work(conn: sqlite3.Connection) -> AppendResult:
            if not _connector_exists(conn, account_id, connector_id):
                raise NotFound(f"No connector {connector_id} in account {account_id}")
            # Compressed here, on the writer thread: zstd releases the GIL, the event loop goes on meanwhile.
            rows = snapshot_rows(account_id, connector_id, unique, received_at)
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO snapshots (account_id, connector_id, t, a, size, body) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                rows,
            )
            inserted = conn.total_changes - before
            if inserted < len(rows):
                # Some were already recorded: each must be an identical retry. Rows this batch wrote carry its `a`
                # and its frame; an older row is compared by content.
                for snapshot, row in zip(unique, rows, strict=True):
                    (body,) = conn.execute(SQL.recorded_snapshot, (account_id, connector_id, snapshot.t)).fetchone()
                    if body != row[5]:
                        check_snapshot_retry(snapshot, body)
            conn.execute(SQL.note_checkin, (account_id, connector_id, received_at))  # a push is a heartbeat
            if unique:
                conn.execute(SQL.note_tunnels, newest_tunnels(account_id, connector_id, unique))
                newest = max(s.t for s in unique)
                _decide_health(conn, account_id, connector_id, received_at, Report(snapshot_t=newest))
            return AppendResult(inserted, len(snapshots) - inserted)

        return await self._write(work)

    async def get_snapshot(self, account_id: str, connector_id: str, t: int) -> StoredSnapshot | None:
        row = self._read().execute(SQL.get_snapshot, (account_id, connector_id, t)).fetchone()
        return None if row is None else StoredSnapshot(t, row[0], snapshot_codec.decompress(row[1]))

    async def list_snapshots(self, account_id: str, connector_id: str, query: SnapshotQuery) -> list[SnapshotSummary]:
        after = query.from_t - 1 if query.after is None else query.after
        rows = self._read().execute(SQL.list_snapshots, (account_id, connector_id, after, query.to_t, query.limit))
        return [SnapshotSummary(*row) for row in rows]

    async def latest_snapshots(
        self, account_id: str, connector_id: str, through: int, limit: int
    ) -> list[StoredSnapshot]:
        rows = self._read().execute(SQL.latest_snapshots, (account_id, connector_id, through, limit))
        return [StoredSnapshot(t, a, snapshot_codec.decompress(body)) for t, a, body in rows]

    async def latest_snapshot_sizes(self, account_id: str, connector_id: str, limit: int) -> list[tuple[int, int]]:
        rows = self._read().execute(SQL.latest_snapshot_sizes, (account_id, connector_id, limit))
        return [(t, size) for t, size in rows]

    # -- credentials --
    async def find_token(self, secret_hash: bytes) -> TokenRecord | None:
        row = self._read().execute(SQL.find_token, (secret_hash,)).fetchone()
        return None if row is None else token_record(secret_hash, row)

    async def find_user(self, email: str) -> UserRecord | None:
        conn = self._read()
        row = conn.execute(SQL.find_user, (email,)).fetchone()
        if row is None:
            return None
        accounts = conn.execute(SQL.user_accounts, (email,)).fetchall()
        return UserRecord(email, row[0], frozenset(account for (account,) in accounts))

    async def find_device(self, secret_hash: bytes) -> DeviceRecord | None:
        row = self._read().execute(SQL.find_device, (secret_hash,)).fetchone()
        return None if row is None else DeviceRecord(row[0], row[1], secret_hash)

    async def set_device_credential(
        self, account_id: str, connector_id: str, secret_hash: bytes, created_on: int
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if not _connector_exists(conn, account_id, connector_id):
                raise NotFound(f"No connector {connector_id} in account {account_id}")
            conn.execute(SQL.set_device_credential, (account_id, connector_id, secret_hash, created_on))

        await self._write(work)

    # -- administration --
    async def create_account(self, account_id: str, name: str, created_on: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            _insert_new(conn, SQL.insert_account, (account_id, name, created_on), f"Account {account_id}")

        await self._write(work)

    async def create_connector(self, record: ConnectorRecord, max_per_account: int | None = None) -> None:
        def work(conn: sqlite3.Connection) -> None:
            _require_account(conn, record.account_id)
            if max_per_account is not None:  # writes are serialized: the count cannot change under us
                (count,) = conn.execute(SQL.count_connectors, (record.account_id,)).fetchone()
                if count >= max_per_account:
                    raise TooManyConnectors(record.account_id, max_per_account)
            _insert_new(conn, SQL.insert_connector, connector_row(record), f"Connector {record.connector_id}")

        await self._write(work)

    async def get_connector(self, account_id: str, connector_id: str) -> ConnectorRecord | None:
        return _load_connector(self._read(), account_id, connector_id)

    async def list_connectors(
        self, account_id: str, device_type: str | None, after: str, limit: int
    ) -> list[ConnectorRecord]:
        rows = self._read().execute(SQL.list_connectors, (account_id, device_type, after, limit))
        return [connector_record(row) for row in rows]

    async def update_connector(
        self, account_id: str, connector_id: str, change: Callable[[ConnectorRecord], ConnectorRecord]
    ) -> ConnectorRecord:
        def work(conn: sqlite3.Connection) -> ConnectorRecord:
            current = _load_connector(conn, account_id, connector_id)
            if current is None:
                raise NotFound(f"No connector {connector_id}")
            changed = change(current)
            conn.execute(SQL.update_connector, (account_id, connector_id, *connector_row(changed)[2:]))
            return changed

        return await self._write(work)

    async def delete_connector(self, account_id: str, connector_id: str) -> ConnectorRecord:
        def work(conn: sqlite3.Connection) -> ConnectorRecord:
            row = conn.execute(SQL.delete_connector, (account_id, connector_id)).fetchone()
            if row is None:
                raise NotFound(f"No connector {connector_id}")
            for sql in (SQL.delete_events, SQL.delete_snapshots, SQL.delete_device_credential, SQL.delete_interrupts):
                conn.execute(sql, (account_id, connector_id))
            return connector_record(row)

        return await self._write(work)

    # -- the device side --
    async def create_interrupt(self, record: InterruptRecord) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if not _connector_exists(conn, record.account_id, record.connector_id):
                raise NotFound(f"No connector {record.connector_id}")
            try:
                conn.execute(SQL.insert_interrupt, interrupt_row(record))
            except sqlite3.IntegrityError:  # interrupts_pending: one is pending already
                raise InterruptPending(record.connector_id) from None

        await self._write(work)

    async def list_interrupts(self, account_id: str, connector_id: str, limit: int) -> list[InterruptRecord]:
        rows = self._read().execute(SQL.list_interrupts, (account_id, connector_id, limit))
        return [interrupt_record(row) for row in rows]

    async def pending_interrupt(self, account_id: str, connector_id: str) -> InterruptRecord | None:
        row = self._read().execute(SQL.pending_interrupt, (account_id, connector_id)).fetchone()
        return None if row is None else interrupt_record(row)

    async def report_executed(
        self, account_id: str, connector_id: str, interrupt_id: str, triggered_at: int
    ) -> InterruptRecord | None:
        def work(conn: sqlite3.Connection) -> InterruptRecord | None:
            cursor = conn.execute(SQL.trigger_interrupt, (account_id, connector_id, interrupt_id, triggered_at))
            if cursor.rowcount == 0:
                raise UnknownInterrupt(connector_id, interrupt_id)
            if conn.execute(SQL.clear_overdue, (account_id, connector_id, interrupt_id)).rowcount:
                _decide_health(conn, account_id, connector_id, triggered_at // 1_000_000, Report())
            row = conn.execute(SQL.pending_interrupt, (account_id, connector_id)).fetchone()
            return None if row is None else interrupt_record(row)

        return await self._write(work)

    async def note_heartbeats(self, beats: Sequence[tuple[str, str, int]]) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(SQL.note_checkin, beats)
            for account_id, connector_id, at in beats:  # a silent connector reports again
                row = conn.execute(SQL.silent_health_row, (account_id, connector_id)).fetchone()
                update = None if row is None else redecided(row, at, None, Report())
                if update is not None:
                    conn.execute(SQL.set_health, update)

        await self._write(work)

    async def server_secret(self, name: str) -> bytes:
        def work(conn: sqlite3.Connection) -> bytes:
            conn.execute(SQL.insert_secret, (name, secrets.token_bytes(32)))
            secret: bytes = conn.execute(SQL.server_secret, (name,)).fetchone()[0]
            return secret

        return await self._write(work)

    async def create_user(self, email: str, api_key_hash: bytes, account_id: str, created_on: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            _require_account(conn, account_id)
            _insert_new(conn, SQL.insert_user, (email, api_key_hash, created_on), f"User {email}")
            conn.execute(SQL.insert_membership, (email, account_id))

        await self._write(work)

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
        def work(conn: sqlite3.Connection) -> None:
            _require_account(conn, account_id)
            permissions_text = permissions_json(permissions)
            row = (token_id, secret_hash, account_id, name, permissions_text, expires_on, created_on)
            conn.execute(SQL.insert_token, row)

        await self._write(work)

    async def revoke_token(self, token_id: str, revoked_on: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(SQL.revoke_token, (revoked_on, token_id))
            if cursor.rowcount == 0:
                raise NotFound(f"No token {token_id}")

        await self._write(work)

    async def remove_membership(self, email: str, account_id: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            cursor = conn.execute("DELETE FROM memberships WHERE email = ? AND account_id = ?", (email, account_id))
            if cursor.rowcount == 0:
                raise NotFound(f"User {email} is not a member of account {account_id}")

        await self._write(work)

    async def set_user_key(self, email: str, api_key_hash: bytes) -> None:
        def work(conn: sqlite3.Connection) -> None:
            cursor = conn.execute("UPDATE users SET api_key_hash = ? WHERE email = ?", (api_key_hash, email))
            if cursor.rowcount == 0:
                raise NotFound(f"No user {email}")

        await self._write(work)


def _decide_health(conn: sqlite3.Connection, account_id: str, connector_id: str, now: int, report: Report) -> None:
    """Decide anew the health of a connector just heard from (health.decide), in the writer's transaction."""
    row = conn.execute(SQL.health_row, (account_id, connector_id)).fetchone()
    update = None if row is None else redecided(row, now, None, report)
    if update is not None:
        conn.execute(SQL.set_health, update)


# Rows per INSERT statement on ingestion. One statement per row (executemany) steps SQLite once per row, and
# Python's sqlite3 lets go of the GIL around every step: under load the writer thread then waits for the GIL
# again a thousand times a batch while the event loop decodes other batches. A hundred rows per statement
# (900 parameters) steps a hundredth as often: +34 % rows/s alone, +19 % beside a busy event loop, measured.
_EVENT_ROWS_PER_INSERT = 100


@functools.cache
def _insert_events_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO events (account_id, connector_id, t, n, a, k, v, e, seq) VALUES {values} ON CONFLICT DO NOTHING"
    )


def _insert_events(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """Insert `rows` (a key already there is skipped), _EVENT_ROWS_PER_INSERT to a statement."""
    full = len(rows) - len(rows) % _EVENT_ROWS_PER_INSERT
    many = _insert_events_sql(_EVENT_ROWS_PER_INSERT)
    for at in range(0, full, _EVENT_ROWS_PER_INSERT):
        conn.execute(many, [value for row in rows[at : at + _EVENT_ROWS_PER_INSERT] for value in row])
    if full < len(rows):
        conn.executemany(_insert_events_sql(1), rows[full:])


def _connector_exists(conn: sqlite3.Connection, account_id: str, connector_id: str) -> bool:
    return conn.execute(SQL.connector_exists, (account_id, connector_id)).fetchone() is not None


def _load_connector(conn: sqlite3.Connection, account_id: str, connector_id: str) -> ConnectorRecord | None:
    row = conn.execute(SQL.get_connector, (account_id, connector_id)).fetchone()
    return None if row is None else connector_record(row)


def _require_account(conn: sqlite3.Connection, account_id: str) -> None:
    if conn.execute(SQL.account_exists, (account_id,)).fetchone() is None:
        raise NotFound(f"No account {account_id}")


def _insert_new(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], what: str) -> None:
    try:
        conn.execute(sql, params)
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"{what} already exists") from None
