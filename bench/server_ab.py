"""conntel on two HTTP servers, interleaved in one run: this tree (granian) vs another tree's `conntel serve`.

    .venv/bin/python bench/server_ab.py --other-src /path/to/uvicorn/checkout/src --rounds 3

For the speed issue: the tree given by --other-src (e.g. a checkout of the
last commit on uvicorn) and this tree serve the same 1M-event stores
(bench/run.py builds them) in turns, alternating which goes first in each
round: Get Event (wrk, as in bench/run.py) on each backend, then ingestion
(200,000 events, as in bench/ingest.py) on SQLite. The bare ASGI app runs
under uvicorn and under granian in every round too. Prints each round and
the medians; nothing is written to RESULTS.md (quote the figures there).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import getevent
import harness
import ingest
import stores
from harness import Server, free_port, log
from run import get_event_datasets
from stores import make_backends

HERE = "this tree"


def argv_for(src: str | None):  # type: ignore[no-untyped-def]
    def argv(*args: str) -> list[str]:
        prefix = ["env", f"PYTHONPATH={src}"] if src else []
        return [*prefix, sys.executable, "-m", "conntel", *args]

    return argv


def hello_on_granian(port: int) -> Server:
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
            "--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning",
            "--working-dir", str(harness.BENCH), "hello_asgi:app"]  # fmt: skip
    return Server("hello-granian", argv, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other-src", required=True, help="src/ of the other tree (its conntel serve)")
    parser.add_argument("--other-name", default="uvicorn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--ingest-events", type=int, default=200_000)
    args = parser.parse_args()
    run_args = argparse.Namespace(
        threads=2, connections=32, duration=args.duration, warmup=args.warmup, precheck=20, rounds=args.rounds,
        events=1_000_000, connectors=80, rebuild=False, batch=5000, loaders=4, sample=100_000,
        ingest_events=args.ingest_events, ingest_batch=1000, ingest_clients=4,
    )  # fmt: skip
    port = free_port()
    backends = make_backends(args.backends.split(","), "postgresql://postgres@127.0.0.1:5432", 10)
    datasets = get_event_datasets(backends, run_args, port)
    variants = {HERE: argv_for(None), args.other_name: argv_for(args.other_src)}
    rps: dict[str, list[float]] = {}
    ingest_rates: dict[str, list[float]] = {}
    for round_no in range(1, args.rounds + 1):
        order = list(variants) if round_no % 2 else list(reversed(variants))
        url = f"http://127.0.0.1:{port}"
        for name, make in (("hello uvicorn", harness.hello_server), ("hello granian", hello_on_granian)):
            server = make(port).start()
            try:
                script = [str(datasets[0].paths_file), datasets[0].read_token]
                rps.setdefault(name, []).append(getevent.measure(server, url, run_args, script).result.rps)
            finally:
                server.stop()
        for ds in datasets:
            for variant in order:
                stores.conntel_argv = variants[variant]
                server = stores.conntel_server(ds, port, f"{variant}-{ds.backend.name}").start()
                try:
                    getevent.precheck(port, ds, run_args.precheck)
                    measured = getevent.measure(server, url, run_args, [str(ds.paths_file), ds.read_token])
                finally:
                    server.stop()
                rps.setdefault(f"{variant} {ds.backend.name}", []).append(measured.result.rps)
        for variant in order:
            stores.conntel_argv = variants[variant]
            _, figures = ingest.ingest_round(backends[0], run_args, port)
            ingest_rates.setdefault(variant, []).append(figures["ratio"])
        log(f"round {round_no}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rps.items()))
        log(f"round {round_no} ingestion ratio: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in ingest_rates.items()))
    print("\nmedian req/s (per round):")
    for name, values in rps.items():
        print(f"  {name}: {statistics.median(values):,.0f} ({', '.join(f'{v:,.0f}' for v in values)})")
    for ds in datasets:
        ratios = [a / b for a, b in zip(rps[f"{HERE} {ds.backend.name}"], rps[f"{args.other_name} {ds.backend.name}"],
                                        strict=True)]  # fmt: skip
        print(f"  {ds.backend.name}: {HERE} / {args.other_name} per round {', '.join(f'{r:.2f}' for r in ratios)}")
    print("ingestion HTTP / in-process loop (SQLite), per round:")
    for name, values in ingest_rates.items():
        print(f"  {name}: median {statistics.median(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})")
    print(f"load average at the end: {harness.loadavg()}")


if __name__ == "__main__":
    main()
