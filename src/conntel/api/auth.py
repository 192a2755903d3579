"""Who is calling, and may they do this on that account.

The error for each malformed or wrong credential is the one the public API
gives (CONTRACT §5, §7). Looked-up credentials are cached for at most
`credential_ttl_seconds`, so a revocation takes effect within that time on
every process.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Counter
from starlette.datastructures import Headers

from conntel.api.errors import (
    FORBIDDEN,
    INVALID_AUTHORIZATION,
    INVALID_GLOBAL_KEY_HEADERS,
    MISSING_CREDENTIALS,
    RATE_LIMITED,
    REPEATED_CREDENTIAL_HEADER,
    UNAUTHENTICATED,
    UNKNOWN_GLOBAL_KEY,
    ApiError,
    forbidden,
    invalid_authorization_header,
    invalid_global_key_headers,
    missing_credentials,
    repeated_credential_header,
    unauthenticated,
    unknown_global_key,
)
from conntel.api.ratelimit import RateLimiter
from conntel.credentials import API_KEY_FORMAT, GLOBAL_KEY_PERMISSIONS, TOKEN_FORMAT, is_valid_email, secret_hash
from conntel.store.base import DeviceRecord, Store, TokenRecord, UserRecord

# The request headers that carry credentials (ASGI names them in lowercase).
CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-auth-email", b"x-auth-key"})

RawHeaders = list[tuple[bytes, bytes]]  # as ASGI gives them: lowercase names, in the order sent


def credential_headers(raw: RawHeaders) -> dict[str, str]:
    """A request's credential headers by (lowercase) name; one sent twice is refused, as using either is a guess."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name in CREDENTIAL_HEADERS:
            key = name.decode("latin-1")
            if key in found:
                raise repeated_credential_header(key)
            found[key] = value.decode("latin-1")
    return found


def _credentials(headers: Headers | RawHeaders | Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(headers, Headers):
        return credential_headers(headers.raw)
    if isinstance(headers, list):
        return credential_headers(headers)
    return headers  # already a request's credential headers, by lowercase name


K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller and what it may do, per account."""

    subject: str  # who, for rate limiting: a token id, a user's email or a connector
    grants: Mapping[str, frozenset[str]]  # account_id -> permission names (none for a device credential)
    token: TokenRecord | None = None
    device: tuple[str, str] | None = None  # (account_id, connector_id): a connector's own credential

    def may(self, account_id: str, accepts: frozenset[str], connector_id: str | None = None) -> bool:
        """Whether it holds one of `accepts` on the account, or, where the operation names a
        connector that may act for itself (`connector_id`), it is that connector's credential."""
        held = self.grants.get(account_id)
        if held is not None and not held.isdisjoint(accepts):
            return True
        return connector_id is not None and self.device == (account_id, connector_id)


class TtlCache(Generic[K, V]):
    """A small time-bounded cache of lookups, misses included."""

    def __init__(self, ttl: float, max_entries: int = 10_000):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def peek(self, key: K, default: Any = None) -> V | Any:
        """The cached value while it is fresh, else `default` (no await: the hot path's common case)."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else default

    async def get(self, key: K, load: Callable[[K], Awaitable[V]]) -> V:
        hit = self.peek(key, _MISSING)
        if hit is not _MISSING:
            return hit
        return await self.reload(key, load)

    async def reload(self, key: K, load: Callable[[K], Awaitable[V]]) -> V:
        """Look `key` up afresh, whatever the cache holds, and keep the answer."""
        value = await load(key)
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, value)
        return value


_MISSING = object()


def token_is_current(token: TokenRecord, now: float) -> bool:
    if token.revoked:
        return False
    if token.not_before is not None and now < token.not_before:
        return False
    return token.expires_on is None or now < token.expires_on


def _is_current(principal: Principal, now: float) -> bool:
    """A connector's own credential has no validity period; a token has its own."""
    return principal.token is None or token_is_current(principal.token, now)


def _bearer_digest(authorization: str) -> bytes:
    """The hash of a well-formed `Bearer` header's secret, by which its record is looked up; raises otherwise."""
    scheme, _, secret = authorization.partition(" ")
    if scheme != "Bearer" or not TOKEN_FORMAT.fullmatch(secret):
        raise invalid_authorization_header()
    return secret_hash(secret)


def _verified(
    found: tuple[TokenRecord | DeviceRecord, Principal] | None, digest: bytes
) -> tuple[TokenRecord | DeviceRecord, Principal] | None:
    """A record found by its hash, compared with it once more in constant time (as for global keys)."""
    return found if found is not None and hmac.compare_digest(found[0].secret_hash, digest) else None


class Authenticator:
    def __init__(
        self,
        store: Store,
        ttl: float,
        rate_limiter: RateLimiter | None = None,
        failures: Counter | None = None,  # prometheus counter of refusals, by reason
    ):
        self._store = store
        self._rate_limiter = rate_limiter
        self._failures = failures
        # A bearer credential's record (an API token, or a connector's own credential) with the Principal
        # it makes, built once per lookup rather than per request.
        self._tokens: TtlCache[bytes, tuple[TokenRecord | DeviceRecord, Principal] | None] = TtlCache(ttl)
        self._users: TtlCache[str, UserRecord | None] = TtlCache(ttl)

    async def find_token(self, authorization: str) -> TokenRecord | None:
        """The API token named by a well-formed `Bearer` header, current or not; raises when malformed.
        A connector's own credential is not an API token: None."""
        found = await self._find_token(authorization)
        return found[0] if found is not None and isinstance(found[0], TokenRecord) else None

    async def _find_token(self, authorization: str) -> tuple[TokenRecord | DeviceRecord, Principal] | None:
        digest = _bearer_digest(authorization)
        found = self._tokens.peek(digest, _MISSING)
        if found is _MISSING:
            found = await self._tokens.get(digest, self._load_token)
        return _verified(found, digest)

    def _cached_principal(self, raw: RawHeaders) -> Principal | None:
        """The caller when the cache alone can tell (no await: the hot path's common case): a request whose
        one credential header is a well-formed Bearer token, looked up lately and current. None when anything
        else needs `authenticate` (a miss, a refusal, a global key), which then decides as ever."""
        # Not credential_headers(): building its dict costs ~0.5 µs a request; anything it would refuse
        # (a header sent twice) or weigh (a global key) goes to `authenticate`, which calls it.
        authorization = None
        for name, value in raw:
            if name in CREDENTIAL_HEADERS:
                if authorization is not None or name != b"authorization":
                    return None
                authorization = value.decode("latin-1")
        if authorization is None:
            return None
        try:
            digest = _bearer_digest(authorization)
        except ApiError:
            return None
        found = _verified(self._tokens.peek(digest), digest)
        return found[1] if found is not None and _is_current(found[1], time.time()) else None

    async def _load_token(self, digest: bytes) -> tuple[TokenRecord | DeviceRecord, Principal] | None:
        token = await self._store.find_token(digest)
        if token is not None:
            return token, Principal(f"token:{token.token_id}", {token.account_id: token.permissions}, token)
        device = await self._store.find_device(digest)  # a connector's own credential: no grants at all
        if device is None:
            return None
        where = (device.account_id, device.connector_id)
        return device, Principal(f"device:{device.account_id}/{device.connector_id}", {}, device=where)

    async def authenticate(self, request_headers: Headers | RawHeaders | Mapping[str, str]) -> Principal:
        headers = _credentials(request_headers)
        authorization = headers.get("authorization")
        if authorization is not None:
            found = await self._find_token(authorization)
            if found is None or not _is_current(found[1], time.time()):
                raise unauthenticated()
            return found[1]
        email, key = headers.get("x-auth-email"), headers.get("x-auth-key")
        if email is None and key is None:
            raise missing_credentials()
        email_ok = email is not None and is_valid_email(email)
        key_ok = key is not None and API_KEY_FORMAT.fullmatch(key) is not None
        if email is None or key is None or not (email_ok and key_ok):
            raise invalid_global_key_headers(email_ok, key_ok)
        user = await self._users.get(email.lower(), self._store.find_user)
        if user is None or not hmac.compare_digest(user.api_key_hash, secret_hash(key)):
            raise unknown_global_key()
        return Principal(f"user:{user.email}", dict.fromkeys(user.accounts, GLOBAL_KEY_PERMISSIONS))

    async def authorize(
        self,
        headers: Headers | RawHeaders | Mapping[str, str],
        account_id: str,
        accepts: frozenset[str],
        connector_id: str | None = None,
    ) -> Principal:
        """The caller, when it holds one of `accepts` on the account or, for an operation a connector
        may do for itself (`connector_id` given), is that connector's own credential; else 403."""
        try:
            principal = self._cached_principal(headers) if isinstance(headers, list) else None
            if principal is None:
                principal = await self.authenticate(headers)
            if self._rate_limiter is not None:
                await self._rate_limiter.check(principal.subject)
            if not principal.may(account_id, accepts, connector_id):
                raise forbidden()
        except ApiError as refusal:
            if self._failures is not None:
                self._failures.labels(_FAILURE_REASONS.get(refusal.spec, "other")).inc()
            raise
        return principal

    async def still_allowed(
        self,
        headers: Mapping[str, str],
        account_id: str,
        accepts: frozenset[str],
        fresh: bool,
        connector_id: str | None = None,
    ) -> tuple[ApiError, str] | None:
        """For a request that outlives its start (a live tail): None while the credential it was
        authorized with may still act on the account, else the refusal a new request would get and
        a one-word reason. `fresh` reads the credential from the store rather than the cache.
        Expiry needs no lookup: it is checked against the clock on every call."""
        authorization = headers.get("authorization")
        if authorization is not None:
            digest = secret_hash(authorization.partition(" ")[2])
            found = await (self._tokens.reload if fresh else self._tokens.get)(digest, self._load_token)
            if found is None or not hmac.compare_digest(found[0].secret_hash, digest):
                return unauthenticated(), "unknown_token"
            _, principal = found
            token, now = principal.token, time.time()
            if token is not None and token.revoked:
                return unauthenticated(), "revoked"
            if token is not None and token.expires_on is not None and now >= token.expires_on:
                return unauthenticated(), "expired"
            if token is not None and not token_is_current(token, now):
                return unauthenticated(), "not_yet_valid"
            if not principal.may(account_id, accepts, connector_id):
                return forbidden(), "permission_removed"
            return None
        email, key = headers.get("x-auth-email", ""), headers.get("x-auth-key", "")
        user = await (self._users.reload if fresh else self._users.get)(email.lower(), self._store.find_user)
        if user is None:
            return unknown_global_key(), "user_removed"
        if not hmac.compare_digest(user.api_key_hash, secret_hash(key)):
            return unknown_global_key(), "key_changed"
        if account_id not in user.accounts or GLOBAL_KEY_PERMISSIONS.isdisjoint(accepts):
            return forbidden(), "removed_from_account"
        return None

    def rechecker(
        self, headers: Mapping[str, str], account_id: str, accepts: frozenset[str], connector_id: str | None = None
    ) -> Callable[[], Awaitable[None]]:
        """A check to run once a request's body is in (it may take up to the body timeout): raises the
        refusal a new request would get if the credential was revoked or expired meanwhile."""

        async def recheck() -> None:
            refused = await self.still_allowed(headers, account_id, accepts, fresh=False, connector_id=connector_id)
            if refused is not None:
                raise refused[0]

        return recheck


_FAILURE_REASONS = {
    MISSING_CREDENTIALS: "missing",
    INVALID_AUTHORIZATION: "malformed",
    INVALID_GLOBAL_KEY_HEADERS: "malformed",
    REPEATED_CREDENTIAL_HEADER: "malformed",
    UNAUTHENTICATED: "invalid_token",
    UNKNOWN_GLOBAL_KEY: "wrong_global_key",
    FORBIDDEN: "forbidden",
    RATE_LIMITED: "rate_limited",
}
