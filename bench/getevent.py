"""Get Event throughput: conntel on each backend vs a bare ASGI hello world, wrk, the same run.

In every round: the hello world (bench/hello_asgi.py), then `conntel serve`
on each backend's 1M-event store, each driven by `wrk -t2 -c32 --latency`
with bench/get_event.lua after a short warm-up. The ratio per backend is
conntel's req/s over the hello world's in the same round; with several rounds,
the median.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import heartbeat
import httpx
from harness import BenchError, Server, WrkResult, cpu_seconds, fmt_mib, hello_server, log, median_index, run_wrk
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


def measure(
    server: Server,
    url: str,
    args: argparse.Namespace,
    script_args: list[str] | None,
    helper_pids: Callable[[], list[int]] = list,
    script: Path | None = None,
) -> Measure:
    rss_idle = server.rss_kib()
    wrk = functools.partial(
        run_wrk, threads=args.threads, connections=args.connections, script_args=script_args, script=script
    )
    if args.warmup > 0:
        warm = wrk(url, args.warmup)
        if warm.errors:
            raise BenchError(
                f"{server.name}: warm-up saw {warm.non_2xx} non-2xx answers, socket errors {warm.socket_errors}"
            )
    helpers0 = {pid: cpu_seconds(pid) for pid in helper_pids()}
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    result = wrk(url, args.duration)
    elapsed = time.monotonic() - t0
    cpu_pct = 100 * (server.cpu_seconds() - cpu0) / elapsed
    # A helper that appeared during the run (a pool connection opened late) did all its work in it.
    helpers = {pid: cpu_seconds(pid) - helpers0.get(pid, 0.0) for pid in helper_pids()}
    db_cpu_pct = 100 * sum(helpers.values()) / elapsed if helpers else None
    rss_after = server.rss_kib()
    if not server.alive():
        raise BenchError(f"{server.name} died during the benchmark:\n{server.log_tail()}")
    log(
        f"{server.name}: {result.rps:,.0f} req/s, p50 {result.latency_ms.get('p50', 0):.2f} ms, "
        f"p99 {result.latency_ms.get('p99', 0):.2f} ms, non-2xx {result.non_2xx}, "
        f"socket errors {result.socket_errors or 0}, server CPU {cpu_pct:.0f}%"
        + (f" + database {db_cpu_pct:.0f}% ({len(helpers)} processes)" if db_cpu_pct is not None else "")
        + f", RSS {fmt_mib(rss_after)}"
    )
    if result.errors:
        log(f"{server.name} wrk output:\n{result.output}")
        raise BenchError(
            f"{server.name}: {result.non_2xx} non-2xx answers and socket errors {result.socket_errors} "
            f"under load; the figures are not a valid benchmark (server log: {server.log_path})"
        )
    return Measure(
        server.name,
        result,
        rss_idle,
        rss_after,
        round(cpu_pct, 1),
        None if db_cpu_pct is None else round(db_cpu_pct, 1),
    )


def bench_round(
    port: int, datasets: list[Dataset], args: argparse.Namespace, round_no: int, checkins: dict[str, str]
) -> dict[str, Measure]:
    """One measure of the bare hello world, then on each backend one of conntel's Get Event and one of its
    bare check-ins (heartbeat.py): {"bare", backend, or backend + HEARTBEAT: Measure}."""
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

    for letter, ds in zip("bcdefgh", datasets, strict=False):
        log(f"{tag}({letter}) conntel serve on {ds.backend.label}: {ds.where}")
        server = conntel_server(ds, port, f"conntel-{ds.backend.name}").start()
        try:
            precheck(port, ds, args.precheck)
            measures[ds.backend.name] = measure(
                server, url, args, [str(ds.paths_file), ds.read_token], lambda ds=ds: ds.backend.helper_pids(ds.store)
            )
            log(f"{tag}({letter}') the same server: bare check-ins, each connector with its own credential")
            heartbeat.precheck(port, checkins[ds.backend.name])
            measures[ds.backend.name + HEARTBEAT] = measure(
                server,
                url,
                args,
                [checkins[ds.backend.name]],
                lambda ds=ds: ds.backend.helper_pids(ds.store),
                Path(__file__).with_name(heartbeat.SCRIPT),
            )
        finally:
            server.stop()
    return measures


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


def run(datasets: list[Dataset], args: argparse.Namespace, port: int) -> dict:
    """All rounds: the bare row (its median round), each backend's summary, and every round's req/s."""
    checkins = {ds.backend.name: heartbeat.checkins_file(ds) for ds in datasets}
    rounds = [bench_round(port, datasets, args, i + 1, checkins) for i in range(args.rounds)]
    bare_rps = [r["bare"].result.rps for r in rounds]
    return {
        "bare": row(rounds[median_index(bare_rps)]["bare"]),
        "backends": [summarize(ds, rounds) for ds in datasets],
        "rounds": [{name: m.result.rps for name, m in r.items()} for r in rounds],
    }
