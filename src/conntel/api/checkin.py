"""Check-ins: how a connector says it is alive, learns its pending operation and reports one executed.

`POST .../connectors/{connector_id}/checkin` (conntel's own; README, "The
device side"). A bare heartbeat (no body) is the most frequent request a fleet
makes, so it is served as a plain ASGI app ahead of the framework, like Get
Event (api/hotpath.py): its cost is the (cached) credential, one indexed read
of the pending operation, and a note in memory. Heartbeat times reach the
store in one transaction a second for every connector that checked in
(`Heartbeats`), not in a write per check-in. A check-in with a body (an
executed report) takes the ordinary route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping

import msgspec
from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response

from conntel.api.auth import Authenticator, Principal, RawHeaders
from conntel.api.bodies import decode_bytes, read_body
from conntel.api.envelope import JsonResponse, ok_body
from conntel.api.errors import connector_not_found, invalid_checkin
from conntel.api.routing import Scope, connector_scope
from conntel.config import Settings
from conntel.credentials import WRITE_ACCEPTS
from conntel.interrupts import CheckIn, CheckInResult, InterruptRecord, now_us, to_operation
from conntel.store.base import Store

log = logging.getLogger("conntel")

_decode = msgspec.json.Decoder(CheckIn)
NOTHING_PENDING = ok_body(CheckInResult())  # the answer to almost every check-in, encoded once
HEARTBEAT_FLUSH_SECONDS = 1.0


class Heartbeats:
    """Check-in times in memory, written to the store together once a second (`run`).

    A connector's `last_heartbeat` is so at most about a second behind its last check-in; a time
    not yet written when the process stops is written by `flush` at shutdown, and one that could
    not be written (the database away) is tried again with the next.
    """

    def __init__(self, store: Store, interval: float = HEARTBEAT_FLUSH_SECONDS):
        self.store = store
        self.interval = interval
        self._due: dict[tuple[str, str], int] = {}

    def note(self, account_id: str, connector_id: str, seconds: int) -> None:
        self._due[account_id, connector_id] = seconds

    async def flush(self) -> None:
        if not self._due:
            return
        due, self._due = self._due, {}
        try:
            await self.store.note_heartbeats([(account, connector, at) for (account, connector), at in due.items()])
        except Exception as error:
            for key, at in due.items():  # keep them for the next flush; a newer note wins
                self._due[key] = max(at, self._due.get(key, at))
            if self.store.is_unavailable(error):
                log.warning("database unavailable writing heartbeats: %s: %s", type(error).__name__, error)
            else:
                log.error("unexpected error writing heartbeats", exc_info=error)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.flush()


class CheckInRoutes:
    def __init__(self, store: Store, auth: Authenticator, settings: Settings, heartbeats: Heartbeats):
        self.store = store
        self.auth = auth
        self.settings = settings
        self.heartbeats = heartbeats

    async def check_in(
        self,
        params: Mapping[str, str],
        headers: RawHeaders,
        path: str,
        executed: str | None = None,
        principal: Principal | None = None,
    ) -> bytes:
        """The check-in's answer body. Who may: the connector's own credential, or a token with Write
        on the account (as for ingestion); `principal` when the caller was authorized already."""
        account_id, connector_id = connector_scope(params, path)
        if principal is None:
            principal = await self.auth.authorize(headers, account_id, WRITE_ACCEPTS, connector_id)
        if principal.device is None and not await self.store.connector_exists(account_id, connector_id):
            raise connector_not_found(connector_id)  # a connector's own credential implies its connector
        self.heartbeats.note(account_id, connector_id, int(time.time()))
        pending: InterruptRecord | None
        if executed is None:
            pending = await self.store.pending_interrupt(account_id, connector_id)
        else:  # an unknown id: a refusal (404), answered by errors.from_refusal
            pending = await self.store.report_executed(account_id, connector_id, executed, now_us())
        return NOTHING_PENDING if pending is None else ok_body(CheckInResult(operation=to_operation(pending)))

    async def handle(self, request: Request) -> Response:
        """A check-in with a body (`{"executed": ID}`), or one the bare path did not take."""
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        principal = await self.auth.authorize(request.headers.raw, account_id, WRITE_ACCEPTS, connector_id)
        recheck = self.auth.rechecker(request.headers, account_id, WRITE_ACCEPTS, connector_id)
        body = await read_body(request, self.settings, recheck)
        executed = None
        if body.strip():
            report: CheckIn = decode_bytes(body, _decode, invalid_checkin)
            executed = report.executed if report.executed is not UNSET else None
        answer = await self.check_in(request.path_params, request.headers.raw, request.url.path, executed, principal)
        return JsonResponse(answer)


def bare(scope: Scope) -> bool:
    """A request without a body: no Transfer-Encoding, and no Content-Length or a zero one (a bare check-in,
    served ahead of the framework: api/app.py)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return False
    return True
