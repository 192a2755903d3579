"""Request bodies: bounded reads and typed JSON decoding with stable error codes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request

from conntel.api.errors import ApiError, body_timeout, body_too_large, invalid_body, malformed_json
from conntel.config import Settings
from conntel.events import InvalidBatch, MalformedJson, decode_json

Recheck = Callable[[], Awaitable[None]]


async def read_body(request: Request, settings: Settings, recheck: Recheck | None = None) -> bytes:
    """The whole body, at most `max_body_bytes` (413) arriving within `body_timeout` seconds (408).

    `recheck` (Authenticator.rechecker) runs once it is in: a credential revoked while a slow body
    arrived acts no more than one of a new request would (401/403, nothing written).
    """
    limit = settings.max_body_bytes
    # Both refusals leave the rest of the body unread: the connection cannot carry another request.
    too_large = body_too_large(limit)
    declared = request.headers.get("content-length", "")
    # The connection layer admits only digits here; still, no int() of more digits than any limit has.
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout(settings.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise body_timeout(settings.body_timeout) from None
    if recheck is not None:
        await recheck()
    return b"".join(chunks)


async def decode_body(
    request: Request,
    decoder: msgspec.json.Decoder[Any],
    settings: Settings,
    recheck: Recheck | None = None,
    invalid: Callable[[str], ApiError] = invalid_body,
) -> Any:
    """A JSON body of the decoder's type; 400 (20004 not JSON, `invalid`'s code for the wrong shape:
    20012 unless told), 408 or 413 otherwise."""
    return decode_bytes(await read_body(request, settings, recheck), decoder, invalid)


def decode_bytes(body: bytes, decoder: msgspec.json.Decoder[Any], invalid: Callable[[str], ApiError]) -> Any:
    try:
        return decode_json(body, decoder)
    except MalformedJson as exc:
        raise malformed_json(exc) from None
    except InvalidBatch as exc:
        raise invalid(f"Invalid request body: {exc}") from None
