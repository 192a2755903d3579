"""Every error conntel answers on the wire, named once with its HTTP status beside its code.

Codes below 20000 are the ones the public Cloudflare API uses for the same
cases (CONTRACT §5); 20000 and up are conntel's own, for cases the public API
does not show. A code is never reused for another meaning.

Each kind of error is an `ErrorSpec` (status, code, the codes it may carry
with it), registered in `SPECS`; call sites raise the named constructors
below (`raise event_not_found(t, n, connector_id)`) and never pair a status
with a code themselves. README.md's error table lists every spec, and
tests/test_error_table.py holds the two together. Refusals of the store and
of the domain (a connector that is not there, a conflicting event) become
wire errors in one place, `from_refusal`, which the app's exception handler
calls: routes do not translate them one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from conntel.connectors import NotLicensed
from conntel.store.base import EventConflict, NotFound, SnapshotConflict, TooManyConnectors


@dataclass(frozen=True)
class ErrorItem:
    code: int
    message: str


@dataclass(frozen=True, eq=False)
class ErrorSpec:
    """One kind of wire error: its HTTP status, its code, what `error_chain` may hold, what always follows it."""

    status: int
    code: int
    chain: frozenset[int] = frozenset()  # the codes its error_chain may hold
    also: tuple[ErrorItem, ...] = ()  # further items, always sent after it


SPECS: list[ErrorSpec] = []  # every spec: README.md's error table has one row for each


def _spec(status: int, code: int, *, chain: Iterable[int] = (), also: tuple[ErrorItem, ...] = ()) -> ErrorSpec:
    spec = ErrorSpec(status, code, frozenset(chain), also)
    SPECS.append(spec)
    return spec


class ApiError(Exception):
    """An error response: its spec (status and code), the main item's message, its chain, headers to send."""

    def __init__(
        self,
        spec: ErrorSpec,
        message: str,
        *,
        chain: tuple[ErrorItem, ...] = (),
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.spec = spec
        self.status = spec.status
        self.item = ErrorItem(spec.code, message)
        self.chain = chain
        self.also = spec.also
        self.headers = headers


# -- items of the public API that travel in an error_chain or after the main item --
INVALID_EMAIL_HEADER = ErrorItem(6102, "Invalid format for X-Auth-Email header")
INVALID_KEY_HEADER = ErrorItem(6103, "Invalid format for X-Auth-Key header")
INVALID_AUTHORIZATION_HEADER = ErrorItem(6111, "Invalid format for Authorization header")
NO_ROUTE = ErrorItem(7000, "No route for that URI")

# -- the public API's errors --
MISSING_CREDENTIALS = _spec(400, 9106)
INVALID_AUTHORIZATION = _spec(400, 6003, chain={6111})
INVALID_GLOBAL_KEY_HEADERS = _spec(400, 6003, chain={6102, 6103})
REPEATED_CREDENTIAL_HEADER = _spec(400, 6003, chain={6111, 6102, 6103})
UNAUTHENTICATED = _spec(401, 10000)
FORBIDDEN = _spec(403, 10000)
UNKNOWN_GLOBAL_KEY = _spec(403, 9103)
RATE_LIMITED = _spec(429, 971)
COULD_NOT_ROUTE = _spec(400, 7003, also=(NO_ROUTE,))
VERIFY_MISSING_AUTHORIZATION = _spec(400, 1001)
VERIFY_INVALID_TOKEN = _spec(401, 1000)

# -- conntel's own --
EVENT_NOT_FOUND = _spec(404, 20001)
CONNECTOR_NOT_FOUND = _spec(404, 20002)
METHOD_NOT_ALLOWED = _spec(405, 20003)
MALFORMED_JSON = _spec(400, 20004)
INVALID_EVENT = _spec(400, 20005)
EVENT_CONFLICT = _spec(409, 20006)
BATCH_TOO_LARGE = _spec(413, 20007)
BODY_TOO_LARGE = _spec(413, 20008)
INTERNAL_ERROR = _spec(500, 20009)
INVALID_QUERY = _spec(400, 20010)
INVALID_CURSOR = _spec(400, 20011)
INVALID_BODY = _spec(400, 20012)
HEADERS_TOO_LARGE = _spec(431, 20013)
MALFORMED_REQUEST = _spec(400, 20014)
REQUEST_TIMEOUT = _spec(408, 20015)
TOO_MANY_CONNECTIONS = _spec(503, 20016)
STORE_UNAVAILABLE = _spec(503, 20017)
# 499, nginx's "client closed request": never seen by the client, which hung up; for logs and metrics.
CLIENT_CLOSED_REQUEST = _spec(499, 20018)
TOO_MANY_CONNECTORS = _spec(400, 20030)
SNAPSHOT_NOT_FOUND = _spec(404, 20031)
INVALID_SNAPSHOT = _spec(400, 20032)
SNAPSHOT_CONFLICT = _spec(409, 20033)

_CLOSE = {"Connection": "close"}  # the rest of the request is unread: the connection cannot carry another


# -- credentials (CONTRACT §5, §7) --
def missing_credentials() -> ApiError:
    return ApiError(MISSING_CREDENTIALS, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")


def invalid_authorization_header() -> ApiError:
    return ApiError(INVALID_AUTHORIZATION, "Invalid request headers", chain=(INVALID_AUTHORIZATION_HEADER,))


def invalid_global_key_headers(email_ok: bool, key_ok: bool) -> ApiError:
    chain = (() if email_ok else (INVALID_EMAIL_HEADER,)) + (() if key_ok else (INVALID_KEY_HEADER,))
    return ApiError(INVALID_GLOBAL_KEY_HEADERS, "Invalid request headers", chain=chain)


_HEADER_ITEMS = {
    "authorization": INVALID_AUTHORIZATION_HEADER,
    "x-auth-email": INVALID_EMAIL_HEADER,
    "x-auth-key": INVALID_KEY_HEADER,
}


def repeated_credential_header(name: str) -> ApiError:
    """A credential header sent more than once (`name` in lowercase): which to use would be a guess."""
    item = _HEADER_ITEMS[name]
    chained = ErrorItem(item.code, f"{item.message}: sent more than once")
    return ApiError(REPEATED_CREDENTIAL_HEADER, "Invalid request headers", chain=(chained,))


def unauthenticated() -> ApiError:
    return ApiError(UNAUTHENTICATED, "Authentication error")


def forbidden() -> ApiError:
    return ApiError(FORBIDDEN, "Authentication error")


def unknown_global_key() -> ApiError:
    return ApiError(UNKNOWN_GLOBAL_KEY, "Unknown X-Auth-Key or X-Auth-Email")


def rate_limited(retry_after: int) -> ApiError:
    return ApiError(
        RATE_LIMITED,
        "Please wait and consider throttling your request speed",
        headers={"Retry-After": str(retry_after)},
    )


def verify_missing_authorization() -> ApiError:
    return ApiError(VERIFY_MISSING_AUTHORIZATION, 'Missing "Authorization" header')


def verify_invalid_token() -> ApiError:
    return ApiError(VERIFY_INVALID_TOKEN, "Invalid API Token")


# -- routing --
def no_route(path: str) -> ApiError:
    return ApiError(COULD_NOT_ROUTE, f"Could not route to {path}, perhaps your object identifier is invalid?")


def method_not_allowed(method: str, path: str, allowed: Iterable[str]) -> ApiError:
    return ApiError(
        METHOD_NOT_ALLOWED, f"Method {method} not allowed on {path}", headers={"Allow": ", ".join(sorted(allowed))}
    )


def invalid_query(message: str) -> ApiError:
    return ApiError(INVALID_QUERY, message)


# -- resources --
def event_not_found(t: int, n: int, connector_id: str) -> ApiError:
    return ApiError(EVENT_NOT_FOUND, f"No event {t}.{n} on connector {connector_id}")


def snapshot_not_found(t: str, connector_id: str) -> ApiError:
    return ApiError(SNAPSHOT_NOT_FOUND, f"No snapshot {t} on connector {connector_id}")


def snapshot_conflict(reason: str | Exception) -> ApiError:
    return ApiError(SNAPSHOT_CONFLICT, f"{reason}; nothing in this batch was written")


def connector_not_found(connector_id: str) -> ApiError:
    return ApiError(CONNECTOR_NOT_FOUND, f"No connector {connector_id}")


def event_conflict(reason: str | Exception) -> ApiError:
    return ApiError(EVENT_CONFLICT, f"{reason}; nothing in this batch was written")


def invalid_cursor(reason: str | Exception) -> ApiError:
    return ApiError(INVALID_CURSOR, f"Invalid cursor: {reason}")


def too_many_connectors(reason: str) -> ApiError:
    return ApiError(TOO_MANY_CONNECTORS, f"{reason}; delete one before creating another")


# -- bodies --
def malformed_json(reason: str | Exception) -> ApiError:
    return ApiError(MALFORMED_JSON, str(reason))


def invalid_event(reason: str | Exception) -> ApiError:
    return ApiError(INVALID_EVENT, f"Invalid event: {reason}")


def invalid_snapshot(reason: str | Exception) -> ApiError:
    return ApiError(INVALID_SNAPSHOT, f"Invalid snapshot: {reason}")


def batch_too_large(reason: str | Exception) -> ApiError:
    return ApiError(BATCH_TOO_LARGE, str(reason))


def invalid_body(message: str) -> ApiError:
    return ApiError(INVALID_BODY, message)


def body_too_large(limit: int) -> ApiError:
    return ApiError(BODY_TOO_LARGE, f"Request body exceeds {limit} bytes", headers=_CLOSE)


def body_timeout(seconds: float) -> ApiError:
    return ApiError(REQUEST_TIMEOUT, f"Request body not received within {seconds:g} seconds", headers=_CLOSE)


# -- the connection (server/guards.py: these close it) --
def headers_too_large(limit: int) -> ApiError:
    return ApiError(HEADERS_TOO_LARGE, f"Request line and headers exceed {limit} bytes")


def headers_timeout(seconds: float) -> ApiError:
    return ApiError(REQUEST_TIMEOUT, f"Request headers not received within {seconds:g} seconds")


def malformed_request() -> ApiError:
    return ApiError(MALFORMED_REQUEST, "Malformed HTTP request")


def too_many_connections() -> ApiError:
    return ApiError(TOO_MANY_CONNECTIONS, "Too many open connections; try again shortly")


# -- the server --
def client_closed_request() -> ApiError:
    return ApiError(CLIENT_CLOSED_REQUEST, "Client closed request")


def internal_error() -> ApiError:
    return ApiError(INTERNAL_ERROR, "Internal server error")


def store_unavailable(retry_after: int) -> ApiError:
    return ApiError(
        STORE_UNAVAILABLE,
        "The database is unavailable just now; try again shortly",
        headers={"Retry-After": str(retry_after)},
    )


def not_ready(reason: str) -> ApiError:
    """/readyz when the database does not answer."""
    return ApiError(STORE_UNAVAILABLE, reason)


# -- refusals of the store and the domain, translated in this one place --
REFUSALS: tuple[type[Exception], ...] = (NotFound, EventConflict, SnapshotConflict, NotLicensed, TooManyConnectors)


def from_refusal(refusal: Exception, path_params: Mapping[str, str]) -> ApiError:
    """The wire error for a store's or a domain rule's refusal of a request with these path parameters."""
    if isinstance(refusal, NotFound) and "connector_id" in path_params:
        return connector_not_found(path_params["connector_id"])
    if isinstance(refusal, EventConflict):
        return event_conflict(str(refusal))
    if isinstance(refusal, SnapshotConflict):
        return snapshot_conflict(str(refusal))
    if isinstance(refusal, NotLicensed):
        return invalid_body(str(refusal))
    if isinstance(refusal, TooManyConnectors):
        return too_many_connectors(str(refusal))
    raise refusal  # not a refusal with a wire form: an unexpected error (api/failures.py)
