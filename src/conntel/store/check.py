"""`conntel store check`: is a store intact? Opened read-only, never migrated.

SQLite: `PRAGMA integrity_check` (every page, index and record), the schema version, and each
table's rows. PostgreSQL checks its own pages as it reads them; here every table is read through
(`count(*)`), and the schema version checked. A store whose schema is older than this conntel's
is intact (a server upgrades it when it starts); one from a newer conntel is not usable by this one.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from conntel.store import is_postgres, sqlite_path
from conntel.store.migrations import migrations
from conntel.store.urls import redacted


@dataclass
class CheckReport:
    database: str
    backend: str
    intact: bool = True
    problems: list[str] = field(default_factory=list)
    schema_version: int | None = None  # the newest migration applied
    latest_schema_version: int = 0  # the newest this conntel knows
    upgrade_pending: bool = False
    tables: dict[str, int] = field(default_factory=dict)  # rows per table

    def fail(self, problem: str) -> None:
        self.intact = False
        self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "backend": self.backend,
            "intact": self.intact,
            "problems": self.problems,
            "schema_version": self.schema_version,
            "latest_schema_version": self.latest_schema_version,
            "upgrade_pending": self.upgrade_pending,
            "tables": self.tables,
        }


def _latest(backend: str) -> int:
    return max(version for version, _ in migrations(backend))


def _versions(report: CheckReport, backend: str, applied: set[int]) -> None:
    known = {version for version, _ in migrations(backend)}
    report.schema_version = max(applied, default=None)
    newer = applied - known
    if newer:
        report.fail(
            f"made by a newer conntel: schema version {max(newer)} (this conntel knows up to {max(known)});"
            " use that release or newer"
        )
    report.upgrade_pending = bool(known - applied) and not newer


def check_sqlite(path: str) -> CheckReport:
    report = CheckReport(path, "sqlite", latest_schema_version=_latest("sqlite"))
    if not os.path.isfile(path):
        report.fail(f"no such file: {path}")
        return report
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
            if problems != ["ok"]:
                for problem in problems:
                    report.fail(f"integrity_check: {problem}")
            tables = [
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
                if not name.startswith("sqlite_")
            ]
            if "schema_migrations" not in tables:
                report.fail("not a conntel store (no schema_migrations table)")
                return report
            _versions(report, "sqlite", {v for (v,) in conn.execute("SELECT version FROM schema_migrations")})
            for table in tables:
                report.tables[table] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        report.fail(f"cannot be read: {exc}")
    return report


async def check_postgres(url: str) -> CheckReport:
    import asyncpg

    report = CheckReport(redacted(url), "postgres", latest_schema_version=_latest("postgres"))
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, ValueError) as exc:
        report.fail(f"cannot connect: {exc}")
        return report
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):  # one snapshot for every count
            tables = [
                row[0]
                for row in await conn.fetch(
                    "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
                    " AND relkind IN ('r', 'p') ORDER BY relname"
                )
            ]
            if "schema_migrations" not in tables:
                report.fail("not a conntel store (no schema_migrations table)")
                return report
            _versions(report, "postgres", {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")})
            for table in tables:
                report.tables[table] = await conn.fetchval(f'SELECT count(*) FROM "{table}"')
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        report.fail(f"cannot be read: {exc}")
    finally:
        await conn.close()
    return report


async def check_store(database: str) -> CheckReport:
    if is_postgres(database):
        return await check_postgres(database)
    path = sqlite_path(database)
    if path is None:
        report = CheckReport(redacted(database), "unknown")
        report.fail("use a file path, sqlite:///PATH or postgresql://...")
        return report
    return check_sqlite(path)
