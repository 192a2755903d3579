"""Storage: the port (base.py) and its adapters."""

from __future__ import annotations

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
