"""Webhooks: health changes told to people's endpoints, per the Standard Webhooks specification.

A message is made in the store, in the same transaction as the health change it tells of (a
trigger on the connectors table: see the webhooks migration), so a crash loses none. One server
process at a time delivers them (server/delivery.py): signed with the endpoint's `whsec_` secret
by the `standardwebhooks` library, at least once, with the same `webhook-id` on every attempt,
retried on any answer but 2xx along RETRY_DELAYS, for more than 24 hours. An endpoint whose
every attempt has failed for DISABLE_AFTER is disabled, and its pending messages given up.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import urllib.parse
from dataclasses import dataclass

from conntel.ids import new_id

MESSAGE_TYPES = ("connector.failing", "connector.silent", "connector.healthy")
TEST_TYPE = "webhook.test"
# Seconds before each retry (after the first attempt, made at once): the last is ~27.6 hours after
# the message was made. After the last failure it is given up.
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
DISABLE_AFTER = 5 * 86400
ATTEMPT_TIMEOUT = 10.0  # seconds an endpoint has to answer
MAX_URL = 2048
SECRET_BYTES = 24


class WebhookError(ValueError):
    """An endpoint that cannot be registered; the message says why."""


@dataclass(frozen=True)
class WebhookRecord:
    webhook_id: str
    account_id: str
    url: str
    event_types: tuple[str, ...]
    created_on: int
    failures: int = 0
    failing_since: int | None = None
    delivered: int = 0
    last_attempt: int | None = None
    last_status: int | None = None
    last_error: str | None = None
    disabled_on: int | None = None
    pending: int = 0


@dataclass(frozen=True)
class DueMessage:
    message_id: str
    webhook_id: str
    url: str
    secret: str
    body: str
    attempts: int


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_webhook_id() -> str:
    return new_id()


def check_url(url: str) -> str:
    """An absolute http(s) URL, as an endpoint must be."""
    if len(url) > MAX_URL or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise WebhookError(f"An endpoint URL is at most {MAX_URL} characters, without spaces or control characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"Not an http:// or https:// URL with a host: {url[:100]!r}")
    return url


def check_types(types: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [t for t in types if t not in MESSAGE_TYPES]
    if unknown:
        raise WebhookError(f"Unknown message type {unknown[0]!r}: one of {', '.join(MESSAGE_TYPES)}")
    return tuple(dict.fromkeys(types)) or MESSAGE_TYPES


def next_attempt(attempts: int, now: int) -> int | None:
    """When to try again after `attempts` failed attempts; None: give up."""
    return now + RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else None


def signed_headers(secret: str, message_id: str, body: str, now: dt.datetime) -> dict[str, str]:
    from standardwebhooks.webhooks import Webhook

    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
        "content-type": "application/json",
        "user-agent": "conntel-webhooks",
    }
