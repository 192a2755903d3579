"""Paths, path parameters and the routes' wiring, shared by the route modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.convertors import Convertor
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from conntel import ids
from conntel.api.errors import no_route
from conntel.api.params import Param, refuse_undeclared

__all__ = ["ASGIApp", "Receive", "Scope", "Send"]  # starlette's ASGI types, as the route modules use them

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


class StrictQuery:
    """ASGI: a route's app that first refuses any query parameter the route does not declare (400, 20010)."""

    def __init__(self, app: ASGIApp, params: Sequence[Param]):
        self.app = app
        self.params = params

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["query_string"]:
            refuse_undeclared(scope["query_string"], self.params)
        await self.app(scope, receive, send)


def route(path: str, endpoint: Callable[..., Any], methods: Sequence[str], query: Sequence[Param] = ()) -> Route:
    """A Starlette route that takes the query parameters `query` and no other (endpoint: a handler or an ASGI app)."""
    return Route(path, endpoint, methods=list(methods), middleware=[Middleware(StrictQuery, params=tuple(query))])
