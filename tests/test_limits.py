"""Limits that protect the server: header size and time, body time, open connections, malformed HTTP.

The body's limits are conntel's (v4 envelopes); the connection's are granian's, which answer with an
empty body or close (README, "Operations"). A burst of bad clients does not starve good ones.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import Server, World, bearer, build_world, read_response

T0 = 1_700_000_000


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory):
    """A server with small limits, so the tests are quick."""
    tmp = tmp_path_factory.mktemp("limits")
    world = build_world(tmp)
    world.server.stop()
    server = Server(
        world.db,
        log_dir=tmp,
        extra_args=(
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--max-connections",
            "40",
            "--max-header-bytes",
            "8192",  # the least granian's buffer takes
        ),
    ).start()
    world.server = server
    yield world
    server.stop()


def raw_received(world: World, data: bytes, wait: float = 5) -> bytes:
    """Send raw bytes; return all that comes back until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", world.server.port), timeout=wait) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def raw_exchange(world: World, data: bytes, wait: float = 5) -> tuple[int, dict, bytes]:
    """Send raw bytes; return the status, headers and body of the answer."""
    head, _, body = raw_received(world, data, wait).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def envelope_code(body: bytes) -> int:
    parsed = json.loads(body)
    assert parsed["success"] is False and parsed["result"] is None and parsed["messages"] == []
    return parsed["errors"][0]["code"]


def get_event_request(world: World, extra_headers: str = "") -> bytes:
    path = f"/client/v4/accounts/{world.account}/magic/connectors/{world.connector}/telemetry/events/{T0}.0"
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {world.read_token}\r\n"
        f"{extra_headers}Connection: close\r\n\r\n"
    ).encode()


def test_normal_request_passes(guarded: World):
    status, _headers, body = raw_exchange(guarded, get_event_request(guarded))
    assert status == 404 and envelope_code(body) == 20001  # a clean answer: no such event


def test_oversized_headers_are_431_and_closed(guarded: World):
    status, headers, body = raw_exchange(guarded, get_event_request(guarded, f"X-Big: {'a' * 9000}\r\n"))
    assert status == 431 and headers["connection"] == "close" and body == b""  # granian's own answer


def test_headers_that_keep_growing_are_431_before_they_end(guarded: World):
    head = get_event_request(guarded).replace(b"Connection: close\r\n\r\n", b"X-Big: ")
    with socket.create_connection(("127.0.0.1", guarded.server.port), timeout=5) as sock:
        sock.sendall(head + b"a" * 3000)
        for _ in range(2):  # one header value, in reads of their own (well within --header-timeout), never finished
            time.sleep(0.15)
            sock.sendall(b"a" * 3000)  # the last one crosses the cap: nothing is sent after the refusal
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_pipelined_request_after_a_big_body_is_not_taken_for_oversized_headers(guarded: World):
    # One read can end one request's large body and begin the next request's headers: only the latter count.
    batch = json.dumps([{"t": T0, "n": i, "e": {"k": "Reconcile", "pad": "x" * 200}} for i in range(60)]).encode()
    assert len(batch) > 8192  # the server's header cap
    post = (
        f"POST /client/v4/accounts/{guarded.account}/magic/connectors/{guarded.connector}/telemetry/events "
        f"HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guarded.write_token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(batch)}\r\n\r\n"
    ).encode() + batch
    get = get_event_request(guarded).replace(b".0 HTTP", b".59 HTTP")
    with socket.create_connection(("127.0.0.1", guarded.server.port), timeout=5) as sock:
        sock.sendall(post + get[:40])
        time.sleep(0.3)  # the rest of the second request's headers in a later read
        sock.sendall(get[40:])
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", received) == [b"200", b"200"], received[:300]
    assert json.loads(received.rpartition(b"\r\n\r\n")[2])["result"]["n"] == 59  # the event the first one wrote


def test_malformed_http_is_400_and_closed(guarded: World):
    status, headers, body = raw_exchange(guarded, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400 and headers["connection"] == "close" and body == b""  # granian's own answer


def test_headers_that_never_finish_are_cut_off(guarded: World):
    started = time.monotonic()
    assert raw_received(guarded, b"GET /client/v4 HTTP/1.1\r\nHost: x\r\n", wait=10) == b""  # closed, unanswered
    assert time.monotonic() - started < 5
    # An idle connection that sends nothing at all is closed too, and so is one idle after a request.
    started = time.monotonic()
    assert raw_received(guarded, b"", wait=10) == b""
    with socket.create_connection(("127.0.0.1", guarded.server.port), timeout=10) as sock:
        sock.sendall(get_event_request(guarded).replace(b"Connection: close\r\n", b""))
        answer = read_response(sock)
        assert re.match(rb"HTTP/1\.1 (200|404) ", answer) and sock.recv(65536) == b""
    assert time.monotonic() - started < 10


def test_a_body_that_stalls_is_408(guarded: World):
    head = (
        f"POST /client/v4/accounts/{guarded.account}/magic/connectors/{guarded.connector}/telemetry/events "
        f"HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guarded.write_token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 1000\r\n\r\n["
    ).encode()
    status, headers, body = raw_exchange(guarded, head, wait=10)
    assert status == 408 and envelope_code(body) == 20015
    assert headers.get("connection") == "close"


def test_connections_beyond_the_cap_wait_until_others_close(guarded: World, tmp_path: Path):
    # A server of its own, whose idle connections are not cut off while the test holds them.
    server = Server(guarded.db, log_dir=tmp_path, extra_args=("--max-connections", "5", "--header-timeout", "60"))
    world = World(**{**vars(guarded), "server": server.start()})
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(5)]
    try:
        for sock in held:  # each served once, then kept open (keep-alive): every one holds its place
            sock.sendall(get_event_request(world).replace(b"Connection: close\r\n", b""))
            assert re.match(rb"HTTP/1\.1 (200|404) ", read_response(sock))
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as late:
            late.sendall(get_event_request(world))
            late.settimeout(0.5)
            with pytest.raises(TimeoutError):
                late.recv(65536)  # not served while 5 connections are open
            for sock in held:
                sock.close()
            late.settimeout(5)
            assert re.match(rb"HTTP/1\.1 (200|404) ", read_response(late))  # served once they closed
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_a_burst_of_slow_and_oversized_clients_does_not_starve_normal_ones(guarded: World):
    stop = threading.Event()
    slow: list[socket.socket] = []

    def slowloris() -> None:
        while not stop.is_set() and len(slow) < 25:
            sock = socket.create_connection(("127.0.0.1", guarded.server.port))
            sock.sendall(b"GET /client/v4 HTTP/1.1\r\nHost: x\r\n")  # and never more
            slow.append(sock)

    def oversized() -> None:
        with httpx.Client(headers=bearer(guarded.write_token)) as client:
            while not stop.is_set():
                client.post(guarded.events_url(), content=b"[" + b" " * (9 * 1024 * 1024) + b"]")

    attackers = [threading.Thread(target=slowloris), threading.Thread(target=oversized)]
    for thread in attackers:
        thread.start()
    try:
        latencies = []
        for _ in range(30):
            started = time.monotonic()
            response = httpx.get(f"{guarded.events_url()}/{T0}.0", headers=bearer(guarded.read_token), timeout=5)
            latencies.append(time.monotonic() - started)
            assert response.status_code in (200, 404)
        assert sorted(latencies)[len(latencies) // 2] < 0.5  # normal requests keep being served promptly
    finally:
        stop.set()
        for thread in attackers:
            thread.join()
        for sock in slow:
            sock.close()


def test_limits_apply_in_every_worker_process(tmp_path: Path):
    world = build_world(tmp_path)
    world.server.stop()
    server = Server(world.db, log_dir=tmp_path, extra_args=("--workers", "2", "--max-header-bytes", "8192")).start()
    try:
        world.server = server
        for _ in range(4):
            status, _, _ = raw_exchange(world, get_event_request(world, f"X-Big: {'a' * 9000}\r\n"))
            assert status == 431
        # Under the cap the same request is answered.
        status, _, _ = raw_exchange(world, get_event_request(world, f"X-Small: {'a' * 3000}\r\n"))
        assert status == 404
    finally:
        server.stop()
