"""The benchmarks behind `make bench`: speed and staying power, as ratios measured in one run.

    .venv/bin/python bench/run.py [--rounds 3] [--backends sqlite,postgres] [--measures get,ingest,pages]
                                  [--soak [--soak-seconds 600 --soak-rate 300]] [--profile]

What it does, in order (bench/RESULTS.md explains every measure and target):

1. Makes sure `wrk` is installed (apt-get on a fresh Debian machine).
2. For each backend (by default SQLite and PostgreSQL), builds, or reuses
   when one with the same --events/--connectors is complete, the Get Event
   store: 1M events over 80 connectors, loaded through the real ingestion
   API (stores.py).
3. get: Get Event on each backend vs a bare ASGI hello world, wrk, in
   --rounds rounds (getevent.py).
4. ingest: in every round, per backend, 200k events posted in batches of
   1,000 by 4 clients into a fresh store; for SQLite, ÷ an in-process insert
   loop of the same rows with the same durability (ingest.py).
5. pages: List Events on the last ingestion store, the page 190,000 events
   deep vs the first page (pages.py). Needs ingest, which it implies.
6. With --profile: py-spy on conntel during an extra Get Event run and an
   extra ingestion round per backend (profiling.py).
7. slow: per backend, server RSS while 16 clients read the largest allowed
   Latest Events pages slowly (slow_readers.py).
   Memory: every conntel process's RSS at stop and at its peak.
8. streams: on SQLite, 1,000 live tails of one account: the server's CPU
   with them idle, then every stream receives every event of 200 a second,
   with its delivery lag (live_streams.py).
9. With --soak (or --measures ...,soak): ten minutes of mixed load at a
   fixed rate per backend (soak.py). Not in `make bench`: it alone takes
   ten minutes per backend.
10. Prints the summary table and adds a dated section, newest first, to
   bench/RESULTS.md (report.py), and the whole report to
   bench/work/last-run.json.

Every server it started is stopped, also on error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import getevent
import ingest
import live_streams
import pages
import profiling
import report
import slow_readers
import soak
import stores
from harness import WORK, BenchError, Server, ensure_wrk, fmt_mib, free_port, loadavg, log, machine
from stores import BACKENDS, DEFAULT_POSTGRES, Backend, Dataset, build, conntel_server, make_backends, try_reuse

MEASURES = ("get", "ingest", "pages", "slow", "streams", "soak")
DEFAULT_MEASURES = "get,ingest,pages,slow,streams"


def get_event_datasets(backends: list[Backend], args: argparse.Namespace, port: int) -> list[Dataset]:
    datasets = [Dataset.for_size(backend, args.events, args.connectors) for backend in backends]
    for ds in datasets:
        if not args.rebuild and try_reuse(ds):
            log(
                f"reusing {ds.where} ({ds.events:,} events, loaded {ds.load['at']} "
                f"at {ds.load['events_per_s']:,} events/s)"
            )
        else:
            build(ds, port, args.batch, args.loaders, args.sample)
    return datasets


def profile(datasets: list[Dataset], backends: list[Backend], args: argparse.Namespace, port: int) -> list[dict]:
    """Get Event and ingestion on each backend, each in an extra run with py-spy attached.

    A profile is a diagnosis, not a figure: one py-spy could not take (it wrote nothing once, at the end of a
    short ingestion) is recorded as such, and the run's figures are kept."""
    profiling.py_spy()  # fails early when missing
    profiles = []
    url = f"http://127.0.0.1:{port}"

    def get_event(ds: Dataset, recorder: profiling.Recorder) -> str:
        server = conntel_server(ds, port, f"conntel-{ds.backend.name}-profile").start()
        try:
            with recorder(server):
                measured = getevent.measure(
                    server,
                    url,
                    args,
                    [str(ds.paths_file), ds.read_token],
                    lambda ds=ds: ds.backend.helper_pids(ds.store),
                )
        finally:
            server.stop()
        return f"{measured.result.rps:,.0f} req/s"

    def ingestion(backend: Backend, recorder: profiling.Recorder) -> str:
        return f"{ingest.profiled_round(backend, args, port, recorder)['events_per_s']:,} events/s"

    runs = [(f"Get Event, {ds.backend.label}", f"get-event-{ds.backend.name}", get_event, ds) for ds in datasets]
    runs += [(f"ingestion, {b.label}", f"ingest-{b.name}", ingestion, b) for b in backends]
    for what, name, measure, subject in runs:
        recorder = profiling.Recorder(f"profile-{name}")
        try:
            throughput = measure(subject, recorder)  # type: ignore[operator]
        except profiling.ProfileFailed as exc:
            log(f"profile of {what} not taken: {exc}")
            profiles.append({"what": what, "failed": str(exc)})
            continue
        profiles.append({"what": what, "summary": recorder.summary, "throughput": throughput})
    return profiles


def memory(backends: list[Backend], datasets: list[Dataset]) -> list[dict]:
    """Per backend: every conntel process's RSS at stop and peak, and the largest figure with where it was."""
    rows = []
    for backend in backends:
        processes = [m for m in Server.memory if m["group"] == backend.name]
        loaded = next((ds for ds in datasets if ds.backend is backend), None)
        if loaded is not None and loaded.reused:
            load_rss = loaded.load.get("server_rss_kib_after_load")
            processes.append(
                {
                    "name": f"conntel-{backend.name}-load ({loaded.events:,} events, {loaded.load['at']})",
                    "rss_kib": load_rss,
                    "peak_kib": load_rss,
                }
            )
        known = [p for p in processes if p["peak_kib"]]
        top = max(known, key=lambda p: p["peak_kib"]) if known else None
        rows.append(
            {
                "name": backend.name,
                "label": backend.label,
                "processes": processes,
                "max_kib": top["peak_kib"] if top else None,
                "max_what": f"peak of {top['name']}" if top else "not measured",
            }
        )
        log(f"memory, {backend.label}: largest conntel RSS {fmt_mib(rows[-1]['max_kib'])} ({rows[-1]['max_what']})")
    return rows


def timed(durations: dict[str, float], name: str, step: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return step()
    finally:
        durations[name] = time.monotonic() - started


def name_list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
        unknown = [name for name in names if name not in choices]
        if not names or unknown:
            raise argparse.ArgumentTypeError(f"choose among {', '.join(choices)} (comma-separated), not {text!r}")
        return names

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--backends",
        type=name_list(BACKENDS),
        default=",".join(BACKENDS),
        help="stores to serve conntel on, in this order in every round: " + ",".join(BACKENDS),
    )
    parser.add_argument(
        "--measures",
        type=name_list(MEASURES),
        default=DEFAULT_MEASURES,
        help="what to measure, among " + ",".join(MEASURES) + " (pages implies ingest)",
    )
    parser.add_argument("--soak", action="store_true", help="add the soak to --measures")
    parser.add_argument("--profile", action="store_true", help="add py-spy profiles of Get Event and ingestion")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat Get Event (bare, then each backend) and ingestion; median ratios"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CONNTEL_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="PostgreSQL server for the postgres backend, which uses its databases "
        "conntel_bench_* (a database in the URL is ignored) [env: CONNTEL_BENCH_POSTGRES_URL]",
    )
    parser.add_argument("--pool-size", type=int, default=10, help="conntel serve --pool-size, for PostgreSQL")
    parser.add_argument("--port", type=int, default=0, help="port for all servers (0: a free one)")
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more `conntel serve` argument for every conntel server, e.g. "
        "--serve-arg=--no-access-log (repeatable; for A/B of server options)",
    )
    parser.add_argument("--no-results", action="store_true", help="do not touch bench/RESULTS.md")
    store = parser.add_argument_group("the Get Event store")
    store.add_argument("--events", type=int, default=1_000_000, help="events in the database")
    store.add_argument("--connectors", type=int, default=80, help="connectors the events are spread over")
    store.add_argument("--batch", type=int, default=5000, help="events per ingestion request while loading")
    store.add_argument("--loaders", type=int, default=4, help="concurrent ingestion clients while loading")
    store.add_argument("--sample", type=int, default=100_000, help="existing events wrk picks from at random")
    store.add_argument("--rebuild", action="store_true", help="reload the stores even if they can be reused")
    get = parser.add_argument_group("get: Get Event")
    get.add_argument("--duration", type=int, default=16, help="seconds each server is measured for in a round")
    get.add_argument(
        "--slices", type=int, default=4, help="wrk runs each server's --duration is cut into, in turns with the others"
    )
    get.add_argument("--connections", type=int, default=32, help="wrk connections (-c)")
    get.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    get.add_argument("--warmup", type=int, default=3, help="seconds of wrk warm-up before each measure (0: none)")
    get.add_argument("--precheck", type=int, default=200, help="sampled events checked for 200 before wrk")
    ing = parser.add_argument_group("ingest: ingestion")
    ing.add_argument("--ingest-events", type=int, default=200_000, help="events posted, all of one connector")
    ing.add_argument("--ingest-batch", type=int, default=1000, help="events per request")
    ing.add_argument("--ingest-clients", type=int, default=4, help="concurrent clients")
    pag = parser.add_argument_group("pages: List Events deep page")
    pag.add_argument("--page-depth", type=int, default=190_000, help="events before the deep page")
    pag.add_argument("--page-limit", type=int, default=100, help="events per page")
    pag.add_argument("--page-seconds", type=float, default=4, help="seconds of each wrk -c1 run")
    pag.add_argument("--page-pairs", type=int, default=3, help="alternating (first, deep) wrk runs")
    live_streams.add_arguments(parser)
    slow = parser.add_argument_group("slow: slow readers of the largest Latest Events pages")
    slow.add_argument("--slow-readers", type=int, default=16, help="concurrent slow readers")
    slow.add_argument("--slow-seconds", type=float, default=10, help="how long they read slowly")
    slow.add_argument("--slow-events", type=int, default=12, help="events of ~1 MiB on the connector")
    sk = parser.add_argument_group("soak")
    sk.add_argument("--soak-seconds", type=float, default=600, help="length of the soak, per backend")
    sk.add_argument("--soak-rate", type=float, default=300, help="requests per second, on a fixed schedule")
    sk.add_argument("--soak-batch", type=int, default=50, help="events per ingestion request")
    sk.add_argument("--soak-connections", type=int, default=64, help="most client connections")
    args = parser.parse_args(argv)
    if args.soak and "soak" not in args.measures:
        args.measures.append("soak")
    if "pages" in args.measures and "ingest" not in args.measures:
        args.measures.insert(args.measures.index("pages"), "ingest")
    if args.events < 1 or args.connectors < 1 or args.events < args.connectors:
        parser.error("need --events >= --connectors >= 1")
    if not 1 <= args.batch <= 5000 or not 1 <= args.ingest_batch <= 5000 or not 1 <= args.soak_batch <= 5000:
        parser.error("--batch, --ingest-batch and --soak-batch must be 1..5000")
    if (
        min(
            args.rounds,
            args.loaders,
            args.sample,
            args.duration,
            args.slices,
            args.pool_size,
            args.ingest_clients,
            args.page_pairs,
            args.soak_connections,
        )
        < 1
        or args.warmup < 0
    ):
        parser.error("counts and durations must be positive")
    if args.duration % args.slices:
        parser.error("--duration must be a multiple of --slices (wrk runs whole seconds)")
    if args.page_depth % args.page_limit or not 1 <= args.page_limit <= 1000:
        parser.error("--page-depth must be a multiple of --page-limit (1..1000)")
    if "pages" in args.measures and args.ingest_events < args.page_depth + args.page_limit:
        parser.error("--ingest-events must hold the deep page: at least --page-depth + --page-limit")
    return args


def _on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)  # also SIGINT: a shell may start us with it ignored
    wall0 = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    stores.SERVE_ARGS[:] = args.serve_arg
    durations: dict[str, float] = {}
    try:
        ensure_wrk()
        port = args.port or free_port()
        backends = make_backends(args.backends, args.postgres_url, args.pool_size)
        databases = [d for d in (backend.describe() for backend in backends) if d]  # fails early if unreachable
        result: dict[str, Any] = {
            "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "command": shlex.join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
            "machine": machine() | {"databases": databases},
            "params": {
                "events": args.events,
                "connectors": args.connectors,
                "duration": args.duration,
                "slices": args.slices,
                "connections": args.connections,
                "threads": args.threads,
                "warmup": args.warmup,
                "rounds": args.rounds,
                "no_results": args.no_results,
                "serve_args": args.serve_arg,
            },
            "measures": args.measures,
            "loadavg_before": loadavg(),
        }
        datasets: list[Dataset] = []
        if {"get", "soak"} & set(args.measures) or args.profile:
            datasets = timed(durations, "stores", lambda: get_event_datasets(backends, args, port))
        if "get" in args.measures:
            result["get"] = timed(durations, "get", lambda: getevent.run(datasets, args, port))
        if "ingest" in args.measures:
            result["ingest"], ingested = timed(durations, "ingest", lambda: ingest.run(backends, args, port))
        if "pages" in args.measures:
            result["pages"] = timed(durations, "pages", lambda: [pages.run(ds, args, port) for ds in ingested])
        if "slow" in args.measures:
            result["slow"] = timed(durations, "slow", lambda: slow_readers.run(backends, args, port))
        if "streams" in args.measures:
            sqlite = [backend for backend in backends if backend.name == "sqlite"]  # the target's backend
            result["streams"] = timed(durations, "streams", lambda: live_streams.run(sqlite, args, port))
        if args.profile:
            result["profiles"] = timed(durations, "profiles", lambda: profile(datasets, backends, args, port))
        if "soak" in args.measures:
            result["soak"] = timed(durations, "soak", lambda: [soak.run(ds, args, port) for ds in datasets])
        result["memory"] = memory(backends, datasets)
        result["datasets"] = [
            {"label": ds.backend.label, "load": ds.load, "reused": ds.reused, "after_load": ds.backend.after_load_note}
            for ds in datasets
        ]
        result["durations"] = durations
        result["loadavg_after"] = loadavg()
        result["wall_s"] = time.monotonic() - wall0
        (WORK / "last-run.json").write_text(json.dumps(result, indent=1, default=str))
        if not args.no_results:
            report.write_results(result)
        report.print_summary(result)
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
