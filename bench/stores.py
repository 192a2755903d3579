"""The stores the bench serves: backends, datasets, and loading events through the ingestion API.

A dataset is N events over C connectors in one backend's store, put there
through conntel's real ingestion API (POST .../telemetry/events) by a few
concurrent clients; both backends get the very same events, from conntel's
own fleet simulator. The Get Event dataset (1M events over 80 connectors) is
kept and reused between runs; the ingestion measure builds a fresh one every
time (see ingest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import random
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from harness import API, BASE_T, ROOT, WORK, BenchError, Server, cli_json, conntel_argv, cpu_seconds, fmt_mib, log

from conntel.client import lifecycles
from conntel.store.urls import redacted

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"

# ------------------------------------------------------------------ event data
# The events come from conntel's own fleet simulator (conntel.client.lifecycles), the
# same realistic lifecycles the demo shows, taken `count` at a time.


def connector_events(rng: random.Random, count: int) -> list[dict]:
    """`count` events of one connector, (t, n) strictly increasing."""
    return list(itertools.islice(lifecycles.connector_events(rng, BASE_T + rng.randrange(86_400)), count))


# ---------------------------------------------------------------------- backends
# Everything that differs between the stores is here: where a dataset lives
# (`store`: what conntel's --db or --database-url gets), the arguments naming
# it, how to start it empty or as a copy of another, what to do once it is
# loaded, how to count its events and weigh it, and which other processes do
# its work while conntel serves (PostgreSQL's backends; none for SQLite, which
# runs in-process).


class Backend:
    name = ""  # as in --backends
    label = ""  # in tables and logs
    target = 0.0  # Get Event ratio conntel/bare aimed at with 1M events
    prefix = ""  # of the dataset's files under bench/work/
    after_load_note = ""  # what after_load() does, for the report

    def store(self, events: int, connectors: int, tag: str = "") -> str:
        raise NotImplementedError

    def describe(self) -> str | None:
        """The database server, for the report; raises BenchError if it cannot be reached."""
        return None

    def display(self, store: str) -> str:
        return store

    def store_args(self, store: str) -> list[str]:
        raise NotImplementedError

    def serve_args(self, store: str) -> list[str]:
        return self.store_args(store)

    def reset(self, store: str) -> None:
        """Make `store` exist and be empty (conntel creates the schema)."""
        raise NotImplementedError

    def clone(self, source: str, copy: str) -> None:
        """Make `copy` a copy of the (idle) store `source`, replacing any older copy."""
        raise NotImplementedError

    def drop(self, store: str) -> None:
        raise NotImplementedError

    def after_load(self, store: str) -> None:
        pass

    def count_events(self, store: str, account: str) -> int | None:
        raise NotImplementedError

    def size_bytes(self, store: str) -> int:
        raise NotImplementedError

    def helper_pids(self, store: str) -> list[int]:
        return []


class SqliteBackend(Backend):
    name, label, target = "sqlite", "SQLite", 0.60

    def store(self, events: int, connectors: int, tag: str = "") -> str:
        return str(WORK / f"{tag + '-' if tag else ''}events-{events}-connectors-{connectors}.db")

    def display(self, store: str) -> str:
        return str(Path(store).relative_to(ROOT))

    def store_args(self, store: str) -> list[str]:
        return ["--db", store]

    def reset(self, store: str) -> None:
        self.drop(store)

    def clone(self, source: str, copy: str) -> None:
        self.drop(copy)
        src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(copy)
        try:
            src.backup(dst)  # page by page, a consistent snapshot (WAL mode included)
        finally:
            src.close()
            dst.close()

    def drop(self, store: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(store + suffix).unlink(missing_ok=True)

    def count_events(self, store: str, account: str) -> int | None:
        if not Path(store).exists():
            return None
        try:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30) as con:
                return con.execute("SELECT count(*) FROM events WHERE account_id = ?", (account,)).fetchone()[0]
        except sqlite3.Error as exc:
            log(f"could not count events in {self.display(store)}: {exc}")
            return None

    def size_bytes(self, store: str) -> int:
        return sum(p.stat().st_size for p in (Path(store), Path(f"{store}-wal")) if p.exists())


class PostgresBackend(Backend):
    name, label, target = "postgres", "PostgreSQL", 0.40
    prefix = "postgres-"
    after_load_note = "VACUUM (ANALYZE) + CHECKPOINT"

    def __init__(self, server_url: str, pool_size: int):
        self.server_url, self.pool_size = server_url, pool_size

    def store(self, events: int, connectors: int, tag: str = "") -> str:
        return with_database(self.server_url, f"conntel_bench_{tag + '_' if tag else ''}{events}_{connectors}")

    def describe(self) -> str:
        settings = (
            "SELECT current_setting('server_version'), current_setting('shared_buffers'), "
            "current_setting('synchronous_commit'), current_setting('autovacuum')"
        )
        try:
            version, buffers, sync, autovacuum = pg(with_database(self.server_url, "postgres"), "fetchrow", settings)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise BenchError(
                f"PostgreSQL at {redacted(self.server_url)} cannot be reached ({exc}); start it, "
                "point --postgres-url at it, or leave it out with --backends sqlite"
            ) from None
        server = urllib.parse.urlsplit(self.server_url)
        return (
            f"PostgreSQL {version} at {server.hostname}:{server.port or 5432} (shared_buffers {buffers}, "
            f"synchronous_commit {sync}, autovacuum {autovacuum}); conntel pool of {self.pool_size} connections"
        )

    def display(self, store: str) -> str:
        return redacted(store)

    def store_args(self, store: str) -> list[str]:
        return ["--database-url", store]

    def serve_args(self, store: str) -> list[str]:
        return [*self.store_args(store), "--pool-size", str(self.pool_size)]

    def reset(self, store: str) -> None:
        self.drop(store)
        pg(with_database(store, "postgres"), "execute", f'CREATE DATABASE "{database_name(store)}"')

    def clone(self, source: str, copy: str) -> None:
        self.drop(copy)
        pg(
            with_database(copy, "postgres"),
            "execute",
            f'CREATE DATABASE "{database_name(copy)}" TEMPLATE "{database_name(source)}"',
        )

    def drop(self, store: str) -> None:
        pg(
            with_database(store, "postgres"),
            "execute",
            f'DROP DATABASE IF EXISTS "{database_name(store)}" WITH (FORCE)',
        )

    def after_load(self, store: str) -> None:
        # Autovacuum may be off (it is on the bench machine) and would otherwise
        # fire in the middle of a measure: statistics, visibility map and hint
        # bits are settled now, and the dirty pages flushed.
        log("VACUUM (ANALYZE) and CHECKPOINT after the load")
        pg(store, "execute", "VACUUM (ANALYZE)")
        pg(store, "execute", "CHECKPOINT")

    def count_events(self, store: str, account: str) -> int | None:
        try:
            return pg(store, "fetchval", "SELECT count(*) FROM events WHERE account_id = $1", account)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log(f"could not count events in {self.display(store)}: {exc}")
            return None

    def size_bytes(self, store: str) -> int:
        return pg(store, "fetchval", "SELECT pg_database_size(current_database())")

    def helper_pids(self, store: str) -> list[int]:
        rows = pg(
            store,
            "fetch",
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        return [row[0] for row in rows]


def with_database(url: str, name: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path="/" + name))


def database_name(url: str) -> str:
    return urllib.parse.urlsplit(url).path.lstrip("/")


def pg(url: str, method: str, sql: str, *params: Any) -> Any:
    """Run one statement on a connection of its own; `method` is the asyncpg.Connection method to use."""

    async def run() -> Any:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return await getattr(conn, method)(sql, *params)
        finally:
            await conn.close()

    return asyncio.run(run())


BACKENDS = ("sqlite", "postgres")  # the default --backends, in this order


def make_backends(names: list[str], postgres_url: str, pool_size: int) -> list[Backend]:
    return [PostgresBackend(postgres_url, pool_size) if name == "postgres" else SqliteBackend() for name in names]


# ------------------------------------------------------------------- datasets


@dataclass
class Dataset:
    backend: Backend
    events: int
    connectors: int
    store: str
    meta_path: Path
    paths_file: Path
    account: str = ""
    connector_ids: list[str] = field(default_factory=list)
    read_token: str = ""
    write_token: str = ""
    load: dict = field(default_factory=dict)
    reused: bool = False

    @classmethod
    def for_size(cls, backend: Backend, events: int, connectors: int, tag: str = "") -> Dataset:
        stem = WORK / f"{backend.prefix}{tag + '-' if tag else ''}events-{events}-connectors-{connectors}"
        return cls(
            backend,
            events,
            connectors,
            backend.store(events, connectors, tag),
            stem.with_suffix(".json"),
            stem.with_suffix(".paths"),
        )

    @property
    def where(self) -> str:
        return self.backend.display(self.store)

    @property
    def seed(self) -> str:
        # Not the tag: a dataset of the same size holds the same events in every store.
        return f"conntel-bench-{self.events}-{self.connectors}"

    def path(self, connector: int = 0) -> str:
        """The events path of one of its connectors."""
        return API.format(account=self.account, connector=self.connector_ids[connector])

    def count_events(self) -> int | None:
        return self.backend.count_events(self.store, self.account)


# More `conntel serve` arguments for every conntel server of the run (--serve-arg: A/B of server options).
SERVE_ARGS: list[str] = []


def conntel_server(ds: Dataset, port: int, name: str) -> Server:
    argv = conntel_argv(
        "serve", *ds.backend.serve_args(ds.store), "--host", "127.0.0.1", "--port", str(port), *SERVE_ARGS
    )
    return Server(name, argv, port, group=ds.backend.name)


def try_reuse(ds: Dataset) -> bool:
    if not (ds.meta_path.exists() and ds.paths_file.exists()):
        return False
    try:
        meta = json.loads(ds.meta_path.read_text())
    except (OSError, ValueError):
        return False
    if (
        not meta.get("complete")
        or meta.get("events") != ds.events
        or meta.get("connectors") != ds.connectors
        or meta.get("store", ds.store) != ds.store
    ):
        return False
    ds.account, ds.connector_ids = meta["account"], meta["connector_ids"]
    counted = ds.count_events()
    if counted != ds.events:
        log(f"{ds.where} holds {counted} events, not {ds.events}: rebuilding")
        return False
    ds.read_token, ds.write_token, ds.load = meta["read_token"], meta["write_token"], meta["load"]
    ds.reused = True
    return True


@dataclass
class Workload:
    """A dataset's events as its loading clients will post them."""

    clients: list[list[tuple[str, bytes, int]]]  # per client, in order: (path, JSON body, events in it)
    batch: int
    kinds: dict[str, int]
    generate_s: float

    def bodies(self) -> list[tuple[str, bytes, int]]:
        """Every batch once, the clients' batches interleaved (first of each client, then second, ...)."""
        return [b for group in itertools.zip_longest(*self.clients) for b in group if b is not None]


def prepare(ds: Dataset, batch: int, clients: int, sample: int) -> tuple[Workload, float]:
    """An empty store with the dataset's account, connectors and tokens (CLI); its events, generated.

    Returns the workload and the seconds the CLI setup took. `sample` events' paths go to ds.paths_file.
    """
    for path in (ds.meta_path, ds.paths_file):
        path.unlink(missing_ok=True)
    ds.backend.reset(ds.store)
    ds.account = hashlib.md5(ds.seed.encode()).hexdigest()
    ds.connector_ids = [hashlib.md5(f"{ds.seed}-connector-{i}".encode()).hexdigest() for i in range(ds.connectors)]

    log(f"creating account, {ds.connectors} connector(s) and tokens in {ds.where} (CLI)")
    started = time.monotonic()
    store = ds.backend.store_args(ds.store)
    cli_json("accounts", "create", "--id", ds.account, "--name", "bench", *store)
    for cid in ds.connector_ids:
        cli_json("connectors", "create", "--account", ds.account, "--id", cid, *store)
    ds.write_token = cli_json(
        "tokens", "create", "--account", ds.account, "--permission", "Magic WAN Write", "--name", "bench-load", *store
    )["value"]
    ds.read_token = cli_json(
        "tokens", "create", "--account", ds.account, "--permission", "Magic WAN Read", "--name", "bench-read", *store
    )["value"]
    setup_s = time.monotonic() - started

    log(f"generating {ds.events:,} events")
    started = time.monotonic()
    rng = random.Random(ds.seed)
    sampler = random.Random(ds.seed + "-sample")
    sample_p = min(1.0, sample / ds.events)
    per_connector = [
        ds.events // ds.connectors + (1 if i < ds.events % ds.connectors else 0) for i in range(ds.connectors)
    ]
    bodies: list[tuple[str, bytes, int]] = []
    kinds: dict[str, int] = {}
    paths: list[str] = []
    for i, count in enumerate(per_connector):
        path = ds.path(i)
        events = connector_events(random.Random(rng.random()), count)
        for event in events:
            kinds[event["e"]["k"]] = kinds.get(event["e"]["k"], 0) + 1
            if sampler.random() < sample_p:
                paths.append(f"{path}/{event['t']}.{event['n']}")
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]
            bodies.append((path, json.dumps(chunk, separators=(",", ":")).encode(), len(chunk)))
    # Each client posts one contiguous run of the batches, so a connector's
    # batches stay in (t, n) order on a client (a connector spans several
    # clients only when there are fewer connectors than clients).
    cuts = [len(bodies) * i // clients for i in range(clients + 1)]
    workload = Workload(
        [bodies[a:b] for a, b in itertools.pairwise(cuts)],
        batch,
        dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        time.monotonic() - started,
    )
    sampler.shuffle(paths)
    ds.paths_file.write_text("\n".join(paths) + "\n")
    log(
        f"generated in {workload.generate_s:.1f}s; {len(paths):,} sampled paths; "
        f"{len(bodies)} batches of up to {batch} over {clients} clients"
    )
    return workload, setup_s


def load(
    ds: Dataset, workload: Workload, port: int, name: str, around: Callable[[Server], ContextManager] | None = None
) -> dict:
    """Post the workload through a fresh `conntel serve` on the dataset's store; the load's figures.

    `around(server)`, if given, is entered for the duration of the posting (e.g. a profiler).
    """
    server = conntel_server(ds, port, name)
    server.start()
    try:
        log(f"loading through POST {API.format(account='…', connector='…')} (pid {server.pid})")
        with around(server) if around else contextlib.nullcontext():
            cpu0, client_cpu0 = server.cpu_seconds(), time.process_time()
            started = time.monotonic()
            accepted = asyncio.run(post_all(port, ds.write_token, workload.clients, ds.events))
            load_s = time.monotonic() - started
            cpu_s, client_cpu_s = server.cpu_seconds() - cpu0, time.process_time() - client_cpu0
        rss = server.rss_kib()
        # The pool's connections were opened for the load: all their CPU time is the load's.
        db_cpu_s = sum(cpu_seconds(pid) for pid in ds.backend.helper_pids(ds.store))
    finally:
        server.stop()
    if accepted != ds.events:
        raise BenchError(f"the server accepted {accepted} events, expected {ds.events}")
    log(
        f"loaded {ds.events:,} events in {load_s:.1f}s = {ds.events / load_s:,.0f} events/s "
        f"(server CPU {cpu_s:.1f}s, client CPU {client_cpu_s:.1f}s, RSS {fmt_mib(rss)}"
        + (f"; {ds.backend.label} backends CPU {db_cpu_s:.1f}s)" if db_cpu_s else ")")
    )
    return {
        "seconds": round(load_s, 2),
        "events_per_s": round(ds.events / load_s),
        "batch": workload.batch,
        "clients": len(workload.clients),
        "server_cpu_s": round(cpu_s, 1),
        "client_cpu_s": round(client_cpu_s, 2),
        "db_cpu_s": round(db_cpu_s, 1) if db_cpu_s else None,
        "server_rss_kib_after_load": rss,
        "generate_s": round(workload.generate_s, 1),
        "kinds": workload.kinds,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def settle(ds: Dataset) -> float:
    """The backend's after-load step, then check the count; the seconds the step took."""
    started = time.monotonic()
    ds.backend.after_load(ds.store)
    after_load_s = time.monotonic() - started
    counted = ds.count_events()
    if counted is not None and counted != ds.events:
        raise BenchError(f"after loading, the database holds {counted} events, expected {ds.events}")
    return after_load_s


def build(ds: Dataset, port: int, batch: int, clients: int, sample: int) -> None:
    """Load the dataset into a fresh store and record it (bench/work/*.json) for reuse by later runs."""
    workload, setup_s = prepare(ds, batch, clients, sample)
    ds.load = load(ds, workload, port, f"conntel-{ds.backend.name}-load")
    ds.load["setup_cli_s"] = round(setup_s, 1)
    ds.load["after_load_s"] = round(settle(ds), 1)
    ds.load["db_bytes"] = ds.backend.size_bytes(ds.store)
    meta = {
        "complete": True,
        "backend": ds.backend.name,
        "store": ds.store,
        "events": ds.events,
        "connectors": ds.connectors,
        "account": ds.account,
        "connector_ids": ds.connector_ids,
        "read_token": ds.read_token,
        "write_token": ds.write_token,
        "load": ds.load,
    }
    ds.meta_path.write_text(json.dumps(meta, indent=1))


async def post_all(port: int, token: str, batches: list[list[tuple[str, bytes, int]]], total: int) -> int:
    """Each client posts its batches in order on one keep-alive connection; the events accepted.

    The bodies are encoded beforehand, so a client's own work per batch is a
    write and a small JSON answer: the server, not the client, sets the pace.
    """
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    done = 0
    next_report = total / 10
    started = time.monotonic()

    async def client(work: list[tuple[str, bytes, int]]) -> int:
        nonlocal done, next_report
        accepted = 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=300) as http:
            for path, body, count in work:
                for attempt in range(6):
                    try:
                        response = await http.post(path, content=body)
                    except httpx.TransportError as exc:
                        if attempt == 5:
                            raise BenchError(f"POST {path}: {exc!r}") from exc
                        await asyncio.sleep(0.5 * 2**attempt)
                        continue
                    if response.status_code in (429, 503) and attempt < 5:
                        await asyncio.sleep(float(response.headers.get("retry-after", 0.5 * 2**attempt)))
                        continue
                    break
                if response.status_code != 200:
                    raise BenchError(f"POST {path} -> {response.status_code}: {response.text[:500]}")
                result = response.json()["result"]
                if result["accepted"] + result["duplicates"] != count:
                    raise BenchError(f"POST {path}: sent {count} events, got {result}")
                accepted += count
                done += count
                if done >= next_report:
                    next_report += total / 10
                    elapsed = time.monotonic() - started
                    log(f"  {done:>10,} events  {elapsed:6.1f}s  {done / elapsed:,.0f}/s")
        return accepted

    counts = await asyncio.gather(*(client(work) for work in batches if work))
    return sum(counts)
