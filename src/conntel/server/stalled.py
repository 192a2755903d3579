"""Connections whose client stopped reading: reset after `--send-timeout` seconds, since granian never gives up.

granian (hyper underneath) writes a response as fast as its client reads it and has no write timeout: a
client that stops reading keeps its connection, its request's task and whatever the response holds, and
counts against `--max-connections`, for as long as it stays connected. The app cannot end that by itself:
a whole answer is handed over in one send that never waits, the last sends of a streamed one are taken
before the client has them, and when the app abandons a response granian still keeps the connection until
the client reads what was sent (granian 2.8.7, verified). So each server process watches the connections
it accepted, from the kernel's side: one with bytes unacknowledged whose client has acknowledged none for
`--send-timeout` seconds is reset (SO_LINGER 0, then shutdown). hyper's next write fails and it drops the
connection; the request's pending send returns and its task is cancelled (granian reports the disconnect);
the kernel discards what the socket held. Linux only (/proc/self/fd, TCP_INFO); elsewhere nothing is
watched. A look costs a few system calls per open file (10-20 ms for 1,000 connections, measured), in a
thread of its own so that the event loop is never stalled that long. README: "Operating it", slow readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import struct
import termios
import time

from conntel.api.observability import Metrics

log = logging.getLogger("conntel")

# struct tcp_info (linux/tcp.h): the state is its first byte, tcpi_bytes_acked (Linux 4.1+) a u64 at 120.
_STATE, _BYTES_ACKED, _TCP_INFO_BYTES = 0, 120, 128
_WATCHED_STATES = (1, 8)  # ESTABLISHED, CLOSE_WAIT (the client shut its side but may still read)
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() discards what is unsent and sends RST
# How often the connections are looked at, at most (a quarter of the timeout when that is less): a stalled
# one is reset within the timeout plus two looks of its client's last read.
LOOK_SECONDS = 5.0


class StalledReaders:
    """This process's accepted connections on `port`, looked at every `every` seconds; each one whose client
    acknowledged nothing for `seconds` while bytes wait for it is reset, counted and logged once."""

    def __init__(self, port: int, seconds: float, metrics: Metrics):
        self.port = port
        self.seconds = seconds
        self.every = min(LOOK_SECONDS, max(seconds / 4, 0.1))
        self.metrics = metrics
        # Connections with bytes waiting, by (fd, client address): (bytes acknowledged, since when).
        self._progress: dict[tuple[int, object], tuple[int, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if os.path.isdir("/proc/self/fd"):
            self._task = asyncio.create_task(self._run(), name="stalled readers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await asyncio.to_thread(self.look, time.monotonic())
            except Exception:  # never the server's end: the next look tries again
                log.exception("looking for stalled readers failed")

    def look(self, now: float) -> None:
        progress: dict[tuple[int, object], tuple[int, float]] = {}
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                # Borrowed, only to read figures (detached below: granian's fd is never closed here).
                sock = socket.socket(fileno=fd)
            except OSError:  # not a socket, or closed meanwhile
                continue
            try:
                state = self._state(sock)
                if state is None:
                    continue
                key, waiting, acked = (fd, sock.getpeername()), state[0], state[1]
            except OSError:  # a connection that ended meanwhile
                continue
            finally:
                sock.detach()
            previous = self._progress.get(key)
            since = previous[1] if previous is not None and previous[0] == acked else now
            if now - since < self.seconds:
                progress[key] = (acked, since)
            elif self._reset(*key):
                self.metrics.send_timeouts.inc()
                log.warning(
                    "a client read nothing for %g s with %d bytes waiting for it: its connection was reset"
                    " (--send-timeout)", self.seconds, waiting,
                )  # fmt: skip
        self._progress = progress

    def _state(self, sock: socket.socket) -> tuple[int, int] | None:
        """For a connection this server accepted (not its listening socket, nor one to the database) with bytes
        waiting for its client (sent but unacknowledged, or unsent): those bytes, and the bytes it acknowledged."""
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            return None
        if sock.getsockname()[1] != self.port:
            return None
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
        if len(info) < _BYTES_ACKED + 8 or info[_STATE] not in _WATCHED_STATES:
            return None  # (a kernel without tcpi_bytes_acked: before Linux 4.1)
        waiting = int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
        return (waiting, int(struct.unpack_from("Q", info, _BYTES_ACKED)[0])) if waiting else None

    def _reset(self, fd: int, client: object) -> bool:
        """Reset the connection on `fd` if it is still the one with `client`: its own duplicate is checked and
        acted on, so a connection that ended meanwhile (its fd reused) is left alone."""
        try:
            with _duplicate(fd) as sock:
                if sock.getpeername() != client or sock.getsockname()[1] != self.port:
                    return False
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                sock.shutdown(socket.SHUT_RDWR)
                return True
        except OSError:
            return False


def _duplicate(fd: int) -> socket.socket:
    duplicate = os.dup(fd)
    try:
        return socket.socket(fileno=duplicate)
    except BaseException:
        os.close(duplicate)
        raise
