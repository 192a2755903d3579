"""Live tails at scale: one store poll per account per process, and a slow reader never holds up the others."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time

import httpx
import pytest
from helpers import World, bearer, post_events, wait_for
from test_stream import SseReader, stream_url

from conntel.api.livefeed import MAILBOX_BYTES, Ended, Watcher

T0 = 1_700_300_000


def metric(world: World, name: str) -> float:
    text = httpx.get(world.server.origin + "/metrics").text
    found = re.search(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def events(start: int, count: int, pad: int = 0) -> list[dict]:
    return [
        {"t": T0 + start + i, "n": 0, "e": {"k": "Reconcile", "i": start + i, **({"pad": "p" * pad} if pad else {})}}
        for i in range(count)
    ]


def test_many_streams_of_one_account_share_one_store_poll(world: World):
    connectors = [world.new_connector() for _ in range(3)]
    assert wait_for(lambda: metric(world, "conntel_live_streams") == 0)  # earlier tests' streams are gone
    readers = [SseReader(stream_url(world), bearer(world.read_token)) for _ in range(12)]
    readers += [SseReader(stream_url(world, connector), bearer(world.read_token)) for connector in connectors * 4]
    try:
        assert wait_for(lambda: metric(world, "conntel_live_streams") == len(readers))
        assert metric(world, "conntel_live_feeds") == 1
        polls = metric(world, "conntel_live_polls_total")
        time.sleep(1.0)
        # One feed polls about four times a second; a poll per stream would be 24 times as many.
        assert metric(world, "conntel_live_polls_total") - polls < len(readers)

        for connector in connectors:
            post_events(world, events(0, 5), connector=connector).raise_for_status()
        for reader in readers[:12]:  # the account's streams: every connector's events, in commit order
            got = reader.take(15, within=5)
            assert [m["data"]["connector_id"] for m in got] == [c for c in connectors for _ in range(5)]
            assert [m["id"] for m in got] == sorted(m["id"] for m in got)
        for reader, connector in zip(readers[12:], connectors * 4, strict=True):
            got = reader.take(5, within=5)
            assert {m["data"]["connector_id"] for m in got} == {connector}
            assert [m["data"]["t"] for m in got] == [T0 + i for i in range(5)]
    finally:
        for reader in readers:
            reader.close()
    # The last stream gone, the feed stops polling.
    assert wait_for(lambda: metric(world, "conntel_live_feeds") == 0 and metric(world, "conntel_live_streams") == 0)


def test_a_stream_resumed_from_the_past_catches_up_then_follows_the_feed(world: World):
    connector = world.new_connector()
    live = SseReader(stream_url(world, connector), bearer(world.read_token))
    try:
        post_events(world, events(100, 30), connector=connector).raise_for_status()
        first = live.take(30)
        resume_from = first[9]["id"]
        resumed = SseReader(
            stream_url(world, connector), {**bearer(world.read_token), "Last-Event-ID": str(resume_from)}
        )
        try:
            post_events(world, events(130, 10), connector=connector).raise_for_status()
            got = resumed.take(30)
            assert [m["data"]["t"] for m in got] == [T0 + 110 + i for i in range(30)]  # no gap, no repeat
            assert resumed.nothing_more(0.5)
        finally:
            resumed.close()
    finally:
        live.close()


def _raw_stream(world: World, url: str, last_event_id: int | None = None) -> socket.socket:
    """A stream that is not read: a tiny receive window, so the server's writes back up at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", world.server.port))
    path = url.split(str(world.server.port), 1)[1]
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {world.read_token}\r\n{resume}\r\n".encode())
    return sock


def _read_until_ended(sock: socket.socket, within: float = 30) -> bytes:
    """Everything the stream sends, through its `event: error` message (or until `within` seconds pass)."""
    sock.settimeout(1)
    chunks: list[bytes] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            if re.search(rb"event: error\r?\ndata: [^\r\n]*\r?\n\r?\n", b"".join(chunks[-2:])):
                break
    return b"".join(chunks)


# A stream that stops reading holds, before its mailbox (MAILBOX_BYTES) fills: the kernel's socket buffers (up
# to net.ipv4.tcp_wmem's largest, 4 MiB by default), granian's few small sends (api/streaming.py) and the one
# delivery being sent. This many bytes of events are well beyond all of it.
STOPPED_READER_BYTES = MAILBOX_BYTES + (16 << 20)


def test_a_stream_whose_client_stops_reading_ends_fell_behind_and_no_one_else_misses_anything(world: World):
    """The stopped stream's backlog is bounded by conntel's mailbox, not left to the HTTP server: it ends with
    `fell_behind` and the Last-Event-ID that brings the rest; the account's other streams get every event."""
    connector = world.new_connector()
    url = stream_url(world, connector)
    ended_before = metric(world, 'conntel_live_stream_endings_total{reason="fell_behind"}')
    stopped = _raw_stream(world, url)
    fast = SseReader(url, bearer(world.read_token))
    whole_account = SseReader(stream_url(world), bearer(world.read_token))
    try:
        assert wait_for(lambda: metric(world, "conntel_live_streams") >= 3)
        pad = 500_000
        sent = events(1000, STOPPED_READER_BYTES // pad + 1, pad=pad)
        for part in range(0, len(sent), 5):
            post_events(world, sent[part : part + 5], connector=connector).raise_for_status()
        got = fast.take(len(sent), within=60)  # everything, undelayed by the stopped stream
        assert [m["data"]["t"] for m in got] == [e["t"] for e in sent]
        assert [m["id"] for m in whole_account.take(len(sent), within=60)] == [m["id"] for m in got]
        text = _read_until_ended(stopped).decode("utf-8", "replace")
    finally:
        stopped.close()
        fast.close()
        whole_account.close()
    delivered = [int(i) for i in re.findall(r"^id: (\d+)\r?\nevent: event", text, re.MULTILINE)]
    assert delivered == [m["id"] for m in got][: len(delivered)]  # in order, from the first, no gap
    assert len(delivered) < len(got)
    ended = re.search(r'event: error\r?\ndata: (.*"reason":"fell_behind".*)', text)
    assert ended is not None, text[-500:]
    assert '"code":20090' in ended.group(1)
    resume_from = int(re.search(r"Last-Event-ID: (\d+)", ended.group(1)).group(1))
    assert not delivered or delivered[-1] == resume_from
    assert metric(world, 'conntel_live_stream_endings_total{reason="fell_behind"}') >= ended_before + 1
    rest = SseReader(url, {**bearer(world.read_token), "Last-Event-ID": str(resume_from)})
    try:
        expected = [m for m in got if m["id"] > resume_from]
        assert [m["id"] for m in rest.take(len(expected), within=30)] == [m["id"] for m in expected]
    finally:
        rest.close()


def test_a_mailbox_that_fills_ends_its_stream_and_frees_its_messages():
    """The bound itself (api/livefeed.py): past MAILBOX_BYTES unread, the watcher ends as `fell_behind`."""
    watcher = Watcher(None, {}, 0)
    part = b"x" * (1 << 20)
    for seq in range(1, MAILBOX_BYTES // len(part) + 1):
        watcher.offer(seq, part)
        assert not watcher.ended
    watcher.offer(99, part)
    assert watcher.ended

    async def take() -> None:
        with pytest.raises(Ended) as ended:
            await watcher.take(0.1, 1 << 20)
        assert ended.value.refusal is None  # the stream answers with its own resume position

    asyncio.run(take())
