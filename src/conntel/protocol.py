"""The HTTP connection layer: uvicorn's httptools protocol with guards for a public-facing server.

uvicorn bounds neither header size nor how long a client may take to send its
headers, and answers its own refusals in plain text. This subclass adds:

- a cap on the request line plus headers (431),
- a deadline for a request's headers to arrive, idle new connections included
  (408, then the connection is closed: slowloris clients cannot pile up),
- a cap on open connections (503 at once, before anything is read),
- v4 envelopes instead of plain text for these and for malformed HTTP (400).

A slow request *body* is bounded in the app (api/bodies.py), where the body
is read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conntel.api.envelope import error_body
from conntel.api.errors import (
    HEADERS_TOO_LARGE,
    MALFORMED_REQUEST,
    REQUEST_TIMEOUT,
    TOO_MANY_CONNECTIONS,
    ApiError,
)


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    max_connections: int = 1024


# Set by conntel.server in each server process before it accepts connections.
LIMITS = ConnectionLimits()

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable"}  # fmt: skip


class _Refused(Exception):
    """Stops the parser once a request has been answered with a refusal."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > LIMITS.max_connections:
            self._refuse(503, TOO_MANY_CONNECTIONS, "Too many open connections; try again shortly")
            return
        self._start_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._start_header_deadline()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_header_deadline()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to unparseable HTTP, and how a _Refused raised in a parser callback surfaces.
        if not self._refused:
            self._refuse(400, MALFORMED_REQUEST, "Malformed HTTP request")

    # -- guards --
    def _count(self, size: int) -> None:
        if self._refused:
            raise _Refused
        self._header_bytes += size
        if self._header_bytes > LIMITS.max_header_bytes:
            self._refuse(431, HEADERS_TOO_LARGE, f"Request line and headers exceed {LIMITS.max_header_bytes} bytes")
            raise _Refused

    def _start_header_deadline(self) -> None:
        self._stop_header_deadline()
        self._header_deadline = self.loop.call_later(LIMITS.header_timeout, self._headers_too_slow)

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        self._refuse(408, REQUEST_TIMEOUT, f"Request headers not received within {LIMITS.header_timeout:g} seconds")

    def _refuse(self, status: int, code: int, message: str) -> None:
        """Answer with an error envelope and close the connection."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._stop_header_deadline()
        body = error_body(ApiError(status, code, message))
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, _REASONS[status], len(body))
            + body
        )
        self.transport.close()
