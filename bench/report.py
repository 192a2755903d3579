"""bench/RESULTS.md: the header explaining every measure, and one dated section per run, newest first."""

from __future__ import annotations

from getevent import SYSCALL_SECONDS
from harness import RESULTS, ROOT, fmt_mib

RUNS_MARKER = "<!-- runs below, newest first; bench/run.py inserts new ones here -->"

INGEST_TARGET = 0.50  # ingestion over HTTP ÷ in-process insert loop (SQLite)
PAGE_TARGET = 1.2  # deep page p50 ÷ first page p50
MEMORY_TARGET_MB = 200  # server RSS, MB = 10^6 bytes (190.7 MiB)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def met(ok: bool | None) -> str:
    return "—" if ok is None else ("**yes**" if ok else "**no**")


def mb(kib: int | None) -> str:
    return "?" if kib is None else f"{kib * 1024 / 1e6:.0f} MB ({kib / 1024:.0f} MiB)"


# ------------------------------------------------------------ the summary table


def summary_rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(measure, target, measured, met?) for every measure of the run."""
    rows = []
    full = report["params"]["events"] >= 1_000_000
    for b in report.get("get", {}).get("backends", []):
        target = b["target"]
        rows.append(
            (
                f"Get Event ÷ bare ASGI, {b['label']}",
                f"≥ {target}",
                f"{b['ratio']:.3f}",
                met(b["ratio"] >= target) if full else "— (not 1M events)",
            )
        )
    for b in report.get("get", {}).get("backends", []):
        beat = b.get("heartbeat")
        if beat is not None:
            target = beat["target"]
            rows.append(
                (
                    f"Bare check-in (heartbeat) ÷ bare ASGI, {b['label']}",
                    f"≥ {target}" if target is not None else "— (≤ Get Event's cost)",
                    f"{beat['ratio']:.3f} (Get Event {b['ratio']:.3f})",
                    met(beat["ratio"] >= target) if target is not None and full else "—",
                )
            )
    for i in report.get("ingest", []):
        m = i["median"]["http"]
        if i["ratio"] is not None:
            rows.append(
                (
                    f"Ingestion HTTP ÷ in-process insert loop, {i['label']}",
                    f"≥ {INGEST_TARGET}",
                    f"{i['ratio']:.3f} ({m['events_per_s']:,} ÷ {i['median']['baseline']['events_per_s']:,} events/s)",
                    met(i["ratio"] >= INGEST_TARGET),
                )
            )
        else:
            rows.append((f"Ingestion over HTTP, {i['label']} (absolute)", "—", f"{m['events_per_s']:,} events/s", "—"))
    for p in report.get("pages", []):
        rows.append(
            (
                f"List Events page {p['depth']:,} deep ÷ first page, {p['label']}",
                f"≤ {PAGE_TARGET}",
                f"{p['ratio']:.3f} ({p['deep_p50_ms']:.3f} ÷ {p['first_p50_ms']:.3f} ms)",
                met(p["ratio"] <= PAGE_TARGET),
            )
        )
    for m in report.get("memory", []):
        rows.append(
            (
                f"Server RSS after 1M events and the loads, {m['label']}",
                f"≤ {MEMORY_TARGET_MB} MB",
                f"{mb(m['max_kib'])}, {m['max_what']}",
                met(m["max_kib"] is not None and m["max_kib"] * 1024 <= MEMORY_TARGET_MB * 1e6),
            )
        )
    for s in report.get("slow", []):
        rows.append(
            (
                f"Server RSS, {s['readers']} slow readers of {s['page_bytes'] / 2**20:.1f} MiB Latest Events pages, "
                f"{s['label']}",
                f"≤ {s['target_mb']} MB",
                f"{mb(s['max_kib'])} (idle {mb(s['rss_idle_kib'])})",
                met(s["met"]),
            )
        )
    for s in report.get("streams", []):
        rows.append(
            (
                f"{s['streams']:,} live tails of one account, {s['label']}: every event to every stream, "
                f"{s['rate']}/s for {s['seconds']:g} s; p99 delivery lag",
                "all; ≤ 1 s",
                f"{s['complete_streams']:,} complete; p99 {s['lag_p99_s']:.3f} s (p50 {s['lag_median_s'] or 0:.3f} s)",
                met(s["complete_streams"] == s["streams"] and s["lag_p99_s"] <= 1.0),
            )
        )
        rows.append(
            (
                f"Server CPU with {s['streams']:,} idle live tails, {s['label']}",
                "≤ 10 % of a core",
                f"{s['idle_cpu_share']:.1%} (under load {s['busy_cpu_share']:.1%})",
                met(s["idle_cpu_share"] <= 0.10),
            )
        )
    for s in report.get("soak", []):
        minutes = f"{s['seconds']:g} s at {s['rate']:g}/s"
        rows.append(
            (
                f"Soak {s['label']}: errors ({minutes})",
                "0",
                f"{s['errors']} of {s['answered']:,}",
                met(s["errors"] == 0),
            )
        )
        rows.append(
            (
                f"Soak {s['label']}: memory flat",
                "≤ +5 MiB over the 2nd half",
                f"{s['rss_second_half_growth_mib']:+.1f} MiB (first {fmt_mib(s['rss_first_kib'])}, "
                f"last {fmt_mib(s['rss_last_kib'])}, max {fmt_mib(s['rss_max_kib'])})",
                met(s["flat"]),
            )
        )
        rows.append(
            (f"Soak {s['label']}: p99 latency", "reported", f"{s['p99_ms']:.1f} ms (p50 {s['p50_ms']:.2f} ms)", "—")
        )
    return rows


# ------------------------------------------------------------------ sections


def get_event_lines(report: dict) -> list[str]:
    g, p = report["get"], report["params"]
    lines = [
        "### Get Event",
        "",
        (
            f"Each server {p['duration']:g} s a round, in {p['slices']} turns of `wrk -t{p['threads']} "
            f"-c{p['connections']} -d{p['duration'] // p['slices']:g}s --latency` with the round's other "
            f"servers (all up at once), warm-up {p['warmup']:g}s"
            if p.get("slices", 1) > 1
            else f"`wrk -t{p['threads']} -c{p['connections']} -d{p['duration']:g}s --latency`, warm-up {p['warmup']:g}s"
        )
        + (f", {p['rounds']} rounds; each row is that server's median round" if p["rounds"] > 1 else "")
        + ".",
        "",
        "| server | req/s | p50 ms | p99 ms | non-2xx | server CPU | database CPU | RSS idle | RSS after wrk |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    served = [("bare ASGI hello", g["bare"])]
    for b in g["backends"]:
        served.append((f"conntel Get Event, {b['label']}", b["row"]))
        if "heartbeat" in b:
            served.append((f"conntel bare check-in, {b['label']}", b["heartbeat"]["row"]))
    for name, row in served:
        lines.append(
            f"| {name} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['non_2xx']} "
            f"| {pct(row['server_cpu_pct'])} | {pct(row['db_cpu_pct'])} "
            f"| {fmt_mib(row['rss_idle_kib'])} | {fmt_mib(row['rss_after_kib'])} |"
        )
    backends = g["backends"]
    if len(g["rounds"]) > 1:
        lines += [
            "",
            "| round | bare req/s | " + " | ".join(f"{b['label']} req/s | ratio" for b in backends) + " |",
            "|---:|---:|" + "---:|---:|" * len(backends),
        ]
        for i, rps in enumerate(g["rounds"]):
            lines.append(
                f"| {i + 1} | {rps['bare']:,.0f} | "
                + " | ".join(f"{rps[b['name']]:,.0f} | {b['ratios'][i]:.3f}" for b in backends)
                + " |"
            )
        beating = [b for b in backends if "heartbeat" in b]
        if beating:
            lines += [
                "",
                "| round | " + " | ".join(f"{b['label']} check-ins/s | ÷ bare | ÷ Get Event" for b in beating) + " |",
                "|---:|" + "---:|---:|---:|" * len(beating),
            ]
            for i, rps in enumerate(g["rounds"]):
                cells = []
                for b in beating:
                    beats = rps[b["name"] + ":heartbeat"]
                    cells.append(f"{beats:,.0f} | {b['heartbeat']['ratios'][i]:.3f} | {beats / rps[b['name']]:.2f}")
                lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    if g.get("syscalls"):
        lines += syscall_lines(g["syscalls"])
    return [*lines, ""]


def syscall_lines(measured: list[dict]) -> list[str]:
    """System calls per request, one column per server, the calls that make up 0.05 a request or more."""
    names = sorted(
        {name for m in measured for name, n in m["per_request"].items() if n >= 0.05},
        key=lambda name: -max(m["per_request"].get(name, 0) for m in measured),
    )
    labels = {"bare": "bare ASGI hello (uvicorn)", "sqlite": "conntel, SQLite", "postgres": "conntel, PostgreSQL"}
    lines = [
        "",
        f"System calls per request (`strace -c -f` on every process of the server during an extra "
        f"{SYSCALL_SECONDS} s wrk run, same script and connections; strace slows the server, so only the counts "
        "per request mean anything):",
        "",
        "| system call | " + " | ".join(labels.get(m["label"], m["label"]) for m in measured) + " |",
        "|---|" + "---:|" * len(measured),
    ]
    for name in names:
        lines.append(f"| `{name}` | " + " | ".join(f"{m['per_request'].get(name, 0):.2f}" for m in measured) + " |")
    lines.append("| **all** | " + " | ".join(f"**{m['total']:.1f}**" for m in measured) + " |")
    lines.append("| requests traced | " + " | ".join(f"{m['requests']:,}" for m in measured) + " |")
    return lines


def ingest_lines(report: dict) -> list[str]:
    lines = [
        "### Ingestion",
        "",
        "| store | events | rounds | HTTP events/s (median) | seconds | server CPU | database CPU | client CPU "
        "| in-process loop rows/s | ratio per round |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i in report["ingest"]:
        h, base = i["median"]["http"], i["median"].get("baseline")
        db_cpu = "—" if h["db_cpu_s"] is None else f"{h['db_cpu_s']:.1f} s"
        loop = "—" if base is None else f"{base['events_per_s']:,}"
        ratios = "—" if i["ratio"] is None else ", ".join(f"{r['ratio']:.3f}" for r in i["rounds"])
        lines.append(
            f"| {i['label']} | {i['events']:,} | {len(i['rounds'])} | **{h['events_per_s']:,}** | {h['seconds']:.1f} "
            f"| {h['server_cpu_s']:.1f} s | {db_cpu} | {h['client_cpu_s']:.1f} s | {loop} | {ratios} |"
        )
    base = next((i["median"]["baseline"] for i in report["ingest"] if i["median"].get("baseline")), None)
    if base:
        lines += [
            "",
            f"In-process loop: {base['seconds']:.2f} s, {base['cpu_s']:.2f} s CPU, "
            f"pragmas {base['pragmas']} (synchronous 2 = FULL).",
        ]
    return [*lines, ""]


def pages_lines(report: dict) -> list[str]:
    lines = [
        "### List Events deep page",
        "",
        "| store | events on the connector | walk to the deep cursor | first page p50 / p99 ms "
        "| deep page p50 / p99 ms | p50 per pair (first → deep) | ratio |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for p in report["pages"]:
        pairs = ", ".join(f"{a:.3f} → {b:.3f}" for a, b in zip(p["p50s"]["first"], p["p50s"]["deep"], strict=False))
        lines.append(
            f"| {p['label']} | {p['connector_events']:,} | {p['depth'] // p['limit']:,} pages in {p['walk_s']:.1f} s "
            f"| {p['first_p50_ms']:.3f} / {p['first_p99_ms']:.3f} | {p['deep_p50_ms']:.3f} / {p['deep_p99_ms']:.3f} "
            f"| {pairs} | **{p['ratio']:.3f}** |"
        )
    return [*lines, ""]


def memory_lines(report: dict) -> list[str]:
    lines = [
        "### Server memory",
        "",
        "| store | conntel processes | how many | largest RSS at stop | largest peak RSS |",
        "|---|---|---:|---:|---:|",
    ]
    for m in report["memory"]:
        by_name: dict[str, list[dict]] = {}
        for proc in m["processes"]:
            by_name.setdefault(proc["name"], []).append(proc)
        for name, procs in by_name.items():
            rss = max((p["rss_kib"] or 0 for p in procs), default=None)
            peak = max((p["peak_kib"] or 0 for p in procs), default=None)
            lines.append(f"| {m['label']} | {name} | {len(procs)} | {fmt_mib(rss)} | {fmt_mib(peak)} |")
    return [*lines, ""]


def soak_lines(report: dict) -> list[str]:
    lines = ["### Soak", ""]
    for s in report["soak"]:
        lines += [
            f"**{s['label']}**: {s['seconds']:g} s at {s['rate']:g} requests/s (answered {s['answered']:,}, "
            f"{s['achieved_rate']:.1f}/s), **{s['errors']} errors**; server CPU {s['server_cpu_pct']}%"
            + (f", database CPU {s['db_cpu_pct']}%" if s["db_cpu_pct"] is not None else "")
            + f", client CPU {s['client_cpu_pct']}%, client dispatch lag at most {s['dispatch_lag_max_ms']:.1f} ms; "
            f"events in the store {s['events_before']:,} → {s['events_after'] or 0:,}"
            f" ({s['events_ingested']:,} ingested).",
            "",
            "| kind | requests | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for kind, k in s["kinds"].items():
            lines.append(
                f"| {kind} | {k['requests']:,} | {k['errors']} | {k['p50_ms']:.2f} | {k['p90_ms']:.2f} "
                f"| {k['p99_ms']:.2f} | {k['p99.9_ms']:.2f} | {k['max_ms']:.1f} |"
            )
        lines.append(
            f"| all | {s['answered']:,} | {s['errors']} | {s['p50_ms']:.2f} | | {s['p99_ms']:.2f} | "
            f"| {s['max_ms']:.1f} |"
        )
        samples = ", ".join(f"{x['rss_kib'] / 1024:.0f}" for x in s["rss_samples"] if x["rss_kib"])
        lines += ["", f"Server RSS every 10 s (MiB): {samples}.", ""]
        if "slow" in s:
            bursts = "; ".join(
                f"{b['requests']} due within a second of each other from {b['at_s']:g} s (worst {b['worst_ms']} ms)"
                for b in s["stalls"]
            )
            lines += [
                f"Requests slower than 100 ms: {s['slow']:,}"
                + (f"; the largest bursts: {bursts}" if bursts else "")
                + f". CPU of other processes on the machine (neither server, client nor PostgreSQL), "
                f"per 10 s: mean {s['other_cpu_mean_pct']}%, max {s['other_cpu_max_pct']}% of one core.",
                "",
            ]
        if s["error_examples"]:
            lines += ["First errors:", *(f"- `{e}`" for e in s["error_examples"]), ""]
    return lines


def profile_lines(report: dict) -> list[str]:
    lines = ["### Profiles (py-spy)", ""]
    for prof in report["profiles"]:
        if "failed" in prof:
            lines += [f"**{prof['what']}** — not profiled: {prof['failed']}", ""]
            continue
        summary = prof["summary"]
        lines += [
            f"**{prof['what']}** — {summary['busy']:,} busy samples (all threads; {summary['idle_pct']:.0f}% more "
            f"were idle threads), `{summary['file']}`; throughput while profiled: {prof['throughput']}.",
            "",
            "| by innermost Python function (self + the C it calls) | % of busy "
            "| by leaf frame, C included | % of busy |",
            "|---|---:|---|---:|",
        ]
        for (pf, pp), (lf, lp) in zip(summary["python_self"], summary["leaf_self"], strict=False):
            lines.append(f"| `{pf}` | {pp:.1f} | `{lf}` | {lp:.1f} |")
        lines += [
            "",
            "conntel functions, inclusive: "
            + "; ".join(f"`{f}` {p:.1f}%" for f, p in summary["conntel_inclusive"][:8])
            + ".",
            "",
        ]
    return lines


def load_line(backend: dict, events: int) -> str:
    load = backend["load"]
    extra = f", {backend['label']} backends CPU {load['db_cpu_s']:.0f}s" if load.get("db_cpu_s") else ""
    after = (
        f"; {backend['after_load']} afterwards {load['after_load_s']:.1f}s"
        if backend["after_load"] and load.get("after_load_s") is not None
        else ""
    )
    return (
        f"Load of the 1M store, {backend['label']} "
        f"({'reused from ' + load['at'] if backend['reused'] else 'this run'}): "
        f"{events:,} events in {load['seconds']:.1f}s = **{load['events_per_s']:,} events/s** "
        f"(batches of {load['batch']}, {load['clients']} clients; server CPU {load['server_cpu_s']:.0f}s{extra}; "
        f"server RSS after load {fmt_mib(load.get('server_rss_kib_after_load'))}; "
        f"database {load['db_bytes'] / 2**20:.0f} MiB{after})."
    )


def title(report: dict) -> str:
    parts = []
    if "get" in report:
        parts.append("Get Event " + ", ".join(f"{b['label']} {b['ratio']:.3f}" for b in report["get"]["backends"]))
    if report.get("ingest") and report["ingest"][0]["ratio"] is not None:
        parts.append(f"ingestion {report['ingest'][0]['ratio']:.3f}")
    if report.get("pages"):
        parts.append("deep page " + "/".join(f"{p['ratio']:.2f}" for p in report["pages"]))
    if report.get("slow"):
        parts.append("slow readers " + "/".join(fmt_mib(s["max_kib"]) for s in report["slow"]))
    if report.get("streams"):
        parts.append("live tails " + "/".join(f"p99 {s['lag_p99_s']:.2f} s" for s in report["streams"]))
    if report.get("soak"):
        parts.append("soak " + "/".join(f"{s['errors']} errors" for s in report["soak"]))
    return "; ".join(parts)


def render_section(report: dict) -> str:
    m, p = report["machine"], report["params"]
    lines = [
        f"## {report['date']} — {title(report)}",
        "",
        f"- Machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory']} RAM, kernel {m['kernel']}; "
        f"load average before/after {report['loadavg_before']} / {report['loadavg_after']}",
        f"- Software: Python {m['python']}, granian {m.get('granian', '—')} (conntel), uvicorn {m['uvicorn']} "
        f"(the bare app), {m['wrk']}; conntel {m['conntel']}",
        f"- A trivial system call (getppid) costs {m.get('syscall_ns', '?')} ns here"
        + (
            f"; the bare app on uvicorn serves {report['get']['bare']['rps']:,.0f} req/s (its median round)"
            if "get" in report
            else ""
        ),
        *(f"- Database: {description}" for description in m["databases"]),
        f"- Parameters: `{report['command']}`; measures {', '.join(report['measures'])}"
        + (" + profiles" if report.get("profiles") else ""),
        "- Durations: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in report["durations"].items())
        + f"; whole run {report['wall_s']:.0f} s",
        "",
        "| measure | target | measured | met? |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in summary_rows(report)),
        "",
    ]
    if "get" in report:
        lines += get_event_lines(report)
    if report.get("ingest"):
        lines += ingest_lines(report)
    if report.get("pages"):
        lines += pages_lines(report)
    if report.get("memory"):
        lines += memory_lines(report)
    if report.get("soak"):
        lines += soak_lines(report)
    if report.get("profiles"):
        lines += profile_lines(report)
    lines += [load_line(b, p["events"]) + "  " for b in report.get("datasets", [])]
    return "\n".join(lines).rstrip() + "\n"


def write_results(report: dict) -> None:
    """Add the run's section under RUNS_MARKER, newest first. Everything above the marker is the file's own
    prose (the measures, their targets, what was tried), kept as it is."""
    section = render_section(report)
    text = RESULTS.read_text() if RESULTS.exists() else f"# conntel benchmark results\n\n{RUNS_MARKER}\n"
    if RUNS_MARKER not in text:
        text = text.rstrip("\n") + f"\n\n{RUNS_MARKER}\n"
    head, runs = text.split(RUNS_MARKER, 1)
    runs = runs.lstrip("\n")
    RESULTS.write_text(head + RUNS_MARKER + "\n\n" + section + ("\n" + runs if runs else ""))


def print_summary(report: dict) -> None:
    rows = [("measure", "target", "measured", "met?"), *summary_rows(report)]
    widths = [max(len(r[i].replace("*", "")) for r in rows) for i in range(4)]
    print()
    for r in rows:
        print("  ".join(c.replace("*", "").ljust(w) for c, w in zip(r, widths, strict=False)))
    written = "not written (--no-results)" if report["params"]["no_results"] else RESULTS.relative_to(ROOT)
    print(f"\nresults: {written}; run took {report['wall_s']:.0f}s\n")
