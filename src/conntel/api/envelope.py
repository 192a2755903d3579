"""The v4 envelope: every JSON response has result, success, errors and messages."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType
from starlette.responses import Response

from conntel.api.errors import ApiError, ErrorItem


class WireError(Struct, omit_defaults=True):
    code: int
    message: str
    error_chain: list[WireError] | UnsetType = UNSET


class Envelope(Struct):
    result: Any
    success: bool
    errors: list[WireError]
    messages: list[Any]


_encode = msgspec.json.Encoder().encode


def _wire(item: ErrorItem, chain: tuple[ErrorItem, ...] = ()) -> WireError:
    return WireError(item.code, item.message, [_wire(link) for link in chain] if chain else UNSET)


class JsonResponse(Response):
    media_type = "application/json"


def ok_body(result: Any, messages: list[Any] | None = None) -> bytes:
    return _encode(Envelope(result, True, [], messages or []))


def error_body(error: ApiError) -> bytes:
    errors = [_wire(error.item, error.chain), *(_wire(item) for item in error.also)]
    return _encode(Envelope(None, False, errors, []))


def ok(result: Any, messages: list[Any] | None = None, status: int = 200) -> Response:
    return JsonResponse(ok_body(result, messages), status_code=status)


def error_response(error: ApiError) -> Response:
    return JsonResponse(error_body(error), status_code=error.status, headers=error.headers)


def ok_items(count: int, parts: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """The body `ok` gives a result of `count` and `items`, the items' JSON arriving in parts (each a
    comma-joined run of items): a page sent as it is read."""
    return _ok_around(b'{"result":{"count":%d,"items":[' % count, parts, b"]}")


def ok_list(parts: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """The body `ok` gives a list result, the items' JSON arriving in parts as for `ok_items`."""
    return _ok_around(b'{"result":[', parts, b"]")


async def _ok_around(head: bytes, parts: AsyncGenerator[bytes, None], end: bytes) -> AsyncGenerator[bytes, None]:
    yield head
    async with contextlib.aclosing(parts):
        first = True
        async for part in parts:
            if not first:
                yield b","  # on its own: no copy of the part
            yield part
            first = False
    yield end + b',"success":true,"errors":[],"messages":[]}'
