"""What a request that fails unexpectedly is answered: 503 when the database cannot be used just now, else 500.

A database restarting or out of reach, a lost connection, a lock held past
the busy timeout, a full disk: the store tells these apart from bugs
(`Store.is_unavailable`). They are answered 503 with code 20017 and
`Retry-After`, and logged in one line; anything else is a bug: 500 with code
20009, logged with its traceback. Neither answer shows the exception.

A client that hangs up before its request body is in is no server error: it
is recorded as 499 "client closed request", logged in one line without a
traceback. granian reports a malformed chunked body exactly as it reports a
hang-up (the body ends in `http.disconnect`), so that too is a 499.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conntel.api import errors
from conntel.api.envelope import error_response
from conntel.api.errors import ApiError
from conntel.api.routing import api_path

log = logging.getLogger("conntel")

RETRY_AFTER_SECONDS = 1


def hung_up(method: str, path: str) -> ApiError:
    """The record of a request whose client went away (or whose chunked body broke off malformed) mid-body."""
    log.warning("client closed request on %s %s before its body was in (499)", method, api_path(path))
    return errors.client_closed_request()


def unexpected(error: Exception, method: str, path: str, store_unavailable: bool) -> ApiError:
    """The answer to `error`, which no handler expected, and its log line."""
    if store_unavailable:
        log.warning("database unavailable on %s %s: %s: %s", method, api_path(path), type(error).__name__, error)
        return errors.store_unavailable(RETRY_AFTER_SECONDS)
    log.error("unexpected error on %s %s", method, api_path(path), exc_info=error)
    return errors.internal_error()


class AnswerFailures:
    """ASGI middleware: answers requests that raise an unexpected exception (see `unexpected`)."""

    def __init__(self, app: ASGIApp, is_unavailable: Callable[[Exception], bool]):
        self.app = app
        self.is_unavailable = is_unavailable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except ClientDisconnect:
            if started:
                raise
            # Nobody reads this answer (the connection is gone); it is what the access log and metrics record.
            record = hung_up(scope["method"], scope["path"])
            await error_response(record)(scope, receive, send)
        except Exception as error:
            if started:  # too late for another answer (e.g. a live tail): the server closes the connection
                raise
            answer = unexpected(error, scope["method"], scope["path"], self.is_unavailable(error))
            await error_response(answer)(scope, receive, send)
