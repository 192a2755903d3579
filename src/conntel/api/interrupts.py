"""Interrupts, the operator's side: Create Interrupt and List Interrupts (as the official SDKs call them)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from conntel import interrupts
from conntel.api.auth import Authenticator
from conntel.api.bodies import decode_body
from conntel.api.envelope import ok
from conntel.api.errors import connector_not_found, invalid_interrupt
from conntel.api.routing import connector_scope
from conntel.config import Settings
from conntel.credentials import READ_ACCEPTS, WRITE_ACCEPTS
from conntel.interrupts import InterruptCreate
from conntel.store.base import Store

_create = msgspec.json.Decoder(InterruptCreate)


class InterruptRoutes:
    def __init__(self, store: Store, auth: Authenticator, settings: Settings):
        self.store = store
        self.auth = auth
        self.settings = settings

    async def create(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, WRITE_ACCEPTS)
        recheck = self.auth.rechecker(request.headers, account_id, WRITE_ACCEPTS)
        body: InterruptCreate = await decode_body(request, _create, self.settings, recheck, invalid_interrupt)
        # No such connector, or one pending already (409): refusals, answered by errors.from_refusal.
        record = await interrupts.submit(self.store, account_id, connector_id, body)
        return ok(interrupts.to_wire(record))

    async def list(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        records = await self.store.list_interrupts(account_id, connector_id, interrupts.LIST_LIMIT)
        if not records and not await self.store.connector_exists(account_id, connector_id):
            raise connector_not_found(connector_id)
        return ok([interrupts.to_wire(record) for record in records])
