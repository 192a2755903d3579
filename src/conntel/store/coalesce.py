"""Lookups that arrive together go to the database together: one query for many keys.

Every PostgreSQL statement costs a round trip and the server's own fixed work
(parse, plan, executor start), which on the hot path (Get Event) cost more than
the index lookup itself. Under load many lookups wait at once; a Coalescer
sends them as one query. Nothing waits for a timer: a lookup that finds a slot
free goes at the end of the event loop's current turn, with every lookup that
arrived in that turn; one that finds every slot busy goes with all that waited
for the next to come free. The busier the store, the fewer queries per lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
R = TypeVar("R")


class Coalescer(Generic[K, R]):
    """`get(key)` through `fetch_many(keys)` (results in the keys' order), at most `slots` queries at a time
    and `largest` keys per query."""

    def __init__(self, fetch_many: Callable[[list[K]], Awaitable[Sequence[R]]], slots: int, largest: int):
        self._fetch_many = fetch_many
        self._slots = slots
        self._largest = largest
        self._busy = 0
        self._waiting: list[tuple[K, asyncio.Future[R]]] = []
        self._dispatch_queued = False
        self._running: set[asyncio.Task[None]] = set()
        self.queries = 0  # queries sent, for tests and curiosity

    async def get(self, key: K) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((key, future))
        if self._busy < self._slots:
            self._queue_dispatch(loop)
        return await future

    async def close(self) -> None:
        """Wait for the queries in flight (their callers get their answers)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _queue_dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._dispatch_queued:
            self._dispatch_queued = True
            loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_queued = False
        while self._waiting and self._busy < self._slots:
            taken, self._waiting = self._waiting[: self._largest], self._waiting[self._largest :]
            batch = [(key, future) for key, future in taken if not future.done()]  # callers gone meanwhile
            if batch:
                self._busy += 1
                task = asyncio.get_running_loop().create_task(self._run(batch))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[K, asyncio.Future[R]]]) -> None:
        self.queries += 1
        try:
            results = await self._fetch_many([key for key, _ in batch])
        except Exception as error:  # each caller gets it, as if it had sent its own query
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        except BaseException:  # cancelled (the loop is ending): so are the callers
            for _, future in batch:
                future.cancel()
            raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._busy -= 1
            if self._waiting:
                self._queue_dispatch(asyncio.get_running_loop())
