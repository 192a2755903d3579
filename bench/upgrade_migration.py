"""How long a big old store takes to migrate: the time `conntel serve` is down for an upgrade.

Builds, once per run, a store at the schema of release f6acaae (the committed upgrade fixture of
tests/fixtures/upgrades/, made by that release) grown to --events events by SQL, on both backends.
Then, in interleaved rounds, each conntel tree given (its `src` folder; default: this one) opens a
fresh copy of it (the SQLite file copied, the PostgreSQL database cloned from a template) and its
`store.start()` - what `conntel serve` runs before it listens - is timed: the migration. Beside it,
the same start on the copy it just migrated (nothing left to do): the floor.

A tree's migrations are its own; `--with-migrations DIR ...` adds other trees' migration files
(e.g. the other branches of a round, before they merge) to a temporary copy of the first tree.

    .venv/bin/python bench/upgrade_migration.py --events 1000000
    .venv/bin/python bench/upgrade_migration.py --tree src --with-migrations ../wt-ops/src/conntel/store/migrations
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg  # noqa: F401  (the PostgreSQL side needs it installed)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "upgrades"
OLD = "f6acaae"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
KINDS = ["Init", "Reconcile", "StartUpgrade", "FinishUpgradeSuccess", "RekeyStart", "RekeyComplete", "HaTransition"]

TIME_START = """
import asyncio, sys, time
from conntel.store import open_store
async def main():
    store = open_store(sys.argv[1], pool_size=1)
    began = time.perf_counter()
    await store.start()
    print(time.perf_counter() - began)
    await store.close()
asyncio.run(main())
"""


def psql(url: str, sql: str) -> str:
    done = subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)
    return done.stdout.decode().strip()


def pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def build_sqlite(path: Path, events: int) -> None:
    import sqlite3

    shutil.copyfile(FIXTURES / f"{OLD}-sqlite.db", path)
    conn = sqlite3.connect(path)
    connectors = [row[0] for row in conn.execute("SELECT connector_id FROM connectors WHERE account_id = 'acct-1'")]
    base = conn.execute("SELECT next_seq FROM accounts WHERE account_id = 'acct-1'").fetchone()[0]
    rows = (
        ("acct-1", connectors[i % len(connectors)], 1_800_000_000 + i // 4, i % 4, 1_800_000_000 + i // 50,
         KINDS[i % len(KINDS)], None if i % 3 else "2025.1.0", f'{{"k":"{KINDS[i % len(KINDS)]}"}}'.encode(), base + i)
        for i in range(events)
    )  # fmt: skip
    with conn:
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE accounts SET next_seq = ? WHERE account_id = 'acct-1'", (base + events,))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def build_postgres(name: str, events: int) -> None:
    psql(PG_ADMIN, f'CREATE DATABASE "{name}"')
    url = pg_url(name)
    subprocess.run(
        ["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(FIXTURES / f"{OLD}-postgres.sql")],
        check=True,
        capture_output=True,
    )
    kinds = "ARRAY[" + ",".join(f"'{k}'" for k in KINDS) + "]"
    psql(
        url,
        f"""
        WITH c AS (SELECT array_agg(connector_id ORDER BY connector_id) AS ids FROM connectors
                   WHERE account_id = 'acct-1'),
             s AS (SELECT next_seq FROM accounts WHERE account_id = 'acct-1')
        INSERT INTO events (account_id, connector_id, t, n, a, k, v, e, seq)
        SELECT 'acct-1', c.ids[1 + i % cardinality(c.ids)], 1800000000 + i / 4, i % 4, 1800000000 + i / 50,
               ({kinds})[1 + i % {len(KINDS)}], CASE WHEN i % 3 = 0 THEN '2025.1.0' END,
               convert_to('{{"k":"' || ({kinds})[1 + i % {len(KINDS)}] || '"}}', 'UTF8'), s.next_seq + i
        FROM generate_series(0, {events - 1}) AS i, c, s;
        UPDATE accounts SET next_seq = next_seq + {events} WHERE account_id = 'acct-1';
        """,
    )
    psql(url, "VACUUM ANALYZE")
    psql(url, "CHECKPOINT")


def tree_with(tree: Path, extra: list[Path], folder: Path) -> Path:
    """A copy of `tree` (a src folder) whose migrations also hold the files of `extra` migration folders."""
    copy = folder / "src"
    shutil.copytree(tree, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for migrations in extra:
        for backend in ("sqlite", "postgres"):
            for sql in (migrations / backend).glob("*.sql"):
                target = copy / "conntel" / "store" / "migrations" / backend / sql.name
                if not target.exists():
                    shutil.copyfile(sql, target)
    return copy


def timed_start(tree: Path, database: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", TIME_START, database],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, default=ROOT / "src")
    parser.add_argument("--with-migrations", type=Path, nargs="*", default=[])
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    backends = args.backends.split(",")

    with tempfile.TemporaryDirectory(prefix="conntel-upgrade-bench-") as folder:
        work = Path(folder)
        tree = tree_with(args.tree.resolve(), [p.resolve() for p in args.with_migrations], work)
        migrations = {
            b: sorted(p.name for p in (tree / "conntel/store/migrations" / b).glob("*.sql")) for b in backends
        }
        old_db, old_pg = work / "old.db", f"conntel_bench_upgrade_{uuid.uuid4().hex[:8]}"
        began = time.perf_counter()
        if "sqlite" in backends:
            build_sqlite(old_db, args.events)
        if "postgres" in backends:
            build_postgres(old_pg, args.events)
        print(f"old stores of {args.events:,} events built in {time.perf_counter() - began:.0f} s", flush=True)
        results: dict[tuple[str, str], list[float]] = {}
        try:
            for round_ in range(args.rounds):
                for backend in backends:
                    if backend == "sqlite":
                        database = str(work / "copy.db")
                        shutil.copyfile(old_db, database)
                    else:
                        name = f"{old_pg}_copy"
                        psql(PG_ADMIN, f'DROP DATABASE IF EXISTS "{name}"')
                        psql(PG_ADMIN, f'CREATE DATABASE "{name}" TEMPLATE "{old_pg}"')
                        database = pg_url(name)
                    results.setdefault((backend, "migrate"), []).append(timed_start(tree, database))
                    results.setdefault((backend, "up to date"), []).append(timed_start(tree, database))
                print(f"round {round_ + 1}/{args.rounds} done", flush=True)
        finally:
            if "postgres" in backends:
                psql(PG_ADMIN, f'DROP DATABASE IF EXISTS "{old_pg}_copy" WITH (FORCE)')
                psql(PG_ADMIN, f'DROP DATABASE IF EXISTS "{old_pg}" WITH (FORCE)')

    print(f"\nA store of release {OLD} with {args.events:,} events opened by {args.tree} plus"
          f" {[str(p) for p in args.with_migrations]}; median of {args.rounds} interleaved rounds\n")  # fmt: skip
    print("| backend | migrations | start() migrating | start() up to date | difference |")
    print("|---|---|---|---|---|")
    for backend in backends:
        migrate = statistics.median(results[(backend, "migrate")])
        floor = statistics.median(results[(backend, "up to date")])
        names = ", ".join(migrations[backend])
        print(f"| {backend} | {names} | {migrate:.2f} s | {floor:.2f} s | {migrate - floor:.2f} s |")


if __name__ == "__main__":
    main()
