"""The Get Event benchmark behind `make bench`.

    .venv/bin/python bench/run.py [--events N] [--connectors C] [--duration S] [--connections 32]

What it does, in order:

1. Makes sure `wrk` is installed (apt-get on a fresh Debian machine).
2. Builds, or reuses when one with the same N and C is complete, an SQLite
   database under bench/work/ holding N events over C connectors. The events
   go in through the real ingestion API (POST .../telemetry/events, batches of
   5000, a few concurrent clients), with a realistic mix of kinds and
   monotonic (t, n) per connector. The load rate is reported as a side figure.
3. Serves, one after the other on the same port and with the same uvicorn
   settings (uvloop, httptools, one process, no access log):
     (a) bench/hello_asgi.py, a bare ASGI "hello world";
     (b) `conntel serve` on that database;
   and drives each with `wrk -t2 -c{connections} -d{duration}s --latency`
   after a short warm-up. For conntel, bench/get_event.lua requests random
   existing events (paths precomputed in bench/work/) with a Read token; the
   run checks beforehand that sampled events answer 200 with the right body,
   and afterwards that wrk saw no non-2xx answers and no socket errors.
4. Prints a table and adds a dated section, newest first, to bench/RESULTS.md:
   absolute req/s, p50/p99 latency, server RSS, and the ratio conntel/bare.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conntel import simulate

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
RESULTS = BENCH / "RESULTS.md"
LUA_SCRIPT = BENCH / "get_event.lua"
HELLO_APP = "hello_asgi:app"
API = "/client/v4/accounts/{account}/magic/connectors/{connector}/telemetry/events"
RUNS_MARKER = "<!-- runs below, newest first; bench/run.py inserts new ones here -->"
TARGET_RATIO = 0.45
BASE_T = 1_700_000_000


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
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def conntel_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "conntel", *args]


def conntel_server(db: Path, port: int, name: str) -> Server:
    return Server(name, conntel_argv("serve", "--db", str(db), "--host", "127.0.0.1", "--port", str(port)), port)


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


@dataclass
class Dataset:
    events: int
    connectors: int
    db: Path
    meta_path: Path
    paths_file: Path
    account: str = ""
    connector_ids: list[str] = field(default_factory=list)
    read_token: str = ""
    write_token: str = ""
    load: dict = field(default_factory=dict)
    reused: bool = False

    @classmethod
    def for_size(cls, events: int, connectors: int) -> "Dataset":
        stem = WORK / f"events-{events}-connectors-{connectors}"
        return cls(events, connectors, stem.with_suffix(".db"), stem.with_suffix(".json"), stem.with_suffix(".paths"))

    def files(self) -> list[Path]:
        return [self.db, Path(f"{self.db}-wal"), Path(f"{self.db}-shm"), self.meta_path, self.paths_file]


def count_events(db: Path, account: str) -> int | None:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            return con.execute("SELECT count(*) FROM events WHERE account_id = ?", (account,)).fetchone()[0]
    except sqlite3.Error as exc:
        log(f"could not count events in {db.name}: {exc}")
        return None


def try_reuse(ds: Dataset) -> bool:
    if not all(p.exists() for p in (ds.db, ds.meta_path, ds.paths_file)):
        return False
    try:
        meta = json.loads(ds.meta_path.read_text())
    except (OSError, ValueError):
        return False
    if not meta.get("complete") or meta.get("events") != ds.events or meta.get("connectors") != ds.connectors:
        return False
    counted = count_events(ds.db, meta["account"])
    if counted != ds.events:
        log(f"{ds.db.name} holds {counted} events, not {ds.events}: rebuilding")
        return False
    ds.account, ds.connector_ids = meta["account"], meta["connector_ids"]
    ds.read_token, ds.write_token, ds.load = meta["read_token"], meta["write_token"], meta["load"]
    ds.reused = True
    return True


def build(ds: Dataset, args: argparse.Namespace, port: int) -> None:
    for path in ds.files():
        path.unlink(missing_ok=True)
    seed = f"conntel-bench-{ds.events}-{ds.connectors}"
    ds.account = hashlib.md5(seed.encode()).hexdigest()
    ds.connector_ids = [hashlib.md5(f"{seed}-connector-{i}".encode()).hexdigest() for i in range(ds.connectors)]

    log(f"creating account, {ds.connectors} connectors and tokens in {ds.db.relative_to(ROOT)} (CLI)")
    started = time.monotonic()
    db = str(ds.db)
    cli_json("accounts", "create", "--id", ds.account, "--name", "bench", "--db", db)
    for cid in ds.connector_ids:
        cli_json("connectors", "create", "--account", ds.account, "--id", cid, "--db", db)
    ds.write_token = cli_json("tokens", "create", "--account", ds.account, "--permission", "Magic WAN Write",
                              "--name", "bench-load", "--db", db)["value"]
    ds.read_token = cli_json("tokens", "create", "--account", ds.account, "--permission", "Magic WAN Read",
                             "--name", "bench-read", "--db", db)["value"]
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

    server = conntel_server(ds.db, port, "conntel-load")
    server.start()
    try:
        log(f"loading through POST {API.format(account='…', connector='…')} (pid {server.pid})")
        cpu0 = server.cpu_seconds()
        started = time.monotonic()
        accepted = asyncio.run(post_all(port, ds.write_token, batches, ds.events))
        load_s = time.monotonic() - started
        cpu_s = server.cpu_seconds() - cpu0
        rss = server.rss_kib()
    finally:
        server.stop()
    if accepted != ds.events:
        raise BenchError(f"the server accepted {accepted} events, expected {ds.events}")
    counted = count_events(ds.db, ds.account)
    if counted is not None and counted != ds.events:
        raise BenchError(f"after loading, the database holds {counted} events, expected {ds.events}")
    ds.load = {
        "seconds": round(load_s, 2),
        "events_per_s": round(ds.events / load_s),
        "batch": args.batch,
        "clients": args.loaders,
        "server_cpu_s": round(cpu_s, 1),
        "server_rss_kib_after_load": rss,
        "setup_cli_s": round(setup_s, 1),
        "generate_s": round(generate_s, 1),
        "db_bytes": db_bytes(ds.db),
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    meta = {
        "complete": True, "events": ds.events, "connectors": ds.connectors, "account": ds.account,
        "connector_ids": ds.connector_ids, "read_token": ds.read_token, "write_token": ds.write_token,
        "load": ds.load,
    }
    ds.meta_path.write_text(json.dumps(meta, indent=1))
    log(f"loaded {ds.events:,} events in {load_s:.1f}s = {ds.events / load_s:,.0f} events/s "
        f"(server CPU {cpu_s:.0f}s, RSS {fmt_mib(rss)})")


def db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


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


def measure(server: Server, url: str, args: argparse.Namespace, script_args: list[str] | None) -> Measure:
    rss_idle = server.rss_kib()
    if args.warmup > 0:
        warm = run_wrk(url, args, args.warmup, script_args)
        if warm.errors:
            raise BenchError(f"{server.name}: warm-up saw {warm.non_2xx} non-2xx answers, "
                             f"socket errors {warm.socket_errors}")
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    result = run_wrk(url, args, args.duration, script_args)
    cpu_pct = 100 * (server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    rss_after = server.rss_kib()
    if not server.alive():
        raise BenchError(f"{server.name} died during the benchmark:\n{server.log_tail()}")
    log(f"{server.name}: {result.rps:,.0f} req/s, p50 {result.latency_ms.get('p50', 0):.2f} ms, "
        f"p99 {result.latency_ms.get('p99', 0):.2f} ms, non-2xx {result.non_2xx}, "
        f"socket errors {result.socket_errors or 0}, server CPU {cpu_pct:.0f}%, RSS {fmt_mib(rss_after)}")
    return Measure(server.name, result, rss_idle, rss_after, round(cpu_pct, 1))


def bench_round(port: int, ds: Dataset, args: argparse.Namespace, round_no: int) -> tuple[Measure, Measure]:
    url = f"http://127.0.0.1:{port}"
    tag = f"round {round_no}: " if args.rounds > 1 else ""

    log(f"{tag}(a) bare ASGI hello world under uvicorn")
    hello = hello_server(port).start()
    try:
        check = httpx.get(url + "/", timeout=10)
        if check.status_code != 200:
            raise BenchError(f"hello answered {check.status_code}")
        bare = measure(hello, url + "/", args, None)
    finally:
        hello.stop()

    log(f"{tag}(b) conntel serve on {ds.db.name}")
    server = conntel_server(ds.db, port, "conntel").start()
    try:
        precheck(port, ds, args.precheck)
        conntel = measure(server, url, args, [str(ds.paths_file), ds.read_token])
    finally:
        server.stop()
    if conntel.result.errors:
        log(f"conntel wrk output:\n{conntel.result.output}")
        raise BenchError(f"conntel: {conntel.result.non_2xx} non-2xx answers and socket errors "
                         f"{conntel.result.socket_errors} under load; the figures are not a valid benchmark "
                         f"(server log: {server.log_path})")
    if bare.result.errors:
        raise BenchError(f"hello world: {bare.result.non_2xx} non-2xx, socket errors {bare.result.socket_errors}")
    return bare, conntel


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
same uvicorn settings (uvloop, httptools, one process, access log off), both
measured one after the other in the same run on the same port with
`wrk -t2 -c32 -d15s --latency` after a short warm-up.

Run it:

    make bench                     # or: .venv/bin/python bench/run.py
    .venv/bin/python bench/run.py --events 1000000 --connectors 80 --duration 15 --connections 32

The first run with a given `--events`/`--connectors` loads the events through
the real ingestion API (batches of 5000, a few concurrent clients) into
`bench/work/` (gitignored) and reports the load rate; later runs reuse that
database. wrk requests random existing events (paths sampled at load time)
with a Magic WAN Read token; the run fails if any answer is not 2xx.

**The ratio** is conntel's req/s divided by the hello world's req/s in the
same run. The machine is small (2 cores shared by wrk and the server) and
noisy, so absolute req/s drift from run to run; the ratio is the figure to
compare across runs and commits. It is the share of the bare server stack's
throughput that conntel keeps while doing routing, auth, a SQLite lookup and
JSON encoding. Target: **ratio >= {TARGET_RATIO} with 1M events** (see the
measured alternatives in DESIGN.md: FastAPI ~0.13, Starlette + msgspec ~0.34,
raw ASGI + sqlite3 ~0.58). RSS is the server's VmRSS from /proc.

{RUNS_MARKER}
"""


def render_section(report: dict) -> str:
    m, p = report["machine"], report["params"]
    bare, con = report["bare"], report["conntel"]
    load = report["load"]
    lines = [
        f"## {report['date']} — ratio {report['ratio']:.3f}"
        + (" (target met)" if p["events"] >= 1_000_000 and report["ratio"] >= TARGET_RATIO else ""),
        "",
        f"- Machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory']} RAM, kernel {m['kernel']}; "
        f"load average before/after {report['loadavg_before']} / {report['loadavg_after']}",
        f"- Software: Python {m['python']}, uvicorn {m['uvicorn']}, {m['wrk']}; conntel {m['conntel']}",
        f"- Parameters: {p['events']:,} events over {p['connectors']} connectors; "
        f"`wrk -t{p['threads']} -c{p['connections']} -d{p['duration']:g}s --latency`, "
        f"warm-up {p['warmup']:g}s" + (f", {p['rounds']} rounds (median ratio)" if p["rounds"] > 1 else ""),
        "",
        "| server | req/s | p50 ms | p99 ms | non-2xx | server CPU | RSS idle | RSS after wrk |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in (("bare ASGI hello", bare), ("conntel Get Event", con)):
        lines.append(
            f"| {name} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['non_2xx']} "
            f"| {row['server_cpu_pct']:.0f}% | {fmt_mib(row['rss_idle_kib'])} | {fmt_mib(row['rss_after_kib'])} |"
        )
    lines += [
        "",
        f"**conntel / bare = {report['ratio']:.3f}** (target ≥ {TARGET_RATIO} with 1M events)",
    ]
    if len(report["rounds"]) > 1:
        lines.append("Per-round ratios: " + ", ".join(f"{r['ratio']:.3f}" for r in report["rounds"]))
    lines += [
        "",
        f"Load ({'reused from ' + load['at'] if report['reused'] else 'this run'}): "
        f"{p['events']:,} events in {load['seconds']:.1f}s = **{load['events_per_s']:,} events/s** "
        f"(batches of {load['batch']}, {load['clients']} clients; server RSS after load "
        f"{fmt_mib(load.get('server_rss_kib_after_load'))}; database {load['db_bytes'] / 2**20:.0f} MiB).",
        f"Whole run: {report['wall_s']:.0f}s.",
        "",
    ]
    return "\n".join(lines)


def write_results(report: dict) -> None:
    section = render_section(report)
    old_runs = ""
    if RESULTS.exists():
        text = RESULTS.read_text()
        old_runs = text.split(RUNS_MARKER, 1)[1].lstrip("\n") if RUNS_MARKER in text else ""
    RESULTS.write_text(HEADER + "\n" + section + ("\n" + old_runs if old_runs else ""))


def print_table(report: dict) -> None:
    rows = [("", "req/s", "p50 ms", "p99 ms", "non-2xx", "CPU", "RSS")]
    for name, row in (("bare hello", report["bare"]), ("conntel", report["conntel"])):
        rows.append((name, f"{row['rps']:,.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
                     str(row["non_2xx"]), f"{row['server_cpu_pct']:.0f}%", fmt_mib(row["rss_after_kib"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    load = report["load"]
    print(f"\nconntel / bare = {report['ratio']:.3f}   (target >= {TARGET_RATIO} with 1M events)")
    print(f"load: {report['params']['events']:,} events in {load['seconds']:.1f}s = {load['events_per_s']:,} events/s"
          + (" (reused database)" if report["reused"] else ""))
    print(f"results: {RESULTS.relative_to(ROOT)}; run took {report['wall_s']:.0f}s\n")


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
        "rss_idle_kib": m.rss_idle_kib,
        "rss_after_kib": m.rss_after_kib,
    }


# ------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the database")
    parser.add_argument("--connectors", type=int, default=80, help="connectors the events are spread over")
    parser.add_argument("--duration", type=int, default=15, help="seconds of each measured wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (-c)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk warm-up before each measure (0: none)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat bare+conntel; the median ratio is reported")
    parser.add_argument("--port", type=int, default=0, help="port for both servers (0: a free one)")
    parser.add_argument("--batch", type=int, default=5000, help="events per ingestion request")
    parser.add_argument("--loaders", type=int, default=4, help="concurrent ingestion clients")
    parser.add_argument("--sample", type=int, default=100_000, help="existing events wrk picks from at random")
    parser.add_argument("--precheck", type=int, default=200, help="sampled events checked for 200 before wrk")
    parser.add_argument("--rebuild", action="store_true", help="reload the database even if one can be reused")
    parser.add_argument("--no-results", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.events < 1 or args.connectors < 1 or args.events < args.connectors:
        parser.error("need --events >= --connectors >= 1")
    if not 1 <= args.batch <= 5000:
        parser.error("--batch must be 1..5000")
    if args.rounds < 1 or args.loaders < 1 or args.sample < 1 or args.duration < 1 or args.warmup < 0:
        parser.error("--rounds, --loaders, --sample and --duration must be positive")
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
        ds = Dataset.for_size(args.events, args.connectors)
        if not args.rebuild and try_reuse(ds):
            log(f"reusing {ds.db.relative_to(ROOT)} ({ds.events:,} events, loaded {ds.load['at']} "
                f"at {ds.load['events_per_s']:,} events/s)")
        else:
            build(ds, args, port)

        before = loadavg()
        rounds = [bench_round(port, ds, args, i + 1) for i in range(args.rounds)]
        ratios = [c.result.rps / b.result.rps for b, c in rounds]
        ratio = statistics.median(ratios)
        # The round whose ratio is the median (the upper one for an even count) stands for the run.
        bare, conntel = rounds[sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]]
        report = {
            "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": machine(),
            "params": {k: getattr(args, k) for k in ("events", "connectors", "duration", "connections", "threads",
                                                      "warmup", "rounds")},
            "bare": row(bare),
            "conntel": row(conntel),
            "ratio": ratio,
            "rounds": [{"bare_rps": b.result.rps, "conntel_rps": c.result.rps, "ratio": r}
                       for (b, c), r in zip(rounds, ratios)],
            "load": ds.load,
            "reused": ds.reused,
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
