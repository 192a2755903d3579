"""Connector routes: create, list, get, update (PUT), edit (PATCH), delete."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from conntel import connectors
from conntel.api.auth import Authenticator
from conntel.api.bodies import decode_body
from conntel.api.envelope import JsonResponse, ok, ok_body, ok_list
from conntel.api.errors import connector_not_found
from conntel.api.params import Param, parse_query
from conntel.api.routing import account_scope, connector_scope
from conntel.api.streaming import PART_BYTES, in_parts, streamed
from conntel.config import Settings
from conntel.connectors import (
    DEVICE_TYPES,
    ConnectorCreate,
    ConnectorEdit,
    ConnectorRecord,
    ConnectorSettings,
    ConnectorUpdate,
)
from conntel.credentials import READ_ACCEPTS, WRITE_ACCEPTS
from conntel.store.base import Store

_create = msgspec.json.Decoder(ConnectorCreate)
_update = msgspec.json.Decoder(ConnectorUpdate)
_edit = msgspec.json.Decoder(ConnectorEdit)
LIST_QUERY = (Param("device_type", "Only connectors with this type of device", choices=DEVICE_TYPES),)
# The list is read from the store in keyset pages of at most this many connectors. One page that is the
# whole list and encodes within a part is answered in one send; a longer list is sent in parts as it is
# read, so a slow reader holds about one part of it, not the list (README: Connectors).
PAGE_ROWS = 200
_encode = msgspec.json.Encoder().encode


class ConnectorRoutes:
    def __init__(self, store: Store, auth: Authenticator, settings: Settings):
        self.store = store
        self.auth = auth
        self.settings = settings

    async def create(self, request: Request) -> Response:
        account_id = account_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, WRITE_ACCEPTS)
        body: ConnectorCreate = await decode_body(
            request, _create, self.settings, self.auth.rechecker(request.headers, account_id, WRITE_ACCEPTS)
        )
        settings = ConnectorSettings(**connectors.settings_of(body))
        # Over --max-connectors-per-account: a refusal, answered by errors.from_refusal.
        made = await connectors.create(
            self.store, account_id, settings, body.device, max_per_account=self.settings.max_connectors_per_account
        )
        return ok(connectors.to_wire(made.record, made.license_key))

    async def list(self, request: Request) -> Response:
        account_id = account_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        device_type = parse_query(request.query_params.multi_items(), LIST_QUERY)["device_type"]
        page = await self.store.list_connectors(account_id, device_type, "", PAGE_ROWS)
        if len(page) < PAGE_ROWS:
            body = ok_body([connectors.to_wire(record) for record in page])
            if len(body) <= PART_BYTES:
                return JsonResponse(body)
        return streamed(ok_list(self._listed(account_id, device_type, page)), "application/json")

    async def _listed(
        self, account_id: str, device_type: str | None, page: Sequence[ConnectorRecord]
    ) -> AsyncGenerator[bytes, None]:
        """The list's items from `page` (the first) on, read a keyset page at a time, in parts."""
        rows = PAGE_ROWS
        while page:
            after, last = page[-1].connector_id, len(page) < rows
            encoded = [_encode(connectors.to_wire(record)) for record in page]
            del page  # while a part waits for a slow reader, only encoded bytes stay
            # The next read: about a part's worth of connectors as large as this page's largest.
            rows = max(1, min(PAGE_ROWS, PART_BYTES // max(map(len, encoded))))
            for part in in_parts(encoded, len):
                yield b",".join(part)
            del encoded
            if last:
                return
            page = await self.store.list_connectors(account_id, device_type, after, rows)

    async def get(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        record = await self.store.get_connector(account_id, connector_id)
        if record is None:
            raise connector_not_found(connector_id)
        return ok(connectors.to_wire(record))

    async def update(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, WRITE_ACCEPTS)
        body: ConnectorUpdate = await decode_body(
            request, _update, self.settings, self.auth.rechecker(request.headers, account_id, WRITE_ACCEPTS)
        )
        return await self._change(account_id, connector_id, connectors.settings_of(body), body.provision_license)

    async def edit(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, WRITE_ACCEPTS)
        body = await decode_body(
            request, _edit, self.settings, self.auth.rechecker(request.headers, account_id, WRITE_ACCEPTS)
        )
        return await self._change(account_id, connector_id, connectors.given_settings(body), body.provision_license)

    async def delete(self, request: Request) -> Response:
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, WRITE_ACCEPTS)
        record = await self.store.delete_connector(account_id, connector_id)  # not there: errors.from_refusal
        return ok(connectors.to_wire(record))

    async def credential(self, request: Request) -> Response:
        """Mint the connector's own credential (conntel's own, as `conntel connectors credential`): Write."""
        account_id, connector_id = connector_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, WRITE_ACCEPTS)
        value = await connectors.mint_credential(self.store, account_id, connector_id)  # not there: from_refusal
        return ok(connectors.DeviceCredential(connector_id, value))

    async def _change(
        self, account_id: str, connector_id: str, changes: dict[str, Any], provision_license: bool
    ) -> Response:
        # Not there, or a license asked of a connector that cannot have one: errors.from_refusal.
        made = await connectors.change_settings(self.store, account_id, connector_id, changes, provision_license)
        return ok(connectors.to_wire(made.record, made.license_key))
