"""Snapshot benchmarks (issue #12): stored bytes per snapshot, HTTP ingestion rate, Get Snapshot, Get Event A/B.

    .venv/bin/python bench/snapshots.py [--snapshots 100000] [--connectors 100] [--rounds 5]
                                        [--backends sqlite,postgres] [--before REV]

For each backend, into a fresh store through the real API:

1. ingest: `--snapshots` simulated snapshots (conntel.client.metrics.sample_snapshots, another seed than
   the dictionary's) posted in batches of 100 by 4 clients: snapshots/s (target on SQLite: >= 3,000), the
   worker processes' CPU per snapshot, and the busiest worker's share of it (the kernel spreads the 4
   connections over the workers by a hash: 0.5 is even, 1.0 all on one).
2. bytes: the store's size for them after a checkpoint (SQLite: WAL checkpointed and truncated, then
   VACUUM; PostgreSQL: VACUUM FULL, then the snapshots table's total relation size, TOAST and index
   included) ÷ the bytes of their JSON (target: <= 25 %).
3. get (SQLite): Get Snapshot on random ingested snapshots vs the bare ASGI app (bench/hello_asgi.py),
   wrk, interleaved in every round; the median ratio (target: >= 0.35).
4. events (SQLite): Get Event served by the code at `--before` (default: f6acaae, the last release without
   snapshots, on its own HTTP server of the time) and by this tree, both on
   one events store, interleaved in every round: the median ratio now/before (the event figures must not
   fall).

Prints the figures as JSON (recorded in bench/RESULTS.md by hand) and writes bench/work/snapshots.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
from harness import (
    ROOT,
    WORK,
    BenchError,
    Server,
    cli_json,
    conntel_argv,
    cpu_seconds,
    ensure_wrk,
    free_port,
    hello_server,
    log,
    run_wrk,
)
from stores import DEFAULT_POSTGRES, Backend, make_backends, pg

from conntel.client.metrics import sample_snapshots

BATCH = 100
CLIENTS = 4
BEFORE = "f6acaae"  # the last release without snapshots: Get Event must not have fallen since


def setup(backend: Backend, store: str, connectors: int) -> tuple[str, list[str], str, str]:
    backend.reset(store)
    args = backend.store_args(store)
    account = cli_json("accounts", "create", "--name", "bench", *args)["id"]
    ids = [cli_json("connectors", "create", "--account", account, *args)["id"] for _ in range(connectors)]
    write = cli_json("tokens", "create", "--account", account, "--permission", "Magic WAN Write", *args)["value"]
    read = cli_json("tokens", "create", "--account", account, "--permission", "Magic WAN Read", *args)["value"]
    return account, ids, write, read


def serve(backend: Backend, store: str, name: str, env_src: Path | None = None) -> Server:
    port = free_port()
    argv = conntel_argv("serve", *backend.serve_args(store), "--host", "127.0.0.1", "--port", str(port))
    server = Server(name, argv, port, group=backend.name)
    if env_src is not None:  # another checkout's code (Get Event before/after)
        os.environ["PYTHONPATH"], saved = str(env_src), os.environ.get("PYTHONPATH")
        try:
            return server.start()
        finally:
            if saved is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = saved
    return server.start()


def generate(count: int, connectors: int) -> list[tuple[int, bytes, int]]:
    """(connector index, body, bytes of its snapshots' JSON) for every batch of BATCH, connector by connector."""
    per_connector: dict[int, list[bytes]] = {i: [] for i in range(connectors)}
    for i, snapshot in enumerate(sample_snapshots(7, connectors, count)):
        per_connector[i % connectors].append(msgspec.json.encode(snapshot))
    out = []
    for i, texts in per_connector.items():
        for start in range(0, len(texts), BATCH):
            part = texts[start : start + BATCH]
            out.append((i, b"[" + b",".join(part) + b"]", sum(map(len, part))))
    random.Random(3).shuffle(out)  # a fleet's batches arrive interleaved
    return out


def ingest(url: str, account: str, token: str, work: list[tuple[str, bytes, int]]) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post_all(share: list[tuple[str, bytes, int]]) -> None:
        with httpx.Client(headers=headers, timeout=60) as client:
            for connector, body, _ in share:
                response = client.post(
                    f"{url}/client/v4/accounts/{account}/magic/connectors/{connector}/telemetry/snapshots", content=body
                )
                if response.status_code != 200 or response.json()["result"]["accepted"] != BATCH:
                    raise BenchError(f"ingestion failed: {response.status_code} {response.text[:300]}")

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        for done in [pool.submit(post_all, work[i::CLIENTS]) for i in range(CLIENTS)]:
            done.result()
    return time.monotonic() - started


def stored_bytes(backend: Backend, store: str) -> int:
    if backend.name == "sqlite":
        conn = sqlite3.connect(store)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.close()
        return Path(store).stat().st_size
    pg(store, "execute", "VACUUM FULL snapshots")
    return int(pg(store, "fetchval", "SELECT pg_total_relation_size('snapshots')"))


def wrk_ratio(servers: list[tuple[Server, list[str] | None]], rounds: int, duration: float) -> list[list[float]]:
    """req/s of each server in every round, the servers interleaved within a round."""
    results: list[list[float]] = [[] for _ in servers]
    for _ in range(rounds):
        for i, (server, script_args) in enumerate(servers):
            url = f"http://127.0.0.1:{server.port}/"
            result = run_wrk(url, duration, threads=2, connections=32, script_args=script_args)
            if result.errors:
                raise BenchError(f"{server.name}: {result.non_2xx} non-2xx, {result.socket_errors}")
            results[i].append(result.rps)
    return results


def paths_file(name: str, paths: list[str]) -> Path:
    path = WORK / name
    path.write_text("\n".join(paths) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=100_000)
    parser.add_argument("--connectors", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--before",
        default=BEFORE,
        help="git revision whose Get Event is compared with this tree's (default: the release before snapshots)",
    )
    args = parser.parse_args()
    ensure_wrk()  # Get Snapshot and Get Event are measured with wrk (installed if missing: a fresh machine)
    WORK.mkdir(exist_ok=True)
    report: dict = {"snapshots": args.snapshots, "connectors": args.connectors, "backends": {}}
    log(f"generating {args.snapshots:,} snapshots of {args.connectors} connectors")
    generated = generate(args.snapshots, args.connectors)
    try:
        for backend in make_backends(args.backends.split(","), DEFAULT_POSTGRES, 10):
            store = backend.store(args.snapshots, args.connectors, tag="snapshots")
            account, connectors, write, read = setup(backend, store, args.connectors)
            work = [(connectors[i], body, size) for i, body, size in generated]
            json_bytes = sum(size for _, _, size in work)
            server = serve(backend, store, f"conntel-{backend.name}")
            workers = [pid for pid in server.pids() if pid != server.pid]
            cpu_before = [cpu_seconds(pid) for pid in workers]
            seconds = ingest(f"http://127.0.0.1:{server.port}", account, write, work)
            rate = args.snapshots / seconds
            spent = [cpu_seconds(pid) - before for pid, before in zip(workers, cpu_before, strict=True)]
            log(f"{backend.label}: {rate:,.0f} snapshots/s ({json_bytes / args.snapshots:,.0f} JSON bytes each)")
            row: dict = {
                "ingest_per_s": round(rate),
                "json_bytes_each": round(json_bytes / args.snapshots),
                # The kernel spreads the 4 connections over the worker processes by a hash (SO_REUSEPORT):
                # the busiest one's share says how evenly; CPU per snapshot does not depend on it.
                "worker_cpu_us_per_snapshot": round(sum(spent) / args.snapshots * 1e6),
                "busiest_worker_share": round(max(spent) / sum(spent), 3),
            }
            log(
                f"{backend.label}: worker CPU {row['worker_cpu_us_per_snapshot']} µs a snapshot, busiest worker "
                f"{row['busiest_worker_share']:.0%} of it"
            )
            if backend.name == "sqlite":
                hello = hello_server(free_port()).start()
                paths = []
                for connector in connectors[:20]:
                    where = f"/client/v4/accounts/{account}/magic/connectors/{connector}/telemetry/snapshots"
                    listed = httpx.get(
                        f"http://127.0.0.1:{server.port}{where}",
                        params={"from": 0, "to": 2**40, "limit": 1000},
                        headers={"Authorization": f"Bearer {read}"},
                    ).json()["result"]["items"]
                    paths += [f"{where}/{item['t']}" for item in listed]
                script = [str(paths_file("snapshot-paths.txt", paths)), read]
                hello_rps, get_rps = wrk_ratio([(hello, None), (server, script)], args.rounds, args.duration)
                ratios = [g / h for g, h in zip(get_rps, hello_rps, strict=True)]
                row["get_snapshot"] = {
                    "rps": [round(x) for x in get_rps],
                    "hello_rps": [round(x) for x in hello_rps],
                    "median_ratio": round(statistics.median(ratios), 3),
                }
                log(f"Get Snapshot / bare ASGI: median {statistics.median(ratios):.2f} ({ratios})")
                hello.stop()
            server.stop()
            size = stored_bytes(backend, store)
            row["stored_bytes_each"] = round(size / args.snapshots)
            row["stored_over_json"] = round(size / json_bytes, 4)
            log(f"{backend.label}: {size / args.snapshots:,.0f} bytes stored per snapshot = {size / json_bytes:.1%}")
            report["backends"][backend.name] = row
            if backend.name == "sqlite" and args.before:
                report["get_event"] = get_event_before_after(backend, args)
    finally:
        Server.stop_all()
    (WORK / "snapshots.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def get_event_before_after(backend: Backend, args: argparse.Namespace) -> dict:
    """Get Event by the code at args.before and by this tree, on one SQLite events store, interleaved."""
    before_tree = WORK / "before-tree"
    subprocess.run(["rm", "-rf", str(before_tree)], check=True)
    before_tree.mkdir()
    archive = subprocess.run(["git", "archive", args.before, "src"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(before_tree)], input=archive.stdout, check=True)
    store = backend.store(20_000, 10, tag="getevent-ab")
    account, connectors, write, read = setup(backend, store, 10)
    events = [{"t": 1_700_000_000 + i // 10, "n": i % 10, "e": {"k": "Reconcile"}, "v": "1"} for i in range(2000)]
    now = serve(backend, store, "conntel-now")
    for connector in connectors:
        response = httpx.post(
            f"http://127.0.0.1:{now.port}/client/v4/accounts/{account}/magic/connectors/{connector}/telemetry/events",
            json=events,
            headers={"Authorization": f"Bearer {write}"},
        )
        response.raise_for_status()
    before = serve(backend, store, "conntel-before", env_src=before_tree / "src")
    paths = [
        f"/client/v4/accounts/{account}/magic/connectors/{c}/telemetry/events/{e['t']}.{e['n']}"
        for c in connectors
        for e in events[::7]
    ]
    script = [str(paths_file("event-paths.txt", paths)), read]
    before_rps, now_rps = wrk_ratio([(before, script), (now, script)], args.rounds, args.duration)
    ratios = [n / b for n, b in zip(now_rps, before_rps, strict=True)]
    log(f"Get Event now / {args.before}: median {statistics.median(ratios):.2f} ({ratios})")
    before.stop()
    now.stop()
    return {
        "before": args.before,
        "before_rps": [round(x) for x in before_rps],
        "now_rps": [round(x) for x in now_rps],
        "median_ratio": round(statistics.median(ratios), 3),
    }


if __name__ == "__main__":
    sys.exit(main())
