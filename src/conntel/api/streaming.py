"""Streamed answers (live tails, large Latest Events pages), handed to the HTTP server in small sends.

granian applies backpressure by count, not by bytes: a response's body goes through a channel of a few
sends (4 in granian 2.8), and `send()` waits once that channel and the socket's buffers are full. So what
the server process holds for a client that stops reading is about six of conntel's sends, whatever their
size: six 1 MiB parts of a page, or six 8 MiB mailboxes of a live tail. Sends of at most `SEND_BYTES` make
that a few hundred KiB per response, and leave the rest of a slow reader's backlog where conntel bounds it
(one part of a page being read; a live tail's mailbox). README, "Slow readers".
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

from starlette.responses import StreamingResponse

SEND_BYTES = 64 << 10


def streamed(
    parts: AsyncGenerator[bytes, None], media_type: str, headers: Mapping[str, str] | None = None
) -> StreamingResponse:
    """A chunked response of `parts`, each handed to the server in sends of at most SEND_BYTES."""
    return StreamingResponse(in_sends(parts), media_type=media_type, headers=headers)


async def in_sends(parts: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    # Closed with the response (a client gone, say), so that `parts` runs its own cleanup then.
    async with contextlib.aclosing(parts):
        async for part in parts:
            if len(part) <= SEND_BYTES:
                yield part
            else:
                # Byte strings, as ASGI specifies a body: one short-lived copy of a send's worth at a time.
                for at in range(0, len(part), SEND_BYTES):
                    yield part[at : at + SEND_BYTES]
