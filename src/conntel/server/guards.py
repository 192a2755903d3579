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

uvicorn documents none of the protocol's insides as API: UVICORN_INTERNALS
below lists every one this module and server/run.py rely on. Before upgrading
uvicorn, read them against its new source; `uvicorn_internals_problems()`
checks each (tests/test_uvicorn_internals.py runs first in the suite, and the
server refuses to start with a line naming the first that changed).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conntel.api.envelope import error_body
from conntel.api.errors import (
    ApiError,
    headers_timeout,
    headers_too_large,
    malformed_request,
    too_many_connections,
)
from conntel.api.failures import REFUSED_STATUS


@dataclass(frozen=True)
class UvicornInternal:
    """One piece of uvicorn that conntel relies on although uvicorn does not promise to keep it."""

    target: str  # "module:Class.attribute"
    use: str  # what conntel does with it
    parameters: tuple[str, ...] | None = None  # a method conntel overrides: its parameters after self, exactly
    accepts: tuple[str, ...] = ()  # keyword arguments conntel passes: each must be a parameter
    instance: bool = False  # set on each instance (by __init__ or a parser callback), not on the class


_PROTOCOL = "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol"
# run.py's keyword arguments to uvicorn.Config (and so to uvicorn.run).
_CONFIG_OPTIONS = ("host", "port", "loop", "http", "lifespan", "access_log", "server_header", "proxy_headers",
                   "timeout_graceful_shutdown", "log_level")  # fmt: skip

UVICORN_INTERNALS: tuple[UvicornInternal, ...] = (
    # GuardedHttpToolsProtocol, below.
    UvicornInternal(_PROTOCOL, "the class the guarded protocol subclasses"),
    UvicornInternal(f"{_PROTOCOL}.__init__", "passed through; the probe of the attributes below builds one with them",
                    parameters=("config", "server_state", "app_state", "_loop")),
    UvicornInternal(f"{_PROTOCOL}.connection_made", "overridden: the connection cap and the first header deadline",
                    parameters=("transport",)),
    UvicornInternal(f"{_PROTOCOL}.data_received", "overridden: counts header bytes around the parser's callbacks",
                    parameters=("data",)),
    UvicornInternal(f"{_PROTOCOL}.on_message_begin", "overridden (httptools' callback): a request's headers begin",
                    parameters=()),
    UvicornInternal(f"{_PROTOCOL}.on_headers_complete", "overridden (httptools' callback): the exact header count",
                    parameters=()),
    UvicornInternal(f"{_PROTOCOL}.send_400_response", "overridden: malformed HTTP answered with an envelope",
                    parameters=("msg",)),
    UvicornInternal(f"{_PROTOCOL}.loop", "the event loop: header deadlines and the sweep's timer", instance=True),
    UvicornInternal(f"{_PROTOCOL}.connections", "the server's open connections, which connection_made joins:"
                    " counted by the cap, walked by the sweep", instance=True),
    UvicornInternal(f"{_PROTOCOL}.transport", "the connection's transport: refusals write and close it",
                    instance=True),
    UvicornInternal(f"{_PROTOCOL}.url", "the request target as on_url gathers it (bytes): counted as header bytes",
                    instance=True),
    UvicornInternal(f"{_PROTOCOL}.cycle", "the request in progress (None before the first): send_400_response marks"
                    " its scope when a body turns out malformed, unless its response_started", instance=True),
    UvicornInternal(f"{_PROTOCOL.rsplit(':', 1)[0]}:RequestResponseCycle.__init__", "the cycle whose scope is marked",
                    accepts=("scope",)),
    UvicornInternal(f"{_PROTOCOL}.headers", "(name, value) pairs as on_header gathers them: counted as header bytes",
                    instance=True),
    # server/run.py.
    UvicornInternal("uvicorn:Config.__init__", "run.py's options; `http` given the guarded protocol class",
                    accepts=("app", *_CONFIG_OPTIONS)),
    UvicornInternal("uvicorn:Config.http_protocol_class", "set by load() to the class passed as `http`",
                    instance=True),
    UvicornInternal("uvicorn:run", "run.py with --workers: an app factory in each worker process",
                    accepts=("app", "factory", "workers", *_CONFIG_OPTIONS)),
    UvicornInternal("uvicorn:Server.serve", "run.py serves one process on its own uvloop",
                    parameters=("sockets",)),
    UvicornInternal("uvicorn:Server.started", "run.py polls it to start `alongside` once listening (a bool)",
                    instance=True),
)  # fmt: skip


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

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn narrows it
        super().connection_made(transport)
        if len(self.connections) > LIMITS.max_connections:
            self._refuse(too_many_connections())
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
                self._refuse(headers_too_large(LIMITS.max_header_bytes))

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
            self._refuse(headers_too_large(LIMITS.max_header_bytes))
            return
        super().on_headers_complete()

    def _parsed_head_bytes(self) -> int:
        """The request line and headers the parser has handed over, counted as sent (about: separators vary)."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to unparseable HTTP: the same, as an envelope.
        if self.cycle is not None and not self.cycle.response_started:
            # Mid-body (a malformed chunked body): the app, still reading, records this 400, not a hang-up.
            self.cycle.scope[REFUSED_STATUS] = 400  # type: ignore[literal-required]  # a key of conntel's own
        self._refuse(malformed_request())

    # -- guards --
    @classmethod
    def _schedule_sweep(cls, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        def sweep() -> None:
            deadline = loop.time() - LIMITS.header_timeout
            for connection in list(connections):
                since = getattr(connection, "_headers_since", None)
                if since is not None and since < deadline:
                    connection._refuse(headers_timeout(LIMITS.header_timeout))
            cls._sweeps[loop] = loop.call_later(_SWEEP_SECONDS, sweep)

        cls._sweeps[loop] = loop.call_later(_SWEEP_SECONDS, sweep)

    def _refuse(self, error: ApiError) -> None:
        """Answer with an error envelope and close the connection."""
        self._headers_since = None
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        body = error_body(error)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (error.status, _REASONS[error.status], len(body))
            + body
        )
        self.transport.close()


_SWEEP_SECONDS = 0.5


# -- checking UVICORN_INTERNALS ------------------------------------------------


def uvicorn_internals_problems() -> list[str]:
    """One line for each internal in UVICORN_INTERNALS that the installed uvicorn no longer has as described."""
    return [problem for internal in UVICORN_INTERNALS if (problem := uvicorn_internal_problem(internal)) is not None]


def uvicorn_internal_problem(internal: UvicornInternal) -> str | None:
    """What is wrong with one internal (naming it, and what conntel expected), or None when it is as described."""
    try:
        problem = _problem(internal)
    except Exception as exc:  # an import, a lookup or the probe itself failed: that is the news
        problem = f"{type(exc).__name__}: {exc}"
    if problem is None:
        return None
    return (
        f"uvicorn changed: {internal.target} ({internal.use}): {problem}."
        " See UVICORN_INTERNALS in conntel/server/guards.py"
    )


def _problem(internal: UvicornInternal) -> str | None:
    module_name, _, path = internal.target.partition(":")
    owner_path, _, attribute = path.rpartition(".")
    owner: Any = importlib.import_module(module_name)
    names = owner_path.split(".") if internal.instance else path.split(".")
    for depth, name in enumerate(names):
        if not hasattr(owner, name):
            return f"{module_name} has no {'.'.join(names[: depth + 1])}"
        owner = getattr(owner, name)
    if internal.instance:
        return _probed(module_name, owner_path, attribute)
    if internal.parameters is not None or internal.accepts:
        if not callable(owner):
            return "not callable"
        parameters = list(inspect.signature(owner).parameters)
        if inspect.isfunction(owner) and "." in path:  # a method looked up on its class
            parameters = parameters[1:]
        if internal.parameters is not None and tuple(parameters) != internal.parameters:
            return f"takes ({', '.join(parameters)}), conntel expects ({', '.join(internal.parameters)})"
        missing = [name for name in internal.accepts if name not in parameters]
        if missing:
            return f"no longer accepts {', '.join(missing)}"
    return None


def _probed(module_name: str, owner_path: str, attribute: str) -> str | None:
    """Check an attribute uvicorn sets on instances, on instances built and driven as uvicorn would, unserved."""
    probes = _probes()
    expectations = probes.get(f"{module_name}:{owner_path}", {})
    if attribute not in expectations:
        return f"no probe for {attribute} (add one to _probes)"
    return expectations[attribute]


@functools.cache
def _probes() -> dict[str, dict[str, str | None]]:
    """Per class, per attribute: None when a probe instance's attribute is as conntel uses it, else what it found."""
    from uvicorn import Config, Server
    from uvicorn.server import ServerState

    async def app(scope: Any, receive: Any, send: Any) -> None:  # never called: no request completes
        raise AssertionError("the probe serves nothing")

    def check(instance: object, name: str, ok: Callable[[Any], bool]) -> str | None:
        if not hasattr(instance, name):
            return "no longer set on an instance"
        value = getattr(instance, name)
        return None if ok(value) else f"found {value!r}"

    loop = asyncio.new_event_loop()
    try:
        state = ServerState()
        protocol = HttpToolsProtocol(config=Config(app, log_config=None), server_state=state, app_state={}, _loop=loop)
        transport = asyncio.Transport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET /probe HTTP/1.1\r\nHost: probe\r\nX-Probe: 1")  # headers still arriving
        http = {
            "loop": check(protocol, "loop", lambda value: value is loop),
            "connections": check(
                protocol, "connections", lambda value: value is state.connections and protocol in value
            ),
            "transport": check(protocol, "transport", lambda value: value is transport),
            "url": check(protocol, "url", lambda value: value == b"/probe"),
            "cycle": check(protocol, "cycle", lambda value: value is None),
            "headers": check(protocol, "headers", lambda value: value == [(b"host", b"probe")]),
        }
    finally:
        loop.close()
    config = Config(app, log_config=None, http=GuardedHttpToolsProtocol)
    config.load()
    server = Server(Config(app, log_config=None))
    return {
        _PROTOCOL: http,
        "uvicorn:Config": {
            "http_protocol_class": check(config, "http_protocol_class", lambda value: value is GuardedHttpToolsProtocol)
        },
        "uvicorn:Server": {"started": check(server, "started", lambda value: value is False)},
    }
