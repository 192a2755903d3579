"""Paths and path parameters shared by the route modules."""

from __future__ import annotations

from typing import Mapping

from conntel import ids
from conntel.api.errors import no_route

PREFIX = "/client/v4"
CONNECTOR = PREFIX + "/accounts/{account_id}/magic/connectors/{connector_id}"


def api_path(path: str) -> str:
    """A request path as the public API names it in errors (without /client/v4)."""
    return path[len(PREFIX) :] if path.startswith(PREFIX + "/") else path


def connector_scope(params: Mapping[str, str], path: str) -> tuple[str, str]:
    """The account and connector a request names; a malformed identifier is a routing error."""
    account_id, connector_id = params["account_id"], params["connector_id"]
    if not (ids.is_valid_id(account_id) and ids.is_valid_id(connector_id)):
        raise no_route(api_path(path))
    return account_id, connector_id
