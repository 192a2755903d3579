"""The operator command line: thin wrappers over conntel.admin and the server.

Starting it costs what `click` costs: every heavier module (the store adapters,
the admin operations, the server, the HTTP client, rich) is imported inside
the command that needs it, so `--help` and each command start fast.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from conntel.client.health import fleet
from conntel.client.reading import (
    connectors_interrupts,
    connectors_list,
    connectors_reboot,
    connectors_restart,
    connectors_shutdown,
    events,
    snapshots,
)
from conntel.config import DEFAULT_DB, Settings
from conntel.credentials import PERMISSIONS

if TYPE_CHECKING:
    from conntel.admin import NewToken
    from conntel.store.base import Store

F = TypeVar("F", bound=Callable[..., Any])  # a command function, as click's decorators take and give it


def store_options(command: F) -> F:
    """--db / --database-url, accepted after every subcommand that touches the store."""
    command = click.option(
        "--database-url",
        envvar="CONNTEL_DATABASE_URL",
        help="postgresql://USER:PASSWORD@HOST:PORT/DB or sqlite:///PATH. Overrides --db. [env: CONNTEL_DATABASE_URL]",
    )(command)
    command = click.option(
        "--db",
        envvar="CONNTEL_DB",
        default=DEFAULT_DB,
        show_default=True,
        type=click.Path(dir_okay=False),
        help="SQLite database file. [env: CONNTEL_DB]",
    )(command)
    return command


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")(command)


def _database(db: str, database_url: str | None) -> str:
    return database_url or db


def _run_admin(db: str, database_url: str | None, operation: Callable[[Store], Awaitable[Any]]) -> Any:
    """Run `operation` on the store; any way the store cannot be used is one line on stderr, exit status 1."""
    import asyncio
    import contextlib

    from conntel.admin import AdminError
    from conntel.store import UnsupportedDatabase, is_database_error, open_store
    from conntel.store.base import StoreError
    from conntel.store.urls import redacted

    database = _database(db, database_url)

    async def run() -> Any:
        store = open_store(database)
        try:
            await store.start()
            warn_if_exposed(database)
            return await operation(store)
        except Exception as exc:
            # A database that opened but cannot do the work: read-only, locked past the busy timeout,
            # out of space, gone mid-way, or not in the shape conntel left it.
            if not isinstance(exc, StoreError) and (store.is_unavailable(exc) or is_database_error(exc)):
                raise StoreError(f"The database {redacted(database)} cannot be used: {_one_line(exc)}") from None
            raise
        finally:
            with contextlib.suppress(Exception):
                await store.close()

    try:
        return asyncio.run(run())
    except (AdminError, StoreError, UnsupportedDatabase) as exc:
        raise click.ClickException(_one_line(exc)) from None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 500 else text[:500] + "..."


def warn_if_exposed(database: str) -> None:
    from conntel.store import exposure_warning

    warning = exposure_warning(database)
    if warning is not None:
        click.echo(warning, err=True)


def _emit(result: Any, as_json: bool, title: str) -> None:
    data = asdict(result) if is_dataclass(result) and not isinstance(result, type) else result
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(title)
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        click.echo(f"  {key}: {shown if shown is not None else '-'}")


def admin_command(
    group: click.Group, name: str, title: str
) -> Callable[[Callable[..., Awaitable[Any]]], click.Command]:
    """Register an admin subcommand: store options, --json, and uniform output and errors."""

    def register(operation: Callable[..., Awaitable[Any]]) -> click.Command:
        @group.command(name, help=operation.__doc__)
        @store_options
        @json_option
        @functools.wraps(operation)
        def command(db: str, database_url: str | None, as_json: bool, **kwargs: Any) -> None:
            result = _run_admin(db, database_url, lambda store: operation(store, **kwargs))
            _emit(result, as_json, title)

        return command

    return register


@click.group()
@click.version_option(package_name="conntel")
def main() -> None:
    """conntel: Magic WAN Connector telemetry events, served over the Cloudflare v4 API."""


@main.group()
def accounts() -> None:
    """Manage accounts."""


@main.group()
def tokens() -> None:
    """Manage API tokens."""


@main.group()
def users() -> None:
    """Manage users (email + global API key)."""


@main.group()
def connectors() -> None:
    """Manage connectors."""


@click.option("--id", "account_id", help="Account id (default: a new random 32-hex id).")
@click.option("--name", help="Display name (default: the id).")
@admin_command(accounts, "create", "Created account")
async def accounts_create(store: Store, account_id: str | None, name: str | None) -> dict[str, str]:
    """Create an account."""
    from conntel import admin

    return await admin.create_account(store, account_id, name)


@main.group()
def webhooks() -> None:
    """Manage webhook endpoints (health changes, Standard Webhooks)."""


@click.option("--account", "account_id", required=True, help="Account whose connectors' health changes to send.")
@click.option("--url", required=True, help="The endpoint: an http:// or https:// URL.")
@click.option(
    "--event", "event_types", multiple=True, help="connector.failing, connector.silent or connector.healthy"
    " (repeat for several; default: all)."
)  # fmt: skip
@admin_command(webhooks, "create", "Created webhook (the secret is shown only once)")
async def webhooks_create(store: Store, account_id: str, url: str, event_types: tuple[str, ...]) -> dict[str, Any]:
    """Register an endpoint for an account's health changes; prints its whsec_ signing secret."""
    from conntel import admin

    return await admin.create_webhook(store, account_id, url, event_types)


@click.option("--account", "account_id", help="Only this account's endpoints.")
@webhooks.command("list")
@store_options
@json_option
def webhooks_list(db: str, database_url: str | None, as_json: bool, account_id: str | None) -> None:
    """Endpoints, with their deliveries, failures, last answer and waiting messages."""
    from conntel import admin

    items = _run_admin(db, database_url, lambda store: admin.list_webhooks(store, account_id))
    if as_json:
        for item in items:
            click.echo(json.dumps(item))
        return
    for item in items:
        state = "disabled" if item["disabled_on"] else "enabled"
        last = item["last_status"] or item["last_error"] or "-"
        click.echo(f"{item['id']}  {item['account_id']}  {item['url']}  {state}  delivered {item['delivered']}"
                   f"  failures {item['failures']}  pending {item['pending']}  last {last}"
                   f"  events {','.join(item['events'])}")  # fmt: skip


@click.argument("webhook_id", metavar="ID")
@admin_command(webhooks, "delete", "Deleted webhook")
async def webhooks_delete(store: Store, webhook_id: str) -> dict[str, Any]:
    """Remove an endpoint and the messages waiting for it."""
    from conntel import admin

    return await admin.delete_webhook(store, webhook_id)


@click.argument("webhook_id", metavar="ID")
@admin_command(webhooks, "test", "Test message delivered")
async def webhooks_test(store: Store, webhook_id: str) -> dict[str, Any]:
    """Send the endpoint a signed webhook.test message now; exit 1 unless it answers 2xx."""
    from conntel import admin

    return await admin.test_webhook(store, webhook_id)


@click.option("--account", "account_id", required=True, help="The account.")
@click.argument("duration", metavar="DURATION|default")
@admin_command(accounts, "silent-after", "Fleet health threshold set")
async def accounts_silent_after(store: Store, account_id: str, duration: str) -> dict[str, Any]:
    """How long a connector of the account may push nothing before it is silent (fleet health):
    a DURATION (45s, 30m, 12h, 90d), or `default` for the server's --silent-after."""
    from conntel import admin

    return await admin.set_silent_after(store, account_id, duration)


@click.option("--account", "account_id", required=True, help="Account the token acts on.")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    required=True,
    type=click.Choice(PERMISSIONS),
    help="Permission group; repeat for several.",
)
@click.option("--name", help="A name to recognise the token by.")
@click.option("--expires-on", help="ISO 8601 expiry, e.g. 2027-01-01T00:00:00Z (UTC when no offset).")
@admin_command(tokens, "create", "Created API token (the value is shown only once)")
async def tokens_create(
    store: Store, account_id: str, permissions: tuple[str, ...], name: str | None, expires_on: str | None
) -> NewToken:
    """Create an API token for one account."""
    from conntel import admin

    token = await admin.create_token(store, account_id, list(permissions), name, expires_on)
    if expires_on and admin.parse_expiry(expires_on) <= time.time():
        click.echo("warning: this token has already expired", err=True)
    return token


@click.argument("token_id")
@admin_command(tokens, "revoke", "Revoked API token")
async def tokens_revoke(store: Store, token_id: str) -> dict[str, str | bool]:
    """Revoke an API token: it stops working at once."""
    from conntel import admin

    return await admin.revoke_token(store, token_id)


@click.option("--email", required=True)
@click.option("--account", "account_id", required=True, help="Account the user is a member of.")
@admin_command(users, "create", "Created user (the API key is shown only once)")
async def users_create(store: Store, email: str, account_id: str) -> dict[str, str]:
    """Create a user with a global API key."""
    from conntel import admin

    return await admin.create_user(store, email, account_id)


@click.option("--email", required=True)
@click.option("--account", "account_id", required=True, help="Account the user leaves.")
@admin_command(users, "remove", "Removed user from account")
async def users_remove(store: Store, email: str, account_id: str) -> dict[str, str | bool]:
    """Remove a user from an account: its global key stops acting on that account at once."""
    from conntel import admin

    return await admin.remove_user(store, email, account_id)


@click.option("--email", required=True)
@admin_command(users, "rotate-key", "New global API key (shown only once; the old one stops working)")
async def users_rotate_key(store: Store, email: str) -> dict[str, str]:
    """Give a user a new global API key: the old one stops working at once."""
    from conntel import admin

    return await admin.rotate_user_key(store, email)


@click.option("--account", "account_id", required=True)
@click.option("--id", "connector_id", help="Connector id (default: a new random 32-hex id).")
@click.option(
    "--max-connectors-per-account",
    envvar="CONNTEL_MAX_CONNECTORS_PER_ACCOUNT",
    default=Settings.max_connectors_per_account,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="Refuse when the account already has this many, as the server does. [env: CONNTEL_MAX_CONNECTORS_PER_ACCOUNT]",
)
@admin_command(connectors, "create", "Created connector")
async def connectors_create(
    store: Store, account_id: str, connector_id: str | None, max_connectors_per_account: int
) -> dict[str, str]:
    """Create a connector in an account."""
    from conntel import admin

    return await admin.create_connector(store, account_id, connector_id, max_connectors_per_account)


@click.option("--account", "account_id", required=True)
@click.option("--connector", "connector_id", required=True)
@admin_command(connectors, "credential", "New device credential (shown only once; the earlier one stops working)")
async def connectors_credential(store: Store, account_id: str, connector_id: str) -> dict[str, str]:
    """Mint the connector's own credential: it may push the connector's telemetry and check in, nothing else."""
    from conntel import admin

    return await admin.mint_device_credential(store, account_id, connector_id)


def _check_rate_limit(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from conntel.api.ratelimit import parse_rate_limit

    if value is not None:
        try:
            parse_rate_limit(value)
        except ValueError as exc:
            raise click.BadParameter(f"{value!r} is not a rate such as 1200/5minutes or 10/second: {exc}") from None
    return value


def _check_rate_limit_storage(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from conntel.api.ratelimit import check_storage_url
    from conntel.store import redacted

    if value is not None:
        try:
            check_storage_url(value)
        except ValueError as exc:
            raise click.BadParameter(f"{redacted(value)!r} is not a rate-limit storage: {exc}") from None
    return value


class FiniteRange(click.FloatRange):
    """A float range that also refuses nan and infinity (which a plain FloatRange lets through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class Duration(click.ParamType[int]):
    """DURATION: `45s`, `30m`, `12h`, `90d`, as whole seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        from conntel.retention import parse_duration

        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(f"{value!r} is not a duration: {exc}", param, ctx)


DURATION = Duration()


# The server's options: (flag, what it sets, help), each with a CONNTEL_* environment fallback
# named after the setting and its default from Settings, the one place defaults live. Every number
# has a range (README, Configuration): a value outside it is a usage error, exit status 2.
_SECONDS = FiniteRange(min=0, min_open=True, max=86_400)
SERVE_OPTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("--host", "host", {}),
    ("--port", "port", {"type": click.IntRange(1, 65_535)}),
    ("--workers", "workers",
     {"type": click.IntRange(1, 256),
      "help": "Server processes sharing the port and the database. Default: one per CPU, at most 2; 1 with a"
              " --rate-limit counted in each process's memory (no --rate-limit-storage)."}),
    ("--pool-size", "pool_size",
     {"type": click.IntRange(1, 1_000), "help": "PostgreSQL connections per server process."}),
    ("--max-batch-events", "max_batch_events",
     {"type": click.IntRange(1, 1_000_000), "help": "Most events accepted in one ingestion request."}),
    ("--max-body-bytes", "max_body_bytes",
     {"type": click.IntRange(1, 1 << 30), "help": "Largest request body accepted."}),
    ("--max-header-bytes", "max_header_bytes",
     {"type": click.IntRange(8192, 1 << 20),
      "help": "Largest request line plus headers accepted: granian's HTTP/1 buffer (431 beyond)."}),
    ("--header-timeout", "header_timeout",
     {"type": _SECONDS,
      "help": "Seconds a client has to send a request's headers, idle connections included (closed beyond)."}),
    ("--body-timeout", "body_timeout",
     {"type": _SECONDS, "help": "Seconds a client has to send a request's body (408 beyond)."}),
    ("--send-timeout", "send_timeout",
     {"type": _SECONDS,
      "help": "Seconds a client may read none of an answer waiting for it (its connection is reset beyond)."}),
    ("--max-connections", "max_connections",
     {"type": click.IntRange(1, 1_000_000),
      "help": "Open connections per server process (beyond: new ones wait to be served)."}),
    ("--max-connectors-per-account", "max_connectors_per_account",
     {"type": click.IntRange(1, 10_000_000), "help": "Connectors an account may have (400 beyond)."}),
    ("--credential-ttl", "credential_ttl_seconds",
     {"type": FiniteRange(min=0, max=86_400), "metavar": "SECONDS",
      "help": "How long a looked-up token or key is trusted before it is read again: the most a revocation or"
              " expiry can lag (0: read on every request)."}),
    ("--access-log/--no-access-log", "access_log",
     {"help": "One JSON line per request on stderr (method, path, route, status, ms; never credentials)."}),
    ("--rate-limit", "rate_limit",
     {"callback": _check_rate_limit,
      "help": "Requests per credential, e.g. 1200/5minutes (the public API's limit). Default: unlimited."}),
    ("--rate-limit-storage", "rate_limit_storage",
     {"callback": _check_rate_limit_storage, "metavar": "URL",
      "help": "Count --rate-limit in this Redis (redis://HOST:6379), shared by every process on every host."
              " Default: each process counts in its own memory."}),
    ("--retain-events", "retain_events",
     {"type": DURATION, "metavar": "DURATION",
      "help": "Delete events collected longer ago than this (45s, 30m, 12h, 90d), in the background. Default: keep."}),
    ("--retain-snapshots", "retain_snapshots",
     {"type": DURATION, "metavar": "DURATION",
      "help": "Delete snapshots collected longer ago than this, in the background. Default: keep."}),
    ("--silent-after", "silent_after",
     {"type": DURATION, "metavar": "DURATION",
      "help": "A connector that pushed nothing for this long is silent (fleet health), unless its account"
              " has its own threshold. Default: 15m (shown in seconds)."}),
]  # fmt: skip


def serve_options(command: F) -> F:
    for flag, setting, extra in reversed(SERVE_OPTIONS):
        default = getattr(Settings, setting)
        command = click.option(
            flag, setting, envvar=f"CONNTEL_{setting.upper()}", default=default, show_default=default is not None,
            **extra,
        )(command)  # fmt: skip
    return command


@main.command()
@store_options
@serve_options
def serve(db: str, database_url: str | None, **options: Any) -> None:
    """Run the HTTP API server."""
    from conntel.server.run import run
    from conntel.store import UnsupportedDatabase
    from conntel.store.base import StoreError

    if options.get("rate_limit_storage") and not options.get("rate_limit"):
        raise click.UsageError("--rate-limit-storage counts --rate-limit: give a --rate-limit too")
    settings = Settings(database=_database(db, database_url), **options)
    try:
        run(settings)
    except (UnsupportedDatabase, StoreError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option(
    "--db",
    default="demo.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Demo database; recreated on every run (only a conntel one is replaced).",
)
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of the simulated fleet.")
@serve_options
def demo(db: str, seed: int, **options: Any) -> None:
    """Create a demo account and fleet with realistic events, print a token and a curl, then serve."""
    from conntel.admin import AdminError
    from conntel.demo import run_demo
    from conntel.store import UnsupportedDatabase
    from conntel.store.base import StoreError

    try:
        run_demo(db, seed, Settings(database=db, **options))
    except (UnsupportedDatabase, StoreError, AdminError) as exc:
        raise click.ClickException(_one_line(exc)) from None
    except OSError as exc:  # deleting the old demo files
        raise click.ClickException(f"Cannot replace the demo database {db}: {exc.strerror or exc}") from None


@main.group("store")
def store_group() -> None:
    """Work on whole stores."""


@store_group.command("copy")
@click.option(
    "--db",
    "source",
    envvar="CONNTEL_DB",
    required=True,
    type=click.Path(dir_okay=False),
    help="The SQLite store to copy from (opened read-only). [env: CONNTEL_DB]",
)
@click.option("--to", "destination", required=True, help="The PostgreSQL database to copy into (postgresql://...).")
@click.option(
    "--batch-size",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Rows per chunk (each its own transaction).",
)
@json_option
def store_copy(source: str, destination: str, batch_size: int, as_json: bool) -> None:
    """Copy an SQLite store into PostgreSQL: resumable, verified by counts at the end.

    Exit status 0 when every source row is in the destination; 1 on an error, a
    conflict (a destination row with the same key but other content: nothing
    is overwritten) or a failed verification; 130 when interrupted. Rerunning
    the same command resumes.
    """
    import asyncio
    import signal
    import sys
    import threading

    from conntel.store import is_postgres, redacted
    from conntel.store.base import StoreError
    from conntel.store.copy import CopyError, CopyInterrupted, Progress, copy_store

    if not is_postgres(destination):
        raise click.ClickException(f"--to must be a postgresql:// URL, not {redacted(destination)!r}")
    last_shown = [0.0]

    def show(p: Progress) -> None:  # events only, every 2 seconds and when a walk ends
        now = time.monotonic()
        if p.table != "events" or (now - last_shown[0] < 2 and not p.finished):
            return
        last_shown[0] = now
        share = f" ({min(100, 100 * p.done // p.total)}%)" if p.total else ""
        rate = f", {p.done / p.elapsed:,.0f}/s" if p.elapsed > 0 else ""
        if p.phase == "copy":
            click.echo(f"events: {p.done:,} of {p.total:,} read{share}, {p.copied:,} new{rate}", err=True)
        else:
            click.echo(f"events: {p.done:,} of {p.total:,} verified{share}{rate}", err=True)

    # Ctrl-C asks the copy to stop after the chunk in flight commits (cancelling it mid-query is
    # not reliably seen through asyncpg); a second Ctrl-C stops it at once.
    stop = threading.Event()

    def on_ctrl_c(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        report = asyncio.run(copy_store(source, destination, batch_size, show, stop.is_set))
    except (CopyError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except (CopyInterrupted, KeyboardInterrupt):
        click.echo("Interrupted: what was copied is kept. Run the same command again to resume.", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, previous)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(f"{'table':<16}{'source':>12}{'destination':>14}{'copied':>12}{'updated':>10}")
        for name, count in report.tables.items():
            click.echo(f"{name:<16}{count.source:>12,}{count.destination:>14,}{count.copied:>12,}{count.updated:>10,}")
    missing = {name: count.missing for name, count in report.tables.items() if count.missing}
    if missing:
        listed = ", ".join(f"{n:,} {name}" for name, n in missing.items())
        raise click.ClickException(
            f"Not verified: missing from the destination: {listed}."
            " (Rows added to the source behind the copy's position are picked up by running it again.)"
        )
    if not as_json:
        rows = sum(count.source for count in report.tables.values())
        click.echo(f"Verified: all {rows:,} source rows are in the destination.")


@store_group.command("check")
@store_options
@json_option
def store_check(db: str, database_url: str | None, as_json: bool) -> None:
    """Check a store: integrity (SQLite's integrity_check), schema version, rows per table.

    Opens it read-only and changes nothing (a live store may be checked). Exit status 0 only when
    it is intact; 1 otherwise (each problem on its own line).
    """
    import asyncio

    from conntel.store.check import check_store

    report = asyncio.run(check_store(_database(db, database_url)))
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(f"{report.database} ({report.backend}): {'intact' if report.intact else 'NOT INTACT'}")
        pending = " (upgraded when a server next starts)" if report.upgrade_pending else ""
        click.echo(f"  schema version: {report.schema_version} of {report.latest_schema_version}{pending}")
        for table, rows in report.tables.items():
            click.echo(f"  {table}: {rows:,} rows")
        for problem in report.problems:
            click.echo(f"  problem: {problem}", err=True)
    if not report.intact:
        raise SystemExit(1)


@store_group.command("backup")
@click.option(
    "--db",
    "source",
    envvar="CONNTEL_DB",
    required=True,
    type=click.Path(dir_okay=False),
    help="The SQLite store to back up (servers may keep writing to it). [env: CONNTEL_DB]",
)
@click.option("--to", "to", required=True, type=click.Path(dir_okay=False), help="The new file to write the copy to.")
@json_option
def store_backup(source: str, to: str, as_json: bool) -> None:
    """Copy a live SQLite store into a new file, consistent as of the moment the backup began.

    The copy is checked before it is kept; `conntel serve --db FILE` serves it. For PostgreSQL use
    pg_dump (README, Operating it).
    """
    from conntel.store import sqlite_path
    from conntel.store.backup import BackupError, backup_sqlite

    path = sqlite_path(source)
    if path is None:
        raise click.ClickException("--db must be an SQLite file; back up PostgreSQL with pg_dump (README)")
    try:
        report = backup_sqlite(path, to)
    except BackupError as exc:
        raise click.ClickException(_one_line(exc)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(f"Backed up {report.source} to {report.to}: {report.bytes:,} bytes in {report.seconds} s, checked")


@store_group.command("prune")
@store_options
@click.option(
    "--events-older-than",
    type=DURATION,
    metavar="DURATION",
    help="Delete events collected before this long ago (e.g. 90d).",
)
@click.option(
    "--snapshots-older-than", type=DURATION, metavar="DURATION", help="Delete snapshots collected before this long ago."
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@json_option
def store_prune(
    db: str,
    database_url: str | None,
    events_older_than: int | None,
    snapshots_older_than: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete telemetry collected longer ago than the given durations, once, in small transactions.

    Safe while servers run. Takes the retention lease, so it does not run beside a server's
    background retention (exit status 1 then, saying so).
    """
    from conntel.retention import policy

    keep = policy(events_older_than, snapshots_older_than)
    if not keep:
        raise click.UsageError("name --events-older-than and/or --snapshots-older-than")
    now = time.time()

    async def prune(store: Store) -> dict[str, Any]:
        from conntel.retention import count_pass

        if dry_run:
            rows = await count_pass(store, keep, now)
        else:
            rows = await _prune_holding_lease(store, keep, now)
        return {
            "dry_run": dry_run,
            "tables": {table: {"before": int(now - keep[table]), "rows": rows[table]} for table in keep},
        }

    result = _run_admin(db, database_url, prune)
    if as_json:
        click.echo(json.dumps(result))
        return
    verb = "would delete" if dry_run else "deleted"
    for table, done in result["tables"].items():
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(done["before"]))
        click.echo(f"{table}: {verb} {done['rows']:,} collected before {when}")


async def _prune_holding_lease(store: Store, keep: dict[str, int], now: float) -> dict[str, int]:
    import contextlib
    import os
    import socket

    from conntel.admin import AdminError
    from conntel.retention import LEASE, prune_pass

    holder, seconds = f"{socket.gethostname()}:{os.getpid()}:cli", 60.0
    if not await store.acquire_lease(LEASE, holder, seconds):
        raise AdminError("Retention is running in another process (a server with --retain-events or"
                         " --retain-snapshots): it prunes the same rows. Try again when it is not.")  # fmt: skip
    renewed = time.monotonic()

    async def still_held() -> bool:
        nonlocal renewed
        if time.monotonic() - renewed > seconds / 3:
            renewed = time.monotonic()
            return await store.acquire_lease(LEASE, holder, seconds)
        return True

    try:
        return await prune_pass(store, keep, now, still_held)
    finally:
        with contextlib.suppress(Exception):  # the database may be failing (that error is the one to report)
            await store.release_lease(LEASE, holder)


@main.command()
@click.option(
    "--url",
    envvar="CLOUDFLARE_BASE_URL",
    required=True,
    help="The server's root (http://127.0.0.1:8787) or its API base (.../client/v4). [env: CLOUDFLARE_BASE_URL]",
)
@click.option(
    "--token", envvar="CLOUDFLARE_API_TOKEN", required=True, help="A Magic WAN Write token. [env: CLOUDFLARE_API_TOKEN]"
)
@click.option("--account", required=True, help="The account the fleet belongs to.")
@click.option("--connectors", default=10, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--speed",
    default=60.0,
    show_default=True,
    type=FiniteRange(min=0, min_open=True),
    help="Simulated seconds per real second.",
)
@click.option(
    "--failure-rate",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Chance that an attestation, rotation or upgrade attempt fails.",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same connectors and events.")
@click.option("--duration", type=FiniteRange(min=0), help="Real seconds to run (default: until Ctrl-C).")
@click.option("--start", type=int, help="Simulated clock start, seconds since the epoch (default: now).")
@click.option(
    "--snapshots/--no-snapshots",
    default=True,
    show_default=True,
    help="Also report each connector's metrics: a full snapshot every simulated minute.",
)
@json_option
def simulate(as_json: bool, **options: Any) -> None:
    """Drive a fleet of virtual connectors through realistic lifecycles, posting through the API."""
    import asyncio

    from conntel.client.fleet import FleetError, FleetOptions, FleetStats, run_fleet

    def show(stats: FleetStats) -> None:
        if not as_json:
            click.echo(
                f"\r{stats.posted:,} events and {stats.snapshots:,} snapshots posted"
                f" ({stats.duplicates + stats.snapshot_duplicates:,} duplicates, {stats.retries} retries)",
                nl=False,
                err=True,
            )

    try:
        stats = asyncio.run(run_fleet(FleetOptions(**options), show))
    except FleetError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        return
    if as_json:
        click.echo(
            json.dumps(
                {
                    "posted": stats.posted,
                    "duplicates": stats.duplicates,
                    "retries": stats.retries,
                    "requests": stats.requests,
                    "connectors": stats.by_connector,
                    "snapshots": stats.snapshots,
                    "snapshot_duplicates": stats.snapshot_duplicates,
                }
            )
        )
    else:
        click.echo("", err=True)


# The reading CLI (over the HTTP API): conntel events ..., conntel connectors list.
main.add_command(events)
main.add_command(snapshots)
for command in (connectors_list, connectors_reboot, connectors_restart, connectors_shutdown, connectors_interrupts):
    connectors.add_command(command)
main.add_command(fleet)
