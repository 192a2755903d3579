"""Telemetry pushes (events, snapshots): what every ingestion route does around its own decoding and storing.

A push may come from the connector's own credential or from a token with Write. Its body is read within
the configured bounds, and the credential is checked again once the body is in (a slow body must not
outlive a revocation). Its answer carries the connector's pending operation, if any: a push is a check-in
too, so an appliance needs no extra round trip (README, "The device side").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from conntel.api.auth import Authenticator
from conntel.api.bodies import read_body
from conntel.api.envelope import ok
from conntel.api.errors import ApiError, batch_too_large, malformed_json
from conntel.api.routing import connector_scope
from conntel.config import Settings
from conntel.credentials import WRITE_ACCEPTS
from conntel.events import AppendResult, BatchTooLarge, InvalidBatch, MalformedJson
from conntel.interrupts import to_operation
from conntel.store.base import Store

T = TypeVar("T")


class Push(NamedTuple):
    account_id: str
    connector_id: str
    body: bytes


async def receive(request: Request, auth: Authenticator, settings: Settings) -> Push:
    """The push's connector and its whole body, once its credential may push there (401/403/404 otherwise)."""
    account_id, connector_id = connector_scope(request.path_params, request.url.path)
    await auth.authorize(request.headers, account_id, WRITE_ACCEPTS, connector_id)
    recheck = auth.rechecker(request.headers, account_id, WRITE_ACCEPTS, connector_id)
    return Push(account_id, connector_id, await read_body(request, settings, recheck))


def decode(body: bytes, decoder: Callable[[bytes], T], invalid: Callable[[Exception], ApiError]) -> T:
    """`decoder(body)`, its refusals as the API answers them: 20004 not JSON, 20007 too many items, and
    `invalid`'s code for an item that breaks the rules (naming where)."""
    try:
        return decoder(body)
    except MalformedJson as exc:
        raise malformed_json(exc) from None
    except BatchTooLarge as exc:
        raise batch_too_large(exc) from None
    except InvalidBatch as exc:
        raise invalid(exc) from None


async def answer(store: Store, push: Push, result: AppendResult) -> Response:
    """The push's answer: what was stored, and the connector's pending operation if there is one."""
    pending = await store.pending_interrupt(push.account_id, push.connector_id)
    if pending is not None:
        result.operation = to_operation(pending)
    return ok(result)
