"""Identifier and text rules: what an account, connector or event reference, or a stored name, may look like."""

from __future__ import annotations

import re
import unicodedata
import uuid
from decimal import Decimal, InvalidOperation

# The reference page gives account_id `maxLength 32`; Cloudflare's own ids are
# 32 hex characters. Connector ids follow the same rule.
ID_PATTERN = r"[A-Za-z0-9_-]{1,32}"
_ID = re.compile(ID_PATTERN)

# `t` and `n` must be exact in every client: JavaScript numbers are exact up to 2**53 - 1.
MAX_SEQUENCE = 2**53 - 1

# One side of `{event_t}.{event_n}`: an integer, or a number that a client
# formatted from a float (`1700000000.0`, `1.7e+09`).
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,3})?")
_MAX_REF_LENGTH = 80


def is_valid_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


# Names an operator gives (accounts, tokens): a bound, and no control characters.
MAX_NAME_LENGTH = 255
# Invisible characters that change how text around them reads: line and paragraph separators,
# bidirectional embeddings, overrides and isolates.
_LAYOUT_CONTROLS = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_character(text: str, allowed: str = "") -> str | None:
    """The first character of `text` that is a control character (C0, DEL, C1), a lone surrogate (bytes
    that were not UTF-8) or a layout control, and not in `allowed`; None when there is none."""
    for char in text:
        if char in allowed:
            continue
        if char in _LAYOUT_CONTROLS or unicodedata.category(char) in ("Cc", "Cs"):
            return char
    return None


def name_problem(name: str, what: str) -> str | None:
    """Why `name` cannot be stored as an account or token name, or None when it can."""
    if not name.strip():
        return f"{what} must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"{what} must be at most {MAX_NAME_LENGTH} characters (got {len(name):,})"
    char = control_character(name)
    if char is not None:
        return f"{what} must not contain control characters (found U+{ord(char):04X})"
    return None


def new_id() -> str:
    return uuid.uuid4().hex


def parse_event_ref(ref: str) -> tuple[int, int] | None:
    """Read `{event_t}.{event_n}` into (t, n), or None when it has no single reading.

    The official Python SDK given floats sends `1700000000.0.3.0`; given ints,
    `1700000000.3`. Every way of splitting the dotted parts into two numbers is
    tried; the reference is valid when all integer-valued readings agree.
    """
    if len(ref) > _MAX_REF_LENGTH:  # before any int(): Python refuses to convert over 4300 digits
        return None
    parts = ref.split(".")
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and parts[0].isascii() and parts[1].isascii():
        t, n = int(parts[0]), int(parts[1])  # the common case, no search needed
        return (t, n) if t <= MAX_SEQUENCE and n <= MAX_SEQUENCE else None
    readings: set[tuple[int, int]] = set()
    for split in range(1, len(parts)):
        t_read = integral(".".join(parts[:split]))
        n_read = integral(".".join(parts[split:]))
        if t_read is not None and n_read is not None:
            readings.add((t_read, n_read))
    return readings.pop() if len(readings) == 1 else None


def integral(text: str) -> int | None:
    """The integer a number written as text stands for, when it is one from 0 to MAX_SEQUENCE."""
    if len(text) > _MAX_REF_LENGTH or not _NUMBER.fullmatch(text):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if value != value.to_integral_value() or value > MAX_SEQUENCE:
        return None
    return int(value)
