"""Retention's bench (part of `make bench`): the store's size over 60 simulated days with 7-day
retention, and what pruning costs ingestion and Get Event. Appends a section to bench/RESULTS.md.

    .venv/bin/python bench/retention.py [--backends sqlite,postgres] [--measures size,pace]
        [--days 60] [--connectors 200] [--posts-per-day 4] [--events-per-post 12] [--rounds 4]

size: a fleet of --connectors connectors (conntel's own simulator: realistic events) posts
  --posts-per-day batches a day each for --days simulated days, through the store port with a
  simulated clock (`a`, the collection time, is the simulated time: the same append and the same
  prune_pass a server runs, at full speed); after every round of posts, retention (7 days) runs as
  a server's background task would. The store's size (SQLite: the file and its WAL; PostgreSQL:
  every relation of the schema, indexes and TOAST included) is taken at the end of every simulated
  day. Flat: the last 30 days' largest size over day 30's.
pace: a store with a backlog of --backlog events collected 30 days ago, 20 connectors of recent
  events to read. In --rounds rounds, each an interleaved pair (order alternating): a server
  without retention, and one with `--retain-events 7d` (pruning the backlog throughout: the rows
  it deleted during the measure are reported); each measured for Get Event (wrk, random recent
  events) and ingestion (4 clients posting batches of 100 new events). Ratios with/without are
  per pair; reported: their geometric mean with the two orders weighted alike (the second server of a
  pair works on a store the first just grew: see order_balanced).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import httpx
from harness import RESULTS, WORK, BenchError, Server, conntel_argv, ensure_wrk, free_port, log, run_wrk

from conntel import admin
from conntel.client import lifecycles
from conntel.events import decode_batch
from conntel.retention import count_pass, prune_pass
from conntel.snapshots import decode_batch as decode_snapshots
from conntel.store import open_store
from conntel.store.base import Store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DAY = 86_400
START = 1_700_000_000  # the simulated clock's first day
KEEP = 7 * DAY


# ------------------------------------------------------------------ stores


def _sqlite_files(path: str, suffixes: tuple[str, ...] = ("", "-wal", "-shm")) -> list[Path]:
    return [Path(path + suffix) for suffix in suffixes if Path(path + suffix).exists()]


async def fresh_store(backend: str, name: str) -> str:
    if backend == "sqlite":
        path = str(WORK / f"{name}.db")
        for file in _sqlite_files(path):
            file.unlink()
        return path
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def size_bytes(database: str) -> int:
    if not database.startswith("postgresql://"):
        return sum(file.stat().st_size for file in _sqlite_files(database, ("", "-wal")))
    conn = await asyncpg.connect(database)
    try:
        value: int = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(oid)) FROM pg_class"
            " WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
        )
        return value
    finally:
        await conn.close()


async def fleet(store: Store, connectors: int, seed: int = 7) -> tuple[str, list[tuple[str, object]]]:
    account = (await admin.create_account(store, None, "bench"))["id"]
    made = []
    for i in range(connectors):
        connector = (await admin.create_connector(store, account, None, connectors))["id"]
        made.append((connector, lifecycles.connector_events(random.Random(seed * 100_003 + i), START)))
    return account, made


async def post(store: Store, account: str, connector: str, events: list[dict], at: int) -> None:
    await store.append_events(account, connector, decode_batch(json.dumps(events).encode(), 100_000), at)


# ------------------------------------------------------------------ size
_NETDEV_COUNTERS = ("recv_compressed", "recv_drop", "recv_errs", "recv_fifo", "recv_frame", "recv_multicast",
                    "sent_carrier", "sent_colls", "sent_compressed", "sent_drop", "sent_errs", "sent_fifo")  # fmt: skip


def snapshots_of(rng: random.Random, counters: dict[str, int], start: int, every: int, count: int) -> bytes:
    """`count` snapshots of one connector, `every` seconds apart from `start`: counters that grow."""
    batch = []
    for i in range(count):
        netdevs = []
        for name in ("eth0", "eth1", "wg0"):
            for field in ("recv_bytes", "sent_bytes", "recv_packets", "sent_packets"):
                counters[f"{name}.{field}"] = counters.get(f"{name}.{field}", 0) + rng.randrange(10**6, 10**9)
            netdev = {"name": name} | {f: counters[f"{name}.{f}"] for f in
                                       ("recv_bytes", "sent_bytes", "recv_packets", "sent_packets")}  # fmt: skip
            netdevs.append(netdev | {f: rng.randrange(3) for f in _NETDEV_COUNTERS})
        batch.append({"t": start + i * every, "v": "2026.3.1", "count_reclaim_failures": 0,
                      "count_reclaimed_paths": rng.randrange(50), "count_record_failed": 0,
                      "count_transmit_failures": rng.randrange(2), "netdevs": netdevs})  # fmt: skip
    return json.dumps(batch).encode()


async def simulate_size(backend: str, args: argparse.Namespace) -> dict:
    database = await fresh_store(backend, "conntel_bench_retention" if backend == "postgres" else "retention-size")
    store = open_store(database, pool_size=8)
    await store.start()
    started = time.monotonic()
    try:
        account, connectors = await fleet(store, args.connectors)
        keep = {"events": KEEP, "snapshots": KEEP} if args.snapshots_per_post else {"events": KEEP}
        rng, counters = random.Random(3), {connector: {} for connector, _ in connectors}
        days: list[dict] = []
        every = DAY // args.posts_per_day
        for day in range(args.days):
            deleted = 0
            for post_no in range(args.posts_per_day):
                now = START + day * DAY + post_no * every
                await asyncio.gather(
                    *(
                        post(store, account, connector, list(itertools.islice(events, args.events_per_post)), now)  # type: ignore[call-overload]
                        for connector, events in connectors
                    )
                )
                if args.snapshots_per_post:
                    step = every // args.snapshots_per_post
                    await asyncio.gather(
                        *(
                            store.append_snapshots(
                                account,
                                connector,
                                decode_snapshots(
                                    snapshots_of(rng, counters[connector], now - every, step, args.snapshots_per_post)
                                ),
                                now,
                            )
                            for connector, _ in connectors
                        )
                    )
                deleted += sum((await prune_pass(store, keep, now, batch=500, paced=False)).values())
            size = await size_bytes(database)
            kept = await count_pass(store, dict.fromkeys(keep, 0), START + (day + 1) * DAY)  # every row
            days.append({"day": day + 1, "bytes": size, "deleted": deleted} | kept)
            if (day + 1) % 10 == 0:
                log(f"{backend} day {day + 1}: {size / 2**20:.1f} MiB, kept {kept}")
    finally:
        await store.close()
    last = days[-30:]
    base = days[-31]["bytes"] if len(days) > 30 else days[0]["bytes"]
    return {
        "backend": backend,
        "days": days,
        "seconds": round(time.monotonic() - started, 1),
        "posted": args.connectors * args.posts_per_day * args.events_per_post * args.days,
        "day30_bytes": base,
        "last30_max_bytes": max(d["bytes"] for d in last),
        "last30_growth": max(d["bytes"] for d in last) / base - 1,
    }


# ------------------------------------------------------------------ pace


async def prepare_pace(backend: str, args: argparse.Namespace) -> dict:
    database = await fresh_store(backend, "conntel_bench_retention_pace" if backend == "postgres" else "retention-pace")
    store = open_store(database, pool_size=8)
    await store.start()
    try:
        account, connectors = await fleet(store, 20, seed=11)
        token = await admin.create_token(store, account, ["Magic WAN Read", "Magic WAN Write"], "bench", None)
        old = int(time.time()) - 30 * DAY
        per = args.backlog // len(connectors)
        for connector, events in connectors:  # the backlog: collected 30 days ago
            for _ in range(per // 1000):
                await post(store, account, connector, list(itertools.islice(events, 1000)), old)  # type: ignore[call-overload]
        paths = []
        for connector, events in connectors:  # recent events, the ones Get Event reads
            batch = list(itertools.islice(events, 1000))  # type: ignore[call-overload]
            await post(store, account, connector, batch, int(time.time()))
            base = f"/client/v4/accounts/{account}/magic/connectors/{connector}/telemetry/events"
            paths += [f"{base}/{ev['t']}.{ev['n']}" for ev in batch]
        paths_file = WORK / f"retention-paths-{backend}.txt"
        paths_file.write_text("\n".join(paths) + "\n")
        ingest_connector = connectors[0][0]
        ingest_events = connectors[0][1]
    finally:
        await store.close()
    return {"database": database, "account": account, "token": token.value, "paths": str(paths_file),
            "connector": ingest_connector, "events": ingest_events}  # fmt: skip


def ingest_for(url: str, token: str, bodies: list[bytes], seconds: float) -> float:
    """Events acknowledged per second by 4 clients posting the pre-encoded `bodies` in turn, for `seconds` or
    until every body is posted."""

    async def run() -> int:
        done = 0
        stop = time.monotonic() + seconds
        queue = iter(bodies)

        async def client() -> None:
            nonlocal done
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"}, timeout=30) as http:  # fmt: skip
                while time.monotonic() < stop:
                    body = next(queue, None)
                    if body is None:  # every body posted before the time was up: the rate is over less time
                        break
                    response = await http.post(url, content=body)
                    if response.status_code != 200:
                        raise BenchError(f"ingestion answered {response.status_code}: {response.text[:200]}")
                    done += 100

        await asyncio.gather(*(client() for _ in range(4)))
        return done

    started = time.monotonic()
    count = asyncio.run(run())
    return count / (time.monotonic() - started)


def measure_pace(backend: str, args: argparse.Namespace) -> dict:
    ensure_wrk()
    prepared = asyncio.run(prepare_pace(backend, args))
    database = prepared["database"]
    store_args = ["--database-url", database] if backend == "postgres" else ["--db", database]
    url_events = f"/client/v4/accounts/{prepared['account']}/magic/connectors/{prepared['connector']}/telemetry/events"
    events = prepared["events"]
    pairs = []
    for round_no in range(args.rounds):
        measured: dict[str, dict] = {}
        for mode in ("off", "on") if round_no % 2 == 0 else ("on", "off"):
            port = free_port()
            extra = ["--retain-events", "7d"] if mode == "on" else []
            argv = conntel_argv("serve", *store_args, "--port", str(port), "--no-access-log", *extra)
            server = Server(f"retention-{backend}-{mode}", argv, port).start()
            try:
                origin = f"http://127.0.0.1:{port}"
                backlog_before = asyncio.run(_backlog(database))
                if mode == "on":  # pruning under way before the clock starts
                    deadline = time.monotonic() + 30
                    while asyncio.run(_backlog(database)) >= backlog_before and time.monotonic() < deadline:
                        time.sleep(0.2)
                    backlog_before = asyncio.run(_backlog(database))
                wrk = run_wrk(origin, args.seconds, threads=2, connections=16,
                              script_args=[prepared["paths"], prepared["token"]])  # fmt: skip
                bodies = [
                    json.dumps(list(itertools.islice(events, 100))).encode() for _ in range(int(args.seconds * 400))
                ]
                rate = ingest_for(origin + url_events, prepared["token"], bodies, args.seconds)
                pruned = backlog_before - asyncio.run(_backlog(database))
                measured[mode] = {"get_rps": wrk.rps, "get_errors": wrk.errors, "ingest_eps": rate, "pruned": pruned}
            finally:
                server.stop()
        log(f"{backend} round {round_no + 1}: {json.dumps(measured)}")
        pairs.append(measured)
    get = [p["on"]["get_rps"] / p["off"]["get_rps"] for p in pairs]
    ingest = [p["on"]["ingest_eps"] / p["off"]["ingest_eps"] for p in pairs]
    return {"backend": backend, "pairs": pairs, "get_ratio": order_balanced(get),
            "ingest_ratio": order_balanced(ingest), "get_ratios": get, "ingest_ratios": ingest}  # fmt: skip


def order_balanced(ratios: list[float]) -> float:
    """The pairs' ratio with the order of each pair cancelled out: the geometric mean of the pairs where the
    server without pruning went first (even rounds) and of those where it went second, then of the two.

    Whichever server goes second works on a store the first one just grew (its ingestion adds hundreds of
    thousands of events): on PostgreSQL that made the second of a pair ~10 % slower at ingestion whichever
    it was (2026-12-07: 0.81, 0.86 with pruning second; 1.44 with it first), so a median over an odd number
    of pairs mostly measured the order.
    """
    by_order = [ratios[0::2], ratios[1::2]]
    means = [math.exp(statistics.fmean(math.log(r) for r in group)) for group in by_order if group]
    return math.exp(statistics.fmean(math.log(m) for m in means))


async def _backlog(database: str) -> int:
    store = open_store(database, pool_size=1)
    await store.start()
    try:
        return (await count_pass(store, {"events": KEEP}))["events"]
    finally:
        await store.close()


# ------------------------------------------------------------------ report


def section(sizes: list[dict], paces: list[dict], args: argparse.Namespace) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {now} — retention (bench/retention.py; `make bench`)", ""]
    if sizes:
        lines += [
            f"Store size with 7-day retention: {args.connectors} connectors, {args.posts_per_day} posts a day of"
            f" {args.events_per_post} events and {args.snapshots_per_post} snapshots each, {args.days} simulated"
            " days (a = the simulated clock).",
            "",
            "| backend | day 7 | day 14 | day 30 | day 45 | day 60 | last 30 days' max / day 30 | rows kept | wall |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for s in sizes:
            by_day = {d["day"]: d for d in s["days"]}
            cells = [f"{by_day[d]['bytes'] / 2**20:.1f} MiB" if d in by_day else "-" for d in (7, 14, 30, 45, 60)]
            lines.append(
                f"| {s['backend']} | {' | '.join(cells)} | {1 + s['last30_growth']:.3f}"
                f" | {s['days'][-1]['events']:,} events, {s['days'][-1].get('snapshots', 0):,} snapshots"
                f" | {s['seconds']} s |"
            )
        lines.append("")
    if paces:
        lines += [
            f"Pruning's cost: pairs of servers without / with `--retain-events 7d` pruning a backlog of"
            f" {args.backlog:,} events, interleaved, {args.seconds:g} s per measure; ratio with/without over"
            f" {args.rounds} pairs, the two orders weighted alike (`order_balanced`).",
            "",
            "| backend | Get Event ratio | ingestion ratio | per pair (get / ingest) | rows pruned while measured |",
            "|---|---|---|---|---|",
        ]
        for p in paces:
            per_pair = ", ".join(f"{g:.2f}/{i:.2f}" for g, i in zip(p["get_ratios"], p["ingest_ratios"], strict=True))
            pruned = ", ".join(f"{pair['on']['pruned']:,}" for pair in p["pairs"])
            lines.append(f"| {p['backend']} | {p['get_ratio']:.3f} | {p['ingest_ratio']:.3f} | {per_pair} | {pruned} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def add_to_results(text: str) -> None:
    content = RESULTS.read_text()
    marker = "\n## 20"  # the newest dated section first
    at = content.find(marker)
    RESULTS.write_text(content[: at + 1] + text + "\n" + content[at + 1 :] if at >= 0 else content + "\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--measures", default="size,pace")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--connectors", type=int, default=200)
    parser.add_argument("--posts-per-day", type=int, default=4)
    parser.add_argument("--events-per-post", type=int, default=12)
    parser.add_argument("--snapshots-per-post", type=int, default=6, help="0: events only")
    parser.add_argument("--backlog", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=4)  # even: each order as often
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--no-record", action="store_true", help="Print the section; do not add it to RESULTS.md.")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    backends, measures = args.backends.split(","), args.measures.split(",")
    sizes, paces = [], []
    try:
        for backend in backends:
            if "size" in measures:
                sizes.append(asyncio.run(simulate_size(backend, args)))
            if "pace" in measures:
                paces.append(measure_pace(backend, args))
    finally:
        Server.stop_all()
    (WORK / "retention-last-run.json").write_text(json.dumps({"sizes": sizes, "paces": paces}, default=str))
    text = section(sizes, paces, args)
    print(text)
    if not args.no_record:
        add_to_results(text)


if __name__ == "__main__":
    sys.exit(main())
