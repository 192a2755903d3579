"""`conntel store backup`: a consistent copy of a live SQLite store, verified before it is kept.

SQLite's online backup API copies every page in one step, inside one read transaction: the copy
is the store as of that transaction's start, so it holds every write acknowledged before the
backup began, while servers keep writing (WAL mode lets them). It is written beside the target
as FILE.partial, checked (`store check`), synced, and only then renamed to FILE: a failure (a
full disk, say) leaves no FILE and no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from conntel.store.check import check_sqlite
from conntel.store.sqlite import create_private


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupReport:
    source: str
    to: str
    bytes: int
    seconds: float
    tables: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "to": self.to, "bytes": self.bytes, "seconds": self.seconds,
                "intact": True, "tables": self.tables}  # fmt: skip


def backup_sqlite(source: str, to: str) -> BackupReport:
    if not os.path.isfile(source):
        raise BackupError(f"No SQLite store at {source}")
    if os.path.lexists(to):
        raise BackupError(f"{to} already exists: name a new file (a backup never overwrites one)")
    partial = to + ".partial"
    started = time.monotonic()
    try:
        _remove(partial)  # left by a backup killed mid-way
        create_private(partial)  # it holds credential hashes, as the store does
        src = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(source))}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # pages=-1: all in one step, one snapshot
                dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file (a server switches it to WAL)
            finally:
                dst.close()
        finally:
            src.close()
        _fsync(partial)
        report = check_sqlite(partial)
        if not report.intact:
            raise BackupError("The copy failed its check: " + "; ".join(report.problems))
        os.replace(partial, to)
        _fsync(os.path.dirname(os.path.abspath(to)))
    except BaseException as exc:
        _remove(partial)
        if isinstance(exc, sqlite3.Error | OSError):
            raise BackupError(f"Backup of {source} to {to} failed: {_reason(exc)}") from None
        raise
    return BackupReport(source, to, os.path.getsize(to), round(time.monotonic() - started, 3), report.tables)


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    for name in (path, path + "-journal", path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
