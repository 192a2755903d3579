"""Strict query-string parsing: unknown, repeated or malformed parameters are a 400."""

from __future__ import annotations

from typing import Iterable

from conntel import ids
from conntel.api.errors import INVALID_QUERY, ApiError


class Query:
    def __init__(self, pairs: Iterable[tuple[str, str]], allowed: frozenset[str]):
        self.values: dict[str, str] = {}
        for name, value in pairs:
            if name not in allowed:
                expected = ", ".join(sorted(allowed)) or "none"
                raise invalid(f"Unknown query parameter `{name}` (expected: {expected})")
            if name in self.values:
                raise invalid(f"Query parameter `{name}` is given more than once")
            self.values[name] = value

    def integer(self, name: str, *, default: int | None = None, low: int = 0, high: int = ids.MAX_SEQUENCE) -> int:
        """An integer-valued number (`1700000000` or `1700000000.0`, as SDKs format floats)."""
        text = self.values.get(name)
        if text is None:
            if default is None:
                raise invalid(f"Missing required query parameter `{name}`")
            return default
        value = ids.integral(text)
        if value is None or not low <= value <= high:
            raise invalid(f"Query parameter `{name}` must be an integer from {low} to {high}, not {text!r}")
        return value

    def text(self, name: str) -> str | None:
        return self.values.get(name)


def invalid(message: str) -> ApiError:
    return ApiError(400, INVALID_QUERY, message)
