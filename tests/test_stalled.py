"""The look for stalled readers (conntel.server.stalled), on real connections of this process: what it resets,
what it leaves alone, and that it never closes or leaks a file descriptor. The server end to end:
tests/test_response_bounds.py."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

import pytest
from helpers import wait_for

from conntel.api.observability import Metrics
from conntel.server.stalled import StalledReaders

TIMEOUT = 30.0


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def connection(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """(client, the server's end), the client with a small receive buffer."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(listener.getsockname())
    accepted, _ = listener.accept()
    return client, accepted


def fill(sock: socket.socket) -> int:
    """Write to `sock` until its buffers (and its peer's) are full; the bytes written."""
    sock.setblocking(False)
    written = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            written += sock.send(b"x" * 65536)
    return written


def resets(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("conntel_send_timeouts_total") or 0.0


def readable(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_connection_whose_client_reads_nothing_is_reset_after_the_timeout_and_nothing_else(listener):
    port = listener.getsockname()[1]
    stalled_client, stalled = connection(listener)
    idle_client, idle = connection(listener)  # nothing waiting for its client: never a stalled reader
    # A connection of this process to another port (as to the database) with bytes waiting: not the server's.
    with socket.create_server(("127.0.0.1", 0)) as elsewhere:
        outgoing, far_end = connection(elsewhere)
        with stalled_client, stalled, idle_client, idle, outgoing, far_end:
            assert fill(stalled) > 0 and fill(outgoing) > 0
            metrics = Metrics()
            watch = StalledReaders(port, TIMEOUT, metrics)
            fds = open_fds()
            watch.look(1000.0)
            watch.look(1000.0 + TIMEOUT - 0.5)
            assert resets(metrics) == 0
            assert stalled.send(b"") == 0  # still open
            watch.look(1000.0 + TIMEOUT)
            assert resets(metrics) == 1
            with pytest.raises(BrokenPipeError):  # its writes fail: granian drops such a connection
                stalled.send(b"x")
            watch.look(1000.0 + 2 * TIMEOUT)
            assert resets(metrics) == 1  # counted (and logged) once
            # The others are as they were, and no descriptor was closed or left open by the looks.
            assert idle.send(b"y") == 1 and outgoing.getpeername() == far_end.getsockname()
            assert open_fds() == fds
            stalled.close()  # the server's own close: an RST (SO_LINGER 0), the unsent bytes dropped
            with pytest.raises(ConnectionResetError):
                while stalled_client.recv(65536):
                    pass


def test_a_client_that_reads_a_little_between_looks_is_never_reset(listener):
    port = listener.getsockname()[1]
    client, accepted = connection(listener)
    with client, accepted:
        fill(accepted)
        metrics = Metrics()
        watch = StalledReaders(port, TIMEOUT, metrics)
        now = 1000.0
        for _ in range(6):  # three timeouts' worth of looks, the client reading a little before each
            watch.look(now)
            assert client.recv(65536)
            # What it read made room: the server's kernel sends more, which the client acknowledges.
            assert wait_for(lambda: readable(client))
            now += TIMEOUT / 2
        assert resets(metrics) == 0
        assert accepted.send(b"") == 0
