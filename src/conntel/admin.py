"""Administration: the operations behind the operator CLI (and the demo).

Each takes an open store; secrets are generated here, returned once to the
caller and stored only as hashes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conntel import connectors, ids
from conntel.connectors import ConnectorSettings
from conntel.credentials import PERMISSIONS, is_valid_email, new_api_key, new_token_secret, secret_hash
from conntel.store.base import NotFound, Store, TooManyConnectors


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


def shown(value: str, limit: int = 40) -> str:
    """`value` quoted for a one-line message: escaped, and cut when long."""
    quoted = repr(value[:limit]) + (f" (and {len(value) - limit:,} more characters)" if len(value) > limit else "")
    return quoted.encode("ascii", "backslashreplace").decode()


def _check_id(value: str, what: str) -> str:
    if not ids.is_valid_id(value):
        raise AdminError(f"{what} must be 1 to 32 characters of A-Z, a-z, 0-9, _ and -: {shown(value)}")
    return value


def _check_name(name: str, what: str) -> str:
    problem = ids.name_problem(name, what)
    if problem is not None:
        raise AdminError(problem)
    return name


async def create_account(store: Store, account_id: str | None = None, name: str | None = None) -> dict[str, str]:
    account_id = _check_id(account_id or ids.new_id(), "An account id")
    name = _check_name(name, "An account name") if name is not None else account_id
    await store.create_account(account_id, name, int(time.time()))
    return {"id": account_id, "name": name}


async def create_connector(
    store: Store, account_id: str, connector_id: str | None = None, max_per_account: int | None = None
) -> dict[str, str]:
    _check_id(account_id, "An account id")
    connector_id = _check_id(connector_id or ids.new_id(), "A connector id")
    try:
        await connectors.create(
            store, account_id, ConnectorSettings(), connector_id=connector_id, max_per_account=max_per_account
        )
    except TooManyConnectors as exc:
        raise AdminError(f"{exc} (--max-connectors-per-account)") from None
    return {"id": connector_id, "account_id": account_id}


async def mint_device_credential(store: Store, account_id: str, connector_id: str) -> dict[str, str]:
    """A new credential for the connector itself, replacing its earlier one (which stops working within
    the servers' credential TTL). It may only push the connector's telemetry and check in."""
    _check_id(account_id, "An account id")
    _check_id(connector_id, "A connector id")
    try:
        value = await connectors.mint_credential(store, account_id, connector_id)
    except NotFound:
        raise AdminError(f"No connector {shown(connector_id)} in account {shown(account_id)}") from None
    return {"connector_id": connector_id, "value": value}


async def create_user(store: Store, email: str, account_id: str) -> dict[str, str]:
    _check_id(account_id, "An account id")
    if not is_valid_email(email):
        raise AdminError(f"Not an email address: {shown(email)}")
    api_key = new_api_key()
    await store.create_user(email.lower(), secret_hash(api_key), account_id, int(time.time()))
    return {"email": email.lower(), "api_key": api_key, "account_id": account_id}


def parse_expiry(text: str) -> int:
    """An ISO 8601 instant (UTC when no offset is given) as seconds since the epoch."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise AdminError(f"Not an ISO 8601 date and time: {shown(text)}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int(when.timestamp())
    try:
        _iso(seconds)  # it must read back as a UTC date and time (years 1 to 9999)
    except (OverflowError, ValueError, OSError):
        raise AdminError(f"Out of range (years 1 to 9999 in UTC): {shown(text)}") from None
    return seconds


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


async def create_token(
    store: Store,
    account_id: str,
    permissions: list[str],
    name: str | None = None,
    expires_on: str | None = None,
) -> NewToken:
    _check_id(account_id, "An account id")
    unknown = [p for p in permissions if p not in PERMISSIONS]
    if unknown or not permissions:
        raise AdminError(f"Permissions must be among {', '.join(PERMISSIONS)}; got {unknown or 'none'}")
    expiry = parse_expiry(expires_on) if expires_on else None
    token_id, value = ids.new_id(), new_token_secret()
    name = _check_name(name, "A token name") if name is not None else f"token {token_id[:8]}"
    granted = sorted(set(permissions))
    await store.create_token(token_id, secret_hash(value), account_id, name, granted, expiry, int(time.time()))
    return NewToken(token_id, value, account_id, name, granted, _iso(expiry) if expiry is not None else None)


async def revoke_token(store: Store, token_id: str) -> dict[str, str | bool]:
    if not ids.is_valid_id(token_id):  # no such token can exist
        raise AdminError(f"No token {shown(token_id)}")
    await store.revoke_token(token_id, int(time.time()))
    return {"id": token_id, "revoked": True}


async def remove_user(store: Store, email: str, account_id: str) -> dict[str, str | bool]:
    await store.remove_membership(email.lower(), account_id)
    return {"email": email.lower(), "account_id": account_id, "removed": True}


async def rotate_user_key(store: Store, email: str) -> dict[str, str]:
    api_key = new_api_key()
    await store.set_user_key(email.lower(), secret_hash(api_key))
    return {"email": email.lower(), "api_key": api_key}


async def set_silent_after(store: Store, account_id: str, duration: str) -> dict[str, Any]:
    """The account's own fleet health threshold, or `default` (the server's --silent-after)."""
    from conntel.retention import parse_duration

    _check_id(account_id, "An account id")
    if duration == "default":
        seconds = None
    else:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise AdminError(f"Not a duration: {shown(duration)} ({exc})") from None
    await store.set_silent_after(account_id, seconds)
    return {"account_id": account_id, "silent_after_seconds": seconds}


async def create_webhook(store: Store, account_id: str, url: str, event_types: tuple[str, ...]) -> dict[str, Any]:
    """An endpoint for the account's health changes; its signing secret, shown this once."""
    from conntel.config import MAX_WEBHOOKS_PER_ACCOUNT
    from conntel.webhooks import WebhookError, WebhookRecord, check_types, check_url, new_secret, new_webhook_id

    _check_id(account_id, "An account id")
    try:
        record = WebhookRecord(new_webhook_id(), account_id, check_url(url), check_types(event_types), int(time.time()))
    except WebhookError as exc:
        raise AdminError(str(exc)) from None
    secret = new_secret()
    await store.create_webhook(record, secret, MAX_WEBHOOKS_PER_ACCOUNT)
    return {"id": record.webhook_id, "account_id": account_id, "url": record.url,
            "events": list(record.event_types), "secret": secret}  # fmt: skip


async def list_webhooks(store: Store, account_id: str | None) -> list[dict[str, Any]]:
    if account_id is not None:
        _check_id(account_id, "An account id")
    return [
        {
            "id": w.webhook_id,
            "account_id": w.account_id,
            "url": w.url,
            "events": list(w.event_types),
            "delivered": w.delivered,
            "failures": w.failures,
            "failing_since": w.failing_since,
            "last_attempt": w.last_attempt,
            "last_status": w.last_status,
            "last_error": w.last_error,
            "pending": w.pending,
            "disabled_on": w.disabled_on,
        }
        for w in await store.list_webhooks(account_id)
    ]


async def delete_webhook(store: Store, webhook_id: str) -> dict[str, Any]:
    _check_id(webhook_id, "A webhook id")
    await store.delete_webhook(webhook_id)
    return {"id": webhook_id, "deleted": True}


async def test_webhook(store: Store, webhook_id: str) -> dict[str, Any]:
    """Send the endpoint a signed `webhook.test` message now (not through the outbox); what it answered."""
    import httpx

    from conntel import webhooks

    _check_id(webhook_id, "A webhook id")
    url, secret = await store.webhook_secret(webhook_id)
    now = datetime.now(UTC)
    message_id = "msg_test_" + ids.new_id()
    body = json.dumps({"type": webhooks.TEST_TYPE, "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "data": {"webhook_id": webhook_id}}, separators=(",", ":"))  # fmt: skip
    headers = webhooks.signed_headers(secret, message_id, body, now)
    try:
        async with httpx.AsyncClient(timeout=webhooks.ATTEMPT_TIMEOUT, follow_redirects=False, trust_env=False) as h:
            response = await h.post(url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise AdminError(f"The endpoint {url} could not be reached: {why}") from None
    ok = 200 <= response.status_code < 300
    result = {"id": webhook_id, "message_id": message_id, "status": response.status_code, "ok": ok}
    if not ok:
        raise AdminError(f"The endpoint {url} answered {response.status_code} (a 2xx is success)")
    return result
