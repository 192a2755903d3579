"""Per-credential rate limiting (off unless `--rate-limit` is given).

Fixed windows, as the public API describes its own limit ("1200 requests per five minutes").
By default each process counts its own requests; with `--rate-limit-storage redis://...` every
process, on this host or another, counts in the same Redis, so a credential gets the limit once
(bench/RESULTS.md: Redis measured against the PostgreSQL store for this). A storage that does not
answer never fails a request: it is served unchecked (fail open), counted in a metric and logged
once, and the storage is tried again a second later.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.aio.storage import Storage as SharedStorage
from limits.aio.strategies import FixedWindowRateLimiter as SharedWindows
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from conntel.api.errors import rate_limited
from conntel.store.urls import redacted

if TYPE_CHECKING:  # not at run time: `conntel serve` checks its options before the workers fork, and
    # prometheus_client must be first imported in the workers (server/run.py)
    from prometheus_client import Counter

log = logging.getLogger("conntel")

# One rate: COUNT/[N]UNIT, at least one request per window of one second to one day.
_RATE = re.compile(r"\s*([0-9]{1,9})\s*(?:/|per)\s*([0-9]{0,9})\s*(second|minute|hour|day)s?\s*", re.IGNORECASE)
MAX_WINDOW_SECONDS = 86_400
# Shared storages: Redis (or Valkey) through the `limits` library's redis-py client.
STORAGE_SCHEMES = ("redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")
STORAGE_TIMEOUT_SECONDS = 0.25  # the most a request waits on the storage before it is served unchecked
STORAGE_RETRY_SECONDS = 1.0  # after a failure, requests skip the storage this long (no timeout each)


def parse_rate_limit(text: str) -> RateLimitItem:
    """`1200/5minutes`, `10/second`, ... (the `limits` notation, one rate); ValueError when unreadable,
    when it allows no request, or when its window is not from one second to one day."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError("one rate, COUNT/[N]UNIT, with UNIT second, minute, hour or day")
    item = parse(text)
    if item.amount < 1 or (match[2] and int(match[2]) < 1):
        raise ValueError("a rate must allow at least one request per window")
    if not 1 <= item.get_expiry() <= MAX_WINDOW_SECONDS:
        raise ValueError("a rate's window must be from one second to one day")
    return item


def check_storage_url(url: str) -> str:
    """`url` when it names a shared storage conntel can count in; ValueError otherwise."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in STORAGE_SCHEMES:
        raise ValueError(f"use a {', '.join(s + '://' for s in STORAGE_SCHEMES)} URL")
    return url


class RateLimiter:
    """One fixed-window limit per credential, counted in this process or in a shared storage."""

    def __init__(self, limit: RateLimitItem, storage_url: str | None = None, unchecked: Counter | None = None):
        self.limit = limit
        self._local = FixedWindowRateLimiter(MemoryStorage()) if storage_url is None else None
        self._shared: SharedWindows | None = None
        if storage_url is not None:
            storage = storage_from_string(
                "async+" + check_storage_url(storage_url),
                implementation="redispy",
                wrap_exceptions=True,  # every client error is a StorageError
                socket_timeout=STORAGE_TIMEOUT_SECONDS,
                socket_connect_timeout=STORAGE_TIMEOUT_SECONDS,
            )
            assert isinstance(storage, SharedStorage)  # the async+ scheme makes an asyncio storage
            self._shared = SharedWindows(storage)
        self._where = redacted(storage_url or "memory://")
        self._unchecked = unchecked  # requests served unchecked because the storage did not answer
        self._failing_since: float | None = None
        self._retry_at = 0.0

    async def check(self, subject: str) -> None:
        """Count one request of `subject`; raise the 429 when its window is spent."""
        if self._local is not None:
            if not self._local.hit(self.limit, subject):
                self._refuse(self._local.get_window_stats(self.limit, subject).reset_time)
            return
        assert self._shared is not None
        if self._failing_since is not None and time.monotonic() < self._retry_at:
            self._serve_unchecked()
            return
        try:
            allowed = await self._shared.hit(self.limit, subject)
            reset_at = None if allowed else (await self._shared.get_window_stats(self.limit, subject)).reset_time
        except (StorageError, OSError, TimeoutError) as exc:
            self._storage_failed(exc)
            return
        if self._failing_since is not None:
            log.warning("rate-limit storage %s answers again: limits are enforced again", self._where)
            self._failing_since = None
        if reset_at is not None:
            self._refuse(reset_at)

    def _refuse(self, reset_at: float) -> None:
        raise rate_limited(max(1, math.ceil(reset_at - time.time())))

    def _storage_failed(self, exc: BaseException) -> None:
        if self._failing_since is None:  # logged once per outage, not per request
            self._failing_since = time.monotonic()
            cause = getattr(exc, "storage_error", exc)  # the client's own error inside limits' wrapper
            why = " ".join(f"{type(cause).__name__}: {cause}".split())
            log.warning(
                "rate-limit storage %s does not answer (%s): requests are served without a limit until it does",
                self._where,
                why,
            )
        self._retry_at = time.monotonic() + STORAGE_RETRY_SECONDS
        self._serve_unchecked()

    def _serve_unchecked(self) -> None:
        if self._unchecked is not None:
            self._unchecked.inc()
