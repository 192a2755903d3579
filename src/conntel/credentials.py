"""Credentials: their formats, how they are made, and how they are stored (hashed)."""

from __future__ import annotations

import hashlib
import re
import secrets

from conntel.ids import control_character

MAGIC_WAN_READ = "Magic WAN Read"
MAGIC_WAN_WRITE = "Magic WAN Write"
PERMISSIONS = (MAGIC_WAN_READ, MAGIC_WAN_WRITE)
# What each operation accepts (at least one), as the reference page lists it.
READ_ACCEPTS = frozenset({MAGIC_WAN_WRITE, MAGIC_WAN_READ})
WRITE_ACCEPTS = frozenset({MAGIC_WAN_WRITE})
# A user's global API key acts with every permission on the user's accounts.
GLOBAL_KEY_PERMISSIONS = frozenset(PERMISSIONS)

TOKEN_FORMAT = re.compile(r"[A-Za-z0-9_-]{40}")
API_KEY_FORMAT = re.compile(r"[0-9a-f]{32,64}")
# No whitespace and no control characters (a NUL cannot even be stored in PostgreSQL text).
EMAIL_FORMAT = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s.\x00-\x1f\x7f]+(?:\.[^@\s.\x00-\x1f\x7f]+)+")
MAX_EMAIL_LENGTH = 254


def new_token_secret() -> str:
    return secrets.token_urlsafe(30)  # 40 characters of [A-Za-z0-9_-]


def new_api_key() -> str:
    return secrets.token_hex(19)[:37]  # 37 lowercase hex characters


def secret_hash(secret: str) -> bytes:
    # Secrets are long and random, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).digest()


def is_valid_email(email: str) -> bool:
    return (
        len(email) <= MAX_EMAIL_LENGTH
        and EMAIL_FORMAT.fullmatch(email) is not None
        and control_character(email) is None
    )
