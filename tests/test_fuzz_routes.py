"""No byte sequence a client can send, in any part of any request on any route, is a 500.

Hypothesis throws arbitrary bytes (path segments, query strings, header
values, bodies, methods) and arbitrary JSON (free-form, and shaped like the
bodies each route expects) at every route of a real server, on both backends,
over a raw socket so that nothing is normalised on the way. Every answer must
be below 500; on API paths an error must be the v4 envelope. The server log
must hold no traceback afterwards.
"""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import quote_from_bytes

import msgspec
import pytest
from helpers import World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conntel.connectors import ConnectorEdit
from conntel.kinds import KINDS

FUZZ = settings(
    max_examples=int(os.environ.get("CONNTEL_FUZZ_EXAMPLES", "120")),  # more for a longer hunt
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

# Every route template the server serves, with the methods it answers and a few it does not.
ACCOUNT = "/client/v4/accounts/{account}"
CONNECTORS = ACCOUNT + "/magic/connectors"
CONNECTOR = CONNECTORS + "/{connector}"
ROUTES = [
    CONNECTOR + "/telemetry/events/{ref}",
    CONNECTOR + "/telemetry/events/latest",
    CONNECTOR + "/telemetry/events",
    CONNECTOR + "/telemetry/events/stream",
    CONNECTORS + "/telemetry/events/stream",
    CONNECTOR + "/telemetry/snapshots/{ref}",
    CONNECTOR + "/telemetry/snapshots/latest",
    CONNECTOR + "/telemetry/snapshots",
    CONNECTORS,
    CONNECTOR,
    "/client/v4/user/tokens/verify",
    "/client/v4/openapi.json",
    "/client/v4/{unknown}",
    "/metrics",
    "/healthz",
    "/readyz",
    "/",
    "/assets/{asset}",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# -- strategies -----------------------------------------------------------------------------------------------
# A path segment: digits (event references, huge numbers), percent-encoded arbitrary bytes (invalid UTF-8,
# NUL, slashes), or raw bytes that are legal in a request line.
_raw_segment = st.binary(min_size=1, max_size=40).map(
    lambda b: bytes(c for c in b if 0x21 <= c <= 0xFF and c not in b"?#%/") or b"x"
)
segment = st.one_of(
    st.sampled_from([b"{}"]),  # the real id (filled in below)
    st.text("0123456789.", min_size=1, max_size=6000).map(str.encode),
    st.binary(max_size=60).map(lambda b: quote_from_bytes(b, safe="").encode()),
    _raw_segment,
    st.sampled_from([b"%00", b"%ff%fe", b"%c0%af", b"%ed%a0%80", b"1e999.1", b"9" * 5000 + b".1", b"%", b"%zz"]),
)
query = st.one_of(
    st.just(b""),
    st.binary(max_size=200).map(lambda b: bytes(c for c in b if 0x21 <= c <= 0xFF and c != ord("#"))),
    st.lists(
        st.tuples(
            st.sampled_from(["from", "to", "limit", "k", "cursor", "device_type", "x", "from"]),
            st.one_of(
                st.integers(min_value=-(2**70), max_value=2**70).map(str),
                st.text(max_size=30),
                st.just("9" * 5000),
                st.just("1e999"),
            ),
        ),
        max_size=5,
    ).map(
        lambda pairs: "&".join(
            f"{quote_from_bytes(k.encode())}={quote_from_bytes(v.encode())}" for k, v in pairs
        ).encode()
    ),
)
# Header values: any byte but CR, LF (those would end the header, not be in it).
header_value = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"9" * 30, b"9" * 5000, b"-1", b"1e3", b"\xff\xfe", b"\x00", b"Bearer \x00", b"a\x00@b.cc"]),
)
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
any_json = st.recursive(
    JSON_LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
KIND_NAMES = [kind.name for kind in KINDS]
event_like = st.fixed_dictionaries(
    {},
    optional={
        "t": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), any_json),
        "n": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), any_json),
        "e": st.one_of(
            st.fixed_dictionaries({"k": st.sampled_from(KIND_NAMES)}, optional={"url": any_json}).flatmap(
                lambda e: st.dictionaries(st.text(max_size=10), any_json, max_size=3).map(lambda extra: {**extra, **e})
            ),
            any_json,
        ),
        "v": st.one_of(st.text(max_size=20), any_json),
    },
)
connector_like = st.fixed_dictionaries(
    {},
    optional={
        **{name: any_json for name in ConnectorEdit.__struct_fields__},
        "device": st.one_of(
            any_json,
            st.fixed_dictionaries(
                {}, optional={"id": any_json, "serial_number": any_json, "provision_license": any_json}
            ),
        ),
        "timezone": st.one_of(st.text(max_size=40), st.sampled_from(["UTC", "Europe/Lisbon", "../../etc/passwd"])),
        "interrupt_window_embargo_dates": st.lists(st.one_of(st.text(max_size=12), st.just("2026-02-30")), max_size=4),
    },
)
body = st.one_of(
    st.binary(max_size=300),
    any_json.map(msgspec.json.encode),
    st.lists(event_like, max_size=3).map(msgspec.json.encode),
    connector_like.map(msgspec.json.encode),
    st.sampled_from(
        [
            b'[{"t":1,"n":0,"e":{"k":"Reconcile","x":"\xff"}}]',
            b"[" * 3000 + b"]" * 3000,
            b'{"x":' * 3000 + b"1" + b"}" * 3000,
            b'[{"t":1,"n":0,"e":{"k":"Reconcile","x":"\\ud800"}}]',
            b'[{"t":1,"n":0,"e":{"k":"Reconcile","x":"a\\u0000b"}}]',
            b'[{"t":1,"n":0,"e":{"k":"Reconcile"},"v":"a\\u0000"}]',
            b'{"notes":"a\\u0000b"}',
        ]
    ),
)


# -- one raw request, one parsed answer -------------------------------------------------------------------------
def exchange(
    world: World, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], payload: bytes
) -> tuple[int, dict, bytes]:
    """Send one request on a new connection; the status, headers and body (of a streamed answer: none)."""
    lines = [b"%s %s HTTP/1.1" % (method, target), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if payload or method in (b"POST", b"PUT", b"PATCH"):
        lines.append(b"Content-Length: %d" % len(payload))
    with socket.create_connection(("127.0.0.1", world.server.port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + payload)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {data!r}"
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.split(b"\r\n")
        status = int(status_line.split(b" ")[1])
        answer_headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            answer_headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        if method == b"HEAD" or "content-length" not in answer_headers:
            return status, answer_headers, b""  # no body, or a stream (left open: this closes it)
        length = int(answer_headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, answer_headers, rest[:length]


def check(answer: tuple[int, dict, bytes], method: bytes, target: bytes, sent: bytes = b"") -> None:
    status, _, payload = answer
    assert status < 500, (status, method, target[:300], sent[:300], payload[:300])
    api = target.startswith(b"/client/v4")
    if api and status >= 400 and payload:
        envelope = json.loads(payload)
        assert envelope["success"] is False and envelope["result"] is None and envelope["messages"] == []
        assert isinstance(envelope["errors"][0]["code"], int) and envelope["errors"][0]["message"]


def fill(world: World, template: str, parts: list[bytes]) -> bytes:
    """A route template with its placeholders replaced by the drawn segments ({} in one stands for the real id)."""
    real = {"account": world.account.encode(), "connector": world.connector.encode(), "ref": b"1700000000.0"}
    out = template.encode()
    for name, part in zip(("account", "connector", "ref", "unknown", "asset"), parts, strict=True):
        placeholder = b"{" + name.encode() + b"}"
        out = out.replace(placeholder, part.replace(b"{}", real.get(name, b"x")))
    return out


def credentials(world: World) -> st.SearchStrategy[list[tuple[bytes, bytes]]]:
    valid = [
        (b"Authorization", b"Bearer " + world.write_token.encode()),
        (b"Authorization", b"Bearer " + world.read_token.encode()),
        (b"X-Auth-Email", world.email.encode()),
        (b"X-Auth-Key", world.api_key.encode()),
    ]
    names = st.sampled_from(
        [b"Authorization", b"X-Auth-Email", b"X-Auth-Key", b"Last-Event-ID", b"Content-Type", b"X-Other"]
    )
    # A well-formed-looking global key pair whose email holds any byte: it reaches the credential lookup.
    key_pair = st.tuples(header_value, st.sampled_from([world.api_key.encode(), b"0" * 32])).map(
        lambda drawn: [(b"X-Auth-Email", drawn[0].replace(b"@", b"") + b"@example.com"), (b"X-Auth-Key", drawn[1])]
    )
    single = st.lists(st.one_of(st.sampled_from(valid), st.tuples(names, header_value)), max_size=4)
    return st.one_of(single, key_pair, st.tuples(single, key_pair).map(lambda both: both[0] + both[1]))


def assert_clean_log(world: World) -> None:
    log = world.server.server_log()
    failures = [line[:300] for line in log.splitlines() if "Error" in line or "unexpected error" in line]
    assert "Traceback" not in log and "unexpected error" not in log, failures[-20:]


# -- the properties ---------------------------------------------------------------------------------------------
@pytest.fixture
def fuzz_world(world: World) -> World:
    yield world
    assert_clean_log(world)


def test_arbitrary_requests_on_every_route_are_never_a_500(fuzz_world: World):
    world = fuzz_world

    @FUZZ
    @given(
        route=st.sampled_from(ROUTES),
        parts=st.lists(segment, min_size=5, max_size=5),
        method=st.one_of(st.sampled_from(METHODS).map(str.encode), st.sampled_from([b"FOO", b"get", b"PROPFIND"])),
        qs=query,
        headers=credentials(world),
        payload=body,
    )
    def property(route: str, parts: list[bytes], method: bytes, qs: bytes, headers: list, payload: bytes) -> None:
        target = fill(world, route, parts) + (b"?" + qs if qs else b"")
        check(exchange(world, method, target, headers, payload), method, target, payload)

    property()


def test_arbitrary_json_bodies_with_valid_credentials_are_never_a_500(fuzz_world: World):
    world = fuzz_world
    connector = world.new_connector()  # a connector of its own: these bodies may edit or delete it
    events = f"/client/v4/accounts/{world.account}/magic/connectors/{connector}/telemetry/events"
    targets = [
        (b"POST", events.encode()),
        (b"POST", events.removesuffix("/events").encode() + b"/snapshots"),
        (b"POST", f"/client/v4/accounts/{world.account}/magic/connectors".encode()),
        (b"PUT", f"/client/v4/accounts/{world.account}/magic/connectors/{connector}".encode()),
        (b"PATCH", f"/client/v4/accounts/{world.account}/magic/connectors/{connector}".encode()),
    ]
    auth = [(b"Authorization", b"Bearer " + world.write_token.encode()), (b"Content-Type", b"application/json")]

    @FUZZ
    @given(where=st.sampled_from(targets), payload=body)
    def property(where: tuple[bytes, bytes], payload: bytes) -> None:
        method, target = where
        check(exchange(world, method, target, auth, payload), method, target, payload)

    property()


def test_arbitrary_reads_with_valid_credentials_are_never_a_500(fuzz_world: World):
    world = fuzz_world
    base = f"/client/v4/accounts/{world.account}/magic/connectors/{world.connector}/telemetry/events"
    streams = [base + "/stream", f"/client/v4/accounts/{world.account}/magic/connectors/telemetry/events/stream"]
    snapshots = [base.removesuffix("/events") + "/snapshots", base.removesuffix("/events") + "/snapshots/latest"]
    auth = (b"Authorization", b"Bearer " + world.read_token.encode())

    @FUZZ
    @given(
        path=st.sampled_from([base, base + "/latest", *streams, *snapshots]),
        qs=query,
        last_event_id=st.one_of(
            st.none(), header_value, st.integers(min_value=-(2**70), max_value=2**70).map(lambda i: str(i).encode())
        ),
        ref=segment,
    )
    def property(path: str, qs: bytes, last_event_id: bytes | None, ref: bytes) -> None:
        headers = [auth] + ([(b"Last-Event-ID", last_event_id)] if last_event_id is not None else [])
        target = path.encode() + (b"?" + qs if qs else b"")
        check(exchange(world, b"GET", target, headers, b""), b"GET", target)
        ref_target = base.encode() + b"/" + ref.replace(b"{}", b"1700000000.0")
        check(exchange(world, b"GET", ref_target, [auth], b""), b"GET", ref_target)
        snapshot_target = snapshots[0].encode() + b"/" + ref.replace(b"{}", b"1700000000.0")
        check(exchange(world, b"GET", snapshot_target, [auth], b""), b"GET", snapshot_target)

    property()
