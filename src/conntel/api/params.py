"""Strict query parameters, declared once: parsing and the OpenAPI document both read these.

Unknown, repeated or malformed parameters are a 400 (20010).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from conntel import ids
from conntel.api.errors import INVALID_QUERY, ApiError


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    required: bool = False
    integer: bool = False  # an integer-valued number (`1700000000` or `1700000000.0`, as SDKs format floats)
    low: int = 0
    high: int = ids.MAX_SEQUENCE
    default: int | None = None
    choices: tuple[str, ...] | None = None

    def parse(self, text: str) -> Any:
        if self.integer:
            value = ids.integral(text)
            if value is None or not self.low <= value <= self.high:
                raise invalid(
                    f"Query parameter `{self.name}` must be an integer from {self.low} to {self.high}, not {text!r}"
                )
            return value
        if self.choices is not None and text not in self.choices:
            raise invalid(f"Query parameter `{self.name}` must be one of {', '.join(self.choices)}, not {text!r}")
        return text

    def schema(self) -> dict[str, Any]:
        if self.integer:
            schema: dict[str, Any] = {"type": "integer", "minimum": self.low, "maximum": self.high}
            if self.default is not None:
                schema["default"] = self.default
            return schema
        return {"type": "string", "enum": list(self.choices)} if self.choices else {"type": "string"}


def parse_query(pairs: Iterable[tuple[str, str]], params: Sequence[Param]) -> dict[str, Any]:
    """Each declared parameter's value (its default, or None, when absent)."""
    declared = {param.name: param for param in params}
    given: dict[str, str] = {}
    for name, text in pairs:
        if name not in declared:
            expected = ", ".join(declared) or "none"
            raise invalid(f"Unknown query parameter `{name}` (expected: {expected})")
        if name in given:
            raise invalid(f"Query parameter `{name}` is given more than once")
        given[name] = text
    values = {}
    for name, param in declared.items():
        if name in given:
            values[name] = param.parse(given[name])
        elif param.required:
            raise invalid(f"Missing required query parameter `{name}`")
        else:
            values[name] = param.default
    return values


def invalid(message: str) -> ApiError:
    return ApiError(400, INVALID_QUERY, message)
