"""The SQLite store's reads on an event loop: the reads of one turn share a read transaction, never a stale one.

The store (conntel.store.sqlite) is driven directly here, on a real file, with
a second store in another thread standing in for another server process.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from helpers import cli

from conntel.events import ValidEvent
from conntel.store.sqlite import SqliteStore

T0 = 1_700_000_000


def scene(tmp_path: Path) -> tuple[Path, str, str]:
    db = tmp_path / "conntel.db"
    account = cli("accounts", "create", "--name", "Main", db=db)["id"]
    connector = cli("connectors", "create", "--account", account, db=db)["id"]
    return db, account, connector


def append_elsewhere(db: Path, account: str, connector: str, t: int) -> None:
    """Append one event through another store on another thread, blocking this one meanwhile (no turn passes)."""

    async def append() -> None:
        other = SqliteStore(db)
        await other.start()
        try:
            await other.append_events(
                account, connector, [ValidEvent(t, 0, "Init", None, b'{"k":"Init"}')], received_at=T0
            )
        finally:
            await other.close()

    writer = threading.Thread(target=asyncio.run, args=(append(),))
    writer.start()
    writer.join()


def test_a_write_committed_elsewhere_is_read_from_the_next_turn_of_the_loop(tmp_path: Path):
    db, account, connector = scene(tmp_path)

    async def main() -> None:
        store = SqliteStore(db)
        await store.start()
        try:
            for i in range(3):
                assert await store.get_event(account, connector, T0 + i, 0) is None  # a read in this turn
                append_elsewhere(db, account, connector, T0 + i)
                await asyncio.sleep(0)  # the next turn
                found = await store.get_event(account, connector, T0 + i, 0)
                assert found is not None and found.t == T0 + i
        finally:
            await store.close()

    asyncio.run(main())


def test_closing_the_store_with_a_read_in_this_turn_is_clean(tmp_path: Path):
    db, account, connector = scene(tmp_path)
    problems: list[dict] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: problems.append(context))
        store = SqliteStore(db)
        await store.start()
        assert await store.connector_exists(account, connector)
        await store.close()
        await asyncio.sleep(0)  # the turn's end comes after the close
        reopened = SqliteStore(db)
        await reopened.start()
        try:
            assert await reopened.connector_exists(account, connector)
        finally:
            await reopened.close()

    asyncio.run(main())
    assert problems == []
