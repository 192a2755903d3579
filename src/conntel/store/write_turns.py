"""Turns at writing for the processes that share one SQLite file.

SQLite lets one connection write at a time; a writer that finds the file locked sleeps and tries again
(after 1, 2, 5, 10, 15, 20, 25 ms, ...: its busy handler), so two server processes writing by turns
leave the file idle while the one that lost sleeps on (bench/RESULTS.md: a worker waited 3.1 s of a
4.3 s ingestion). A blocking flock(2) on a file beside the database (`<database>-writer`, empty) queues
conntel's writers in the kernel instead, which wakes the next one the moment the last is done. SQLite's
own lock still decides, with its busy timeout, for any other writer (the CLI, another program). The
kernel drops the flock of a process that ends, however it ends. Where that file cannot be made or
locked (a read-only folder, a file system without flock), writers go without, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

SUFFIX = "-writer"


class WriteTurns:
    def __init__(self, database_path: str):
        self.path = database_path + SUFFIX
        self._fd: int | None = None
        self._unavailable = False

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for this process's turn to write (on the calling thread), hold it for the block."""
        fd = self._locked()
        try:
            yield
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _locked(self) -> int | None:
        if self._unavailable:
            return None
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError:
            self._unavailable = True  # SQLite's busy timeout alone, as without turns
            self.close()
            return None
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
