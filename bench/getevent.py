"""Get Event throughput: conntel on each backend vs a bare ASGI hello world, wrk, the same run.

In every round: the hello world (bench/hello_asgi.py) and `conntel serve`
on each backend's 1M-event store, all up at once, each driven by
`wrk -t2 -c32 --latency` with bench/get_event.lua (or heartbeat.lua) after a
short warm-up, in turns of a few seconds (measure_interleaved). The ratio per
backend is conntel's req/s over the hello world's in the same round; with
several rounds, the median.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import heartbeat
import httpx
from harness import (
    BenchError,
    Server,
    Strace,
    WrkResult,
    cpu_seconds,
    fmt_mib,
    free_port,
    hello_server,
    log,
    median_index,
    run_wrk,
)
from stores import Dataset, conntel_server

HEARTBEAT = ":heartbeat"  # a backend's bare check-in measure, beside its Get Event one


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
        bad = http.get(ds.path() + "/1.0")
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


@dataclass
class Window:
    """One wrk run against one server: what wrk saw, and the CPU the server (and its database) spent."""

    result: WrkResult
    elapsed: float
    cpu_seconds: float
    db_cpu_seconds: float | None
    helpers: int


def window(
    server: Server,
    url: str,
    args: argparse.Namespace,
    seconds: float,
    script_args: list[str] | None,
    helper_pids: Callable[[], list[int]] = list,
    script: Path | None = None,
) -> Window:
    helpers0 = {pid: cpu_seconds(pid) for pid in helper_pids()}
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    result = run_wrk(
        url, seconds, threads=args.threads, connections=args.connections, script_args=script_args, script=script
    )
    elapsed = time.monotonic() - t0
    cpu = server.cpu_seconds() - cpu0
    # A helper that appeared during the run (a pool connection opened late) did all its work in it.
    helpers = {pid: cpu_seconds(pid) - helpers0.get(pid, 0.0) for pid in helper_pids()}
    if not server.alive():
        raise BenchError(f"{server.name} died during the benchmark:\n{server.log_tail()}")
    if result.errors:
        log(f"{server.name} wrk output:\n{result.output}")
        raise BenchError(
            f"{server.name}: {result.non_2xx} non-2xx answers and socket errors {result.socket_errors} "
            f"under load; the figures are not a valid benchmark (server log: {server.log_path})"
        )
    return Window(result, elapsed, cpu, sum(helpers.values()) if helpers else None, len(helpers))


def combined(windows: list[Window]) -> WrkResult:
    """Several wrk runs of one server as one: requests over seconds; each latency percentile the median of the
    runs' (wrk's histograms are not in its output, so they cannot be merged exactly)."""
    results = [w.result for w in windows]
    requests, seconds = sum(r.requests for r in results), sum(r.seconds for r in results)
    socket_errors: dict[str, int] = {}
    for r in results:
        for kind, n in r.socket_errors.items():
            socket_errors[kind] = socket_errors.get(kind, 0) + n
    return WrkResult(
        requests=requests,
        seconds=seconds,
        rps=requests / seconds,
        latency_ms={p: statistics.median(r.latency_ms[p] for r in results) for p in results[0].latency_ms},
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=socket_errors,
        output="\n".join(r.output for r in results),
    )


def as_measure(server: Server, windows: list[Window], rss_idle: int | None) -> Measure:
    elapsed = sum(w.elapsed for w in windows)
    cpu_pct = 100 * sum(w.cpu_seconds for w in windows) / elapsed
    db = [w.db_cpu_seconds for w in windows if w.db_cpu_seconds is not None]
    db_cpu_pct = 100 * sum(db) / elapsed if db else None
    result = combined(windows)
    rss_after = server.rss_kib()
    log(
        f"{server.name}: {result.rps:,.0f} req/s"
        + (f" (slices {', '.join(f'{w.result.rps:,.0f}' for w in windows)})" if len(windows) > 1 else "")
        + f", p50 {result.latency_ms.get('p50', 0):.2f} ms, p99 {result.latency_ms.get('p99', 0):.2f} ms, "
        f"non-2xx {result.non_2xx}, socket errors {result.socket_errors or 0}, server CPU {cpu_pct:.0f}%"
        + (f" + database {db_cpu_pct:.0f}% ({windows[-1].helpers} processes)" if db_cpu_pct is not None else "")
        + f", RSS {fmt_mib(rss_after)}"
    )
    return Measure(
        server.name,
        result,
        rss_idle,
        rss_after,
        round(cpu_pct, 1),
        None if db_cpu_pct is None else round(db_cpu_pct, 1),
    )


def warm_up(server: Server, url: str, args: argparse.Namespace, script_args: list[str] | None,
            script: Path | None = None) -> None:  # fmt: skip
    if args.warmup <= 0:
        return
    warm = run_wrk(
        url, args.warmup, threads=args.threads, connections=args.connections, script_args=script_args, script=script
    )
    if warm.errors:
        raise BenchError(
            f"{server.name}: warm-up saw {warm.non_2xx} non-2xx answers, socket errors {warm.socket_errors}"
        )


def measure(
    server: Server,
    url: str,
    args: argparse.Namespace,
    script_args: list[str] | None,
    helper_pids: Callable[[], list[int]] = list,
    script: Path | None = None,
) -> Measure:
    """One server alone: a warm-up, then one wrk run of --duration seconds."""
    rss_idle = server.rss_kib()
    warm_up(server, url, args, script_args, script)
    return as_measure(server, [window(server, url, args, args.duration, script_args, helper_pids, script)], rss_idle)


@dataclass
class Load:
    """One thing a round measures: a server, and the wrk script (and its arguments) that drive it."""

    key: str
    server: Server
    url: str
    script_args: list[str]
    helper_pids: Callable[[], list[int]] = list
    script: Path | None = None


def measure_interleaved(loads: list[Load], args: argparse.Namespace) -> dict[str, Measure]:
    """Every load of a round in turns: --slices wrk runs each, their seconds adding up to --duration, in
    order, then in reverse order, and so on. A ratio of two loads then compares the same minutes of the
    machine: measured one after the other for 15 s each, the bare app alone moved from 13,300 to 19,900
    req/s between rounds on a shared machine (bench/RESULTS.md, 2026-12-07 22:04)."""
    rss_idle = {load.key: load.server.rss_kib() for load in loads}
    for load in loads:
        warm_up(load.server, load.url, args, load.script_args, load.script)
    seconds = max(1, args.duration // args.slices)
    windows: dict[str, list[Window]] = {load.key: [] for load in loads}
    for turn in range(args.slices):
        for load in loads if turn % 2 == 0 else reversed(loads):
            windows[load.key].append(
                window(load.server, load.url, args, seconds, load.script_args, load.helper_pids, load.script)
            )
    return {load.key: as_measure(load.server, windows[load.key], rss_idle[load.key]) for load in loads}


def bench_round(
    port: int, datasets: list[Dataset], args: argparse.Namespace, round_no: int, checkins: dict[str, str]
) -> dict[str, Measure]:
    """The bare hello world, and on each backend conntel's Get Event and its bare check-ins (heartbeat.py),
    all servers up at once on ports of their own and measured in turns (measure_interleaved):
    {"bare", backend, or backend + HEARTBEAT: Measure}."""
    tag = f"round {round_no}: " if args.rounds > 1 else ""
    first = datasets[0]
    servers: list[Server] = []
    try:
        log(f"{tag}starting the bare ASGI hello world under uvicorn and conntel on "
            + ", ".join(ds.backend.label for ds in datasets))  # fmt: skip
        hello = hello_server(port).start()
        servers.append(hello)
        check = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        if check.status_code != 200:
            raise BenchError(f"hello answered {check.status_code}")
        # The same wrk script and request stream as conntel's (the hello app ignores path and token), so the
        # load generator's own cost on the shared cores is the same on both sides of the ratio.
        loads = [Load("bare", hello, f"http://127.0.0.1:{port}", [str(first.paths_file), first.read_token])]
        for ds in datasets:
            own_port = free_port()
            server = conntel_server(ds, own_port, f"conntel-{ds.backend.name}").start()
            servers.append(server)
            precheck(own_port, ds, args.precheck)
            heartbeat.precheck(own_port, checkins[ds.backend.name])
            url, helpers = f"http://127.0.0.1:{own_port}", (lambda ds=ds: ds.backend.helper_pids(ds.store))
            loads.append(Load(ds.backend.name, server, url, [str(ds.paths_file), ds.read_token], helpers))
            loads.append(Load(ds.backend.name + HEARTBEAT, server, url, [checkins[ds.backend.name]], helpers,
                              Path(__file__).with_name(heartbeat.SCRIPT)))  # fmt: skip
        log(f"{tag}measuring in turns: " + ", ".join(load.key for load in loads))
        return measure_interleaved(loads, args)
    finally:
        for server in reversed(servers):
            server.stop()


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


def summarize(ds: Dataset, rounds: list[dict[str, Measure]]) -> dict:
    """A backend's figures: the median of its per-round ratios, and its median round as its row."""
    ratios = [r[ds.backend.name].result.rps / r["bare"].result.rps for r in rounds]
    beats = [r[ds.backend.name + HEARTBEAT].result.rps / r["bare"].result.rps for r in rounds]
    return {
        "heartbeat": {
            "ratio": statistics.median(beats),
            "ratios": beats,
            "target": heartbeat.TARGET_SQLITE if ds.backend.name == "sqlite" else None,
            "row": row(rounds[median_index(beats)][ds.backend.name + HEARTBEAT]),
        },
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


SYSCALL_SECONDS = 4  # the wrk run under strace (which slows the server: counts per request, not a rate)


def syscalls_of(server: Server, url: str, args: argparse.Namespace, script_args: list[str]) -> dict:
    """System calls per request of one server under the Get Event load, by `strace -c -f` on all its processes."""
    run_wrk(url, 1, threads=args.threads, connections=args.connections, script_args=script_args)  # warm
    with Strace(server, f"syscalls-{server.name}") as traced:
        result = run_wrk(url, SYSCALL_SECONDS, threads=args.threads, connections=args.connections,
                         script_args=script_args)  # fmt: skip
    if result.errors:
        raise BenchError(f"{server.name}: errors under strace: {result.non_2xx} non-2xx, {result.socket_errors}")
    counts = traced.counts()
    per_request = {name: calls / result.requests for name, calls in sorted(counts.items(), key=lambda c: -c[1])}
    total = sum(per_request.values())
    log(f"{server.name}: {total:.1f} system calls per request over {result.requests:,} requests under strace: "
        + ", ".join(f"{name} {n:.2f}" for name, n in per_request.items() if n >= 0.05))  # fmt: skip
    return {"name": server.name, "requests": result.requests, "total": total, "per_request": per_request}


def syscalls(port: int, datasets: list[Dataset], args: argparse.Namespace) -> list[dict]:
    """An extra, unmeasured run of each server of the rounds under strace: its system calls per request."""
    url = f"http://127.0.0.1:{port}"
    first = datasets[0]
    measured = []
    hello = hello_server(port).start()
    try:
        measured.append(syscalls_of(hello, url, args, [str(first.paths_file), first.read_token]) | {"label": "bare"})
    finally:
        hello.stop()
    for ds in datasets:
        server = conntel_server(ds, port, f"conntel-{ds.backend.name}-strace").start()
        try:
            figures = syscalls_of(server, url, args, [str(ds.paths_file), ds.read_token])
        finally:
            server.stop()
        measured.append(figures | {"label": ds.backend.name})
    return measured


def run(datasets: list[Dataset], args: argparse.Namespace, port: int) -> dict:
    """All rounds: the bare row (its median round), each backend's summary, and every round's req/s; then the
    system calls per request of each server (strace)."""
    checkins = {ds.backend.name: heartbeat.checkins_file(ds) for ds in datasets}
    rounds = [bench_round(port, datasets, args, i + 1, checkins) for i in range(args.rounds)]
    bare_rps = [r["bare"].result.rps for r in rounds]
    return {
        "bare": row(rounds[median_index(bare_rps)]["bare"]),
        "backends": [summarize(ds, rounds) for ds in datasets],
        "rounds": [{name: m.result.rps for name, m in r.items()} for r in rounds],
        "syscalls": syscalls(port, datasets, args),
    }
