"""Strict query parameters, declared once: the routes, parsing and the OpenAPI document all read these.

Unknown, repeated or malformed parameters are a 400 (20010). Every route is
wired (api/operations.py, api/infra.py) to refuse a parameter it does not
declare before its handler runs, so no route can ignore one; a handler then
parses the values of those it declares with `parse_query`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from conntel import ids
from conntel.api.errors import invalid_query as invalid


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


def declared_only(pairs: Iterable[tuple[str, str]], params: Sequence[Param]) -> dict[str, str]:
    """The parameters given, by name, when each is declared and given once; else 400 (20010)."""
    given: dict[str, str] = {}
    for name, text in pairs:
        if not any(param.name == name for param in params):
            expected = ", ".join(param.name for param in params) or "none"
            raise invalid(f"Unknown query parameter `{name}` (expected: {expected})")
        if name in given:
            raise invalid(f"Query parameter `{name}` is given more than once")
        given[name] = text
    return given


def parse_query(pairs: Iterable[tuple[str, str]], params: Sequence[Param]) -> dict[str, Any]:
    """Each declared parameter's value (its default, or None, when absent)."""
    declared = {param.name: param for param in params}
    given = declared_only(pairs, params)
    values = {}
    for name, param in declared.items():
        if name in given:
            values[name] = param.parse(given[name])
        elif param.required:
            raise invalid(f"Missing required query parameter `{name}`")
        else:
            values[name] = param.default
    return values


def refuse_undeclared(query_string: bytes, params: Sequence[Param]) -> None:
    """Refuse a query string that names a parameter not in `params`, or one twice (400, 20010).

    A route that declares no parameters refuses any query string (`?&` too).
    Values are left to `parse_query`, which the route's handler calls.
    """
    if not query_string:
        return
    declared_only(QueryParams(query_string).multi_items(), params)
    if not params:
        raise invalid(f"Unexpected query string `{query_string.decode('latin-1')}` (expected: none)")
