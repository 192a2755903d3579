"""Connector routes: create, list, get, update (PUT), edit (PATCH), delete."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from conntel import connectors
from conntel.api.auth import Authenticator
from conntel.api.bodies import decode_body
from conntel.api.envelope import ok
from conntel.api.errors import connector_not_found
from conntel.api.params import Param, parse_query
from conntel.api.routing import account_scope, connector_scope
from conntel.config import Settings
from conntel.connectors import DEVICE_TYPES, ConnectorCreate, ConnectorEdit, ConnectorSettings, ConnectorUpdate
from conntel.credentials import READ_ACCEPTS, WRITE_ACCEPTS
from conntel.store.base import Store

_create = msgspec.json.Decoder(ConnectorCreate)
_update = msgspec.json.Decoder(ConnectorUpdate)
_edit = msgspec.json.Decoder(ConnectorEdit)
LIST_QUERY = (Param("device_type", "Only connectors with this type of device", choices=DEVICE_TYPES),)


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
        records = await self.store.list_connectors(account_id, device_type)
        return ok([connectors.to_wire(record) for record in records])

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
