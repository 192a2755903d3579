"""A client that hangs up mid-body is no server error: 499 in the access log and metrics, one log line, no traceback."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable

import httpx
from helpers import World, read_response


def requests_counted(world: World, route: str, status: int) -> float:
    text = httpx.get(world.server.origin + "/metrics").text
    pattern = re.compile(
        r'^conntel_requests_total\{method="POST",route="'
        + re.escape(route)
        + r'",status="'
        + str(status)
        + r'"\} (\S+)$',
        re.M,
    )
    match = pattern.search(text)
    return float(match.group(1)) if match else 0.0


def send_and_hang_up(world: World, path: str, head: bytes, body: bytes, answered: bool = False) -> bytes:
    """Send a request's head and part of its body, read what comes back within a moment (or, when an
    answer is `answered`, the whole answer however long the server takes), then hang up."""
    with socket.create_connection(("127.0.0.1", world.server.port), timeout=5) as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s\r\n%s"
                     % (path.encode(), world.write_token.encode(), head, body))  # fmt: skip
        if answered:
            return read_response(sock)
        sock.settimeout(0.3)
        try:
            return sock.recv(4096)
        except TimeoutError:
            return b""


def logged_statuses(world: World, marker: str) -> list[int]:
    return [
        json.loads(line)["status"]
        for line in world.server.server_log().splitlines()
        if marker in line and line.startswith("{")
    ]


def wait_for(condition: Callable[[], object], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_hanging_up_mid_body_is_499_and_so_is_a_malformed_chunked_body(world: World):
    connector = world.new_connector()  # a path of its own, to find its log lines
    path = f"/client/v4/accounts/{world.account}/magic/connectors/{connector}/telemetry/events"
    route = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events"
    before_499, before_500 = requests_counted(world, route, 499), requests_counted(world, route, 500)

    # Content-Length 1000, ten bytes, gone.
    assert send_and_hang_up(world, path, b"Content-Length: 1000\r\n", b'[{"t":1,"n"') == b""
    # A chunked body cut off mid-chunk, gone.
    assert send_and_hang_up(world, path, b"Transfer-Encoding: chunked\r\n", b'5\r\n[{"t"\r\n') == b""
    # A malformed chunked body: granian tells the app no more than it does of a hang-up, so the client,
    # still there, reads the same 499 envelope (20018), and the connection is closed.
    answer = send_and_hang_up(world, path, b"Transfer-Encoding: chunked\r\n", b'5\r\n[{"t"\r\nzz\r\nabc', answered=True)
    assert answer.startswith(b"HTTP/1.1 499 ") and b'"code":20018' in answer

    wait_for(lambda: len(logged_statuses(world, connector)) == 3)
    assert logged_statuses(world, connector) == [499, 499, 499]
    wait_for(lambda: requests_counted(world, route, 499) == before_499 + 3)
    assert requests_counted(world, route, 500) == before_500 == 0
    log = world.server.server_log()
    assert log.count(f"client closed request on POST /accounts/{world.account}/magic/connectors/{connector}/") == 3
    assert "Traceback" not in log and "unexpected error" not in log


def test_hanging_up_on_a_connector_body_too(world: World):
    path = f"/client/v4/accounts/{world.account}/magic/connectors"
    before = requests_counted(world, "/accounts/{account_id}/magic/connectors", 499)
    assert send_and_hang_up(world, path, b"Content-Length: 500\r\n", b'{"device"') == b""
    wait_for(lambda: requests_counted(world, "/accounts/{account_id}/magic/connectors", 499) == before + 1)
    assert "Traceback" not in world.server.server_log()
