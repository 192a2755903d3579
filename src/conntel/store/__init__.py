"""Storage: the port (base.py) and its adapters."""

from __future__ import annotations

from conntel.store.base import Store


class UnsupportedDatabase(ValueError):
    pass


def open_store(database: str) -> Store:
    """Open the store named by a SQLite path or a database URL."""
    if database.startswith(("postgres://", "postgresql://")):
        raise UnsupportedDatabase("PostgreSQL is not supported yet; use an SQLite file (--db PATH)")
    path = database.removeprefix("sqlite:///") if database.startswith("sqlite:///") else database
    from conntel.store.sqlite import SqliteStore

    return SqliteStore(path)
