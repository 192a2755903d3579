"""Storage: the port (base.py) and its adapters."""

from __future__ import annotations

import sqlite3
import sys

from conntel.store.base import Store
from conntel.store.urls import redacted as redacted  # re-exported: the CLI names it from here


class UnsupportedDatabase(ValueError):
    pass


def is_postgres(database: str) -> bool:
    return database.startswith(("postgres://", "postgresql://"))


def open_store(database: str, pool_size: int = 10) -> Store:
    """The store named by a SQLite path, `sqlite:///PATH`, or a `postgresql://` URL; `start()` it before use."""
    if is_postgres(database):
        from conntel.store.postgres import PostgresStore

        return PostgresStore(database, pool_size)
    if "://" in database and not database.startswith("sqlite:///"):
        raise UnsupportedDatabase(
            f"Unsupported database URL {redacted(database)!r}: use sqlite:///PATH or postgresql://..."
        )
    from conntel.store.sqlite import SqliteStore

    return SqliteStore(database.removeprefix("sqlite:///"))


def sqlite_path(database: str) -> str | None:
    """The file of an SQLite store, or None for another database."""
    if is_postgres(database) or ("://" in database and not database.startswith("sqlite:///")):
        return None
    return database.removeprefix("sqlite:///")


def exposure_warning(database: str) -> str | None:
    """A one-line warning when the SQLite store's files can be read or written by other users."""
    path = sqlite_path(database)
    if path is None:
        return None
    from conntel.store.sqlite import exposed_files

    exposed = exposed_files(path)
    if not exposed:
        return None
    listed = ", ".join(f"{name} (mode {mode:04o})" for name, mode in exposed)
    names = " ".join(name for name, _ in exposed)
    return (
        f"warning: other users can read {listed}; the database holds credential hashes and the"
        f" cursor-signing secret: chmod 600 {names}"
    )


def is_database_error(error: BaseException) -> bool:
    """Whether `error` came from a database driver (as opposed to a bug in conntel)."""
    if isinstance(error, sqlite3.Error):
        return True
    asyncpg = sys.modules.get("asyncpg")  # not imported: the error cannot be one of its
    return asyncpg is not None and isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError)
