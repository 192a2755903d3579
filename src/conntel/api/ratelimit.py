"""Per-credential rate limiting (off unless `--rate-limit` is given).

Fixed windows, counted in this process, as the public API describes its own
limit ("1200 requests per five minutes"): with several server processes each
counts its own requests.
"""

from __future__ import annotations

import math
import re
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from conntel.api.errors import rate_limited

# One rate: COUNT/[N]UNIT, at least one request per window of one second to one day.
_RATE = re.compile(r"\s*([0-9]{1,9})\s*(?:/|per)\s*([0-9]{0,9})\s*(second|minute|hour|day)s?\s*", re.IGNORECASE)
MAX_WINDOW_SECONDS = 86_400


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


class RateLimiter:
    def __init__(self, limit: RateLimitItem):
        self.limit = limit
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    def check(self, subject: str) -> None:
        if not self._limiter.hit(self.limit, subject):
            reset_at = self._limiter.get_window_stats(self.limit, subject).reset_time
            retry_after = max(1, math.ceil(reset_at - time.time()))
            raise rate_limited(retry_after)
