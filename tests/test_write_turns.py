"""Turns at writing among the processes sharing an SQLite file (conntel.store.write_turns).

Real processes and a real file: a turn held in one process keeps every other
waiting until it is given back, or until that process dies, however it dies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli

from conntel.events import ValidEvent
from conntel.store.sqlite import SqliteStore
from conntel.store.write_turns import SUFFIX, WriteTurns

# Another process takes a turn, says so on stdout, and keeps it until told (a line on stdin) or killed.
HOLDER = """
import sys
from conntel.store.write_turns import WriteTurns
with WriteTurns(sys.argv[1], 0).turn():
    print("holding", flush=True)
    sys.stdin.readline()
"""


def hold_a_turn(db: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    return holder


def seconds_to_a_turn(db: Path, wait_seconds: float = 30) -> float:
    started = time.monotonic()
    turns = WriteTurns(str(db), wait_seconds)
    try:
        with turns.turn():
            return time.monotonic() - started
    finally:
        turns.close()


@pytest.mark.timeout(60)
def test_a_turn_waits_for_the_process_holding_one_and_no_longer(tmp_path: Path):
    db = tmp_path / "conntel.db"
    holder = hold_a_turn(db)
    loop = asyncio.new_event_loop()
    try:
        waiting = loop.run_in_executor(None, seconds_to_a_turn, db)
        time.sleep(0.5)
        assert not waiting.done()  # the other process still holds the turn
        assert holder.stdin is not None
        holder.stdin.write("done\n")
        holder.stdin.flush()
        # Woken when it was given back (it was still waiting 0.5 s in), not after a sleep of its own.
        assert loop.run_until_complete(asyncio.wait_for(waiting, 10)) < 5
    finally:
        loop.close()
        holder.wait(10)


@pytest.mark.timeout(60)
def test_a_process_killed_holding_a_turn_gives_it_back(tmp_path: Path):
    db = tmp_path / "conntel.db"
    holder = hold_a_turn(db)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    assert seconds_to_a_turn(db) < 5


@pytest.mark.timeout(60)
def test_a_turn_held_too_long_is_not_waited_for(tmp_path: Path):
    """A process stopped while writing (Ctrl-Z) holds its turn: the others write without one after
    `wait_seconds`, and SQLite's busy timeout decides as it would without turns."""
    db = tmp_path / "conntel.db"
    holder = hold_a_turn(db)
    turns = WriteTurns(str(db), wait_seconds=0.3)
    try:
        os.kill(holder.pid, signal.SIGSTOP)
        started = time.monotonic()
        with turns.turn():
            assert 0.25 < time.monotonic() - started < 5  # went on without the turn
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
    # The abandoned wait took the turn once the holder died, and gave it back: the next turn is had at once.
    deadline = time.monotonic() + 5
    while turns._pending and time.monotonic() < deadline:
        time.sleep(0.01)
    with turns.turn():
        assert seconds_to_a_turn(db, wait_seconds=0.2) >= 0.15  # held by this process now, not by another
    turns.close()


def scene(tmp_path: Path) -> tuple[Path, str, str]:
    db = tmp_path / "conntel.db"
    account = cli("accounts", "create", "--name", "Main", db=db)["id"]
    connector = cli("connectors", "create", "--account", account, db=db)["id"]
    return db, account, connector


async def append_one(db: Path, account: str, connector: str, t: int) -> int:
    store = SqliteStore(db)
    await store.start()
    try:
        result = await store.append_events(
            account, connector, [ValidEvent(t, 0, "Init", None, b'{"k":"Init"}')], received_at=t
        )
        return result.accepted
    finally:
        await store.close()


def test_the_store_writes_in_turns_through_a_private_file_beside_the_database(tmp_path: Path):
    db, account, connector = scene(tmp_path)
    assert asyncio.run(append_one(db, account, connector, 1_700_000_000)) == 1
    mode = os.stat(str(db) + SUFFIX).st_mode
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o600


def test_the_store_writes_without_turns_where_their_file_cannot_be_made(tmp_path: Path):
    db, account, connector = scene(tmp_path)
    turns = Path(str(db) + SUFFIX)  # made by the CLI's writes: in its place, a directory, which cannot be locked
    turns.unlink()
    turns.mkdir()
    assert asyncio.run(append_one(db, account, connector, 1_700_000_000)) == 1
    assert asyncio.run(append_one(db, account, connector, 1_700_000_001)) == 1
