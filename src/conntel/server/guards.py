"""The HTTP connection layer: uvicorn's httptools protocol with guards for a public-facing server.

uvicorn bounds neither header size nor how long a client may take to send its
headers, and answers its own refusals in plain text. This subclass adds:

- a cap on the request line plus headers (431), counted as they arrive, so
  headers that never end are cut off too (of the read in which a request
  began, a header still in progress counts once complete: at most one read
  goes uncounted),
- a deadline for a request's headers to arrive, idle new connections included
  (408, then the connection is closed: slowloris clients cannot pile up),
  checked by one sweep every half second rather than a timer per request,
- a cap on open connections (503 at once, before anything is read),
- v4 envelopes instead of plain text for these and for malformed HTTP (400).

A slow request *body* is bounded in the app (api/bodies.py), where the body
is read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conntel.api.envelope import error_body
from conntel.api.errors import (
    HEADERS_TOO_LARGE,
    MALFORMED_REQUEST,
    REQUEST_TIMEOUT,
    TOO_MANY_CONNECTIONS,
    ApiError,
)
from conntel.api.failures import REFUSED_STATUS


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    max_connections: int = 1024


# Set by conntel.server in each server process before it accepts connections.
LIMITS = ConnectionLimits()

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable"}  # fmt: skip


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    # Cheap per request: a request only notes when its headers began and how many bytes they took;
    # one sweep every _SWEEP_SECONDS per process finds the connections whose headers are late.
    _sweeps: ClassVar[dict[asyncio.AbstractEventLoop, asyncio.TimerHandle]] = {}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._header_bytes = 0  # of the current request's headers, counted by data_received
        self._chunk_bytes = 0  # of the read being parsed
        self._began_in_chunk = False  # whether the current request began in the read being parsed
        self._headers_since: float | None = None  # loop time the current request's headers began
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > LIMITS.max_connections:
            self._refuse(503, TOO_MANY_CONNECTIONS, "Too many open connections; try again shortly")
            return
        self._headers_since = self.loop.time()  # a connection that sends nothing is late too
        if self.loop not in self._sweeps:
            self._schedule_sweep(self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        self._chunk_bytes = len(data)
        self._began_in_chunk = False
        super().data_received(data)
        if self._headers_since is not None and not self._refused:  # a request's headers are still arriving
            if self._began_in_chunk:
                # The read may also have ended the previous request (a pipelined one after a large body):
                # of it, count what the parser took for this request so far (all but a header in progress).
                self._header_bytes = self._parsed_head_bytes()
            else:
                self._header_bytes += len(data)
            if self._header_bytes > LIMITS.max_header_bytes:
                self._refuse(431, HEADERS_TOO_LARGE, f"Request line and headers exceed {LIMITS.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._began_in_chunk = True
        self._headers_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self._headers_since = None
        # Headers that came in one read: data_received could not tell. Count them exactly only
        # when everything read so far could exceed the cap (the common request is far below it).
        if (
            self._header_bytes + self._chunk_bytes > LIMITS.max_header_bytes
            and self._parsed_head_bytes() > LIMITS.max_header_bytes
        ):
            self._refuse(431, HEADERS_TOO_LARGE, f"Request line and headers exceed {LIMITS.max_header_bytes} bytes")
            return
        super().on_headers_complete()

    def _parsed_head_bytes(self) -> int:
        """The request line and headers the parser has handed over, counted as sent (about: separators vary)."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to unparseable HTTP: the same, as an envelope.
        if self.cycle is not None and not self.cycle.response_started:
            # Mid-body (a malformed chunked body): the app, still reading, records this 400, not a hang-up.
            self.cycle.scope[REFUSED_STATUS] = 400  # type: ignore[index]
        self._refuse(400, MALFORMED_REQUEST, "Malformed HTTP request")

    # -- guards --
    @classmethod
    def _schedule_sweep(cls, loop: asyncio.AbstractEventLoop, connections: set) -> None:
        def sweep() -> None:
            deadline = loop.time() - LIMITS.header_timeout
            for connection in list(connections):
                since = getattr(connection, "_headers_since", None)
                if since is not None and since < deadline:
                    connection._refuse(
                        408, REQUEST_TIMEOUT, f"Request headers not received within {LIMITS.header_timeout:g} seconds"
                    )
            cls._sweeps[loop] = loop.call_later(_SWEEP_SECONDS, sweep)

        cls._sweeps[loop] = loop.call_later(_SWEEP_SECONDS, sweep)

    def _refuse(self, status: int, code: int, message: str) -> None:
        """Answer with an error envelope and close the connection."""
        self._headers_since = None
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        body = error_body(ApiError(status, code, message))
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, _REASONS[status], len(body))
            + body
        )
        self.transport.close()


_SWEEP_SECONDS = 0.5
