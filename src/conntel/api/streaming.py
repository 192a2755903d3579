"""Streamed answers (live tails, large Latest pages and connector lists), handed to the server in small sends.

granian applies backpressure by count, not by bytes: a response's body goes through a channel of a few
sends (4 in granian 2.8), and `send()` waits once that channel and the socket's buffers are full. So what
the server process holds for a client that stops reading is about six of conntel's sends, whatever their
size: six 1 MiB parts of a page, or six 8 MiB mailboxes of a live tail. Sends of at most `SEND_BYTES` make
that a few hundred KiB per response, and leave the rest of a slow reader's backlog where conntel bounds it
(one part of a page being read; a live tail's mailbox). README: "Operating it", slow readers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import TypeVar

from starlette.responses import StreamingResponse

from conntel.store.base import fitting

SEND_BYTES = 64 << 10
# A Latest page (or a connectors list) with more bytes than this is read from the store in parts of about
# this size (or one item), each read once the server has taken the last: a slow reader holds one part.
PART_BYTES = 256 << 10

T = TypeVar("T")


class PageChanged(RuntimeError):
    """Items of a Latest page being sent were deleted meanwhile (retention, say): the response is cut off."""


def in_parts(page: Sequence[T], size: Callable[[T], int]) -> list[Sequence[T]]:
    """`page` in consecutive parts of at most PART_BYTES each (or one item)."""
    sizes = [size(item) for item in page]
    parts: list[Sequence[T]] = []
    at = 0
    while at < len(page):
        count = fitting(sizes[at:], PART_BYTES)
        parts.append(page[at : at + count])
        at += count
    return parts


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
