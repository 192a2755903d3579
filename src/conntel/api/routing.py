"""Paths and path parameters shared by the route modules."""

from __future__ import annotations

from starlette.requests import Request

from conntel import ids
from conntel.api.errors import no_route

PREFIX = "/client/v4"
CONNECTOR = PREFIX + "/accounts/{account_id}/magic/connectors/{connector_id}"


def api_path(request: Request) -> str:
    """The request path as the public API names it in errors (without /client/v4)."""
    path = request.url.path
    return path[len(PREFIX) :] if path.startswith(PREFIX + "/") else path


def connector_scope(request: Request) -> tuple[str, str]:
    """The account and connector a request names; a malformed identifier is a routing error."""
    params = request.path_params
    account_id, connector_id = params["account_id"], params["connector_id"]
    if not (ids.is_valid_id(account_id) and ids.is_valid_id(connector_id)):
        raise no_route(api_path(request))
    return account_id, connector_id
