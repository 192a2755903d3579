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
from typing import Any

import msgspec

from conntel.connectors import ConnectorRecord, ConnectorSettings
from conntel.events import ValidEvent, same_content
from conntel.snapshots import ValidSnapshot, same_snapshot
from conntel.store import snapshot_codec
from conntel.store.base import EventConflict, SnapshotConflict, TokenRecord

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
_KEY = "account_id = ?1 AND connector_id = ?2"


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
        # (account_id, connector_id, through_t, limit): the page whose sizes were read (newer ones left out)
        self.latest_snapshots = p(
            "SELECT t, a, body FROM snapshots WHERE account_id = ? AND connector_id = ? AND t <= ?"
            " ORDER BY t DESC LIMIT ?"
        )
        self.recorded_snapshot = p("SELECT body FROM snapshots WHERE account_id = ? AND connector_id = ? AND t = ?")
        self.delete_snapshots = p(f"DELETE FROM snapshots WHERE {_KEY}")
        # -- connectors: rows in CONNECTOR_COLUMNS order --
        self.connector_exists = p(f"SELECT 1 FROM connectors WHERE {_KEY}")
        self.get_connector = p(f"SELECT {_COLUMNS} FROM connectors WHERE {_KEY}")
        # (account_id, device_type or None)
        self.list_connectors = p(
            f"SELECT {_COLUMNS} FROM connectors WHERE account_id = ?1"
            " AND (CAST(?2 AS TEXT) IS NULL OR device_type = ?2) ORDER BY connector_id"
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

    def activity(
        self, account_id: str, connector_id: str, events: Sequence[ValidEvent], received_at: int
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The updates that keep a connector's heartbeat and last seen version true as its events arrive."""
        updates: list[tuple[str, tuple[Any, ...]]] = [(self.note_heartbeat, (account_id, connector_id, received_at))]
        newest = newest_versioned(events)
        if newest is not None:
            updates.append((self.note_version, (account_id, connector_id, newest.v, newest.t, newest.n)))
        return updates


# -- rows --
def connector_row(record: ConnectorRecord) -> tuple[Any, ...]:
    """The record as column values, in CONNECTOR_COLUMNS order (settings as JSON)."""
    values = {column: getattr(record, column) for column in CONNECTOR_COLUMNS}
    values["settings"] = msgspec.json.encode(record.settings)
    return tuple(values.values())


def connector_record(row: Iterable[Any]) -> ConnectorRecord:
    values = dict(zip(CONNECTOR_COLUMNS, row, strict=False))
    values["settings"] = msgspec.json.decode(values["settings"], type=ConnectorSettings)
    return ConnectorRecord(**values)


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


def check_snapshot_retry(snapshot: ValidSnapshot, recorded_body: bytes) -> None:
    """A snapshot already recorded at its `t` must be an identical re-send: else SnapshotConflict."""
    if not same_snapshot(snapshot_codec.decompress(recorded_body), snapshot.json):
        raise SnapshotConflict(snapshot.t)
