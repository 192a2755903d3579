"""Deep pages: List Events far into one connector's history vs its first page.

On the ingestion store (one connector holding N >= 200k events), served by a
fresh `conntel serve`: List Events over the connector's whole history
(`from=0&to=2^53-1&limit=100`) is walked page by page with its cursors, as a
client would, until DEPTH events (190,000) lie behind; the cursor in hand
then names the page starting DEPTH events deep. Each of the two requests
(the first page, no cursor; the deep page, that cursor) is then timed on its
own by `wrk -t1 -c1 --latency` (one connection, one request at a time, the
same request again and again) for a few seconds, in alternating pairs
(first, deep, first, deep, ...). The figure is the median of the deep pages'
p50 latencies over the median of the first pages'; target <= 1.2, i.e. a
page costs the same wherever it starts (a keyset seek, not an offset scan).
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
from harness import WORK, BenchError, log, run_wrk
from stores import Dataset, conntel_server

WHOLE_HISTORY = {"from": 0, "to": 2**53 - 1}


def walk(http: httpx.Client, path: str, limit: int, depth: int) -> tuple[str, float]:
    """Follow the cursors until `depth` events are behind: (the cursor there, seconds the walk took)."""
    params: dict = {**WHOLE_HISTORY, "limit": limit}
    behind, last = 0, (-1, -1)
    started = time.monotonic()
    while behind < depth:
        response = http.get(path, params=params)
        if response.status_code != 200:
            raise BenchError(
                f"walking List Events: GET {response.url} -> {response.status_code}: {response.text[:300]}"
            )
        result = response.json()["result"]
        items = result["items"]
        if len(items) != limit or "cursor" not in result:
            raise BenchError(
                f"walking List Events: a page of {len(items)} events at {behind:,} deep, "
                f"cursor {'present' if 'cursor' in result else 'absent'}; need {depth + limit:,} events"
            )
        if (items[0]["t"], items[0]["n"]) <= last:
            raise BenchError("walking List Events: pages out of (t, n) order")
        last = (items[-1]["t"], items[-1]["n"])
        behind += len(items)
        params["cursor"] = result["cursor"]
    # The deep page itself: a full page, right after the last walked event.
    deep = http.get(path, params=params).json()["result"]["items"]
    if len(deep) != limit or (deep[0]["t"], deep[0]["n"]) <= last:
        raise BenchError("the deep page is not the full page after the walked ones")
    return params["cursor"], time.monotonic() - started


def run(ds: Dataset, args: argparse.Namespace, port: int) -> dict:
    if ds.events < args.page_depth + args.page_limit:
        raise BenchError(
            f"the deep page needs {args.page_depth + args.page_limit:,} events on one connector, "
            f"the ingestion store has {ds.events:,} (raise --ingest-events)"
        )
    label = ds.backend.label
    server = conntel_server(ds, port, f"conntel-{ds.backend.name}-pages").start()
    try:
        url = f"http://127.0.0.1:{port}"
        path = ds.path()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ds.read_token}"}, timeout=30) as http:
            log(
                f"List Events on {label}: walking {args.page_depth // args.page_limit:,} pages of "
                f"{args.page_limit} to {args.page_depth:,} events deep"
            )
            cursor, walk_s = walk(http, path, args.page_limit, args.page_depth)
        first = f"{path}?from={WHOLE_HISTORY['from']}&to={WHOLE_HISTORY['to']}&limit={args.page_limit}"
        requests = {"first": first, "deep": f"{first}&cursor={cursor}"}
        files = {}
        for which, request in requests.items():
            files[which] = WORK / f"{ds.backend.prefix}page-{which}.paths"
            files[which].write_text(request + "\n")
        p50s: dict[str, list[float]] = {"first": [], "deep": []}
        p99s: dict[str, list[float]] = {"first": [], "deep": []}
        for pair in range(args.page_pairs):
            for which in ("first", "deep"):
                result = run_wrk(
                    url, args.page_seconds, threads=1, connections=1, script_args=[str(files[which]), ds.read_token]
                )
                if result.errors:
                    raise BenchError(
                        f"List Events {which} page: {result.non_2xx} non-2xx answers, "
                        f"socket errors {result.socket_errors}\n{result.output}"
                    )
                p50s[which].append(result.latency_ms["p50"])
                p99s[which].append(result.latency_ms["p99"])
                log(
                    f"  pair {pair + 1}, {which} page: p50 {result.latency_ms['p50']:.3f} ms, "
                    f"p99 {result.latency_ms['p99']:.3f} ms, {result.requests:,} requests"
                )
    finally:
        server.stop()
    first_ms, deep_ms = statistics.median(p50s["first"]), statistics.median(p50s["deep"])
    log(
        f"List Events on {label}: page {args.page_depth:,} deep p50 {deep_ms:.3f} ms / first page "
        f"{first_ms:.3f} ms = {deep_ms / first_ms:.3f}"
    )
    return {
        "name": ds.backend.name,
        "label": label,
        "connector_events": ds.events,
        "depth": args.page_depth,
        "limit": args.page_limit,
        "walk_s": round(walk_s, 2),
        "first_p50_ms": first_ms,
        "deep_p50_ms": deep_ms,
        "first_p99_ms": statistics.median(p99s["first"]),
        "deep_p99_ms": statistics.median(p99s["deep"]),
        "p50s": p50s,
        "ratio": deep_ms / first_ms,
    }
