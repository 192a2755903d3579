"""Fleet health (CONTRACT §10): every connector of an account with its health, in one request.

The health itself is kept by the store (conntel/health.py); a server process also sweeps for
connectors that went quiet or whose operation is pending too long, one process at a time (`sweeper`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from conntel import health
from conntel.api.auth import Authenticator
from conntel.api.envelope import ok
from conntel.api.params import parse_query
from conntel.api.routing import account_scope
from conntel.credentials import READ_ACCEPTS
from conntel.health import FleetHealth
from conntel.server.exclusive import Exclusive
from conntel.store.base import Store


class HealthRoutes:
    def __init__(self, store: Store, auth: Authenticator):
        self.store = store
        self.auth = auth

    async def fleet(self, request: Request) -> Response:
        account_id = account_scope(request.path_params, request.url.path)
        await self.auth.authorize(request.headers, account_id, READ_ACCEPTS)
        parse_query(request.query_params.multi_items(), ())
        items = await self.store.fleet_health(account_id)
        return ok(FleetHealth(len(items), items))


def sweeper(store: Store, default_seconds: int) -> Exclusive:
    """Decides anew the health of connectors as they cross their threshold (silence, an operation pending
    too long), in one of the processes sharing the store."""

    async def sweep(still_held: Callable[[], Awaitable[bool]]) -> None:
        await store.sweep_health(int(time.time()), default_seconds)

    return Exclusive(store, health.LEASE, health.SWEEP_SECONDS, sweep)
