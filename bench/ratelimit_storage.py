"""What a shared rate limit costs per request: Redis (through `limits`) against the PostgreSQL store.

Each round times, interleaved: the in-process memory limiter (today's default), conntel's
RateLimiter on Redis, and the cheapest PostgreSQL equivalent (one UPSERT ... RETURNING on an
UNLOGGED table of windows, on an asyncpg pool of 10, the server's default). Every hit is one
request's check, for 200 credentials, sequentially (latency) and 32 at a time (throughput).

    .venv/bin/python bench/ratelimit_storage.py [--rounds 5] [--hits 4000]
        [--redis redis://127.0.0.1:6379/15] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from conntel.api.ratelimit import RateLimiter, parse_rate_limit

LIMIT = parse_rate_limit("1000000/5minutes")  # never reached: every hit is counted and allowed
SUBJECTS = [f"token:{i:032x}" for i in range(200)]
CONCURRENCY = 32


class PostgresWindows:
    """A fixed-window counter in PostgreSQL, as conntel would keep one in its store."""

    def __init__(self, pool: asyncpg.Pool, window: int):
        self.pool, self.window = pool, window

    async def check(self, subject: str) -> None:
        start = int(time.time()) // self.window * self.window
        hits = await self.pool.fetchval(
            "INSERT INTO rate_limit_windows VALUES ($1, $2, 1) ON CONFLICT (subject, window_start)"
            " DO UPDATE SET hits = rate_limit_windows.hits + 1 RETURNING hits",
            subject,
            start,
        )
        assert hits <= LIMIT.amount


async def timed(check: Callable[[str], Awaitable[None]], hits: int, concurrency: int) -> float:
    """Microseconds per hit."""
    queue = iter(range(hits))

    async def worker() -> None:
        for i in queue:
            await check(SUBJECTS[i % len(SUBJECTS)])

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter() - began) / hits * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hits", type=int, default=4000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    name = f"conntel_bench_ratelimit_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    pool = await asyncpg.create_pool(args.postgres_url.rsplit("/", 1)[0] + "/" + name, min_size=10, max_size=10)
    try:
        await pool.execute(
            "CREATE UNLOGGED TABLE rate_limit_windows"
            " (subject text, window_start bigint, hits integer, PRIMARY KEY (subject, window_start))"
        )
        contenders: dict[str, Callable[[str], Awaitable[None]]] = {
            "memory (one process)": RateLimiter(LIMIT).check,
            "redis (limits, redis-py)": RateLimiter(LIMIT, args.redis).check,
            "postgresql (UPSERT)": PostgresWindows(pool, LIMIT.get_expiry()).check,
        }
        for check in contenders.values():  # warm-up: connections made, statements prepared
            await timed(check, 400, CONCURRENCY)
        results: dict[tuple[str, int], list[float]] = {}
        for round_ in range(args.rounds):
            for concurrency in (1, CONCURRENCY):
                for label, check in contenders.items():
                    results.setdefault((label, concurrency), []).append(await timed(check, args.hits, concurrency))
            print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    finally:
        await pool.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()

    print(f"\n{args.rounds} interleaved rounds, {args.hits} hits each, 200 credentials; median µs per hit\n")
    print("| storage | 1 at a time | 32 at a time | ratio to redis (32) |")
    print("|---|---|---|---|")
    redis32 = statistics.median(results[("redis (limits, redis-py)", CONCURRENCY)])
    for label in contenders:
        one, many = (statistics.median(results[(label, c)]) for c in (1, CONCURRENCY))
        print(f"| {label} | {one:.1f} | {many:.1f} | {many / redis32:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
