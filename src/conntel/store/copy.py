"""Copy an embedded SQLite store into PostgreSQL (`conntel store copy`).

Every table is walked in primary-key (keyset) order, in chunks; each chunk is
read in its own SQLite read transaction (a WAL snapshot, so a server may keep
writing to the source) and written in its own PostgreSQL transaction: COPY
into a temporary table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING.
Rows the destination already has are compared with the source's:

- identical: skipped, so an interrupted copy is resumed by running it again;
- a connector whose source record is as new or newer (`last_updated`) than
  the destination's is brought up to date (heartbeat, last seen version,
  settings changed on the source since an earlier copy), and a token revoked
  on the source since an earlier copy is revoked in the destination too
  (a revocation is never undone);
- anything else is a conflict: CopyConflict names the row, nothing is
  overwritten.

The credential tables go last, so a partly copied destination accepts no
credentials. At the end every table is verified by walking the source's keys
again and counting how many of them the destination holds.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from conntel.store.base import StoreError, StoreUnavailable
from conntel.store.migrations import migrations
from conntel.store.postgres import PostgresStore
from conntel.store.sql import CONNECTOR_COLUMNS
from conntel.store.urls import has_password, redacted

if TYPE_CHECKING:
    from conntel.store.postgres import Conn

DEFAULT_BATCH_SIZE = 5000
# What a failing or vanishing PostgreSQL server raises (a terminated backend can surface as an InternalClientError).
_PG_FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
_BUSY_TIMEOUT_MS = 10_000


class CopyError(StoreError):
    """The copy cannot start or go on; what is already copied stays, and a rerun resumes."""


class CopyConflict(CopyError):
    """The destination holds a row under a source key with other content."""


class CopyInterrupted(Exception):
    """The caller asked the copy to stop (Ctrl-C); every chunk before it is committed."""


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]  # every column, the key first, as the destination names them
    blobs: tuple[str, ...] = ()  # columns read from SQLite as bytes whatever their storage class
    source_exprs: dict[str, str] = field(default_factory=dict)  # SQLite expressions for other columns
    describe: Callable[[dict[str, Any]], str] = str  # names one row in messages, from its key

    @property
    def rest(self) -> tuple[str, ...]:
        return self.columns[len(self.key) :]

    def source_select(self, columns: Sequence[str]) -> str:
        def expr(column: str) -> str:
            if column in self.blobs:
                return f"CAST({column} AS BLOB)"
            return self.source_exprs.get(column, column)

        return ", ".join(expr(column) for column in columns)


# In copy order: credentials last, so that a partial copy authenticates nobody.
TABLES = (
    Table(
        "server_secrets",
        ("name",),
        ("name", "secret"),
        blobs=("secret",),
        describe=lambda k: f"server secret {k['name']!r}",
    ),
    Table(
        "accounts",
        ("account_id",),
        ("account_id", "name", "created_on", "next_seq"),
        describe=lambda k: f"account {k['account_id']}",
    ),
    Table(
        "events",
        ("account_id", "connector_id", "t", "n"),
        ("account_id", "connector_id", "t", "n", "a", "k", "v", "e", "seq"),
        blobs=("e",),
        describe=lambda k: f"event {k['t']}.{k['n']} of connector {k['connector_id']} in account {k['account_id']}",
    ),
    Table(
        "snapshots",
        ("account_id", "connector_id", "t"),
        ("account_id", "connector_id", "t", "a", "size", "body"),
        blobs=("body",),  # zstd frames, carried as they are (their dictionaries ship with conntel)
        describe=lambda k: f"snapshot {k['t']} of connector {k['connector_id']} in account {k['account_id']}",
    ),
    Table(
        "connectors",
        ("account_id", "connector_id"),
        (*CONNECTOR_COLUMNS, "version_t", "version_n"),  # the record, plus where last_seen_version came from
        blobs=("settings", "license_key_hash"),
        # Rows made before migration 0002 got last_updated = created_on; the same here for any left NULL.
        source_exprs={"last_updated": "coalesce(last_updated, created_on)"},
        describe=lambda k: f"connector {k['connector_id']} in account {k['account_id']}",
    ),
    Table(
        "users",
        ("email",),
        ("email", "api_key_hash", "created_on"),
        blobs=("api_key_hash",),
        describe=lambda k: f"user {k['email']}",
    ),
    Table(
        "memberships",
        ("email", "account_id"),
        ("email", "account_id"),
        describe=lambda k: f"membership of {k['email']} in account {k['account_id']}",
    ),
    Table(
        "tokens",
        ("token_id",),
        (
            "token_id",
            "secret_hash",
            "account_id",
            "name",
            "permissions",
            "not_before",
            "expires_on",
            "created_on",
            "revoked_on",
        ),
        blobs=("secret_hash",),
        describe=lambda k: f"token {k['token_id']}",
    ),
)
TABLE_NAMES = tuple(table.name for table in TABLES)


@dataclass
class TableCount:
    source: int = 0  # rows in the source (seen by the verifying walk)
    destination: int = 0  # of those, how many the destination holds (by key)
    copied: int = 0  # inserted by this run
    updated: int = 0  # brought up to date by this run (connectors, token revocations)

    @property
    def missing(self) -> int:
        return self.source - self.destination


@dataclass
class CopyReport:
    tables: dict[str, TableCount]

    @property
    def verified(self) -> bool:
        return all(count.missing == 0 for count in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "tables": {
                name: {
                    "source": c.source,
                    "destination": c.destination,
                    "copied": c.copied,
                    "updated": c.updated,
                    "missing": c.missing,
                }
                for name, c in self.tables.items()
            },
            "verified": self.verified,
        }


@dataclass(frozen=True)
class Progress:
    """Where a copy stands, reported after every chunk."""

    phase: str  # "copy" or "verify"
    table: str
    done: int  # source rows handled so far in this table
    total: int  # source rows counted when the table's walk began (the source may still grow)
    copied: int
    elapsed: float  # seconds since this table's walk began
    finished: bool = False  # the table's walk is over


ProgressCallback = Callable[[Progress], None]


def open_source(path: str | Path) -> sqlite3.Connection:
    """The SQLite store at `path`, read-only; raises CopyError unless it is an up-to-date conntel store."""
    path = Path(str(path).removeprefix("sqlite:///"))
    if not path.is_file():
        raise CopyError(f"No SQLite database at {path}")
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        versions = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    except sqlite3.Error as exc:
        if "no such table" in str(exc):
            raise CopyError(f"{path} is not a conntel database (it has no schema_migrations table)") from None
        raise StoreUnavailable(f"Cannot read the database {path}: {exc}") from None
    known = {version for version, _ in migrations("sqlite")}
    if versions - known:
        conn.close()
        raise CopyError(f"{path} was made by a newer conntel (schema {max(versions)}): copy it with that version")
    if known - versions:
        conn.close()
        raise CopyError(
            f"{path} has an older schema: start this conntel on it once (conntel serve --db {path}) to upgrade it"
        )
    return conn


async def copy_store(
    source: str | Path,
    destination: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> CopyReport:
    """Copy every table of the SQLite store `source` into the PostgreSQL database `destination`.

    The destination schema is made (or upgraded) first by PostgresStore.start().
    Raises CopyConflict, CopyError or StoreUnavailable; the report says
    whether every source row is now in the destination. `stop` is asked after
    every committed chunk: when it says so, CopyInterrupted is raised there.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    reader = open_source(source)
    store = PostgresStore(destination, pool_size=1)
    try:
        try:
            await store.start()
        except ValueError as exc:  # asyncpg could not read the URL
            detail = "" if has_password(destination) else f": {exc}"  # the message may quote pieces of it
            raise CopyError(
                f"Invalid destination URL {redacted(destination)}{detail}"
                " (postgresql://USER:PASSWORD@HOST:PORT/DATABASE, special characters percent-encoded)"
            ) from None
        async with store.pool.acquire() as conn:
            return await _Copier(reader, conn, batch_size, progress, stop).run()
    except _PG_FAILURES as exc:
        raise CopyError(
            f"The destination {redacted(destination)} failed: {exc}."
            " What was copied is kept: run the same command again to resume"
        ) from None
    except sqlite3.Error as exc:
        raise CopyError(f"Reading the source failed: {exc}. Run the same command again to resume") from None
    finally:
        reader.close()
        try:
            await store.close()
        except _PG_FAILURES:
            pass  # the copy's own outcome is what counts


class _Copier:
    def __init__(
        self,
        reader: sqlite3.Connection,
        conn: Conn,
        batch_size: int,
        progress: ProgressCallback | None,
        stop: Callable[[], bool],
    ):
        self.reader = reader
        self.conn = conn
        self.batch_size = batch_size
        self.progress = progress or (lambda _: None)
        self.stop = stop
        self.counts = {table.name: TableCount() for table in TABLES}

    async def run(self) -> CopyReport:
        for table in TABLES:
            await self.conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS copy_{table.name} (LIKE {table.name}) ON COMMIT DELETE ROWS"
            )
            await self.copy_table(table)
        for table in TABLES:
            await self.conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS keys_{table.name} ON COMMIT DELETE ROWS"
                f" AS SELECT {', '.join(table.key)} FROM {table.name} WITH NO DATA"
            )
            await self.verify_table(table)
        return CopyReport(self.counts)

    def walk(self, table: Table, columns: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
        """The source rows' `columns` (the key first) in key order, a chunk at a time, one snapshot per chunk."""
        select = f"SELECT {table.source_select(columns)} FROM {table.name}"
        order = f" ORDER BY {', '.join(table.key)} LIMIT ?"
        after = f" WHERE ({', '.join(table.key)}) > ({', '.join('?' * len(table.key))})"
        chunk = self.reader.execute(select + order, (self.batch_size,)).fetchall()
        while chunk:
            yield chunk
            if len(chunk) < self.batch_size:
                return
            position = chunk[-1][: len(table.key)]
            chunk = self.reader.execute(select + after + order, (*position, self.batch_size)).fetchall()

    def source_total(self, table: Table) -> int:
        total: int = self.reader.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
        return total

    async def copy_table(self, table: Table) -> None:
        count = self.counts[table.name]
        total, done, started = self.source_total(table), 0, time.monotonic()
        columns = ", ".join(table.columns)
        insert = f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM copy_{table.name} ON CONFLICT DO NOTHING"
        differing = _differing_rows_sql(table)
        for chunk in self.walk(table, table.columns):
            async with self.conn.transaction():
                try:
                    await self.conn.copy_records_to_table(f"copy_{table.name}", records=chunk, columns=table.columns)
                except asyncpg.CharacterNotInRepertoireError:
                    _refuse_nul(table, chunk)
                    raise
                inserted = int((await self.conn.execute(insert)).rsplit(" ", 1)[1])
                if inserted < len(chunk):  # some keys were there already: each must be the same row
                    for row in await self.conn.fetch(differing):
                        count.updated += await self._reconcile(table, row)
            count.copied += inserted
            done += len(chunk)
            self.report(table, "copy", done, total, started)
        self.report(table, "copy", done, total, started, finished=True)

    async def verify_table(self, table: Table) -> None:
        count = self.counts[table.name]
        total, started = self.source_total(table), time.monotonic()
        count.source = count.destination = 0
        on = " AND ".join(f"s.{column} = d.{column}" for column in table.key)
        present = f"SELECT count(*) FROM keys_{table.name} s JOIN {table.name} d ON {on}"
        for chunk in self.walk(table, table.key):
            async with self.conn.transaction():
                await self.conn.copy_records_to_table(f"keys_{table.name}", records=chunk, columns=table.key)
                count.destination += await self.conn.fetchval(present)
            count.source += len(chunk)
            self.report(table, "verify", count.source, total, started)
        self.report(table, "verify", count.source, total, started, finished=True)

    def report(self, table: Table, phase: str, done: int, total: int, started: float, finished: bool = False) -> None:
        copied = self.counts[table.name].copied
        self.progress(Progress(phase, table.name, done, total, copied, time.monotonic() - started, finished))
        if self.stop():  # between chunks: everything reported so far is committed
            raise CopyInterrupted(f"{table.name}: stopped after {done:,} of {total:,} rows ({phase})")

    async def _reconcile(self, table: Table, row: asyncpg.Record) -> int:
        """Settle one source row whose key the destination holds with other content; 1 if it was updated."""
        width = len(table.columns)
        source = dict(zip(table.columns, row[:width], strict=False))
        present = row[width]
        target = dict(zip(table.columns, row[width + 1 :], strict=False))
        what = table.describe(source)
        if not present:
            raise CopyConflict(
                f"Conflict: {what} cannot be copied: the destination has another row with the same unique values"
                f" ({_unique_columns(table)}). Nothing was overwritten; copy into an empty database"
            )
        changes = _merge(table, source, target)
        if changes is None:
            differ = ", ".join(column for column in table.rest if source[column] != target[column])
            raise CopyConflict(
                f"Conflict: {what} is already in the destination with different content (differing: {differ})."
                " Nothing was overwritten; the destination holds other data than this source:"
                " copy into an empty database"
            )
        if not changes:
            return 0
        assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=1))
        where = " AND ".join(f"{column} = ${i}" for i, column in enumerate(table.key, start=len(changes) + 1))
        await self.conn.execute(
            f"UPDATE {table.name} SET {assignments} WHERE {where}",
            *changes.values(),
            *(source[column] for column in table.key),
        )
        return 1


def _refuse_nul(table: Table, chunk: list[tuple[Any, ...]]) -> None:
    """SQLite text may hold NUL characters, PostgreSQL text cannot: name the first such row."""
    for row in chunk:
        for column, value in zip(table.columns, row, strict=False):
            if isinstance(value, str) and "\x00" in value:
                what = table.describe(dict(zip(table.columns, row, strict=False)))
                raise CopyError(
                    f"{what} cannot be copied: its {column} holds a NUL character, which PostgreSQL text cannot store"
                )


def _differing_rows_sql(table: Table) -> str:
    """Rows of the chunk whose key the destination lacks (another unique column refused them) or holds otherwise."""
    on = " AND ".join(f"s.{column} = d.{column}" for column in table.key)
    first = table.key[0]
    differs = f"d.{first} IS NULL"
    if table.rest:
        source_rest = ", ".join(f"s.{column}" for column in table.rest)
        target_rest = ", ".join(f"d.{column}" for column in table.rest)
        differs += f" OR ROW({source_rest}) IS DISTINCT FROM ROW({target_rest})"
    return (
        f"SELECT {', '.join(f's.{column}' for column in table.columns)}, d.{first} IS NOT NULL,"
        f" {', '.join(f'd.{column}' for column in table.columns)}"
        f" FROM copy_{table.name} s LEFT JOIN {table.name} d ON {on} WHERE {differs}"
    )


def _merge(table: Table, source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any] | None:
    """The changes that bring a destination row up to date with the source's; None when they conflict."""
    if table.name == "tokens":
        # A token revoked on the source since an earlier copy: revoke it here too. One revoked
        # here stays revoked (like revoke_token: the first revocation time is kept).
        if any(source[c] != target[c] for c in table.rest if c != "revoked_on"):
            return None
        if target["revoked_on"] is None:
            return {"revoked_on": source["revoked_on"]}
        return {}
    if table.name == "accounts":
        # Events ingested on the source since an earlier copy took stream positions there: keep the higher.
        if any(source[c] != target[c] for c in table.rest if c != "next_seq"):
            return None
        return {"next_seq": source["next_seq"]} if source["next_seq"] > target["next_seq"] else {}
    if table.name == "connectors":
        # Events and settings changes on the source since an earlier copy: the source's record
        # is as new or newer. One changed here since (newer last_updated) is a conflict.
        if source["created_on"] != target["created_on"] or source["last_updated"] < target["last_updated"]:
            return None
        return {column: source[column] for column in table.rest if source[column] != target[column]}
    return None


def _unique_columns(table: Table) -> str:
    return "secret_hash" if table.name == "tokens" else ", ".join(table.key)
