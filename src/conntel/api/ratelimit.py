"""Per-credential rate limiting (off unless `--rate-limit` is given).

Fixed windows, counted in this process, as the public API describes its own
limit ("1200 requests per five minutes"): with several server processes each
counts its own requests.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from conntel.api.errors import rate_limited


def parse_rate_limit(text: str) -> RateLimitItem:
    """`1200/5minutes`, `10/second`, ... (the `limits` notation); ValueError when unreadable."""
    return parse(text)


class RateLimiter:
    def __init__(self, limit: RateLimitItem):
        self.limit = limit
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    def check(self, subject: str) -> None:
        if not self._limiter.hit(self.limit, subject):
            reset_at = self._limiter.get_window_stats(self.limit, subject).reset_time
            retry_after = max(1, math.ceil(reset_at - time.time()))
            raise rate_limited(retry_after)
