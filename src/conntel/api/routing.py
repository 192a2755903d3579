"""Paths and path parameters shared by the route modules."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.convertors import Convertor

from conntel import ids
from conntel.api.errors import no_route

PREFIX = "/client/v4"
CONNECTORS = PREFIX + "/accounts/{account_id}/magic/connectors"
CONNECTOR = CONNECTORS + "/{connector_id}"


def api_path(path: str) -> str:
    """A request path as the public API names it in errors (without /client/v4)."""
    return path[len(PREFIX) :] if path.startswith(PREFIX + "/") else path


def connector_scope(params: Mapping[str, str], path: str) -> tuple[str, str]:
    """The account and connector a request names; a malformed identifier is a routing error."""
    account_id, connector_id = account_scope(params, path), params["connector_id"]
    if not ids.is_valid_id(connector_id):
        raise no_route(api_path(path))
    return account_id, connector_id


def account_scope(params: Mapping[str, str], path: str) -> str:
    """The account a request names; a malformed identifier is a routing error."""
    account_id = params["account_id"]
    if not ids.is_valid_id(account_id):
        raise no_route(api_path(path))
    return account_id


class EventRefConvertor(Convertor[str]):
    """`{event_t}.{event_n}` as a path segment: starts with a digit (read by ids.parse_event_ref)."""

    regex = r"[0-9][^/]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value
