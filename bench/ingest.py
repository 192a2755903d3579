"""Ingestion: conntel over HTTP vs an in-process SQLite insert loop of the same rows.

In every round, for each backend: a fresh store (SQLite file, or PostgreSQL
database `conntel_bench_ingest_<N>_1`) with one connector, and N events of
that connector (conntel's fleet simulator, the same in every round and on
every backend) posted in batches of 1,000 by 4 concurrent clients, each
client a contiguous quarter of the connector's timeline, in order. The
bodies are JSON-encoded beforehand (stores.post_all), so the clients' own
work is small; their CPU time is reported beside the server's to show it.

For SQLite, the same round first inserts the very same rows in-process into
a fresh file: the schema made by conntel's own migrate(), the connection made
by conntel's own _connect() (WAL, synchronous=FULL, so the same durability),
one `BEGIN IMMEDIATE ... COMMIT` per batch of 1,000 rows with executemany and
conntel's INSERT (the same columns: `seq`, each account's commit-order
numbering, too when the schema has it), no HTTP, no JSON, no validation. The
rows, `e` encoded as conntel stores it, are built before the clock starts.
Afterwards both files must hold the very same events (a digest of every
column but the receive time `a` and `seq`). The ratio is the HTTP rate over the loop's rate; with
several rounds, the median. PostgreSQL's rate is reported as an absolute
figure (no in-process baseline: its clients are always remote).

The last round's store (one connector holding N events) is then the store of
the deep-page measure (pages.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

import msgspec
from harness import WORK, BenchError, Server, log
from stores import Backend, Dataset, Workload, load, prepare, settle

from conntel.store.sqlite import _connect, migrate

# The columns conntel.store.sqlite.SqliteStore.append_events writes, and its conflict clause; plus `seq`
# (each account numbers its events in commit order, one run of numbers per batch) where the schema has it.
COLUMNS = ("account_id", "connector_id", "t", "n", "a", "k", "v", "e")
BASELINE_DB = WORK / "ingest-baseline.db"


def baseline_batches(ds: Dataset, workload: Workload, received_at: int) -> list[list[tuple]]:
    """The workload's rows as the server stores them, batch by batch, in the order the clients interleave."""
    connector_of = {ds.path(i): cid for i, cid in enumerate(ds.connector_ids)}
    return [
        [
            (
                ds.account,
                connector_of[path],
                ev["t"],
                ev["n"],
                received_at,
                ev["e"]["k"],
                ev.get("v"),
                msgspec.json.encode(ev["e"]),
            )
            for ev in json.loads(body)
        ]
        for path, body, _ in workload.bodies()
    ]


def insert_loop(batches: list[list[tuple]]) -> dict:
    """Insert the batches into a fresh SQLite file as conntel's writer would, minus everything else."""
    for suffix in ("", "-wal", "-shm"):
        BASELINE_DB.with_name(BASELINE_DB.name + suffix).unlink(missing_ok=True)
    conn = _connect(str(BASELINE_DB))
    try:
        migrate(conn)
        pragmas = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("journal_mode", "synchronous")}
        numbered = any(column[1] == "seq" for column in conn.execute("PRAGMA table_info(events)"))
        columns = COLUMNS + (("seq",) if numbered else ())
        insert = (
            f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) ON CONFLICT DO NOTHING"
        )
        if numbered:  # numbered beforehand, off the clock
            batches = numbered_runs(batches)
        started, cpu0 = time.monotonic(), time.process_time()
        for rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
        seconds, cpu_s = time.monotonic() - started, time.process_time() - cpu0
    finally:
        conn.close()
    events = sum(len(rows) for rows in batches)
    return {
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds),
        "cpu_s": round(cpu_s, 2),
        "pragmas": pragmas,
        "columns": list(columns),
    }


def numbered_runs(batches: list[list[tuple]]) -> list[list[tuple]]:
    """Each row with its `seq`: 1, 2, 3, ... in batch order, as the server numbers one account's events."""
    numbered, seq = [], 1
    for rows in batches:
        numbered.append([(*row, seq + i) for i, row in enumerate(rows)])
        seq += len(rows)
    return numbered


def rows_digest(path: str) -> tuple[int, str]:
    """How many events a SQLite store holds and a digest of them all (every column but `a` and `seq`)."""
    digest = hashlib.sha256()
    count = 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for row in conn.execute(
            "SELECT account_id, connector_id, t, n, k, v, e FROM events ORDER BY account_id, connector_id, t, n"
        ):
            digest.update(repr(row).encode())
            count += 1
    finally:
        conn.close()
    return count, digest.hexdigest()


def ingest_round(
    backend: Backend, args: argparse.Namespace, port: int, around: Callable[[Server], ContextManager] | None = None
) -> tuple[Dataset, dict]:
    """One fresh store loaded over HTTP (and, for SQLite, the in-process baseline first): (dataset, figures)."""
    ds = Dataset.for_size(backend, args.ingest_events, 1, tag="ingest")
    workload, _ = prepare(ds, args.ingest_batch, args.ingest_clients, sample=1)
    figures: dict = {}
    if backend.name == "sqlite":
        batches = baseline_batches(ds, workload, int(time.time()))
        figures["baseline"] = insert_loop(batches)
        log(
            f"in-process insert loop: {ds.events:,} rows in {figures['baseline']['seconds']:.2f}s = "
            f"{figures['baseline']['events_per_s']:,} rows/s ({figures['baseline']['pragmas']})"
        )
    figures["http"] = load(ds, workload, port, f"conntel-{backend.name}-ingest", around)
    if backend.name == "sqlite":
        served, baseline = rows_digest(ds.store), rows_digest(str(BASELINE_DB))
        if served != baseline:
            raise BenchError(f"the HTTP store and the baseline file hold different events: {served} vs {baseline}")
        figures["ratio"] = figures["http"]["events_per_s"] / figures["baseline"]["events_per_s"]
        log(f"ingestion HTTP / in-process = {figures['ratio']:.3f} (both files hold the same {served[0]:,} events)")
    return ds, figures


def run(backends: list[Backend], args: argparse.Namespace, port: int) -> tuple[list[dict], list[Dataset]]:
    """Every round on every backend: a summary per backend, and each backend's last ingested store."""
    summaries, datasets = [], []
    for backend in backends:
        rounds = []
        for i in range(args.rounds):
            log(
                f"ingestion {backend.label}"
                + (f", round {i + 1}" if args.rounds > 1 else "")
                + f": {args.ingest_events:,} events, batches of {args.ingest_batch}, {args.ingest_clients} clients"
            )
            ds, figures = ingest_round(backend, args, port)
            rounds.append(figures)
        settle(ds)  # PostgreSQL: VACUUM (ANALYZE) + CHECKPOINT before the pages are read
        datasets.append(ds)
        summaries.append(summarize(backend, rounds, args))
    return summaries, datasets


def summarize(backend: Backend, rounds: list[dict], args: argparse.Namespace) -> dict:
    """The median round (by ratio for SQLite, by rate for PostgreSQL) and every round's figures."""
    key = (lambda r: r["ratio"]) if backend.name == "sqlite" else (lambda r: r["http"]["events_per_s"])
    median = sorted(rounds, key=key)[len(rounds) // 2]
    return {
        "name": backend.name,
        "label": backend.label,
        "events": args.ingest_events,
        "batch": args.ingest_batch,
        "clients": args.ingest_clients,
        "ratio": statistics.median(r["ratio"] for r in rounds) if backend.name == "sqlite" else None,
        "median": median,
        "rounds": rounds,
    }


def profiled_round(
    backend: Backend, args: argparse.Namespace, port: int, around: Callable[[Server], ContextManager]
) -> dict:
    """An extra, unmeasured round with a profiler attached to the server (see profiling.py)."""
    _, figures = ingest_round(backend, args, port, around)
    return figures["http"]
