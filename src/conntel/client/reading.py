"""The reading CLI: `conntel events get|list|latest|tail`, `conntel snapshots list|get|latest` and
`conntel connectors list`, over the HTTP API.

Readable tables (failures in red) by default; `--json` prints JSON for one
object and NDJSON (one object a line) for lists and the live tail. rich and
httpx are imported when a command runs, not when the CLI starts.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from conntel import ids
from conntel.client.urls import DEFAULT_URL
from conntel.kinds import FAILURE_KINDS

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from conntel.client.http import Client

WRAPPING = ("payload", "notes")  # free text may wrap; identifiers and times never do


@functools.cache
def out() -> Console:
    """Standard output; piped output is not cut to a terminal's width: tables keep their natural width."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 1000)


@functools.cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def new_table(*columns: str) -> Table:
    from rich.table import Table

    table = Table()
    for column in columns:
        table.add_column(column, no_wrap=column not in WRAPPING)
    return table


def api_options(command: Callable[..., None]) -> Callable[..., None]:
    """--url / --token (the official SDK's environment variables) and --account."""
    for option in reversed(
        [
            click.option(
                "--url",
                envvar="CLOUDFLARE_BASE_URL",
                default=DEFAULT_URL,
                show_default=True,
                help="API base, or the server's root. [env: CLOUDFLARE_BASE_URL]",
            ),
            click.option(
                "--token", envvar="CLOUDFLARE_API_TOKEN", required=True, help="API token. [env: CLOUDFLARE_API_TOKEN]"
            ),
            click.option(
                "--account",
                envvar="CLOUDFLARE_ACCOUNT_ID",
                required=True,
                help="Account id. [env: CLOUDFLARE_ACCOUNT_ID]",
            ),
            click.option("--json", "as_json", is_flag=True, help="JSON (one object) or NDJSON (lists, tail)."),
        ]
    ):
        command = option(command)

    @functools.wraps(command)
    def run(url: str, token: str, account: str, **kwargs: Any) -> None:
        from conntel.client.http import Client, ClientError

        try:
            client = Client(url, token, account)
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            command(client=client, **kwargs)
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            pass
        finally:
            client.close()

    return run


def when(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def kind_cell(kind: str) -> str:
    return f"[red]{kind}[/red]" if kind in FAILURE_KINDS else kind


def payload_text(e: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in e.items() if key != "k")


def ndjson(items: list[dict[str, Any]]) -> None:
    for item in items:
        click.echo(json.dumps(item))


def parse_time(text: str) -> int:
    """Seconds since the epoch, or an ISO 8601 instant (UTC when no offset is given)."""
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither seconds since the epoch nor ISO 8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


@click.group()
def events() -> None:
    """Read telemetry events over the API (token and URL as the official SDKs take them)."""


@events.command("get")
@click.argument("ref")
@click.option("--connector", required=True)
@api_options
def events_get(client: Client, ref: str, connector: str, as_json: bool) -> None:
    """Get one event: REF is T.N (seconds since the epoch . sequence number)."""
    parsed = ids.parse_event_ref(ref)
    if parsed is None:
        raise click.BadParameter(f"{ref!r} is not T.N", param_hint="REF")
    event = client.get_event(connector, *parsed)
    if as_json:
        click.echo(json.dumps(event))
        return
    out().print(f"{when(event['t'])}  {event['t']}.{event['n']}  {kind_cell(event['e']['k'])}  v={event.get('v', '-')}")
    out().print(json.dumps(event["e"], indent=2), markup=False)


@events.command("list")
@click.option("--connector", required=True)
@click.option("--from", "start", required=True, help="Seconds since the epoch or ISO 8601 (inclusive).")
@click.option("--to", "end", required=True, help="Seconds since the epoch or ISO 8601 (inclusive).")
@click.option("--kind", "k", help="Only this kind.")
@click.option("--page-size", default=1000, show_default=True, type=click.IntRange(1, 1000))
@api_options
def events_list(client: Client, connector: str, start: str, end: str, k: str | None, page_size: int,
                as_json: bool) -> None:  # fmt: skip
    """List events in a time range, every page, in (t, n) order."""
    from rich.progress import BarColumn, Progress, TextColumn

    first, last = parse_time(start), parse_time(end)
    table = new_table("time (UTC)", "t.n", "kind", "collected (UTC)")
    shown = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]} events"),
                  console=err(), transient=True, disable=not sys.stderr.isatty()) as progress:  # fmt: skip
        task = progress.add_task("listing", total=max(last - first, 1), count=0)
        for items in client.pages(connector, first, last, k, page_size):
            shown += len(items)
            if items:
                progress.update(task, completed=items[-1]["t"] - first, count=shown)
            if as_json:
                ndjson(items)
            else:
                for item in items:
                    table.add_row(when(item["t"]), f"{item['t']}.{item['n']}", kind_cell(item["k"]), when(item["a"]))
    if not as_json:
        out().print(table)
        err().print(f"{shown} events")


@events.command("latest")
@click.option("--connector", required=True)
@api_options
def events_latest(client: Client, connector: str, as_json: bool) -> None:
    """The connector's newest events, newest first (at most 100)."""
    items = client.latest(connector)
    if as_json:
        ndjson(items)
        return
    table = new_table("time (UTC)", "t.n", "kind", "version", "payload")
    for item in items:
        table.add_row(when(item["t"]), f"{item['t']}.{item['n']}", kind_cell(item["e"]["k"]), item.get("v", "-"),
                      payload_text(item["e"]), )  # fmt: skip
    out().print(table)


@events.command("tail")
@click.option("--connector", help="One connector (default: every connector of the account).")
@click.option("--since", help="Resume after this stream position (an `id` printed by an earlier tail).")
@api_options
def events_tail(client: Client, connector: str | None, since: str | None, as_json: bool) -> None:
    """Follow new events live until Ctrl-C, reconnecting (without gaps) if the server goes away."""
    for position, event in client.tail(connector, since):
        if as_json:
            click.echo(json.dumps({"id": position, **event}))
            continue
        out().print(
            f"{when(event['t'])}  {event['connector_id']}  {event['t']}.{event['n']}  {kind_cell(event['e']['k'])}"
            f"  {payload_text(event['e'])}"
        )


@click.command("list")
@api_options
def connectors_list(client: Client, as_json: bool) -> None:
    """The account's connectors, over the API."""
    connectors = client.connectors()
    if as_json:
        ndjson(connectors)
        return
    table = new_table("id", "device", "activated", "version", "last heartbeat (UTC)", "notes")
    for c in connectors:
        device = c.get("device") or {}
        label = device.get("serial_number") or device.get("id") or "-"
        heartbeat = c.get("last_heartbeat", "-").replace("T", " ").removesuffix("Z")
        table.add_row(c["id"], f"{label} {device.get('type', '')}".strip(), "yes" if c["activated"] else "no",
                      c.get("last_seen_version") or "-", heartbeat, c["notes"])  # fmt: skip
    out().print(table)


# --- Snapshots: conntel snapshots list|get|latest -------------------------------------------------------


def busy_percent(snapshot: dict[str, Any], earlier: dict[str, Any] | None = None) -> float | None:
    """CPU busy share, in percent: since `earlier` when it is of the same boot, else since boot."""
    parts = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    if any(not isinstance(snapshot.get(f"cpu_time_{p}_ms"), int | float) for p in parts):
        return None
    now: list[float] = [snapshot[f"cpu_time_{p}_ms"] for p in parts]
    before = [0.0] * len(parts)
    if earlier is not None and earlier.get("kernel_btime") == snapshot.get("kernel_btime"):
        before = [earlier.get(f"cpu_time_{p}_ms", 0) for p in parts]
    deltas = [a - b for a, b in zip(now, before, strict=True)]
    total = sum(deltas)
    if total <= 0 or min(deltas) < 0:
        return None
    return 100 * (1 - deltas[parts.index("idle")] / total)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def memory_used_percent(snapshot: dict[str, Any]) -> float | None:
    total, available = snapshot.get("memory_total_bytes"), snapshot.get("memory_available_bytes")
    if not total or available is None:
        return None
    return float(100 * (total - available) / total)


def root_used_percent(snapshot: dict[str, Any]) -> float | None:
    for mount in snapshot.get("mounts") or []:
        if mount.get("mount_point") == "/" and mount.get("total_bytes"):
            return float(100 * (mount["total_bytes"] - mount.get("available_bytes", 0)) / mount["total_bytes"])
    return None


def tunnels_text(snapshot: dict[str, Any]) -> str:
    tunnels = snapshot.get("tunnels") or []
    if not tunnels:
        return "-"
    healthy = sum(1 for t in tunnels if t.get("health_state") == "healthy")
    worst = max(tunnels, key=lambda t: t.get("health_value", 0)).get("health_state", "?")
    text = f"{healthy}/{len(tunnels)} healthy"
    return text if worst == "healthy" else f"[red]{text}[/red]" if worst == "down" else f"[yellow]{text}[/yellow]"


def load_text(snapshot: dict[str, Any]) -> str:
    loads = [snapshot.get(f"load_average_{m}") for m in ("1m", "5m", "15m")]
    return " ".join("-" if v is None else f"{v:.2f}" for v in loads)


def uptime_text(snapshot: dict[str, Any]) -> str:
    ms = snapshot.get("uptime_total_ms")
    if ms is None:
        return "-"
    seconds = int(ms // 1000)
    days, rest = divmod(seconds, 86_400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60:02d}m"


def snapshot_row(snapshot: dict[str, Any], earlier: dict[str, Any] | None = None) -> list[str]:
    """The handful of fields a person reads first, as one table row."""
    return [
        when(snapshot.get("t")),
        str(snapshot.get("t")),
        str(snapshot.get("v", "-")),
        str(snapshot.get("ha_state", "-")),
        uptime_text(snapshot),
        _percent(busy_percent(snapshot, earlier)),
        load_text(snapshot),
        _percent(memory_used_percent(snapshot)),
        _percent(root_used_percent(snapshot)),
        tunnels_text(snapshot),
    ]


SNAPSHOT_COLUMNS = ("time (UTC)", "t", "version", "HA", "uptime", "CPU", "load 1/5/15m", "memory", "disk /", "tunnels")


@click.group()
def snapshots() -> None:
    """Read connector snapshots (the connector's own metrics) over the API."""


@snapshots.command("list")
@click.option("--connector", required=True)
@click.option("--from", "start", required=True, help="Seconds since the epoch or ISO 8601 (inclusive).")
@click.option("--to", "end", required=True, help="Seconds since the epoch or ISO 8601 (inclusive).")
@click.option("--page-size", default=1000, show_default=True, type=click.IntRange(1, 1000))
@api_options
def snapshots_list(client: Client, connector: str, start: str, end: str, page_size: int, as_json: bool) -> None:
    """List the snapshots recorded in a time range (their times), every page, oldest first."""
    table = new_table("time (UTC)", "t", "collected (UTC)")
    shown = 0
    for items in client.snapshot_pages(connector, parse_time(start), parse_time(end), page_size):
        shown += len(items)
        if as_json:
            ndjson(items)
        else:
            for item in items:
                table.add_row(when(item["t"]), str(item["t"]), when(item["a"]))
    if not as_json:
        out().print(table)
        err().print(f"{shown} snapshots")


@snapshots.command("get")
@click.argument("t")
@click.option("--connector", required=True)
@api_options
def snapshots_get(client: Client, t: str, connector: str, as_json: bool) -> None:
    """Get one snapshot: T is its time (seconds since the epoch, or ISO 8601)."""
    try:
        float(t)
    except ValueError:
        t = str(parse_time(t))
    snapshot = client.get_snapshot(connector, t)
    if as_json:
        click.echo(json.dumps(snapshot))
        return
    summary = new_table("", "")
    summary.show_header = False
    for name, value in zip(SNAPSHOT_COLUMNS, snapshot_row(snapshot), strict=True):
        summary.add_row(name.replace("CPU", "CPU (since boot)"), value)
    summary.add_row("platform / site", f"{snapshot.get('platform', '-')} / {snapshot.get('site_id', '-')}")
    out().print(summary)
    interfaces = new_table("interface", "state", "addresses", "received", "sent")
    netdevs = {d.get("name"): d for d in snapshot.get("netdevs") or []}
    for interface in snapshot.get("interfaces") or []:
        dev = netdevs.get(interface.get("name"), {})
        addresses = ", ".join(a.get("ip_address", "?") for a in interface.get("ip_addresses") or [])
        interfaces.add_row(str(interface.get("name")), str(interface.get("operstate")), addresses,
                           _bytes(dev.get("recv_bytes")), _bytes(dev.get("sent_bytes")))  # fmt: skip
    out().print(interfaces)
    tunnels = new_table("tunnel", "interface", "health", "latency", "jitter", "unhealthy pings")
    for tunnel in snapshot.get("tunnels") or []:
        tunnels.add_row(str(tunnel.get("tunnel_id", ""))[:12], str(tunnel.get("interface_name")),
                        str(tunnel.get("health_state")), _ms(tunnel.get("latency_ms")), _ms(tunnel.get("jitter_ms")),
                        str(tunnel.get("recent_unhealthy_pings", "-")))  # fmt: skip
    out().print(tunnels)


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


@snapshots.command("latest")
@click.option("--connector", required=True)
@api_options
def snapshots_latest(client: Client, connector: str, as_json: bool) -> None:
    """The connector's newest snapshots, newest first (CPU over the minute before each, when known)."""
    items = client.latest_snapshots(connector)
    if as_json:
        ndjson(items)
        return
    table = new_table(*SNAPSHOT_COLUMNS)
    for index, snapshot in enumerate(items):
        earlier = items[index + 1] if index + 1 < len(items) else None
        table.add_row(*snapshot_row(snapshot, earlier))
    out().print(table)
