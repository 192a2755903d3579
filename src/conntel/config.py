"""Server settings: read once at start from flags, with CONNTEL_* environment fallbacks."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DB = "./conntel.db"
# Server processes by default, at most (one per CPU up to this). One process cannot use a 2-CPU machine:
# its event loop and granian's threads hand each request over between them, and wait on each other
# (bench/RESULTS.md, "Two worker processes by default"). More than two cost memory (about 70 MB each at 1M
# events) and, on SQLite, share one writer; give --workers on a bigger machine.
DEFAULT_MAX_WORKERS = 2

# Webhook endpoints an account may have (`conntel webhooks create` refuses one more).
MAX_WEBHOOKS_PER_ACCOUNT = 100


@dataclass(frozen=True)
class Settings:
    database: str = DEFAULT_DB  # an SQLite path or a database URL
    host: str = "127.0.0.1"
    port: int = 8787
    # Server processes sharing the port (and the database); None: `worker_count()` decides.
    workers: int | None = None
    pool_size: int = 10  # PostgreSQL connections per process
    max_batch_events: int = 5_000
    max_body_bytes: int = 8 * 1024 * 1024
    max_header_bytes: int = 32 * 1024  # request line plus headers
    header_timeout: float = 10.0  # seconds for a request's headers to arrive
    body_timeout: float = 30.0  # seconds for a request's body to arrive
    max_connections: int = 1024  # open connections per server process
    # Seconds a connection may go without its client acknowledging any of the bytes waiting for it (a
    # client that stopped reading); beyond, it is reset (conntel.server.stalled).
    send_timeout: float = 30.0
    # How long a looked-up credential is trusted before it is read again: the
    # upper bound on how late a revocation or expiry takes effect.
    credential_ttl_seconds: float = 1.0
    access_log: bool = True  # one JSON line per request on stderr
    # Requests per credential per window, in `limits` notation ("1200/5minutes"); None: unlimited.
    rate_limit: str | None = None
    # Where every process counts those requests (redis://...); None: each process in its own memory.
    rate_limit_storage: str | None = None
    # Connectors an account may have (API create and `conntel connectors create`; 400, 20030 beyond).
    max_connectors_per_account: int = 10_000
    # Retention (seconds, by when conntel collected a row); None: kept forever. See conntel.retention.
    retain_events: int | None = None
    retain_snapshots: int | None = None
    # Fleet health: a connector that pushed nothing for this many seconds is silent, unless its account
    # has its own threshold (`conntel accounts silent-after`). See conntel.health.
    silent_after: int = 15 * 60

    def worker_count(self) -> int:
        """`workers` if given; else one per CPU this process may use, at most DEFAULT_MAX_WORKERS; but one
        while `--rate-limit` counts in each process's own memory, which N processes make N times as generous."""
        if self.workers is not None:
            return self.workers
        if self.rate_limit and not self.rate_limit_storage:
            return 1
        return max(1, min(DEFAULT_MAX_WORKERS, usable_cpus()))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, on Linux; elsewhere the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
