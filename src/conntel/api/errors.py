"""Error codes and the one exception type that carries its wire form.

Codes below 20000 are the ones the public Cloudflare API uses for the same
cases; 20000 and up are conntel's own, for cases the public API does not
show. A code is never reused for another meaning; README.md lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorItem:
    code: int
    message: str


# -- codes of the public API --
INVALID_API_TOKEN = ErrorItem(1000, "Invalid API Token")
MISSING_AUTHORIZATION_HEADER = ErrorItem(1001, 'Missing "Authorization" header')
INVALID_REQUEST_HEADERS = ErrorItem(6003, "Invalid request headers")
INVALID_EMAIL_HEADER = ErrorItem(6102, "Invalid format for X-Auth-Email header")
INVALID_KEY_HEADER = ErrorItem(6103, "Invalid format for X-Auth-Key header")
INVALID_AUTHORIZATION_HEADER = ErrorItem(6111, "Invalid format for Authorization header")
NO_ROUTE = ErrorItem(7000, "No route for that URI")
RATE_LIMITED = ErrorItem(971, "Please wait and consider throttling your request speed")
UNKNOWN_GLOBAL_KEY = ErrorItem(9103, "Unknown X-Auth-Key or X-Auth-Email")
MISSING_CREDENTIALS = ErrorItem(9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
AUTHENTICATION_ERROR = ErrorItem(10000, "Authentication error")
COULD_NOT_ROUTE = 7003  # message names the path

# -- conntel's own codes --
EVENT_NOT_FOUND = 20001
CONNECTOR_NOT_FOUND = 20002
METHOD_NOT_ALLOWED = 20003
MALFORMED_JSON = 20004
INVALID_EVENT = 20005
EVENT_CONFLICT = 20006
BATCH_TOO_LARGE = 20007
BODY_TOO_LARGE = 20008
INTERNAL_ERROR = 20009
INVALID_QUERY = 20010
INVALID_CURSOR = 20011
INVALID_BODY = 20012
HEADERS_TOO_LARGE = 20013
MALFORMED_REQUEST = 20014
REQUEST_TIMEOUT = 20015
TOO_MANY_CONNECTIONS = 20016
STORE_UNAVAILABLE = 20017
TOO_MANY_CONNECTORS = 20030


class ApiError(Exception):
    """An error response: HTTP status, the main error item, its chain, and any further items."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        chain: tuple[ErrorItem, ...] = (),
        also: tuple[ErrorItem, ...] = (),
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.item = ErrorItem(code, message)
        self.chain = chain
        self.also = also
        self.headers = headers

    @classmethod
    def of(
        cls,
        status: int,
        item: ErrorItem,
        *,
        chain: tuple[ErrorItem, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> ApiError:
        return cls(status, item.code, item.message, chain=chain, headers=headers)


def no_route(path: str) -> ApiError:
    message = f"Could not route to {path}, perhaps your object identifier is invalid?"
    return ApiError(400, COULD_NOT_ROUTE, message, also=(NO_ROUTE,))


def connector_not_found(connector_id: str) -> ApiError:
    return ApiError(404, CONNECTOR_NOT_FOUND, f"No connector {connector_id}")
