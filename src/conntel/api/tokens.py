"""Token verification: GET /client/v4/user/tokens/verify."""

from __future__ import annotations

import time

from msgspec import Struct
from starlette.requests import Request
from starlette.responses import Response

from conntel.api.auth import Authenticator, credential_headers, token_is_current
from conntel.api.envelope import ok
from conntel.api.errors import ApiError, verify_invalid_token, verify_missing_authorization
from conntel.connectors import iso_time

VALID_MESSAGE = {"code": 10000, "message": "This API Token is valid and active", "type": None}


class TokenStatus(Struct, omit_defaults=True):
    id: str
    status: str  # only ever "active" here: any other token is answered 401
    not_before: str | None = None
    expires_on: str | None = None


class TokenRoutes:
    def __init__(self, auth: Authenticator):
        self.auth = auth

    async def verify(self, request: Request) -> Response:
        authorization = credential_headers(request.headers.raw).get("authorization")
        if authorization is None:
            raise verify_missing_authorization()
        try:
            token = await self.auth.find_token(authorization)
        except ApiError:  # malformed: for verify, simply not a valid token
            token = None
        if token is None or not token_is_current(token, time.time()):
            raise verify_invalid_token()
        status = TokenStatus(token.token_id, "active", iso_time(token.not_before), iso_time(token.expires_on))
        return ok(status, messages=[VALID_MESSAGE])
