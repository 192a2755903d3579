"""The storage port: what the API, the CLI and the demo need from a store.

Adapters (sqlite.py, later postgres.py) own their SQL and migrations; nothing
above this module speaks SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from conntel.model import AppendResult, NewEvent, canonical


@dataclass(frozen=True, slots=True)
class StoredEvent:
    t: int
    n: int
    a: int
    v: str | None
    e_json: bytes  # the payload as recorded, JSON-encoded


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    secret_hash: bytes
    account_id: str
    permissions: frozenset[str]
    revoked: bool
    not_before: int | None
    expires_on: int | None


@dataclass(frozen=True, slots=True)
class UserRecord:
    email: str
    api_key_hash: bytes
    accounts: frozenset[str]


class StoreError(Exception):
    """A store refused an operation for a reason the caller can report."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class EventConflict(StoreError):
    def __init__(self, t: int, n: int):
        super().__init__(f"Event {t}.{n} is already recorded with different content")
        self.t, self.n = t, n


class Store(Protocol):
    # -- telemetry events (the hot path) --
    async def get_event(self, account_id: str, connector_id: str, t: int, n: int) -> StoredEvent | None: ...

    async def append_events(
        self, account_id: str, connector_id: str, events: Sequence[NewEvent], received_at: int
    ) -> AppendResult:
        """All or nothing. Raises NotFound (no such connector) or EventConflict."""
        ...

    async def connector_exists(self, account_id: str, connector_id: str) -> bool: ...

    # -- credentials --
    async def find_token(self, secret_hash: bytes) -> TokenRecord | None: ...

    async def find_user(self, email: str) -> UserRecord | None: ...

    # -- administration (raise AlreadyExists / NotFound) --
    async def create_account(self, account_id: str, name: str, created_on: int) -> None: ...

    async def create_connector(self, account_id: str, connector_id: str, created_on: int) -> None: ...

    async def create_user(self, email: str, api_key_hash: bytes, account_id: str, created_on: int) -> None: ...

    async def create_token(
        self,
        token_id: str,
        secret_hash: bytes,
        account_id: str,
        name: str,
        permissions: Sequence[str],
        expires_on: int | None,
        created_on: int,
    ) -> None: ...

    async def revoke_token(self, token_id: str, revoked_on: int) -> None: ...

    async def close(self) -> None: ...


def unique_events(events: Sequence[NewEvent]) -> list[NewEvent]:
    """Drop identical repeats of a (t, n) within one batch; a differing repeat is a conflict."""
    seen: dict[tuple[int, int], NewEvent] = {}
    for ev in events:
        first = seen.setdefault((ev.t, ev.n), ev)
        if first is not ev and canonical(first.e, first.v) != canonical(ev.e, ev.v):
            raise EventConflict(ev.t, ev.n)
    return list(seen.values())
