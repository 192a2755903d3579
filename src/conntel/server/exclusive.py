"""One process at a time: a periodic job that runs in exactly one of the processes sharing a store.

Built on the store's leases (Store.acquire_lease): every `every` seconds each process tries to
take or renew the lease; the one holding it runs the job, which calls `still_held()` between
chunks of work to renew it. A holder that dies loses the lease 3 x `every` seconds after its
last renewal and another process takes over; one that stops gives it up at once. Used by
retention; meant for any job of that shape (fleet health checks, webhook delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from conntel.store.base import Store

log = logging.getLogger("conntel")

Job = Callable[[Callable[[], Awaitable[bool]]], Awaitable[object]]  # job(still_held)


class Exclusive:
    def __init__(self, store: Store, name: str, every: float, job: Job):
        self.store = store
        self.name = name
        self.every = every
        self.ttl = 3 * every
        self.job = job
        # Unique per process and start: a restarted process does not inherit its predecessor's lease.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.held = False
        self._renewed = 0.0
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"conntel-{self.name}")

    async def stop(self) -> None:
        """Stop the job (mid-batch is fine: each batch is its own transaction) and give the lease up."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.held:
            with contextlib.suppress(Exception):  # the database may be gone; the lease then lapses by itself
                await self.store.release_lease(self.name, self.holder)
            self.held = False

    async def still_held(self) -> bool:
        """Renew the lease when a renewal is due; whether this process still holds it."""
        if time.monotonic() - self._renewed >= self.every:
            await self._acquire()
        return self.held

    async def _acquire(self) -> None:
        held = await self.store.acquire_lease(self.name, self.holder, self.ttl)
        self._renewed = time.monotonic()
        if held != self.held:
            log.warning("%s: %s lease %s (%s)", self.name, "took" if held else "lost", self.name, self.holder)
        self.held = held

    async def _run(self) -> None:
        while True:
            try:
                await self._acquire()
                if self.held:
                    await self.job(self.still_held)
                self._last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away, the disk full: try again next time, logged once
                text = " ".join(str(exc).split()) or type(exc).__name__
                if text != self._last_error:
                    log.warning("%s: failed, retrying every %g s: %s", self.name, self.every, text)
                self._last_error = text
            await asyncio.sleep(self.every)
