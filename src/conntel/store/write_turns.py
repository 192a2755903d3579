"""Turns at writing for the processes that share one SQLite file.

SQLite lets one connection write at a time; a writer that finds the file locked sleeps and tries again
(after 1, 2, 5, 10, 15, 20, 25, ... 100 ms: its busy handler), so two server processes writing by turns
leave the file idle while the one that lost sleeps on (bench/RESULTS.md: a worker waited 3.1 s of a
4.3 s ingestion). conntel's writers take turns by a flock(2) on a file beside the database
(`<database>-writer`, empty) instead: the kernel wakes the next writer as soon as the last one is done.
SQLite's own lock still guards the data, and decides with its busy timeout for any other writer (another
program). The kernel drops the flock of a process that ends, however it ends; a process stopped while
holding it (Ctrl-Z on a command) keeps the others waiting at most `wait_seconds`, after which they write
without a turn and SQLite's busy timeout decides, as without turns. Where that file cannot be made or
locked (a read-only folder, a file system without flock), writers go without turns.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import threading
from collections.abc import Iterator

SUFFIX = "-writer"


class _Wait:
    """One writer's wait for the turn, done on the waiter thread: a blocked flock(2) takes no deadline."""

    def __init__(self, fd: int):
        self.fd = fd
        self.done = threading.Event()
        self._decided = threading.Lock()
        self._taken = False
        self._abandoned = False

    def run(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError:
            pass  # not taken: the writer goes without
        else:
            with self._decided:
                if self._abandoned:  # the writer went on without it: give it back at once
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
                else:
                    self._taken = True
        self.done.set()

    def taken(self, timeout: float) -> bool:
        self.done.wait(timeout)
        with self._decided:
            self._abandoned = not self._taken
            return self._taken


class WriteTurns:
    def __init__(self, database_path: str, wait_seconds: float):
        self.path = database_path + SUFFIX
        self.wait_seconds = wait_seconds
        self._fd: int | None = None
        self._unavailable = False
        self._waits: queue.SimpleQueue[_Wait] | None = None
        self._pending: set[_Wait] = set()  # handed to the waiter thread, not done yet (set.add/discard: atomic)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for this process's turn to write (on the calling thread), hold it for the block."""
        fd = self._take()
        try:
            yield
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _take(self) -> int | None:
        if self._unavailable:
            return None
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fd = self._fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:  # another process writes: wait for it, within the deadline
                wait = _Wait(fd)
                self._pending.add(wait)
                self._waiter().put(wait)
                return fd if wait.taken(self.wait_seconds) else None
        except OSError:
            self._unavailable = True  # SQLite's busy timeout alone, as without turns
            self.close()
            return None

    def _waiter(self) -> queue.SimpleQueue[_Wait]:
        if self._waits is None:
            waits: queue.SimpleQueue[_Wait] = queue.SimpleQueue()

            def serve() -> None:
                while True:
                    wait = waits.get()
                    wait.run()
                    self._pending.discard(wait)

            # A daemon: a wait blocked on a stopped process must not keep this one from ending.
            threading.Thread(target=serve, name="conntel-write-turns", daemon=True).start()
            self._waits = waits
        return self._waits

    def close(self) -> None:
        # Not while the waiter thread may still lock it: the descriptor's number could name another file.
        if self._fd is not None and not self._pending:
            os.close(self._fd)
            self._fd = None
