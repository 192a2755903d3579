"""Staying power: a long mixed load at a fixed rate (`--soak`, not part of the default run).

For each backend, on a copy of its 1M-event store (an SQLite backup, or a
PostgreSQL database made from it as a template), dropped afterwards: one
`conntel serve`, sent --soak-rate requests a second (default 300) for
--soak-seconds (default 600) by an asyncio client on a fixed schedule:

- 70% Get Event of a random existing event (the paths wrk uses);
- 15% List Events, limit 100, over one day of a random connector from the
  time of a random existing event;
- 5% Latest Events of a random connector;
- 10% ingestion of a batch of 50 new events of a connector (its timeline
  continued five years after the dataset's, so every event is new: the
  store grows by ~1,500 events a second, ~0.9M in ten minutes).

Request i is due at start + i/rate whatever happened before it, and its
latency is measured from that due time, not from when it was actually sent:
a server (or client) stall shows up in the latencies of every request it
delayed, with no coordinated omission. Every request is built beforehand and
sent by a bare HTTP/1.1 client (client.py) over up to --soak-connections
keep-alive connections, so that the client's own cost stays small. Any answer but 200 (and, for
ingestion, anything but all 50 accepted), a transport error or a timeout
is an error; the target is zero. The server's resident memory is sampled
every 10 seconds: "flat" means it grew by at most FLAT_MIB over the second
half of the run (the first half covers warm-up: caches filling).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import itertools
import json
import random
import statistics
import time
from collections import defaultdict

from client import Pool, ProtocolError, build_request
from harness import (
    BASE_T,
    BenchError,
    Server,
    cpu_seconds,
    cpu_seconds_named,
    fmt_mib,
    log,
    machine_cpu_seconds,
    percentile,
)
from stores import Dataset, conntel_server

from conntel.client import lifecycles

MIX = (("get", 70), ("list", 15), ("latest", 5), ("ingest", 10))
SAMPLE_EVERY_S = 10.0
FLAT_MIB = 5.0
SLOW_MS = 100.0  # requests slower than this are kept on a timeline, to tell stalls from steady slowness
SOAK_EPOCH = BASE_T + 5 * 365 * 86_400  # after every event of the dataset


@dataclasses.dataclass
class Planned:
    kind: str
    what: str  # method and path, for error messages
    raw: bytes  # the whole request


def plan(ds: Dataset, args: argparse.Namespace, port: int) -> list[Planned]:
    """Every request of the run, in order, built beforehand so that sending one costs the client little."""
    rng = random.Random(f"soak-{ds.events}-{ds.connectors}")
    total = int(args.soak_rate * args.soak_seconds)
    gets = [p for p in ds.paths_file.read_text().splitlines() if p]
    kinds = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX], k=total)
    streams = [lifecycles.connector_events(random.Random(f"soak-{i}"), SOAK_EPOCH) for i in range(ds.connectors)]
    next_connector = itertools.cycle(range(ds.connectors))
    host = f"127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ds.write_token}"}

    def planned(kind: str, method: str, path: str, body: bytes | None = None) -> Planned:
        extra = {"Content-Type": "application/json"} if body is not None else {}
        return Planned(kind, f"{method} {path[:120]}", build_request(method, path, host, headers | extra, body))

    requests = []
    for kind in kinds:
        if kind == "get":
            requests.append(planned(kind, "GET", rng.choice(gets)))
        elif kind == "list":
            base, _, ref = rng.choice(gets).rpartition("/")
            t = int(ref.split(".")[0])
            requests.append(planned(kind, "GET", f"{base}?from={t}&to={t + 86_400}&limit=100"))
        elif kind == "latest":
            requests.append(planned(kind, "GET", ds.path(rng.randrange(ds.connectors)) + "/latest"))
        else:
            i = next(next_connector)
            batch = list(itertools.islice(streams[i], args.soak_batch))
            requests.append(planned(kind, "POST", ds.path(i), json.dumps(batch, separators=(",", ":")).encode()))
    return requests


async def drive(server: Server, requests: list[Planned], args: argparse.Namespace, port: int) -> dict:
    loop = asyncio.get_running_loop()
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    examples: list[str] = []
    samples: list[dict] = []
    slow: list[tuple[float, float]] = []  # (due, in seconds from the start; latency ms) of the slow requests
    lag_max = 0.0
    started = loop.time() + 0.1

    async def one(pool: Pool, request: Planned, due: float) -> None:
        try:
            status, body = await pool.request(request.raw, timeout=10.0)
            ok = status == 200
            if ok and request.kind == "ingest":
                ok = json.loads(body)["result"]["accepted"] == args.soak_batch
            problem = None if ok else f"{request.what} -> {status}: {body[:200]!r}"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ProtocolError) as exc:
            problem = f"{request.what}: {exc!r}"
        latency_ms = 1000 * (loop.time() - due)
        latencies[request.kind].append(latency_ms)
        if latency_ms > SLOW_MS:
            slow.append((due - started, latency_ms))
        if problem:
            errors[request.kind] += 1
            if len(examples) < 5:
                examples.append(problem)

    def cpu_now() -> dict[str, float]:
        return {
            "machine": machine_cpu_seconds(),
            "server": server.cpu_seconds(),
            "client": time.process_time(),
            "postgres": cpu_seconds_named("postgres"),
        }

    async def sample(started: float) -> None:
        """Every 10 s: the server's RSS, and who used the CPU (outsiders show up as `other`)."""
        before, at_before = cpu_now(), loop.time()
        while True:
            await asyncio.sleep(SAMPLE_EVERY_S - (loop.time() - started) % SAMPLE_EVERY_S)
            now, at = cpu_now(), loop.time()
            pct = {k: 100 * (now[k] - before[k]) / (at - at_before) for k in now}
            pct["other"] = pct["machine"] - pct["server"] - pct["client"] - pct["postgres"]
            samples.append(
                {
                    "s": round(at - started),
                    "rss_kib": server.rss_kib(),
                    **{f"{k}_cpu_pct": round(v) for k, v in pct.items()},
                }
            )
            before, at_before = now, at

    pool = Pool("127.0.0.1", port, args.soak_connections)
    try:
        in_flight: set[asyncio.Task] = set()
        sampler = asyncio.create_task(sample(started))
        next_report = started + 60
        for i, request in enumerate(requests):
            due = started + i / args.soak_rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag_max = max(lag_max, loop.time() - due)
            task = asyncio.create_task(one(pool, request, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if loop.time() >= next_report:
                next_report += 60
                done = sum(len(v) for v in latencies.values())
                log(
                    f"  soak {loop.time() - started:5.0f}s: {done:,} answered, {sum(errors.values())} errors, "
                    f"RSS {samples[-1]['rss_kib'] / 1024 if samples else 0:.0f} MiB, {len(in_flight)} in flight"
                )
        if in_flight:
            await asyncio.wait(in_flight, timeout=30)
        unfinished = len(in_flight)
        sampler.cancel()
        elapsed = loop.time() - started
    finally:
        await pool.close()
    return {
        "latencies": latencies,
        "errors": dict(errors),
        "examples": examples,
        "samples": samples,
        "slow": slow,
        "lag_max_ms": 1000 * lag_max,
        "unfinished": unfinished,
        "elapsed_s": elapsed,
    }


def run(ds: Dataset, args: argparse.Namespace, port: int) -> dict:
    backend = ds.backend
    copy = backend.store(ds.events, ds.connectors, tag="soak")
    log(f"soak on {backend.label}: copying {ds.where} to {backend.display(copy)}")
    backend.clone(ds.store, copy)
    soaked = dataclasses.replace(ds, store=copy)
    requests = plan(ds, args, port)
    gc.freeze()  # the plan is long-lived: keep the collector from walking it again and again mid-run
    log(
        f"soak on {backend.label}: {len(requests):,} requests planned at {args.soak_rate:g}/s "
        f"for {args.soak_seconds:g}s, mix {', '.join(f'{k} {w}%' for k, w in MIX)}"
    )
    server = conntel_server(soaked, port, f"conntel-{backend.name}-soak").start()
    try:
        helpers0 = {pid: cpu_seconds(pid) for pid in backend.helper_pids(copy)}
        cpu0, client_cpu0 = server.cpu_seconds(), time.process_time()
        outcome = asyncio.run(drive(server, requests, args, port))
        server_cpu_s, client_cpu_s = server.cpu_seconds() - cpu0, time.process_time() - client_cpu0
        db_cpu_s = sum(cpu_seconds(pid) - helpers0.get(pid, 0.0) for pid in backend.helper_pids(copy))
        if not server.alive():
            raise BenchError(f"{server.name} died during the soak:\n{server.log_tail()}")
        rss_end = server.rss_kib()
    finally:
        server.stop()
    events_after = soaked.count_events()
    backend.drop(copy)
    gc.unfreeze()
    return summarize(ds, args, outcome, server_cpu_s, client_cpu_s, db_cpu_s, rss_end, events_after)


def summarize(
    ds: Dataset,
    args: argparse.Namespace,
    outcome: dict,
    server_cpu_s: float,
    client_cpu_s: float,
    db_cpu_s: float,
    rss_end: int | None,
    events_after: int | None,
) -> dict:
    elapsed = outcome["elapsed_s"]
    kinds = {}
    every: list[float] = []
    for kind, _ in MIX:
        values = sorted(outcome["latencies"].get(kind, []))
        every += values
        kinds[kind] = {
            "requests": len(values),
            "errors": outcome["errors"].get(kind, 0),
            **{f"p{p}_ms": percentile(values, p) for p in (50, 90, 99, 99.9)},
            "max_ms": values[-1] if values else float("nan"),
        }
    every.sort()
    rss = [s["rss_kib"] for s in outcome["samples"] if s["rss_kib"]]
    half = rss[len(rss) // 2] if rss else None
    growth_mib = (rss[-1] - half) / 1024 if rss else float("nan")
    errors = sum(outcome["errors"].values()) + outcome["unfinished"]
    summary = {
        "name": ds.backend.name,
        "label": ds.backend.label,
        "seconds": args.soak_seconds,
        "rate": args.soak_rate,
        "answered": len(every),
        "achieved_rate": len(every) / elapsed,
        "errors": errors,
        "unfinished": outcome["unfinished"],
        "error_examples": outcome["examples"],
        "p50_ms": percentile(every, 50),
        "p99_ms": percentile(every, 99),
        "max_ms": every[-1] if every else float("nan"),
        "kinds": kinds,
        "rss_samples": outcome["samples"],
        "rss_first_kib": rss[0] if rss else None,
        "rss_last_kib": rss[-1] if rss else None,
        "rss_max_kib": max(rss) if rss else None,
        "rss_end_kib": rss_end,
        "rss_second_half_growth_mib": round(growth_mib, 1),
        "flat": growth_mib <= FLAT_MIB,
        "server_cpu_pct": round(100 * server_cpu_s / elapsed),
        "db_cpu_pct": round(100 * db_cpu_s / elapsed) if db_cpu_s else None,
        "client_cpu_pct": round(100 * client_cpu_s / elapsed),
        "dispatch_lag_max_ms": round(outcome["lag_max_ms"], 1),
        "slow": len(outcome["slow"]),
        "other_cpu_max_pct": max((x["other_cpu_pct"] for x in outcome["samples"]), default=None),
        "other_cpu_mean_pct": round(statistics.mean(x["other_cpu_pct"] for x in outcome["samples"][1:]))
        if len(outcome["samples"]) > 1
        else None,
        "stalls": stalls(outcome["slow"]),
        "events_before": ds.events,
        "events_after": events_after,
        "events_ingested": (kinds["ingest"]["requests"] - kinds["ingest"]["errors"]) * args.soak_batch,
    }
    log(
        f"soak on {ds.backend.label}: {summary['answered']:,} answered in {elapsed:.0f}s "
        f"({summary['achieved_rate']:.0f}/s), {errors} errors, p50 {summary['p50_ms']:.2f} ms, "
        f"p99 {summary['p99_ms']:.2f} ms; RSS first/last/max {fmt_mib(summary['rss_first_kib'])}/"
        f"{fmt_mib(summary['rss_last_kib'])}/{fmt_mib(summary['rss_max_kib'])}, second half "
        f"{growth_mib:+.1f} MiB; server CPU {summary['server_cpu_pct']}%, client CPU {summary['client_cpu_pct']}%"
    )
    return summary


def stalls(slow: list[tuple[float, float]], gap_s: float = 1.0, top: int = 5) -> list[dict]:
    """The slow requests grouped into bursts (due within `gap_s` of each other), the largest first."""
    bursts: list[list[tuple[float, float]]] = []
    for due, latency in sorted(slow):
        if bursts and due - bursts[-1][-1][0] <= gap_s:
            bursts[-1].append((due, latency))
        else:
            bursts.append([(due, latency)])
    ranked = sorted(bursts, key=len, reverse=True)[:top]
    return [
        {"at_s": round(b[0][0], 1), "requests": len(b), "worst_ms": round(max(lat for _, lat in b))} for b in ranked
    ]
