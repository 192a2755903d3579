"""Request bodies: bounded reads and typed JSON decoding with stable error codes."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request

from conntel.api.errors import BODY_TOO_LARGE, INVALID_BODY, MALFORMED_JSON, ApiError
from conntel.model import InvalidBatch, MalformedJson, decode_json


async def read_body(request: Request, limit: int) -> bytes:
    too_large = ApiError(413, BODY_TOO_LARGE, f"Request body exceeds {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def malformed_json(exc: MalformedJson) -> ApiError:
    return ApiError(400, MALFORMED_JSON, str(exc))


async def decode_body(request: Request, decoder: msgspec.json.Decoder, limit: int) -> Any:
    """A JSON body of the decoder's type; 400 (20004 not JSON, 20012 wrong shape) or 413 otherwise."""
    body = await read_body(request, limit)
    try:
        return decode_json(body, decoder)
    except MalformedJson as exc:
        raise malformed_json(exc) from None
    except InvalidBatch as exc:
        raise ApiError(400, INVALID_BODY, f"Invalid request body: {exc}") from None
