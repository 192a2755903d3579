"""The SQL both adapters run, written once, and the helpers they share.

Statements are written in SQLite's placeholder style: `?`, or `?N` where a
statement uses a parameter twice. `Statements(numbered)` rewrites them once,
when an adapter is imported, into asyncpg's `$N` style, so both drivers take
the same arguments in the same order. A statement whose syntax differs between
the databases (the batch insert of events, locking reads) stays in its adapter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, UnsetType

from conntel.connectors import ConnectorRecord, ConnectorSettings
from conntel.events import ValidEvent, same_content
from conntel.health import (
    FAILING,
    HEALTHY,
    OPERATION_PENDING,
    OUTCOME_KINDS,
    SILENT,
    ConnectorHealth,
    EventRef,
    HealthChange,
    HealthFacts,
    HealthState,
    Report,
    SnapshotRef,
    decide,
)
from conntel.interrupts import InterruptRecord
from conntel.store import snapshot_codec
from conntel.store.base import EventConflict, SnapshotConflict, TokenRecord
from conntel.webhooks import DueMessage, WebhookRecord

if TYPE_CHECKING:  # imported where used: building the snapshot types is no part of a light CLI start
    from conntel.snapshots import ValidSnapshot

_PLACEHOLDER = re.compile(r"\?(\d*)")

# ConnectorRecord as table columns (the first two are the key).
CONNECTOR_COLUMNS = (
    "account_id",
    "connector_id",
    "settings",
    "created_on",
    "last_updated",
    "device_id",
    "device_serial_number",
    "device_type",
    "license_key_hash",
    "last_heartbeat",
    "last_seen_version",
)
_COLUMNS = ", ".join(CONNECTOR_COLUMNS)
# A connector's fleet health and what it is decided from, kept by the statements below (conntel/health.py).
HEALTH_COLUMNS = (
    "outcome_t", "outcome_n", "outcome_k", "health", "health_since", "health_reason", "health_t", "health_n",
    "tunnel_t", "tunnel_down", "operation_overdue", "health_snapshot_t", "health_tunnel", "health_operation",
)  # fmt: skip
# The key, the kept health (HealthState) and what decides it (HealthFacts): health_row's columns.
_STATE_COLUMNS = (
    "health", "health_since", "health_reason", "health_t", "health_n", "health_snapshot_t", "health_tunnel",
    "health_operation",
)  # fmt: skip
_FACT_COLUMNS = (
    "outcome_t", "outcome_n", "outcome_k", "tunnel_t", "tunnel_down", "operation_overdue", "last_heartbeat",
    "created_on",
)  # fmt: skip
HEALTH_ROW = ", ".join(("account_id", "connector_id", *_STATE_COLUMNS, *_FACT_COLUMNS))
assert len(_STATE_COLUMNS) == len(HealthState._fields) and len(_FACT_COLUMNS) == len(HealthFacts._fields)
# A health change as the live feed reads it (after its position's columns).
HEALTH_CHANGE_COLUMNS = (
    "connector_id, health, previous, since, reason, event_t, event_n, snapshot_t, tunnel_id, operation_id"
)
_KEY = "account_id = ?1 AND connector_id = ?2"
# InterruptRecord as table columns, in its field order.
INTERRUPT_COLUMNS = ("account_id", "connector_id", "interrupt_id", "action", "purge", "submitted_at", "triggered_at")
_INTERRUPT_COLUMNS = ", ".join(INTERRUPT_COLUMNS)


def numbered(sql: str) -> str:
    """`?` and `?N` placeholders as asyncpg's `$N` (a bare `?` takes the next number)."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${match[1] or count}"

    return _PLACEHOLDER.sub(number, sql)


def _as_written(sql: str) -> str:
    return sql


# The telemetry tables retention prunes, each with its key (a batch deletes these rows).
TELEMETRY_KEYS: dict[str, str] = {
    "events": "account_id, connector_id, t, n",
    "snapshots": "account_id, connector_id, t",
}


class Statements:
    """Every statement the two adapters share, in one driver's placeholder style.

    `now` is the database's clock in seconds since the epoch, as an SQL expression: leases compare
    against it, so processes on several hosts need not agree on the time."""

    def __init__(
        self, placeholders: Callable[[str], str] = _as_written, now: str = "(julianday('now') - 2440587.5) * 86400.0"
    ) -> None:
        p = placeholders
        # -- telemetry events: (account_id, connector_id, ...) --
        self.get_event = p("SELECT a, v, e FROM events WHERE account_id = ? AND connector_id = ? AND t = ? AND n = ?")
        self.list_events = p(
            "SELECT t, n, a, k FROM events WHERE account_id = ? AND connector_id = ?"
            " AND (t, n) > (?, ?) AND t <= ? ORDER BY t, n LIMIT ?"
        )
        self.list_events_of_kind = p(
            "SELECT t, n, a, k FROM events WHERE account_id = ? AND connector_id = ? AND k = ?"
            " AND (t, n) > (?, ?) AND t <= ? ORDER BY t, n LIMIT ?"
        )
        self.latest_events = p(
            "SELECT t, n, a, v, e FROM events WHERE account_id = ? AND connector_id = ? ORDER BY t DESC, n DESC LIMIT ?"
        )
        # (account_id, connector_id, through_t, through_n, limit): a part of a Latest Events page
        self.latest_events_through = p(
            "SELECT t, n, a, v, e FROM events WHERE account_id = ? AND connector_id = ?"
            " AND (t, n) <= (?, ?) ORDER BY t DESC, n DESC LIMIT ?"
        )
        # length() of a blob or bytea does not read the value: how many fit is known before any payload is read.
        self.latest_event_sizes = p(
            "SELECT t, n, length(e) FROM events WHERE account_id = ? AND connector_id = ?"
            " ORDER BY t DESC, n DESC LIMIT ?"
        )
        # (account_id, after, connector_id or None, limit)
        self.events_after = p(
            "SELECT seq, connector_id, t, n, a, v, e FROM events WHERE account_id = ?1 AND seq > ?2"
            " AND (CAST(?3 AS TEXT) IS NULL OR connector_id = ?3) ORDER BY seq LIMIT ?4"
        )
        self.event_sizes_after = p(
            "SELECT length(e) FROM events WHERE account_id = ?1 AND seq > ?2"
            " AND (CAST(?3 AS TEXT) IS NULL OR connector_id = ?3) ORDER BY seq LIMIT ?4"
        )
        self.stream_position = p("SELECT next_seq - 1 FROM accounts WHERE account_id = ?")
        # (account_id, count): the first of `count` new positions; locks the account row until commit.
        self.take_positions = p(
            "UPDATE accounts SET next_seq = next_seq + ?2 WHERE account_id = ?1 RETURNING next_seq - ?2"
        )
        self.delete_events = p(f"DELETE FROM events WHERE {_KEY}")
        # (account_id, connector_id, received_at) and (account_id, connector_id, v, t, n): see activity().
        self.note_heartbeat = p(f"UPDATE connectors SET last_heartbeat = ?3, last_updated = ?3 WHERE {_KEY}")
        self.note_version = p(
            f"UPDATE connectors SET last_seen_version = ?3, version_t = ?4, version_n = ?5 WHERE {_KEY}"
            " AND (coalesce(version_t, -1), coalesce(version_n, -1)) < (?4, ?5)"
        )
        # -- fleet health (conntel/health.py) --
        # (account_id, connector_id, t, n, k): the batch's newest outcome event, when newer than the one kept.
        self.note_outcome = p(
            f"UPDATE connectors SET outcome_t = ?3, outcome_n = ?4, outcome_k = ?5 WHERE {_KEY}"
            " AND (coalesce(outcome_t, -1), coalesce(outcome_n, -1)) < (?3, ?4)"
        )
        # (account_id, connector_id, t, tunnel down or None): the batch's newest snapshot, when newer than the one kept.
        self.note_tunnels = p(
            f"UPDATE connectors SET tunnel_t = ?3, tunnel_down = ?4 WHERE {_KEY} AND coalesce(tunnel_t, -1) < ?3"
        )
        # (account_id, connector_id, interrupt_id): that operation is pending no more.
        self.clear_overdue = p(
            f"UPDATE connectors SET operation_overdue = NULL WHERE {_KEY} AND operation_overdue = ?3"
        )
        # (account_id, connector_id): what decides its health (health.decide), for a writer that just heard from it.
        self.health_row = p(f"SELECT {HEALTH_ROW} FROM connectors WHERE {_KEY}")
        self.silent_health_row = p(f"SELECT {HEALTH_ROW} FROM connectors WHERE {_KEY} AND health = '{SILENT}'")
        # (account_id, connector_id, *HealthState): its health decided anew
        self.set_health = p(
            "UPDATE connectors SET health = ?3, health_since = ?4, health_reason = ?5, health_t = ?6, health_n = ?7,"
            f" health_snapshot_t = ?8, health_tunnel = ?9, health_operation = ?10 WHERE {_KEY}"
        )
        # -- the sweep: (now, default threshold) --
        threshold = "coalesce((SELECT silent_after FROM accounts WHERE accounts.account_id = {table}.account_id), ?2)"
        # Operations pending for longer than their account's threshold, not marked yet...
        self.mark_overdue = p(
            "UPDATE connectors SET operation_overdue = (SELECT interrupt_id FROM interrupts i"
            " WHERE i.account_id = connectors.account_id AND i.connector_id = connectors.connector_id"
            " AND i.triggered_at IS NULL) WHERE operation_overdue IS NULL AND (account_id, connector_id) IN"
            " (SELECT account_id, connector_id FROM interrupts WHERE triggered_at IS NULL"
            f" AND submitted_at < (?1 - {threshold.format(table='interrupts')}) * 1000000)"
        )
        # ... and marks of operations no longer pending (executed through a path that did not clear it: none
        # today; a safety net) (no parameters).
        self.unmark_overdue = p(
            "UPDATE connectors SET operation_overdue = NULL WHERE operation_overdue IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM interrupts i WHERE i.account_id = connectors.account_id"
            " AND i.connector_id = connectors.connector_id AND i.interrupt_id = connectors.operation_overdue"
            " AND i.triggered_at IS NULL)"
        )
        # Connectors whose health time may have changed: reporting ones gone quiet, and those an operation
        # pending too long (or no longer) concerns; with their threshold. A connector failing for another
        # reason outranks silence: left alone.
        by_operation = f"health_reason = '{OPERATION_PENDING}'"
        own_threshold = threshold.format(table="connectors")
        self.sweep_candidates = p(
            f"SELECT {HEALTH_ROW}, {own_threshold} FROM connectors"
            f" WHERE ((health = '{HEALTHY}' OR {by_operation}) AND last_heartbeat < ?1 - {own_threshold})"
            f" OR (health = '{HEALTHY}' AND operation_overdue IS NOT NULL)"
            f" OR (health = '{FAILING}' AND {by_operation} AND operation_overdue IS NULL)"
            " ORDER BY account_id, connector_id"
        )
        # (before): health changes the live feeds have long read
        self.prune_health_changes = p("DELETE FROM health_changes WHERE created_on < ?")
        self.fleet_health = p(
            "SELECT connector_id, health, coalesce(health_since, created_on), health_reason, last_heartbeat,"
            " health_t, health_n, health_snapshot_t, health_tunnel, health_operation"
            " FROM connectors WHERE account_id = ? ORDER BY connector_id"
        )
        self.health_counts = p("SELECT account_id, health, count(*) FROM connectors GROUP BY account_id, health")
        self.set_silent_after = p("UPDATE accounts SET silent_after = ? WHERE account_id = ?")
        # -- webhooks (conntel/webhooks.py); messages are made by a trigger (the webhooks migration) --
        self.insert_webhook = p(
            "INSERT INTO webhooks (webhook_id, account_id, url, secret, event_types, created_on)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
        self.count_webhooks = p("SELECT count(*) FROM webhooks WHERE account_id = ?")
        # (account_id or None): rows in WebhookRecord order, with how many messages wait for each
        self.list_webhooks = p(
            "SELECT webhook_id, account_id, url, event_types, created_on, failures, failing_since, delivered,"
            " last_attempt, last_status, last_error, disabled_on, (SELECT count(*) FROM webhook_messages m"
            " WHERE m.webhook_id = webhooks.webhook_id AND delivered_on IS NULL AND given_up_on IS NULL)"
            " FROM webhooks WHERE (CAST(?1 AS TEXT) IS NULL OR account_id = ?1)"
            " ORDER BY account_id, created_on, webhook_id"
        )
        self.webhook_secret = p("SELECT url, secret FROM webhooks WHERE webhook_id = ?")
        self.delete_webhook = p("DELETE FROM webhooks WHERE webhook_id = ?")
        self.delete_webhook_messages = p("DELETE FROM webhook_messages WHERE webhook_id = ?")
        # (now, limit): messages whose attempt is due, to enabled endpoints, the longest waiting first
        self.due_messages = p(
            "SELECT m.message_id, m.webhook_id, w.url, w.secret, m.body, m.attempts"
            " FROM webhook_messages m JOIN webhooks w ON w.webhook_id = m.webhook_id"
            " WHERE m.delivered_on IS NULL AND m.given_up_on IS NULL AND m.next_attempt <= ?1"
            " AND w.disabled_on IS NULL ORDER BY m.next_attempt LIMIT ?2"
        )
        # (message_id, now or the next attempt's time)
        self.message_delivered = p(
            "UPDATE webhook_messages SET attempts = attempts + 1, delivered_on = ?2 WHERE message_id = ?1"
        )
        self.message_retry = p(
            "UPDATE webhook_messages SET attempts = attempts + 1, next_attempt = ?2 WHERE message_id = ?1"
        )
        self.message_given_up = p(
            "UPDATE webhook_messages SET attempts = attempts + 1, given_up_on = ?2 WHERE message_id = ?1"
        )
        # (webhook_id, now, status or None, error or None)
        self.webhook_succeeded = p(
            "UPDATE webhooks SET failures = 0, failing_since = NULL, delivered = delivered + 1,"
            " last_attempt = ?2, last_status = ?3, last_error = ?4 WHERE webhook_id = ?1"
        )
        self.webhook_failed = p(
            "UPDATE webhooks SET failures = failures + 1, failing_since = coalesce(failing_since, ?2),"
            " last_attempt = ?2, last_status = ?3, last_error = ?4 WHERE webhook_id = ?1"
        )
        # (webhook_id, now, failing since at most): an endpoint failing for too long is disabled...
        self.disable_webhook = p(
            "UPDATE webhooks SET disabled_on = ?2 WHERE webhook_id = ?1 AND disabled_on IS NULL AND failing_since <= ?3"
        )
        # ... (webhook_id, now) and its waiting messages given up
        self.give_up_messages = p(
            "UPDATE webhook_messages SET given_up_on = ?2"
            " WHERE webhook_id = ?1 AND delivered_on IS NULL AND given_up_on IS NULL"
        )
        self.outbox_depth = p(
            "SELECT count(*) FROM webhook_messages WHERE delivered_on IS NULL AND given_up_on IS NULL"
        )
        # -- snapshots: (account_id, connector_id, ...); `body` is a zstd frame (snapshot_codec) --
        self.get_snapshot = p("SELECT a, body FROM snapshots WHERE account_id = ? AND connector_id = ? AND t = ?")
        # (account_id, connector_id, after_t, to_t, limit): keyset pages in `t` order
        self.list_snapshots = p(
            "SELECT t, a FROM snapshots WHERE account_id = ? AND connector_id = ?"
            " AND t > ? AND t <= ? ORDER BY t LIMIT ?"
        )
        # `size` is the JSON's length: how many fit in a Latest Snapshots page is known before any body is read.
        self.latest_snapshot_sizes = p(
            "SELECT t, size FROM snapshots WHERE account_id = ? AND connector_id = ? ORDER BY t DESC LIMIT ?"
        )
        # (account_id, connector_id, through_t, limit): a page (or a part of one) whose sizes were read, newer
        # ones left out
        self.latest_snapshots = p(
            "SELECT t, a, body FROM snapshots WHERE account_id = ? AND connector_id = ? AND t <= ?"
            " ORDER BY t DESC LIMIT ?"
        )
        self.recorded_snapshot = p("SELECT body FROM snapshots WHERE account_id = ? AND connector_id = ? AND t = ?")
        self.delete_snapshots = p(f"DELETE FROM snapshots WHERE {_KEY}")
        # -- connectors: rows in CONNECTOR_COLUMNS order --
        self.connector_exists = p(f"SELECT 1 FROM connectors WHERE {_KEY}")
        self.get_connector = p(f"SELECT {_COLUMNS} FROM connectors WHERE {_KEY}")
        # (account_id, device_type or None, after, limit): keyset pages in connector_id order ('' before all)
        self.list_connectors = p(
            f"SELECT {_COLUMNS} FROM connectors WHERE account_id = ?1 AND connector_id > ?3"
            " AND (CAST(?2 AS TEXT) IS NULL OR device_type = ?2) ORDER BY connector_id LIMIT ?4"
        )
        self.insert_connector = p(
            f"INSERT INTO connectors ({_COLUMNS}) VALUES ({', '.join('?' * len(CONNECTOR_COLUMNS))})"
        )
        # (account_id): how many connectors the account has (its bound: create_connector's max_per_account)
        self.count_connectors = p("SELECT count(*) FROM connectors WHERE account_id = ?")
        # connector_row(record): the key, then the columns it sets
        assignments = ", ".join(f"{column} = ?{i}" for i, column in enumerate(CONNECTOR_COLUMNS[2:], start=3))
        self.update_connector = p(f"UPDATE connectors SET {assignments} WHERE {_KEY}")
        self.delete_connector = p(f"DELETE FROM connectors WHERE {_KEY} RETURNING {_COLUMNS}")
        # -- accounts, users, tokens, secrets --
        self.account_exists = p("SELECT 1 FROM accounts WHERE account_id = ?")
        self.insert_account = p("INSERT INTO accounts (account_id, name, created_on) VALUES (?, ?, ?)")
        self.insert_user = p("INSERT INTO users VALUES (?, ?, ?)")
        self.insert_membership = p("INSERT INTO memberships VALUES (?, ?)")
        self.find_user = p("SELECT api_key_hash FROM users WHERE email = ?")
        self.user_accounts = p("SELECT account_id FROM memberships WHERE email = ?")
        self.insert_token = p(
            "INSERT INTO tokens (token_id, secret_hash, account_id, name, permissions, expires_on, created_on)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self.find_token = p(
            "SELECT token_id, account_id, permissions, revoked_on, not_before, expires_on"
            " FROM tokens WHERE secret_hash = ?"
        )
        self.revoke_token = p("UPDATE tokens SET revoked_on = coalesce(revoked_on, ?) WHERE token_id = ?")
        # -- the device side --
        # (secret_hash): a minted credential first, else a license key
        self.find_device = p(
            "SELECT account_id, connector_id FROM device_credentials WHERE secret_hash = ?1"
            " UNION ALL SELECT account_id, connector_id FROM connectors WHERE license_key_hash = ?1 LIMIT 1"
        )
        # (account_id, connector_id, secret_hash, created_on): one per connector, the newest wins
        self.set_device_credential = p(
            "INSERT INTO device_credentials (account_id, connector_id, secret_hash, created_on) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (account_id, connector_id)"
            " DO UPDATE SET secret_hash = excluded.secret_hash, created_on = excluded.created_on"
        )
        self.delete_device_credential = p(f"DELETE FROM device_credentials WHERE {_KEY}")
        self.insert_interrupt = p(f"INSERT INTO interrupts ({_INTERRUPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)")
        self.list_interrupts = p(
            f"SELECT {_INTERRUPT_COLUMNS} FROM interrupts WHERE {_KEY}"
            " ORDER BY submitted_at DESC, interrupt_id DESC LIMIT ?3"
        )
        self.pending_interrupt = p(f"SELECT {_INTERRUPT_COLUMNS} FROM interrupts WHERE {_KEY} AND triggered_at IS NULL")
        # (account_id, connector_id, interrupt_id, triggered_at): the first report wins
        self.trigger_interrupt = p(
            f"UPDATE interrupts SET triggered_at = coalesce(triggered_at, ?4) WHERE {_KEY} AND interrupt_id = ?3"
        )
        self.delete_interrupts = p(f"DELETE FROM interrupts WHERE {_KEY}")
        # (account_id, connector_id, seconds): a check-in, never moving the heartbeat back
        self.note_checkin = p(
            "UPDATE connectors SET last_heartbeat = ?3,"
            " last_updated = CASE WHEN last_updated < ?3 THEN ?3 ELSE last_updated END"
            f" WHERE {_KEY} AND coalesce(last_heartbeat, -1) < ?3"
        )
        self.insert_secret = p("INSERT INTO server_secrets VALUES (?, ?) ON CONFLICT DO NOTHING")
        self.server_secret = p("SELECT secret FROM server_secrets WHERE name = ?")
        # -- retention: by `a`, account by account (the index events_by_arrival starts with account_id) --
        self.account_ids = p("SELECT account_id FROM accounts ORDER BY account_id")
        # (account_id, before, limit): one small batch of rows collected before `before`
        self.prune = {
            table: p(
                f"DELETE FROM {table} WHERE ({key}) IN"
                f" (SELECT {key} FROM {table} WHERE account_id = ? AND a < ? LIMIT ?)"
            )
            for table, key in TELEMETRY_KEYS.items()
        }
        self.count_older = {
            table: p(f"SELECT count(*) FROM {table} WHERE account_id = ? AND a < ?") for table in TELEMETRY_KEYS
        }
        # -- leases: (name, holder, seconds) taken or renewed when free, lapsed, or the holder's own --
        self.acquire_lease = p(
            f"INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, {now} + ?3)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
            f" WHERE leases.holder = excluded.holder OR leases.expires_at <= {now} RETURNING holder"
        )
        self.release_lease = p("DELETE FROM leases WHERE name = ? AND holder = ?")

    def attempt(
        self, message: DueMessage, now: int, status: int | None, error: str | None, retry_at: int | None
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The updates that record one delivery attempt, on the message and on its endpoint."""
        if status is not None and 200 <= status < 300:
            return [(self.message_delivered, (message.message_id, now)),
                    (self.webhook_succeeded, (message.webhook_id, now, status, None))]  # fmt: skip
        message_update = (self.message_retry, (message.message_id, retry_at)) if retry_at is not None else (
            self.message_given_up, (message.message_id, now))  # fmt: skip
        return [message_update, (self.webhook_failed, (message.webhook_id, now, status, error))]

    def activity(
        self, account_id: str, connector_id: str, events: Sequence[ValidEvent], received_at: int
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The updates that keep a connector's heartbeat, last seen version and newest outcome true as its
        events arrive (run in the ingestion's transaction, in this order; its health is decided after them)."""
        updates: list[tuple[str, tuple[Any, ...]]] = [(self.note_heartbeat, (account_id, connector_id, received_at))]
        newest = newest_versioned(events)
        if newest is not None:
            updates.append((self.note_version, (account_id, connector_id, newest.v, newest.t, newest.n)))
        outcome = max((ev for ev in events if ev.kind in OUTCOME_KINDS), key=lambda ev: (ev.t, ev.n), default=None)
        if outcome is not None:
            updates.append((self.note_outcome, (account_id, connector_id, outcome.t, outcome.n, outcome.kind)))
        return updates


# -- fleet health --
def _health_parts(row: Sequence[Any]) -> tuple[str, str, HealthState, HealthFacts]:
    """A health_row (HEALTH_ROW): the key, the kept health and what decides it."""
    state_end = 2 + len(HealthState._fields)
    facts = HealthFacts(*row[state_end : state_end + len(HealthFacts._fields)])
    return row[0], row[1], HealthState(*row[2:state_end]), facts


def redecided(row: Sequence[Any], now: int, silent_since: int | None, report: Report) -> tuple[Any, ...] | None:
    """A health_row decided anew (health.decide): set_health's parameters, None when unchanged."""
    account_id, connector_id, current, facts = _health_parts(row)
    decided = decide(current, facts, now, silent_since, report)
    return None if decided is current else (account_id, connector_id, *decided)


def swept(row: Sequence[Any], now: int) -> tuple[Any, ...] | None:
    """A sweep_candidates row (a health_row, then its threshold) decided anew as time passed."""
    facts, threshold = _health_parts(row)[3], row[-1]
    if facts.last_heartbeat is None:
        silent_since: int | None = facts.created_on
    elif facts.last_heartbeat < now - threshold:
        silent_since = facts.last_heartbeat + threshold
    else:
        silent_since = None
    return redecided(row, now, silent_since, Report())


def _why(
    event_t: int | None, event_n: int | None, snapshot_t: int | None, tunnel_id: str | None, operation_id: str | None
) -> tuple[EventRef | UnsetType, SnapshotRef | UnsetType, str | UnsetType, str | UnsetType]:
    """What made a health so, as the wire has it (absent when NULL)."""
    return (
        UNSET if event_t is None else EventRef(event_t, event_n or 0),
        UNSET if snapshot_t is None else SnapshotRef(snapshot_t),
        UNSET if tunnel_id is None else tunnel_id,
        UNSET if operation_id is None else operation_id,
    )


def health_change(row: Sequence[Any]) -> HealthChange:
    """A health_changes row (HEALTH_CHANGE_COLUMNS) as the live stream's message."""
    connector_id, health, previous, since, reason, *why = row
    return HealthChange(connector_id, health, previous, since, reason, *_why(*why))


# -- rows --
def webhook_record(row: Sequence[Any]) -> WebhookRecord:
    """A list_webhooks row (event types as their JSON array)."""
    webhook_id, account_id, url, types, *rest = row
    return WebhookRecord(webhook_id, account_id, url, tuple(json.loads(types)), *rest)


def health_item(row: Sequence[Any]) -> ConnectorHealth:
    """A fleet_health row (store/sql.py) as the API's item."""
    connector_id, health, since, reason, last_heartbeat, *why = row
    return ConnectorHealth(connector_id, health, since, reason, last_heartbeat, *_why(*why))


def connector_row(record: ConnectorRecord) -> tuple[Any, ...]:
    """The record as column values, in CONNECTOR_COLUMNS order (settings as JSON)."""
    values = {column: getattr(record, column) for column in CONNECTOR_COLUMNS}
    values["settings"] = msgspec.json.encode(record.settings)
    return tuple(values.values())


def connector_record(row: Iterable[Any]) -> ConnectorRecord:
    values = dict(zip(CONNECTOR_COLUMNS, row, strict=False))
    values["settings"] = msgspec.json.decode(values["settings"], type=ConnectorSettings)
    return ConnectorRecord(**values)


def interrupt_row(record: InterruptRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, column) for column in INTERRUPT_COLUMNS)


def interrupt_record(row: Iterable[Any]) -> InterruptRecord:
    account_id, connector_id, interrupt_id, action, purge, submitted_at, triggered_at = row
    return InterruptRecord(account_id, connector_id, interrupt_id, action, bool(purge), submitted_at, triggered_at)


def permissions_json(permissions: Sequence[str]) -> str:
    """A token's permissions as Statements.insert_token stores them."""
    return json.dumps(sorted(permissions))


def token_record(secret_hash: bytes, row: Iterable[Any]) -> TokenRecord:
    """A row of Statements.find_token."""
    token_id, account_id, permissions, revoked_on, not_before, expires_on = row
    return TokenRecord(
        token_id,
        secret_hash,
        account_id,
        frozenset(json.loads(permissions)),
        revoked_on is not None,
        not_before,
        expires_on,
    )


# -- event batches --
def unique_events(events: Sequence[ValidEvent]) -> list[ValidEvent]:
    """Drop identical repeats of a (t, n) within one batch; a differing repeat is a conflict."""
    seen: dict[tuple[int, int], ValidEvent] = {}
    for ev in events:
        first = seen.setdefault((ev.t, ev.n), ev)
        if first is not ev and not same_content(first.e_json, first.v, ev):
            raise EventConflict(ev.t, ev.n)
    return list(seen.values())


def check_retry(ev: ValidEvent, stored_e: bytes, stored_v: str | None) -> None:
    """An event already recorded under its (t, n) must be an identical re-send: else EventConflict.

    Identical means the same version and payload text, whatever the order of the payload's keys
    (events.same_content)."""
    if not same_content(stored_e, stored_v, ev):
        raise EventConflict(ev.t, ev.n)


def newest_versioned(events: Sequence[ValidEvent]) -> ValidEvent | None:
    """The newest event, by (t, n), that carries a version: where last_seen_version comes from."""
    return max((ev for ev in events if ev.v is not None), key=lambda ev: (ev.t, ev.n), default=None)


# -- snapshot batches --
def unique_snapshots(snapshots: Sequence[ValidSnapshot]) -> list[ValidSnapshot]:
    """Drop identical repeats of a `t` within one batch; a differing repeat is a conflict."""
    from conntel.snapshots import same_snapshot

    seen: dict[int, ValidSnapshot] = {}
    for snapshot in snapshots:
        first = seen.setdefault(snapshot.t, snapshot)
        if first is not snapshot and not same_snapshot(first.json, snapshot.json):
            raise SnapshotConflict(snapshot.t)
    return list(seen.values())


def snapshot_rows(
    account_id: str, connector_id: str, snapshots: Sequence[ValidSnapshot], received_at: int
) -> list[tuple[str, str, int, int, int, bytes]]:
    """Rows of the snapshots table: (account_id, connector_id, t, a, size, body), bodies compressed."""
    compress = snapshot_codec.compress
    return [(account_id, connector_id, s.t, received_at, len(s.json), compress(s.json)) for s in snapshots]


def newest_tunnels(account_id: str, connector_id: str, snapshots: Sequence[ValidSnapshot]) -> tuple[Any, ...]:
    """note_tunnels' parameters: the batch's newest snapshot and its tunnel verdict (decided when decoded)."""
    newest = max(snapshots, key=lambda s: s.t)
    return (account_id, connector_id, newest.t, newest.tunnel_down)


def check_snapshot_retry(snapshot: ValidSnapshot, recorded_body: bytes) -> None:
    """A snapshot already recorded at its `t` must be an identical re-send: else SnapshotConflict."""
    from conntel.snapshots import same_snapshot

    if not same_snapshot(snapshot_codec.decompress(recorded_body), snapshot.json):
        raise SnapshotConflict(snapshot.t)
