"""Live tails at scale: --stream-count streams on one account, events ingested at a steady rate.

Per backend: a fresh store with one account and --stream-connectors connectors;
one conntel process. --stream-count clients open the account's live tail (raw
sockets, one asyncio loop in this process: each reads whole feed batches, a few
a second). Then:

1. idle: with every stream open and nothing ingested, the server's CPU time
   over --stream-idle-seconds, as a share of one core (target <= 10 %);
2. load: --stream-rate events a second for --stream-seconds, posted in
   batches every 50 ms. Every stream must receive every event, in order, with
   no gap (ids are the account's positions); a batch's delivery lag on a
   stream is when the stream had it minus when its POST was sent (so it
   includes ingestion). Target: p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import threading
import time
from typing import Any

import httpx
from harness import BASE_T, BenchError, Server, cli_json, conntel_argv, log
from stores import SERVE_ARGS, Backend, Dataset

IDLE_CPU_TARGET = 0.10
LAG_P99_TARGET = 1.0
BATCH_EVERY = 0.05
_OPEN = re.compile(rb"id: (\d+)\n: stream open")
_LAST_ID = re.compile(rb"id: (\d+)\nevent: event")


class Stream:
    """One raw-socket live tail: the position it opened at, and when each new highest id arrived."""

    def __init__(self) -> None:
        self.opened_at: int | None = None
        self.seen: list[tuple[int, float]] = []  # (highest id so far, when) per chunk that raised it
        self.events = 0
        self.error: str | None = None

    async def run(self, port: int, path: str, token: str, stop: asyncio.Event) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
            while not stop.is_set():
                chunk = await reader.read(1 << 20)
                if not chunk:
                    self.error = "the server closed the stream"
                    return
                now = time.monotonic()
                if self.opened_at is None and (opened := _OPEN.search(chunk)):
                    self.opened_at = int(opened.group(1))
                self.events += chunk.count(b"\nevent: event\n")
                ids = _LAST_ID.findall(chunk)
                if ids:
                    self.seen.append((int(ids[-1]), now))
            writer.close()
        except OSError as error:
            self.error = f"{type(error).__name__}: {error}"


def setup(ds: Dataset) -> None:
    ds.backend.reset(ds.store)
    store = ds.backend.store_args(ds.store)
    ds.account = cli_json("accounts", "create", "--name", "bench-streams", *store)["id"]
    ds.connector_ids = [cli_json("connectors", "create", "--account", ds.account, *store)["id"] for _ in range(10)]
    ds.write_token = cli_json("tokens", "create", "--account", ds.account, "--permission", "Magic WAN Write", *store)[
        "value"
    ]
    ds.read_token = cli_json("tokens", "create", "--account", ds.account, "--permission", "Magic WAN Read", *store)[
        "value"
    ]


def ingest(ds: Dataset, port: int, rate: int, seconds: float, sent: list[tuple[int, float]], failed: list[str]) -> None:
    """`rate` events a second in batches every BATCH_EVERY s, round robin over the connectors; `sent` gets
    (events so far, when the batch's POST was sent)."""
    per_batch = max(1, round(rate * BATCH_EVERY))
    batches = int(seconds / BATCH_EVERY)
    total = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        start = time.monotonic()
        for b in range(batches):
            time.sleep(max(0.0, start + b * BATCH_EVERY - time.monotonic()))
            connector = b % len(ds.connector_ids)
            events = [
                {"t": BASE_T + b, "n": i, "e": {"k": "Reconcile", "i": b * per_batch + i}, "v": "1.0"}
                for i in range(per_batch)
            ]
            at = time.monotonic()
            response = http.post(ds.path(connector), json=events, headers={"Authorization": f"Bearer {ds.write_token}"})
            if response.status_code != 200:
                failed.append(f"{response.status_code} {response.text[:200]}")
                return
            total += per_batch
            sent.append((total, at))


def measure(backend: Backend, args: argparse.Namespace, port: int) -> dict[str, Any]:
    ds = Dataset.for_size(backend, 0, 10, tag="streams")
    log(f"live streams, {backend.label}: {args.stream_count} streams on one account in {ds.where}")
    setup(ds)
    argv = conntel_argv(
        "serve", *backend.serve_args(ds.store), "--host", "127.0.0.1", "--port", str(port),
        "--max-connections", str(args.stream_count + 64), *SERVE_ARGS,
    )  # fmt: skip
    server = Server(f"conntel-{backend.name}-streams", argv, port).start()
    try:
        return asyncio.run(_measure(ds, args, port, server))
    finally:
        server.stop()
        backend.drop(ds.store)


async def _measure(ds: Dataset, args: argparse.Namespace, port: int, server: Server) -> dict[str, Any]:
    path = f"/client/v4/accounts/{ds.account}/magic/connectors/telemetry/events/stream"
    stop = asyncio.Event()
    streams = [Stream() for _ in range(args.stream_count)]
    tasks = []
    for i, stream in enumerate(streams):
        tasks.append(asyncio.create_task(stream.run(port, path, ds.read_token, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # no thundering herd on the listen backlog
    deadline = time.monotonic() + 60
    while any(s.opened_at is None and s.error is None for s in streams):
        if time.monotonic() > deadline:
            raise BenchError(f"only {sum(s.opened_at is not None for s in streams)} streams opened in 60 s")
        await asyncio.sleep(0.1)
    broken = [s.error for s in streams if s.error]
    if broken:
        raise BenchError(f"{len(broken)} streams failed to open: {broken[:3]}")
    await asyncio.sleep(2)  # settle
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(args.stream_idle_seconds)
    idle_share = (server.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
    log(f"{len(streams)} idle streams: server CPU {idle_share:.1%} of one core")

    sent: list[tuple[int, float]] = []
    failed: list[str] = []
    writer = threading.Thread(target=ingest, args=(ds, port, args.stream_rate, args.stream_seconds, sent, failed))
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    writer.start()
    await asyncio.to_thread(writer.join)
    total = sent[-1][0] if sent else 0
    deadline = time.monotonic() + 30
    while any(s.events < total and s.error is None for s in streams) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    busy_share = (server.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if failed:
        raise BenchError(f"ingestion failed: {failed[0]}")

    complete = sum(s.events == total for s in streams)
    lags: list[float] = []
    for stream in streams:
        start = stream.opened_at or 0
        seen = iter(stream.seen)
        got = next(seen, None)
        for count, at in sent:
            while got is not None and got[0] < start + count:
                got = next(seen, None)
            if got is None:
                break
            lags.append(max(0.0, got[1] - at))
    lags.sort()
    p99 = lags[int(len(lags) * 0.99) - 1] if lags else float("inf")
    result = {
        "label": ds.backend.label,
        "streams": len(streams),
        "rate": args.stream_rate,
        "seconds": args.stream_seconds,
        "events": total,
        "complete_streams": complete,
        "idle_cpu_share": idle_share,
        "busy_cpu_share": busy_share,
        "lag_median_s": statistics.median(lags) if lags else None,
        "lag_p99_s": p99,
        "lag_max_s": lags[-1] if lags else None,
        "met": complete == len(streams) and p99 <= LAG_P99_TARGET and idle_share <= IDLE_CPU_TARGET,
    }
    log(
        f"live streams, {ds.backend.label}: {complete}/{len(streams)} streams got all {total} events; "
        f"lag p50 {result['lag_median_s'] or 0:.3f}s p99 {p99:.3f}s max {result['lag_max_s'] or 0:.3f}s; "
        f"server CPU idle {idle_share:.1%}, under load {busy_share:.1%} of one core "
        f"({'met' if result['met'] else 'NOT met'})"
    )
    return result


def run(backends: list[Backend], args: argparse.Namespace, port: int) -> list[dict[str, Any]]:
    return [measure(backend, args, port) for backend in backends]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("streams: live tails at scale on one account")
    group.add_argument("--stream-count", type=int, default=1000, help="concurrent live tails")
    group.add_argument("--stream-rate", type=int, default=200, help="events a second ingested meanwhile")
    group.add_argument("--stream-seconds", type=float, default=20, help="how long events are ingested")
    group.add_argument("--stream-idle-seconds", type=float, default=10, help="how long CPU is measured idle")
