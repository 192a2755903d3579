"""A minimal HTTP/1.1 keep-alive client for the soak: raw request bytes in, (status, body) out.

httpx costs ~2 ms of client CPU a request, which at hundreds of requests a
second on 2 shared cores would be measured as the server's latency. This
client sends requests built beforehand and reads answers framed by
Content-Length (all conntel answers are); anything else is an error.
"""

from __future__ import annotations

import asyncio
import re

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.I)


class ProtocolError(Exception):
    pass


def build_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.reusable = True

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 "):
            raise ProtocolError(f"not an HTTP/1.1 answer: {head[:80]!r}")
        length = _LENGTH.search(head)
        if length is None:
            raise ProtocolError(f"an answer without Content-Length: {head[:200]!r}")
        body = await self.reader.readexactly(int(length.group(1)))
        self.reusable = _CLOSE.search(head) is None
        return int(head[9:12]), body

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Up to `size` connections, opened on demand; a request waits for a free one beyond that."""

    def __init__(self, host: str, port: int, size: int):
        self.host, self.port, self.size = host, port, size
        self._idle: asyncio.Queue[Connection | None] = asyncio.Queue()
        self._open = 0

    async def _acquire(self) -> Connection:
        if self._idle.empty() and self._open < self.size:
            self._open += 1  # a new slot
        else:
            conn = await self._idle.get()
            if conn is not None:
                return conn
            # None: a slot whose connection was dropped; open another in its place
        try:
            return Connection(*await asyncio.open_connection(self.host, self.port))
        except BaseException:
            self._idle.put_nowait(None)  # the slot stays, for the next request to try again
            raise

    async def request(self, raw: bytes, timeout: float) -> tuple[int, bytes]:  # noqa: ASYNC109 (a per-request bound)
        conn = await self._acquire()
        try:
            async with asyncio.timeout(timeout):
                return await conn.request(raw)
        except BaseException:
            conn.reusable = False  # in an unknown state: half an answer may be unread
            raise
        finally:
            if conn.reusable:
                self._idle.put_nowait(conn)
            else:
                conn.close()
                self._idle.put_nowait(None)

    async def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None:
                conn.close()
