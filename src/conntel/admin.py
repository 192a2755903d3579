"""Administration: the operations behind the operator CLI (and the demo).

Each takes an open store; secrets are generated here, returned once to the
caller and stored only as hashes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from conntel import connectors, ids
from conntel.connectors import ConnectorSettings
from conntel.credentials import PERMISSIONS, is_valid_email, new_api_key, new_token_secret, secret_hash
from conntel.store.base import Store


class AdminError(ValueError):
    """An operation was refused; the message says why."""


@dataclass(frozen=True)
class NewToken:
    id: str
    value: str
    account_id: str
    name: str
    permissions: list[str]
    expires_on: str | None


def _check_id(value: str, what: str) -> str:
    if not ids.is_valid_id(value):
        raise AdminError(f"{what} must be 1 to 32 characters of A-Z, a-z, 0-9, _ and -: {value!r}")
    return value


async def create_account(store: Store, account_id: str | None = None, name: str | None = None) -> dict[str, str]:
    account_id = _check_id(account_id or ids.new_id(), "An account id")
    name = name or account_id
    await store.create_account(account_id, name, int(time.time()))
    return {"id": account_id, "name": name}


async def create_connector(store: Store, account_id: str, connector_id: str | None = None) -> dict[str, str]:
    connector_id = _check_id(connector_id or ids.new_id(), "A connector id")
    await connectors.create(store, account_id, ConnectorSettings(), connector_id=connector_id)
    return {"id": connector_id, "account_id": account_id}


async def create_user(store: Store, email: str, account_id: str) -> dict[str, str]:
    if not is_valid_email(email):
        raise AdminError(f"Not an email address: {email!r}")
    api_key = new_api_key()
    await store.create_user(email.lower(), secret_hash(api_key), account_id, int(time.time()))
    return {"email": email.lower(), "api_key": api_key, "account_id": account_id}


def parse_expiry(text: str) -> int:
    """An ISO 8601 instant (UTC when no offset is given) as seconds since the epoch."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise AdminError(f"Not an ISO 8601 date and time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


async def create_token(
    store: Store,
    account_id: str,
    permissions: list[str],
    name: str | None = None,
    expires_on: str | None = None,
) -> NewToken:
    unknown = [p for p in permissions if p not in PERMISSIONS]
    if unknown or not permissions:
        raise AdminError(f"Permissions must be among {', '.join(PERMISSIONS)}; got {unknown or 'none'}")
    expiry = parse_expiry(expires_on) if expires_on else None
    token_id, value = ids.new_id(), new_token_secret()
    name = name or f"token {token_id[:8]}"
    granted = sorted(set(permissions))
    await store.create_token(token_id, secret_hash(value), account_id, name, granted, expiry, int(time.time()))
    return NewToken(token_id, value, account_id, name, granted, _iso(expiry) if expiry is not None else None)


async def revoke_token(store: Store, token_id: str) -> dict[str, str | bool]:
    await store.revoke_token(token_id, int(time.time()))
    return {"id": token_id, "revoked": True}


async def remove_user(store: Store, email: str, account_id: str) -> dict:
    await store.remove_membership(email.lower(), account_id)
    return {"email": email.lower(), "account_id": account_id, "removed": True}


async def rotate_user_key(store: Store, email: str) -> dict:
    api_key = new_api_key()
    await store.set_user_key(email.lower(), secret_hash(api_key))
    return {"email": email.lower(), "api_key": api_key}
