"""The dashboard's fleet page at 5,000 connectors, timed in headless Chromium (issue #14 item 5).

    .venv/bin/python bench/dashboard.py [--connectors 5000] [--rate 500] [--rounds 10] [--opens 3]
                                        [--backend sqlite|postgres] [--no-write]

A fresh server and store (tests/helpers.py's world), a fleet built by tests/fleet_scale.py (a tenth of
the connectors failing, a fifth silent, through the admin module and the ingestion API), then
tests/dashboard/scale.mjs in Debian's Chromium:

1. all rows: from the navigation's start to every connector counted under its health (the server's
   fleet health) with rows drawn, on an idle server; then --opens times again while the feeder posts
   --rate events a second (Reconcile, spread over the connectors that report, through the ingestion API).
2. sort and filter: --rounds rounds of sorting by each of the five columns and filtering by each health
   and by text, each timed in the page from the input to the painted frame that shows its answer,
   while the feeder posts.
3. correctness as in tests/test_dashboard_scale.py: the counts by health, nothing asked per connector,
   the last connector reachable, a failure and a silent connector's first event reaching their rows.

Targets: all rows within 3 s; every sort and filter within 200 ms. Prints a Markdown section and,
unless --no-write, adds it to bench/RESULTS.md under "The dashboard's fleet page", newest first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import RESULTS, ROOT, WORK, BenchError, git_revision, loadavg, log

sys.path.insert(0, str(ROOT / "tests"))
import httpx
from fleet_scale import Feeder, build_fleet, drive_scale
from helpers import bearer, build_world, drop_pg_database

ALL_ROWS_TARGET_MS = 3000
ANSWER_TARGET_MS = 200
CHROMIUM = "/usr/bin/chromium"
MARKER = "<!-- dashboard runs: bench/dashboard.py adds a section below, newest first -->"


def node() -> str:
    found = shutil.which("node")
    if not found or not Path(CHROMIUM).exists():
        raise BenchError("node and /usr/bin/chromium are needed (make setup installs them)")
    if not (ROOT / "tests/dashboard/node_modules/playwright-core").exists():
        raise BenchError("npm ci --prefix tests/dashboard first (make setup)")
    return found


def post(world, connector: str, kind: str) -> dict:  # type: ignore[no-untyped-def]
    event = {"t": int(time.time()) + 5, "n": 0, "e": {"k": kind}, "v": "2026.3.2"}
    response = httpx.post(world.events_url(connector), json=[event], headers=bearer(world.write_token), timeout=30)
    if response.status_code != 200:
        raise BenchError(f"posting {kind} to {connector}: {response.status_code} {response.text}")
    return {}


def measure(args: argparse.Namespace) -> dict:
    driver = node()
    WORK.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-", dir=WORK))
    load_before = loadavg()
    log(f"{args.backend}: a world and {args.connectors} connectors (load {load_before})")
    world = build_world(tmp, args.backend)
    try:
        started = time.monotonic()
        fleet = build_fleet(world, args.connectors)
        log(f"fleet built in {time.monotonic() - started:.1f} s: {fleet.counts()}")
        reporting = fleet.reporting()
        fail_id = next(cid for cid in reporting if fleet.health[cid] == "healthy")
        wake_id = next(cid for cid in fleet.ids if fleet.health[cid] == "silent" and cid != world.connector)
        feeder = Feeder(world, [cid for cid in reporting if cid != fail_id], args.rate)
        answers = {
            "feed": lambda: feeder.start() and {},
            "fail": lambda: post(world, fail_id, "FinishUpgradeFailure"),
            "wake": lambda: post(world, wake_id, "Reconcile"),
            "stop": feeder.stop,
        }
        config = {
            "chromium": CHROMIUM,
            "origin": world.server.origin,
            "account": world.account,
            "token": world.read_token,
            "count": len(fleet.ids),
            "lastId": max(fleet.ids),
            "failId": fail_id,
            "wakeId": wake_id,
            "opensUnderFeed": args.opens,
            "rounds": args.rounds,
        }
        log(f"Chromium: {args.opens + 1} opens, {args.rounds} rounds of sort and filter at {args.rate} events/s")
        report = drive_scale(driver, config, answers, tmp / "scale.stderr", timeout=600)
        load_after = loadavg()
    finally:
        world.server.stop()
        if args.backend == "postgres":
            drop_pg_database(world.db)
    if "error" in report:
        raise BenchError(f"the driver failed: {report['error']}\nsteps done: {report['steps']}")
    check(report, fleet, world.account)
    if report["feeder"]["rate"] < 0.8 * args.rate:
        raise BenchError(f"the feeder fell short of {args.rate} events/s (the machine is too busy): {report['feeder']}")
    answers_ms = [x["ms"] for x in report["latencies"]]
    result = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": git_revision(),
        "backend": args.backend,
        "connectors": len(fleet.ids),
        "counts": report["counts"],
        "rate": args.rate,
        "feeder": report["feeder"],
        "load": [load_before, load_after],
        "all_rows_ms": report["allRowsMs"],
        "all_rows_under_feed_ms": report["allRowsUnderFeedMs"],
        "answers": report["latencies"],
        "answer_median_ms": statistics.median(answers_ms),
        "answer_max_ms": max(answers_ms),
        "long_tasks_ms": report["longTasks"],
        "fail_ms": report["failMs"],
    }
    (WORK / "dashboard.json").write_text(json.dumps(result, indent=2))
    return result


def check(report: dict, fleet, account: str) -> None:  # type: ignore[no-untyped-def]
    """What tests/test_dashboard_scale.py asserts: a fast page that shows the wrong fleet is no result."""
    expected = fleet.counts()
    api = f"/client/v4/accounts/{account}/magic/connectors"
    asked = sorted(r for r in report["loadRequests"] if "/client/v4/accounts/" in r)
    problems = [
        report["counts"] != expected and f"counts {report['counts']} != {expected}",
        report["countsUnderFeed"] != expected and f"counts under the feed {report['countsUnderFeed']}",
        asked != [f"GET {api}", f"GET {api}/telemetry/events/stream", f"GET {api}/telemetry/health"]
        and f"requests on load: {asked}",
        {r["id"]: r["index"] for r in report["bottom"]["rows"]}.get(max(fleet.ids)) != len(fleet.ids) - 1
        and "the last connector is not at the bottom",
        report["sortedById"] != sorted(fleet.ids)[:5] and f"sorted by id: {report['sortedById']}",
        report["failRow"][0]["health"] != "failing" and "the failure did not reach its row",
        report["wakeRow"][0]["health"] != "healthy" and "the silent connector's event did not reach its row",
        report["feeder"]["failed"] and f"the feeder's posts failed: {report['feeder']}",
        (report["pageErrors"] or report["consoleErrors"]) and f"{report['pageErrors']} {report['consoleErrors']}",
    ]
    problems = [p for p in problems if p]
    if problems:
        raise BenchError("the page was wrong: " + "; ".join(problems))


def section(result: dict) -> str:
    under = result["all_rows_under_feed_ms"]
    worst_open = max([result["all_rows_ms"], *under])
    answer_max = result["answer_max_ms"]
    rows = [
        ("all rows with their health, idle server", ALL_ROWS_TARGET_MS, f"{result['all_rows_ms']} ms",
         result["all_rows_ms"]),
        (f"all rows, opened while {result['rate']} events/s arrive", ALL_ROWS_TARGET_MS,
         ", ".join(f"{ms} ms" for ms in under), max(under)),
        (f"sort and filter, input to painted answer, under the feed (max of {len(result['answers'])})",
         ANSWER_TARGET_MS, f"{answer_max:.0f} ms (median {result['answer_median_ms']:.0f})", answer_max),
    ]  # fmt: skip
    table = "\n".join(
        f"| {name} | <= {target} ms | {shown} | {'yes' if value <= target else '**no**'} |"
        for name, target, shown, value in rows
    )
    by_name: dict[str, list[float]] = {}
    for answer in result["answers"]:
        by_name.setdefault(answer["name"], []).append(answer["ms"])
    detail = ", ".join(f"{name} {statistics.median(ms):.0f}/{max(ms):.0f}" for name, ms in by_name.items())
    counts, feeder = result["counts"], result["feeder"]
    return f"""### {result["when"]}, `{result["revision"]}`, {result["backend"]}: all rows {worst_open} ms, \
sort/filter at most {answer_max:.0f} ms

Load average {result["load"][0]} before, {result["load"][1]} after (2 cores, shared).
{result["connectors"]:,} connectors ({counts["failing"]} failing, {counts["silent"]} silent, {counts["healthy"]}
healthy); the feeder posted {feeder["posted"]:,} events at {feeder["rate"]} a second (asked: {result["rate"]}).

| measure | target | measured | met? |
|---|---|---|---|
{table}

Per action, median/max ms: {detail}. Main-thread tasks over 50 ms while measuring:
{result["long_tasks_ms"] or "none"}. A failure posted for a healthy connector showed on its row
{result["fail_ms"]} ms after the POST returned.
"""


def write(text: str) -> None:
    results = RESULTS.read_text()
    if MARKER not in results:
        raise BenchError(f"{RESULTS} has no dashboard marker line ({MARKER})")
    RESULTS.write_text(results.replace(MARKER, f"{MARKER}\n\n{text.rstrip()}", 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connectors", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=500, help="events a second posted while measuring")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of sort and filter measures")
    parser.add_argument("--opens", type=int, default=3, help="opens of the page while the feeder posts")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave RESULTS.md alone")
    args = parser.parse_args(argv)
    try:
        result = measure(args)
    except BenchError as error:
        log(f"failed: {error}")
        return 1
    text = section(result)
    print(text)
    if not args.no_write:
        write(text)
        log(f"added to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
