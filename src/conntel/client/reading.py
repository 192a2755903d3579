"""The reading CLI: `conntel events get|list|latest|tail` and `conntel connectors list|reboot|restart|shutdown|
interrupts`, over the HTTP API.

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


def interrupt_row(table: Table, item: dict[str, Any]) -> None:
    action = next(name for name in ("reboot", "restart", "shutdown") if name in item)
    purge = "yes" if item[action].get("purge") else "no"
    submitted = item["submitted_at"].replace("T", " ").removesuffix("Z")
    triggered = item.get("triggered_at", "pending").replace("T", " ").removesuffix("Z")
    table.add_row(item.get("id", "-"), action, purge, submitted, triggered)


def interrupt_table() -> Table:
    return new_table("id", "operation", "purge", "submitted (UTC)", "executed (UTC)")


def _interrupt_command(action: str) -> click.Command:
    @click.command(action)
    @click.argument("connector")
    @click.option("--purge", is_flag=True, help="The connector discards its local state first (README).")
    @api_options
    def command(client: Client, connector: str, purge: bool, as_json: bool) -> None:
        made = client.create_interrupt(connector, action, purge)
        if as_json:
            click.echo(json.dumps(made))
            return
        table = interrupt_table()
        interrupt_row(table, made)
        out().print(table)
        err().print(f"The connector will {action} when it next checks in (about every 10 seconds).")

    command.help = (
        f"Ask a connector to {action} (an interrupt: it executes it at its next check-in; one pending at a time)."
    )
    return command


connectors_reboot = _interrupt_command("reboot")
connectors_restart = _interrupt_command("restart")
connectors_shutdown = _interrupt_command("shutdown")


@click.command("interrupts")
@click.argument("connector")
@api_options
def connectors_interrupts(client: Client, connector: str, as_json: bool) -> None:
    """A connector's interrupts, newest first (pending ones have no execution time)."""
    items = client.interrupts(connector)
    if as_json:
        ndjson(items)
        return
    table = interrupt_table()
    for item in items:
        interrupt_row(table, item)
    out().print(table)
