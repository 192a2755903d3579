"""The Get Event benchmark behind `make bench`.

    .venv/bin/python bench/run.py [--events N] [--connectors C] [--duration S] [--connections 32]
                                  [--backends sqlite,postgres] [--postgres-url URL] [--pool-size 10]

What it does, in order:

1. Makes sure `wrk` is installed (apt-get on a fresh Debian machine).
2. For each backend (by default both), builds, or reuses when one with the
   same N and C is complete, a store holding N events over C connectors:
   an SQLite file under bench/work/, or a PostgreSQL database
   `conntel_bench_<N>_<C>` on the server of --postgres-url. The events go in
   through the real ingestion API (POST .../telemetry/events, batches of
   5000, a few concurrent clients), with a realistic mix of kinds and
   monotonic (t, n) per connector; both backends get the very same events.
   The load rate is reported as a side figure. What differs between the
   backends is all in one place, the `Backend` classes below.
3. Serves, one after the other on the same port and with the same uvicorn
   settings (uvloop, httptools, one process, no access log), in every round:
     (a) bench/hello_asgi.py, a bare ASGI "hello world";
     (b) `conntel serve` on each backend's store in turn;
   and drives each with `wrk -t2 -c{connections} -d{duration}s --latency`
   after a short warm-up. For conntel, bench/get_event.lua requests random
   existing events (paths precomputed in bench/work/) with a Read token; the
   run checks beforehand that sampled events answer 200 with the right body,
   and afterwards that wrk saw no non-2xx answers and no socket errors.
4. Prints a table and adds a dated section, newest first, to bench/RESULTS.md:
   absolute req/s, p50/p99 latency, server RSS and CPU (and, for PostgreSQL,
   the CPU of its backend processes serving conntel's pool), and one ratio
   conntel/bare per backend.
5. Stops every server it started, also on error, Ctrl-C or SIGTERM.

The machine is small and shared, so absolute numbers drift between runs; the
ratio of two figures taken minutes apart in the same run is what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import asyncpg
import httpx

from conntel import simulate
from conntel.store.urls import redacted

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
RESULTS = BENCH / "RESULTS.md"
LUA_SCRIPT = BENCH / "get_event.lua"
HELLO_APP = "hello_asgi:app"
API = "/client/v4/accounts/{account}/magic/connectors/{connector}/telemetry/events"
RUNS_MARKER = "<!-- runs below, newest first; bench/run.py inserts new ones here -->"
BASE_T = 1_700_000_000
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk not found on PATH; installing it with apt-get")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise BenchError("wrk is missing and we are not root (and no sudo): install wrk and rerun")
        prefix = ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(prefix + argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get installed wrk but it is still not on PATH")
    return found


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    match = re.search(r"wrk \S+", done.stdout or done.stderr)
    return match.group(0) if match else "wrk (unknown version)"


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise BenchError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: dict[str, int]
    output: str

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    if not rps or not total:
        raise BenchError(f"could not read wrk output:\n{output}")
    latency = {f"p{p}": _to_ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", output, re.M)}
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()))) if sock else {}
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_to_ms(total.group(2)) / 1000,
        rps=float(rps.group(1)),
        latency_ms=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors={k: v for k, v in socket_errors.items() if v},
        output=output,
    )


def run_wrk(url: str, args: argparse.Namespace, duration: int, script_args: list[str] | None) -> WrkResult:
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script_args is not None:
        argv += ["-s", str(LUA_SCRIPT)]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


# ----------------------------------------------------------------------- servers


class Server:
    """A server process in its own session, so that we can stop it and all it started."""

    running: list["Server"] = []

    def __init__(self, name: str, argv: list[str], port: int, cwd: Path = ROOT):
        self.name, self.argv, self.port, self.cwd = name, argv, port, cwd
        self.log_path = WORK / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "Server":
        if port_in_use(self.port):
            raise BenchError(f"port {self.port} is already in use; refusing to benchmark someone else's server")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        Server.running.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} on start:\n{self.log_tail()}")
            if port_in_use(self.port):
                return self
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not listen on port {self.port} within {timeout:.0f}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int | None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return int(match.group(1)) if match else None

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self in Server.running:
            Server.running.remove(self)
        deadline = time.monotonic() + 10
        while port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    @classmethod
    def stop_all(cls) -> None:
        for server in list(cls.running):
            server.stop()


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def conntel_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "conntel", *args]


def conntel_server(ds: "Dataset", port: int, name: str) -> Server:
    argv = conntel_argv("serve", *ds.backend.serve_args(ds.store), "--host", "127.0.0.1", "--port", str(port))
    return Server(name, argv, port)


def hello_server(port: int) -> Server:
    argv = [
        sys.executable, "-m", "uvicorn", HELLO_APP, "--app-dir", str(BENCH), "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        "--no-server-header", "--log-level", "warning", "--workers", "1",
    ]
    return Server("hello", argv, port)


def cli_json(*args: str) -> dict:
    done = subprocess.run(conntel_argv(*args, "--json"), capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise BenchError(f"conntel {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout)


# ------------------------------------------------------------------ event data
# The events come from conntel's own fleet simulator (conntel.simulate), the
# same realistic lifecycles the demo shows, taken `count` at a time.


def connector_events(rng: random.Random, count: int) -> list[dict]:
    """`count` events of one connector, (t, n) strictly increasing."""
    return list(itertools.islice(simulate.connector_events(rng, BASE_T + rng.randrange(86_400)), count))


# ---------------------------------------------------------------------- backends
# Everything that differs between the stores is here: where a dataset lives
# (`store`: what conntel's --db or --database-url gets), the arguments naming
# it, how to start it empty, what to do once it is loaded, how to count its
# events and weigh it, and which other processes do its work while conntel
# serves (PostgreSQL's backends; none for SQLite, which runs in-process).


class Backend:
    name = ""  # as in --backends
    label = ""  # in tables and logs
    target = 0.0  # ratio conntel/bare aimed at with 1M events
    prefix = ""  # of the dataset's files under bench/work/
    after_load_note = ""  # what after_load() does, for the report

    def store(self, events: int, connectors: int) -> str:
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

    def after_load(self, store: str) -> None:
        pass

    def count_events(self, store: str, account: str) -> int | None:
        raise NotImplementedError

    def size_bytes(self, store: str) -> int:
        raise NotImplementedError

    def helper_pids(self, store: str) -> list[int]:
        return []


class SqliteBackend(Backend):
    name, label, target = "sqlite", "SQLite", 0.45

    def store(self, events: int, connectors: int) -> str:
        return str(WORK / f"events-{events}-connectors-{connectors}.db")

    def display(self, store: str) -> str:
        return str(Path(store).relative_to(ROOT))

    def store_args(self, store: str) -> list[str]:
        return ["--db", store]

    def reset(self, store: str) -> None:
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
    name, label, target = "postgres", "PostgreSQL", 0.25
    prefix = "postgres-"
    after_load_note = "VACUUM (ANALYZE) + CHECKPOINT"

    def __init__(self, server_url: str, pool_size: int):
        self.server_url, self.pool_size = server_url, pool_size

    def store(self, events: int, connectors: int) -> str:
        return with_database(self.server_url, f"conntel_bench_{events}_{connectors}")

    def describe(self) -> str:
        settings = "SELECT current_setting('server_version'), current_setting('shared_buffers'), " \
                   "current_setting('synchronous_commit'), current_setting('autovacuum')"
        try:
            version, buffers, sync, autovacuum = pg(with_database(self.server_url, "postgres"), "fetchrow", settings)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            raise BenchError(f"PostgreSQL at {redacted(self.server_url)} cannot be reached ({exc}); start it, "
                             "point --postgres-url at it, or leave it out with --backends sqlite") from None
        server = urllib.parse.urlsplit(self.server_url)
        return (f"PostgreSQL {version} at {server.hostname}:{server.port or 5432} (shared_buffers {buffers}, "
                f"synchronous_commit {sync}, autovacuum {autovacuum}); conntel pool of {self.pool_size} connections")

    def display(self, store: str) -> str:
        return redacted(store)

    def store_args(self, store: str) -> list[str]:
        return ["--database-url", store]

    def serve_args(self, store: str) -> list[str]:
        return [*self.store_args(store), "--pool-size", str(self.pool_size)]

    def reset(self, store: str) -> None:
        name = database_name(store)
        admin = with_database(store, "postgres")
        pg(admin, "execute", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg(admin, "execute", f'CREATE DATABASE "{name}"')

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
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            log(f"could not count events in {self.display(store)}: {exc}")
            return None

    def size_bytes(self, store: str) -> int:
        return pg(store, "fetchval", "SELECT pg_database_size(current_database())")

    def helper_pids(self, store: str) -> list[int]:
        rows = pg(store, "fetch", "SELECT pid FROM pg_stat_activity"
                                  " WHERE datname = current_database() AND pid <> pg_backend_pid()")
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


def make_backends(args: argparse.Namespace) -> list[Backend]:
    return [PostgresBackend(args.postgres_url, args.pool_size) if name == "postgres" else SqliteBackend()
            for name in args.backends]


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
    def for_size(cls, backend: Backend, events: int, connectors: int) -> "Dataset":
        stem = WORK / f"{backend.prefix}events-{events}-connectors-{connectors}"
        return cls(backend, events, connectors, backend.store(events, connectors),
                   stem.with_suffix(".json"), stem.with_suffix(".paths"))

    @property
    def where(self) -> str:
        return self.backend.display(self.store)

    def count_events(self) -> int | None:
        return self.backend.count_events(self.store, self.account)


def try_reuse(ds: Dataset) -> bool:
    if not (ds.meta_path.exists() and ds.paths_file.exists()):
        return False
    try:
        meta = json.loads(ds.meta_path.read_text())
    except (OSError, ValueError):
        return False
    if (not meta.get("complete") or meta.get("events") != ds.events or meta.get("connectors") != ds.connectors
            or meta.get("store", ds.store) != ds.store):
        return False
    ds.account, ds.connector_ids = meta["account"], meta["connector_ids"]
    counted = ds.count_events()
    if counted != ds.events:
        log(f"{ds.where} holds {counted} events, not {ds.events}: rebuilding")
        return False
    ds.read_token, ds.write_token, ds.load = meta["read_token"], meta["write_token"], meta["load"]
    ds.reused = True
    return True


def build(ds: Dataset, args: argparse.Namespace, port: int) -> None:
    for path in (ds.meta_path, ds.paths_file):
        path.unlink(missing_ok=True)
    ds.backend.reset(ds.store)
    seed = f"conntel-bench-{ds.events}-{ds.connectors}"
    ds.account = hashlib.md5(seed.encode()).hexdigest()
    ds.connector_ids = [hashlib.md5(f"{seed}-connector-{i}".encode()).hexdigest() for i in range(ds.connectors)]

    log(f"creating account, {ds.connectors} connectors and tokens in {ds.where} (CLI)")
    started = time.monotonic()
    store = ds.backend.store_args(ds.store)
    cli_json("accounts", "create", "--id", ds.account, "--name", "bench", *store)
    for cid in ds.connector_ids:
        cli_json("connectors", "create", "--account", ds.account, "--id", cid, *store)
    ds.write_token = cli_json("tokens", "create", "--account", ds.account, "--permission", "Magic WAN Write",
                              "--name", "bench-load", *store)["value"]
    ds.read_token = cli_json("tokens", "create", "--account", ds.account, "--permission", "Magic WAN Read",
                             "--name", "bench-read", *store)["value"]
    setup_s = time.monotonic() - started

    log(f"generating {ds.events:,} events")
    started = time.monotonic()
    rng = random.Random(seed)
    sampler = random.Random(seed + "-sample")
    sample_p = min(1.0, args.sample / ds.events)
    per_connector = [ds.events // ds.connectors + (1 if i < ds.events % ds.connectors else 0)
                     for i in range(ds.connectors)]
    batches: list[list[tuple[str, bytes, int]]] = [[] for _ in range(args.loaders)]
    kinds: dict[str, int] = {}
    paths: list[str] = []
    for i, (cid, count) in enumerate(zip(ds.connector_ids, per_connector)):
        path = API.format(account=ds.account, connector=cid)
        events = connector_events(random.Random(rng.random()), count)
        for event in events:
            kinds[event["e"]["k"]] = kinds.get(event["e"]["k"], 0) + 1
            if sampler.random() < sample_p:
                paths.append(f"{path}/{event['t']}.{event['n']}")
        for start in range(0, len(events), args.batch):
            chunk = events[start:start + args.batch]
            # One connector's batches stay in order on one client.
            batches[i % args.loaders].append((path, json.dumps(chunk, separators=(",", ":")).encode(), len(chunk)))
    generate_s = time.monotonic() - started
    sampler.shuffle(paths)
    ds.paths_file.write_text("\n".join(paths) + "\n")
    log(f"generated in {generate_s:.1f}s; {len(paths):,} sampled paths for wrk; "
        f"{sum(len(b) for b in batches)} batches over {args.loaders} clients")

    server = conntel_server(ds, port, f"conntel-{ds.backend.name}-load")
    server.start()
    try:
        log(f"loading through POST {API.format(account='…', connector='…')} (pid {server.pid})")
        cpu0 = server.cpu_seconds()
        started = time.monotonic()
        accepted = asyncio.run(post_all(port, ds.write_token, batches, ds.events))
        load_s = time.monotonic() - started
        cpu_s = server.cpu_seconds() - cpu0
        rss = server.rss_kib()
        # The pool's connections were opened for the load: all their CPU time is the load's.
        db_cpu_s = sum(cpu_seconds(pid) for pid in ds.backend.helper_pids(ds.store))
    finally:
        server.stop()
    if accepted != ds.events:
        raise BenchError(f"the server accepted {accepted} events, expected {ds.events}")
    log(f"loaded {ds.events:,} events in {load_s:.1f}s = {ds.events / load_s:,.0f} events/s "
        f"(server CPU {cpu_s:.0f}s, RSS {fmt_mib(rss)}" + (f"; {ds.backend.label} backends CPU {db_cpu_s:.0f}s)"
                                                          if db_cpu_s else ")"))
    started = time.monotonic()
    ds.backend.after_load(ds.store)
    after_load_s = time.monotonic() - started
    counted = ds.count_events()
    if counted is not None and counted != ds.events:
        raise BenchError(f"after loading, the database holds {counted} events, expected {ds.events}")
    ds.load = {
        "seconds": round(load_s, 2),
        "events_per_s": round(ds.events / load_s),
        "batch": args.batch,
        "clients": args.loaders,
        "server_cpu_s": round(cpu_s, 1),
        "db_cpu_s": round(db_cpu_s, 1) if db_cpu_s else None,
        "server_rss_kib_after_load": rss,
        "setup_cli_s": round(setup_s, 1),
        "generate_s": round(generate_s, 1),
        "after_load_s": round(after_load_s, 1),
        "db_bytes": ds.backend.size_bytes(ds.store),
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    meta = {
        "complete": True, "backend": ds.backend.name, "store": ds.store, "events": ds.events,
        "connectors": ds.connectors, "account": ds.account, "connector_ids": ds.connector_ids,
        "read_token": ds.read_token, "write_token": ds.write_token, "load": ds.load,
    }
    ds.meta_path.write_text(json.dumps(meta, indent=1))


async def post_all(port: int, token: str, batches: list[list[tuple[str, bytes, int]]], total: int) -> int:
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


# ------------------------------------------------------------------- benchmark


def precheck(port: int, ds: Dataset, samples: int) -> None:
    """Sampled paths must answer 200 with the event they name: a benchmark of 404s is worthless."""
    paths = [p for p in ds.paths_file.read_text().splitlines() if p]
    picks = random.Random().sample(paths, min(samples, len(paths)))
    headers = {"Authorization": f"Bearer {ds.read_token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
        for path in picks:
            response = http.get(path)
            if response.status_code != 200:
                raise BenchError(f"pre-check: GET {path} -> {response.status_code}: {response.text[:300]}")
            result = response.json().get("result") or {}
            t, n = path.rsplit("/", 1)[1].split(".")
            if result.get("t") != int(t) or result.get("n") != int(n) or "k" not in result.get("e", {}):
                raise BenchError(f"pre-check: GET {path} answered the wrong event: {response.text[:300]}")
        bad = http.get(API.format(account=ds.account, connector=ds.connector_ids[0]) + "/1.0")
        if bad.status_code != 404:
            raise BenchError(f"pre-check: a missing event answered {bad.status_code}, expected 404")
    log(f"pre-check: {len(picks)} random sampled events answered 200 with the right (t, n)")


@dataclass
class Measure:
    name: str
    result: WrkResult
    rss_idle_kib: int | None
    rss_after_kib: int | None
    server_cpu_pct: float  # of one core, during the measured wrk run
    db_cpu_pct: float | None  # the database server's processes working for it (PostgreSQL), same window


def measure(server: Server, url: str, args: argparse.Namespace, script_args: list[str] | None,
            helper_pids: Callable[[], list[int]] = list) -> Measure:
    rss_idle = server.rss_kib()
    if args.warmup > 0:
        warm = run_wrk(url, args, args.warmup, script_args)
        if warm.errors:
            raise BenchError(f"{server.name}: warm-up saw {warm.non_2xx} non-2xx answers, "
                             f"socket errors {warm.socket_errors}")
    helpers0 = {pid: cpu_seconds(pid) for pid in helper_pids()}
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    result = run_wrk(url, args, args.duration, script_args)
    elapsed = time.monotonic() - t0
    cpu_pct = 100 * (server.cpu_seconds() - cpu0) / elapsed
    # A helper that appeared during the run (a pool connection opened late) did all its work in it.
    helpers = {pid: cpu_seconds(pid) - helpers0.get(pid, 0.0) for pid in helper_pids()}
    db_cpu_pct = 100 * sum(helpers.values()) / elapsed if helpers else None
    rss_after = server.rss_kib()
    if not server.alive():
        raise BenchError(f"{server.name} died during the benchmark:\n{server.log_tail()}")
    log(f"{server.name}: {result.rps:,.0f} req/s, p50 {result.latency_ms.get('p50', 0):.2f} ms, "
        f"p99 {result.latency_ms.get('p99', 0):.2f} ms, non-2xx {result.non_2xx}, "
        f"socket errors {result.socket_errors or 0}, server CPU {cpu_pct:.0f}%"
        + (f" + database {db_cpu_pct:.0f}% ({len(helpers)} processes)" if db_cpu_pct is not None else "")
        + f", RSS {fmt_mib(rss_after)}")
    if result.errors:
        log(f"{server.name} wrk output:\n{result.output}")
        raise BenchError(f"{server.name}: {result.non_2xx} non-2xx answers and socket errors {result.socket_errors} "
                         f"under load; the figures are not a valid benchmark (server log: {server.log_path})")
    return Measure(server.name, result, rss_idle, rss_after, round(cpu_pct, 1),
                   None if db_cpu_pct is None else round(db_cpu_pct, 1))


def bench_round(port: int, datasets: list[Dataset], args: argparse.Namespace, round_no: int) -> dict[str, Measure]:
    """One measure of the bare hello world, then one of conntel on each backend: {"bare" or backend: Measure}."""
    url = f"http://127.0.0.1:{port}"
    tag = f"round {round_no}: " if args.rounds > 1 else ""

    log(f"{tag}(a) bare ASGI hello world under uvicorn")
    hello = hello_server(port).start()
    try:
        check = httpx.get(url + "/", timeout=10)
        if check.status_code != 200:
            raise BenchError(f"hello answered {check.status_code}")
        # The same wrk script and request stream as conntel's (the hello app ignores path and token), so the
        # load generator's own cost on the shared cores is the same on both sides of the ratio.
        first = datasets[0]
        measures = {"bare": measure(hello, url, args, [str(first.paths_file), first.read_token])}
    finally:
        hello.stop()

    for letter, ds in zip("bcdefgh", datasets):
        log(f"{tag}({letter}) conntel serve on {ds.backend.label}: {ds.where}")
        server = conntel_server(ds, port, f"conntel-{ds.backend.name}").start()
        try:
            precheck(port, ds, args.precheck)
            measures[ds.backend.name] = measure(server, url, args, [str(ds.paths_file), ds.read_token],
                                                lambda: ds.backend.helper_pids(ds.store))
        finally:
            server.stop()
    return measures


# --------------------------------------------------------------------- report


def fmt_mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.0f} MiB"


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    import uvicorn

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": (model.group(1).strip() if model else platform.processor() or "unknown")
        + (f" @ {float(mhz.group(1)):.0f} MHz" if mhz else ""),
        "memory": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "?",
        "kernel": platform.release(),
        "python": platform.python_version() + f" ({platform.python_implementation()})",
        "uvicorn": uvicorn.__version__,
        "wrk": wrk_version(),
        "conntel": git_revision(),
    }


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    if rev.returncode != 0:
        return "unknown (no commit yet)" + (" + uncommitted src/ changes" if dirty.stdout.strip() else "")
    return rev.stdout.strip() + (" + uncommitted src/ changes" if dirty.stdout.strip() else "")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


HEADER = f"""# conntel benchmark results

Get Event (`GET /client/v4/accounts/{{a}}/magic/connectors/{{c}}/telemetry/events/{{t}}.{{n}}`)
on one server process, compared with a bare ASGI "hello world" served by the
same uvicorn settings (uvloop, httptools, one process, access log off), all
measured one after the other in the same run on the same port with
`wrk -t2 -c32 -d15s --latency` after a short warm-up: in every round the
hello world, then conntel on SQLite, then conntel on PostgreSQL.

Run it:

    make bench                     # or: .venv/bin/python bench/run.py --rounds 3
    .venv/bin/python bench/run.py --events 1000000 --connectors 80 --duration 15 --connections 32
    .venv/bin/python bench/run.py --backends sqlite          # or: --backends postgres
    .venv/bin/python bench/run.py --postgres-url postgresql://USER@HOST:5432 --pool-size 10

The first run with a given `--events`/`--connectors` loads the events through
the real ingestion API (batches of 5000, a few concurrent clients) into each
store and reports the load rate; later runs reuse the stores. The SQLite store
is a file in `bench/work/` (gitignored); the PostgreSQL one is the database
`conntel_bench_<events>_<connectors>` on the server of `--postgres-url`
(default `postgresql://postgres@127.0.0.1:5432`, dropped and recreated when it
has to be rebuilt, then `VACUUM (ANALYZE)` and `CHECKPOINT` so that no
maintenance runs during the measures). Both get the very same events. wrk
requests random existing events (paths sampled at load time) with a Magic WAN
Read token; the run fails if any answer is not 2xx.

**The ratios** are conntel's req/s on each backend divided by the hello
world's req/s in the same round; with several rounds, the median per backend.
The machine is small (2 cores shared by wrk and the server — and, for the
PostgreSQL column, by the PostgreSQL server too) and noisy, so absolute req/s
drift from run to run; the ratios are the figures to compare across runs and
commits. They are the share of the bare server stack's throughput that conntel
keeps while doing routing, auth, the event lookup and JSON encoding. Targets
with 1M events: **SQLite ratio >= {SqliteBackend.target}** (see the measured
alternatives in DESIGN.md: FastAPI ~0.13, Starlette + msgspec ~0.34, raw ASGI
+ sqlite3 ~0.58) and **PostgreSQL ratio >= {PostgresBackend.target}**, lower
because every lookup is a round trip through conntel's connection pool
(`--pool-size`, default 10) to a PostgreSQL backend process competing for the
same 2 cores.

Each row is that server's median round. "server CPU" is the served process's
CPU time over the measured run, in % of one core; "database CPU" is the same
for the PostgreSQL backend processes serving conntel's pool (SQLite runs
inside conntel). RSS is the server's VmRSS from /proc. Runs before
PostgreSQL existed measured SQLite only: their "ratio" is the SQLite one.

{RUNS_MARKER}
"""


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


def verdict(report: dict, backend: dict) -> str:
    if report["params"]["events"] < 1_000_000:
        return ""
    return ": met" if backend["ratio"] >= backend["target"] else ": not met"


def load_line(backend: dict, events: int) -> str:
    load = backend["load"]
    extra = f", {backend['label']} backends CPU {load['db_cpu_s']:.0f}s" if load.get("db_cpu_s") else ""
    after = (f"; {backend['after_load']} afterwards {load['after_load_s']:.1f}s"
             if backend["after_load"] and load.get("after_load_s") is not None else "")
    return (f"Load, {backend['label']} ({'reused from ' + load['at'] if backend['reused'] else 'this run'}): "
            f"{events:,} events in {load['seconds']:.1f}s = **{load['events_per_s']:,} events/s** "
            f"(batches of {load['batch']}, {load['clients']} clients; server CPU {load['server_cpu_s']:.0f}s{extra}; "
            f"server RSS after load {fmt_mib(load.get('server_rss_kib_after_load'))}; "
            f"database {load['db_bytes'] / 2**20:.0f} MiB{after}).")


def render_section(report: dict) -> str:
    m, p, backends = report["machine"], report["params"], report["backends"]
    lines = [
        f"## {report['date']} — " + ", ".join(f"{b['label']} {b['ratio']:.3f}" for b in backends),
        "",
        f"- Machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory']} RAM, kernel {m['kernel']}; "
        f"load average before/after {report['loadavg_before']} / {report['loadavg_after']}",
        f"- Software: Python {m['python']}, uvicorn {m['uvicorn']}, {m['wrk']}; conntel {m['conntel']}",
        *(f"- Database: {description}" for description in m["databases"]),
        f"- Parameters: {p['events']:,} events over {p['connectors']} connectors; "
        f"`wrk -t{p['threads']} -c{p['connections']} -d{p['duration']:g}s --latency`, "
        f"warm-up {p['warmup']:g}s" + (f", {p['rounds']} rounds (median ratios)" if p["rounds"] > 1 else ""),
        "",
        "| server | req/s | p50 ms | p99 ms | non-2xx | server CPU | database CPU | RSS idle | RSS after wrk |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in [("bare ASGI hello", report["bare"])] + [(f"conntel Get Event, {b['label']}", b["row"])
                                                              for b in backends]:
        lines.append(
            f"| {name} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['non_2xx']} "
            f"| {pct(row['server_cpu_pct'])} | {pct(row['db_cpu_pct'])} "
            f"| {fmt_mib(row['rss_idle_kib'])} | {fmt_mib(row['rss_after_kib'])} |"
        )
    lines.append("")
    for b in backends:
        lines.append(f"**conntel-{b['name']} / bare = {b['ratio']:.3f}** "
                     f"(target ≥ {b['target']} with 1M events{verdict(report, b)})  ")
    if len(report["rounds"]) > 1:
        lines += ["", "| round | bare req/s | " + " | ".join(f"{b['label']} req/s | ratio" for b in backends) + " |",
                  "|---:|---:|" + "---:|---:|" * len(backends)]
        for i, rps in enumerate(report["rounds"]):
            lines.append(f"| {i + 1} | {rps['bare']:,.0f} | "
                         + " | ".join(f"{rps[b['name']]:,.0f} | {b['ratios'][i]:.3f}" for b in backends) + " |")
    lines.append("")
    lines += [load_line(b, p["events"]) + "  " for b in backends]
    lines += [f"Whole run: {report['wall_s']:.0f}s.", ""]
    return "\n".join(lines)


def write_results(report: dict) -> None:
    section = render_section(report)
    old_runs = ""
    if RESULTS.exists():
        text = RESULTS.read_text()
        old_runs = text.split(RUNS_MARKER, 1)[1].lstrip("\n") if RUNS_MARKER in text else ""
    RESULTS.write_text(HEADER + "\n" + section + ("\n" + old_runs if old_runs else ""))


def print_table(report: dict) -> None:
    rows = [("", "req/s", "p50 ms", "p99 ms", "non-2xx", "CPU", "DB CPU", "RSS")]
    for name, row in [("bare hello", report["bare"])] + [(f"conntel {b['name']}", b["row"])
                                                         for b in report["backends"]]:
        rows.append((name, f"{row['rps']:,.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
                     str(row["non_2xx"]), pct(row["server_cpu_pct"]), pct(row["db_cpu_pct"]),
                     fmt_mib(row["rss_after_kib"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print()
    for b in report["backends"]:
        per_round = f"   rounds: {', '.join(f'{r:.3f}' for r in b['ratios'])}" if len(b["ratios"]) > 1 else ""
        print(f"conntel-{b['name']} / bare = {b['ratio']:.3f}   (target >= {b['target']} with 1M events"
              f"{verdict(report, b)}){per_round}")
    for b in report["backends"]:
        load = b["load"]
        print(f"load, {b['label']}: {report['params']['events']:,} events in {load['seconds']:.1f}s = "
              f"{load['events_per_s']:,} events/s" + (" (reused store)" if b["reused"] else ""))
    written = "not written (--no-results)" if report["params"]["no_results"] else RESULTS.relative_to(ROOT)
    print(f"results: {written}; run took {report['wall_s']:.0f}s\n")


def row(m: Measure) -> dict:
    return {
        "rps": m.result.rps,
        "requests": m.result.requests,
        "p50_ms": m.result.latency_ms.get("p50", float("nan")),
        "p99_ms": m.result.latency_ms.get("p99", float("nan")),
        "latency_ms": m.result.latency_ms,
        "non_2xx": m.result.non_2xx,
        "socket_errors": m.result.socket_errors,
        "server_cpu_pct": m.server_cpu_pct,
        "db_cpu_pct": m.db_cpu_pct,
        "rss_idle_kib": m.rss_idle_kib,
        "rss_after_kib": m.rss_after_kib,
    }


def median_index(values: list[float]) -> int:
    """The index of the median value (the upper one for an even count)."""
    return sorted(range(len(values)), key=values.__getitem__)[len(values) // 2]


def summarize(ds: Dataset, rounds: list[dict[str, Measure]]) -> dict:
    """A backend's figures: the median of its per-round ratios, and its median round as its row."""
    ratios = [r[ds.backend.name].result.rps / r["bare"].result.rps for r in rounds]
    return {
        "name": ds.backend.name,
        "label": ds.backend.label,
        "target": ds.backend.target,
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "row": row(rounds[median_index(ratios)][ds.backend.name]),
        "store": ds.where,
        "load": ds.load,
        "reused": ds.reused,
        "after_load": ds.backend.after_load_note,
    }


# ------------------------------------------------------------------------ main


def backend_list(text: str) -> list[str]:
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(BACKENDS)} (comma-separated), not {text!r}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the database")
    parser.add_argument("--connectors", type=int, default=80, help="connectors the events are spread over")
    parser.add_argument("--backends", type=backend_list, default=",".join(BACKENDS),
                        help="stores to serve conntel on, in this order in every round: " + ",".join(BACKENDS))
    parser.add_argument("--postgres-url", default=os.environ.get("CONNTEL_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="PostgreSQL server for the postgres backend, which uses its database "
                             "conntel_bench_<events>_<connectors> (a database in the URL is ignored) "
                             "[env: CONNTEL_BENCH_POSTGRES_URL]")
    parser.add_argument("--pool-size", type=int, default=10, help="conntel serve --pool-size, for PostgreSQL")
    parser.add_argument("--duration", type=int, default=15, help="seconds of each measured wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (-c)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk warm-up before each measure (0: none)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the round (bare, then each backend); median ratios")
    parser.add_argument("--port", type=int, default=0, help="port for all servers (0: a free one)")
    parser.add_argument("--batch", type=int, default=5000, help="events per ingestion request")
    parser.add_argument("--loaders", type=int, default=4, help="concurrent ingestion clients")
    parser.add_argument("--sample", type=int, default=100_000, help="existing events wrk picks from at random")
    parser.add_argument("--precheck", type=int, default=200, help="sampled events checked for 200 before wrk")
    parser.add_argument("--rebuild", action="store_true", help="reload the stores even if they can be reused")
    parser.add_argument("--no-results", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.events < 1 or args.connectors < 1 or args.events < args.connectors:
        parser.error("need --events >= --connectors >= 1")
    if not 1 <= args.batch <= 5000:
        parser.error("--batch must be 1..5000")
    if (args.rounds < 1 or args.loaders < 1 or args.sample < 1 or args.duration < 1 or args.warmup < 0
            or args.pool_size < 1):
        parser.error("--rounds, --loaders, --sample, --duration and --pool-size must be positive")
    return args


def _on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)  # also SIGINT: a shell may start us with it ignored
    wall0 = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        ensure_wrk()
        port = args.port or free_port()
        backends = make_backends(args)
        databases = [d for d in (backend.describe() for backend in backends) if d]  # fails early if unreachable
        datasets = [Dataset.for_size(backend, args.events, args.connectors) for backend in backends]
        for ds in datasets:
            if not args.rebuild and try_reuse(ds):
                log(f"reusing {ds.where} ({ds.events:,} events, loaded {ds.load['at']} "
                    f"at {ds.load['events_per_s']:,} events/s)")
            else:
                build(ds, args, port)

        before = loadavg()
        rounds = [bench_round(port, datasets, args, i + 1) for i in range(args.rounds)]
        bare_rps = [r["bare"].result.rps for r in rounds]
        report = {
            "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": machine() | {"databases": databases},
            "params": {k: getattr(args, k) for k in ("events", "connectors", "duration", "connections", "threads",
                                                      "warmup", "rounds", "backends", "pool_size", "no_results")},
            "bare": row(rounds[median_index(bare_rps)]["bare"]),
            "backends": [summarize(ds, rounds) for ds in datasets],
            "rounds": [{name: m.result.rps for name, m in r.items()} for r in rounds],
            "loadavg_before": before,
            "loadavg_after": loadavg(),
            "wall_s": time.monotonic() - wall0,
        }
        (WORK / "last-run.json").write_text(json.dumps(report, indent=1, default=str))
        if not args.no_results:
            write_results(report)
        print_table(report)
        return 0
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        Server.stop_all()


if __name__ == "__main__":
    sys.exit(main())
