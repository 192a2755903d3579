"""Webhook delivery: the store's outbox, sent by one server process at a time (conntel/webhooks.py).

Every second, the process holding the `webhooks` lease sends what is due, a few at a time, and
records each attempt's outcome in the store before anything else happens to that message: a
process killed mid-attempt leaves the message due, and the next holder sends it again (at least
once; the `webhook-id` tells a receiver it has seen it). It runs beside the server's requests
on the same event loop but never in their way: a slow endpoint holds only its own attempt,
bounded by webhooks.ATTEMPT_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from conntel import webhooks
from conntel.api.observability import Metrics
from conntel.server.exclusive import Exclusive
from conntel.store.base import Store
from conntel.webhooks import DueMessage

LEASE = "webhooks"
EVERY = 1.0
BATCH = 50
CONCURRENCY = 8
log = logging.getLogger("conntel")


class Deliverer:
    def __init__(self, store: Store, metrics: Metrics):
        self.store = store
        self.metrics = metrics
        self._http: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self.exclusive = Exclusive(store, LEASE, EVERY, self.deliver_due)

    async def deliver_due(self, still_held: Callable[[], Awaitable[bool]]) -> None:
        if self._http is None:
            # No redirects: an endpoint answers for itself. No proxies from the environment either.
            self._http = httpx.AsyncClient(timeout=webhooks.ATTEMPT_TIMEOUT, follow_redirects=False, trust_env=False)
        while await still_held():
            due = await self.store.due_webhook_messages(int(time.time()), BATCH)
            await asyncio.gather(*(self._attempt(message) for message in due))
            if len(due) < BATCH:
                return

    async def _attempt(self, message: DueMessage) -> None:
        assert self._http is not None
        async with self._slots:
            now = dt.datetime.now(dt.UTC)
            headers = webhooks.signed_headers(message.secret, message.message_id, message.body, now)
            status: int | None = None
            error: str | None = None
            try:
                response = await self._http.post(message.url, content=message.body.encode(), headers=headers)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = (" ".join(str(exc).split()) or type(exc).__name__)[:300]
            seconds = int(now.timestamp())
            retry_at = None if error is None else webhooks.next_attempt(message.attempts + 1, seconds)
            outcome = "delivered" if error is None else "failed" if retry_at is not None else "given_up"
            self.metrics.webhook_deliveries.labels(outcome).inc()
            await self.store.record_webhook_attempt(
                message, seconds, status, error, retry_at, seconds - webhooks.DISABLE_AFTER
            )

    def start(self) -> None:
        self.exclusive.start()

    async def stop(self) -> None:
        await self.exclusive.stop()
        if self._http is not None:
            await self._http.aclose()
