"""Responses sized by the data they may carry, not by what is stored: Latest Events, Latest Snapshots and the
live tail; and what the server holds for a client that reads them slowly."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path

import httpx
import pytest
from helpers import Server, World, bearer, post_events, wait_for
from test_connectors import account_of_connectors, url, whole_list
from test_snapshots import snapshot

from conntel import connectors
from conntel.connectors import ConnectorSettings
from conntel.store import open_store

T0 = 1_700_200_000
BIG = 900 * 1024  # twelve of these are more than a page may carry
PAGE_BYTES = 8 << 20  # README: Latest Events carries at most 8 MiB of payloads


def big_events(count: int) -> list[dict]:
    return [{"t": T0 + i, "n": 0, "e": {"k": "Reconcile", "i": i, "blob": "x" * BIG}} for i in range(count)]


def big_snapshots(count: int) -> list[dict]:
    return [snapshot(T0 + 60 * i, cpu_count=i, blob="s" * BIG) for i in range(count)]


def snapshots_url(world: World, connector: str) -> str:
    return world.events_url(connector).removesuffix("/events") + "/snapshots"


def post_snapshots(world: World, snapshots: list[dict], connector: str) -> None:
    for start in range(0, len(snapshots), 5):  # bodies within the 8 MiB request bound
        response = httpx.post(
            snapshots_url(world, connector), json=snapshots[start : start + 5], headers=bearer(world.write_token)
        )
        response.raise_for_status()


def payload_bytes(event: dict) -> int:
    return len(json.dumps(event["e"], separators=(",", ":")).encode())


def test_latest_events_stops_before_the_size_bound_and_says_so_by_its_count(world: World):
    connector = world.new_connector()
    events = big_events(12)
    for half in (events[:6], events[6:]):
        post_events(world, half, connector=connector).raise_for_status()
    response = httpx.get(f"{world.events_url(connector)}/latest", headers=bearer(world.read_token), timeout=30)
    assert response.status_code == 200
    result = response.json()["result"]
    fit = PAGE_BYTES // payload_bytes(events[0])
    assert fit < len(events)
    assert result["count"] == len(result["items"]) == fit
    newest_first = events[::-1][:fit]
    assert [(item["t"], item["n"]) for item in result["items"]] == [(ev["t"], ev["n"]) for ev in newest_first]
    assert all(item["e"] == ev["e"] for item, ev in zip(result["items"], newest_first, strict=True))
    assert len(response.content) <= PAGE_BYTES + 4096
    # A page this large is sent in parts as it is read, not built whole.
    assert response.headers.get("transfer-encoding") == "chunked"


def test_a_middle_sized_page_is_sent_in_parts_and_reads_the_same(world: World):
    connector = world.new_connector()
    events = [{"t": T0 + i, "n": 0, "e": {"k": "Reconcile", "i": i, "pad": "y" * 20_000}} for i in range(100)]
    post_events(world, events, connector=connector).raise_for_status()
    response = httpx.get(f"{world.events_url(connector)}/latest", headers=bearer(world.read_token), timeout=30)
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    assert body["result"]["count"] == 100
    assert [item["e"] for item in body["result"]["items"]] == [ev["e"] for ev in events[::-1]]


def test_latest_snapshots_stops_before_the_size_bound_and_sends_a_large_page_in_parts(world: World):
    connector = world.new_connector()
    snapshots = big_snapshots(12)
    post_snapshots(world, snapshots, connector)
    response = httpx.get(snapshots_url(world, connector) + "/latest", headers=bearer(world.read_token), timeout=30)
    assert response.status_code == 200
    fit = PAGE_BYTES // len(json.dumps(snapshots[0], separators=(",", ":")))
    assert fit < len(snapshots)
    result = response.json()["result"]
    assert result["count"] == len(result["items"]) == fit
    assert result["items"] == snapshots[::-1][:fit]
    assert len(response.content) <= PAGE_BYTES + 4096
    assert response.headers.get("transfer-encoding") == "chunked"  # sent as it is read, not built whole


def test_a_middle_sized_snapshot_page_in_parts_is_the_envelope_ok_would_give(world: World):
    connector = world.new_connector()
    snapshots = [snapshot(T0 + 60 * i, cpu_count=i, pad="y" * 20_000) for i in range(60)]
    post_snapshots(world, snapshots[:30], connector)
    post_snapshots(world, snapshots[30:], connector)
    response = httpx.get(snapshots_url(world, connector) + "/latest", headers=bearer(world.read_token), timeout=30)
    assert response.headers.get("transfer-encoding") == "chunked"
    items = b",".join(json.dumps(s, separators=(",", ":")).encode() for s in snapshots[::-1])
    assert response.content == b'{"result":{"count":60,"items":[%s]},"success":true,"errors":[],"messages":[]}' % items


def test_a_live_tail_catches_up_on_large_events_in_bounded_batches(world: World):
    connector = world.new_connector()
    events = big_events(12)
    for half in (events[:6], events[6:]):
        post_events(world, half, connector=connector).raise_for_status()
    url = f"{world.server.base_url}/accounts/{world.account}/magic/connectors/{connector}/telemetry/events/stream"
    seen: list[int] = []
    deadline = time.monotonic() + 30
    headers = {**bearer(world.read_token), "Last-Event-ID": "0"}
    with httpx.Client(timeout=httpx.Timeout(10)) as client, client.stream("GET", url, headers=headers) as stream:
        assert stream.status_code == 200
        kind = ""
        for line in stream.iter_lines():
            assert time.monotonic() < deadline, f"only {len(seen)} of {len(events)} events arrived"
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            if line.startswith("data: ") and kind == "event":  # not health changes
                data = json.loads(line[len("data: ") :])
                assert data["e"] == events[len(seen)]["e"]
                seen.append(data["t"])
                if len(seen) == len(events):
                    break
    assert seen == [ev["t"] for ev in events]


def server_rss_mib(server: Server) -> float:
    """Resident memory of the server's processes (granian's main process and its workers), in MiB."""
    assert server.proc is not None
    pids, kib = [server.proc.pid], 0
    while pids:
        pid = pids.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            for task in Path(f"/proc/{pid}/task").iterdir():
                pids += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # gone meanwhile
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        kib += int(found.group(1)) if found else 0
    return kib / 1024


def stopped_reader(server: Server, path: str, token: str) -> socket.socket:
    """A client that asks for `path` and reads nothing: a tiny receive window, so the server's writes back up."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def answered(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


def read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


# Stopped readers of the largest pages, and what the server may hold for all of them together: each holds
# one part of its page (one ~1 MiB item here) and granian's few 64 KiB sends (api/streaming.py), plus
# allocator slack. Before, granian held about six ~1 MiB parts of a Latest Events page each (measured: 7-8
# MiB per reader), and a Latest Snapshots page was built whole (8 MiB).
STOPPED_READERS = 12
HELD_MIB_PER_READER = 4


@pytest.mark.parametrize(("page", "workers"), [("events", 1), ("events", 2), ("snapshots", 1)])
def test_stopped_readers_of_the_largest_pages_hold_little_of_the_server_s_memory(
    world: World, tmp_path: Path, page: str, workers: int
):
    connector = world.new_connector()
    if page == "events":
        events = big_events(10)
        for half in (events[:5], events[5:]):
            post_events(world, half, connector=connector).raise_for_status()
        stored = [event["e"] for event in events]
        url = f"{world.events_url(connector)}/latest"
    else:
        stored = big_snapshots(10)
        post_snapshots(world, stored, connector)
        url = snapshots_url(world, connector) + "/latest"
    newest_first = stored[::-1][: PAGE_BYTES // len(json.dumps(stored[0], separators=(",", ":")))]
    path = url.split(str(world.server.port), 1)[1]
    # A server of its own (on the same store): its memory is these readers' alone.
    server = Server(world.db, log_dir=tmp_path, extra_args=("--workers", str(workers))).start()
    readers: list[socket.socket] = []
    try:
        own_url = url.replace(world.server.origin, server.origin)
        for _ in range(2 * workers):  # at full speed, a few times: every worker has served a page
            whole = httpx.get(own_url, headers=bearer(world.read_token), timeout=30)
            assert whole.status_code == 200 and whole.json()["result"]["count"] == len(newest_first)
        idle = server_rss_mib(server)
        readers = [stopped_reader(server, path, world.read_token) for _ in range(STOPPED_READERS)]
        assert wait_for(lambda: all(answered(reader) for reader in readers), timeout=30)
        held = most_held_mib(server, idle)
        assert held <= STOPPED_READERS * HELD_MIB_PER_READER, f"{held:.0f} MiB held for {STOPPED_READERS} readers"
        # And each page, read at last, is whole.
        for reader in readers:
            head, _, body = read_to_end(reader).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
            items = json.loads(dechunked(body))["result"]["items"]
            assert ([item["e"] for item in items] if page == "events" else items) == newest_first
    finally:
        for reader in readers:
            reader.close()
        server.stop()


def most_held_mib(server: Server, idle: float, seconds: float = 2.0) -> float:
    """The server hands each reader what it will at once: the most its RSS grows above `idle` over a while is
    what it holds."""
    held = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        held = max(held, server_rss_mib(server) - idle)
        time.sleep(0.05)
    return held


def dechunked(body: bytes) -> bytes:
    out, at = bytearray(), 0
    while True:
        line_end = body.index(b"\r\n", at)
        size = int(body[at:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[line_end + 2 : line_end + 2 + size]
        at = line_end + 2 + size + 2


# A large connectors list (3,000 connectors with 4,000-character notes: ~13 MiB) is read and sent in parts
# too. Before, each stopped reader held all of it, built whole.
@pytest.mark.parametrize("workers", [1, 2])
def test_stopped_readers_of_a_large_connectors_list_hold_little_of_the_server_s_memory(
    world: World, tmp_path: Path, workers: int
):
    account, read = account_of_connectors(world, 3000, long_every=1)
    whole = whole_list(world, account, read).content
    assert len(whole) > 12 << 20
    path = url(world, account=account).split(str(world.server.port), 1)[1]
    server = Server(world.db, log_dir=tmp_path, extra_args=("--workers", str(workers))).start()
    readers: list[socket.socket] = []
    try:
        for _ in range(2 * workers):  # at full speed, a few times: every worker has served the list
            assert httpx.get(server.origin + path, headers=bearer(read), timeout=60).content == whole
        idle = server_rss_mib(server)
        readers = [stopped_reader(server, path, read) for _ in range(STOPPED_READERS)]
        assert wait_for(lambda: all(answered(reader) for reader in readers), timeout=30)
        held = most_held_mib(server, idle)
        assert held <= STOPPED_READERS * HELD_MIB_PER_READER, f"{held:.0f} MiB held for {STOPPED_READERS} readers"
        for reader in readers:
            head, _, body = read_to_end(reader).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
            assert dechunked(body) == whole
    finally:
        for reader in readers:
            reader.close()
        server.stop()


def test_connectors_made_or_deleted_while_a_large_list_is_sent_appear_at_most_once(world: World):
    # ~6.6 MiB, more than the server's socket buffers take for a client that reads nothing yet.
    account, read = account_of_connectors(world, 1500, long_every=1)
    before = [item["id"] for item in whole_list(world, account, read).json()["result"]]
    doomed = set(before[1::50])  # spread over the whole list: some read before they go, some after
    path = url(world, account=account).split(str(world.server.port), 1)[1]
    reader = stopped_reader(world.server, path, read)
    try:
        assert wait_for(lambda: answered(reader), timeout=30)  # the server is part way through the list

        async def change() -> list[str]:
            store = open_store(str(world.db))
            await store.start()
            try:
                for connector in doomed:
                    await store.delete_connector(account, connector)
                made = [await connectors.create(store, account, ConnectorSettings()) for _ in range(30)]
                return [provisioned.record.connector_id for provisioned in made]
            finally:
                await store.close()

        made = asyncio.run(change())
        head, _, body = read_to_end(reader).partition(b"\r\n\r\n")
    finally:
        reader.close()
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    listed = [item["id"] for item in json.loads(dechunked(body))["result"]]
    assert len(listed) == len(set(listed)) and listed == sorted(listed)  # none twice, in order
    assert set(before) - doomed <= set(listed)  # none that was there throughout is missing
    assert set(listed) <= set(before) | set(made)
    now = [item["id"] for item in whole_list(world, account, read).json()["result"]]
    assert set(now) == (set(before) - doomed) | set(made) and len(now) == len(set(now))


# A client that stops reading for good: the server resets its connection after --send-timeout (granian
# has no write timeout; conntel.server.stalled), so it holds neither memory nor one of --max-connections.
SEND_TIMEOUT = "2"


def scraped(server: Server, name: str) -> float:
    found = re.search(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", httpx.get(server.origin + "/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def read_until_cut(sock: socket.socket) -> bytes:
    """What a connection delivers until the server closes or resets it (a connection still open after a
    minute without a byte fails the test: TimeoutError)."""
    sock.settimeout(60)
    chunks = []
    try:
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


@pytest.mark.parametrize("workers", [1, 2])
def test_clients_that_stop_reading_a_large_page_are_cut_off_and_their_connections_serve_others(
    world: World, tmp_path: Path, workers: int
):
    connector = world.new_connector()
    events = big_events(10)
    for half in (events[:5], events[5:]):
        post_events(world, half, connector=connector).raise_for_status()
    limits = ("--send-timeout", SEND_TIMEOUT, "--max-connections", "2", "--workers", str(workers))
    server = Server(world.db, log_dir=tmp_path, extra_args=limits).start()
    path = f"{world.events_url(connector)}/latest".split(str(world.server.port), 1)[1]
    readers: list[socket.socket] = []
    try:
        readers = [stopped_reader(server, path, world.read_token) for _ in range(2)]
        assert wait_for(lambda: all(answered(reader) for reader in readers), timeout=30)
        # Both of a process's connections are held by readers that read nothing (with one worker): a new
        # request waits until the server gives up on them, then is served.
        other = httpx.get(f"{server.base_url}/accounts/{world.account}/magic/connectors",
                          headers=bearer(world.read_token), timeout=120)  # fmt: skip
        assert other.status_code == 200 and other.json()["success"] is True
        assert wait_for(lambda: scraped(server, "conntel_send_timeouts_total") == 2, timeout=60)
        # Each reader, reading at last, finds its page cut off: the connection was reset, not ended cleanly.
        for reader in readers:
            received = read_until_cut(reader)
            assert not received.endswith(b"0\r\n\r\n")
            assert len(received) < 8 << 20
        # The requests' tasks ended (each logged its request), and each connection was logged once.
        assert wait_for(lambda: server.server_log().count('"route":"/accounts/{account_id}/magic/connectors/'
                                                          '{connector_id}/telemetry/events/latest"') == 2)  # fmt: skip
        log = server.server_log()
        assert log.count("its connection was reset (--send-timeout)") == 2
        assert world.read_token not in log and "Traceback" not in log
    finally:
        for reader in readers:
            reader.close()
        server.stop()


def test_a_client_that_stops_reading_whole_answers_is_cut_off_too(world: World, tmp_path: Path):
    """Answers built whole (Get Event, on the hot path, each handed to granian in one send that never waits),
    asked for five at a time on one connection (pipelined) and never read: more than the socket's buffers
    take, so granian holds the rest, out of conntel's reach; the connection is reset all the same."""
    connector = world.new_connector()
    events = big_events(5)
    post_events(world, events, connector=connector).raise_for_status()
    server = Server(world.db, log_dir=tmp_path, extra_args=("--send-timeout", SEND_TIMEOUT)).start()
    path = world.events_url(connector).split(str(world.server.port), 1)[1]
    try:
        with socket.socket() as reader:
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader.connect(("127.0.0.1", server.port))
            reader.sendall(b"".join(
                f"GET {path}/{event['t']}.0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {world.read_token}\r\n\r\n"
                .encode() for event in events
            ))  # fmt: skip
            assert wait_for(lambda: answered(reader), timeout=30)
            assert wait_for(lambda: scraped(server, "conntel_send_timeouts_total") == 1, timeout=60)
            received = read_until_cut(reader)
            assert received.startswith(b"HTTP/1.1 200") and b"content-length:" in received[:300].lower()
            assert received.count(b"HTTP/1.1 200") < len(events)  # cut off before the last answer
    finally:
        server.stop()


def test_a_slow_but_steady_reader_gets_the_whole_page_byte_for_byte(world: World, tmp_path: Path):
    connector = world.new_connector()
    post_events(world, big_events(3), connector=connector).raise_for_status()
    server = Server(world.db, log_dir=tmp_path, extra_args=("--send-timeout", SEND_TIMEOUT)).start()
    url = f"{world.events_url(connector)}/latest".replace(world.server.origin, server.origin)
    try:
        whole = httpx.get(url, headers=bearer(world.read_token), timeout=30)
        assert whole.status_code == 200 and whole.json()["result"]["count"] == 3
        reader = stopped_reader(server, url.split(str(server.port), 1)[1], world.read_token)
        with reader:
            # Bursts of 256 KiB with pauses of a quarter of the send timeout: slow, but never stopped for long.
            reader.settimeout(60)
            chunks: list[bytes] = []
            burst = 0
            while chunk := reader.recv(1 << 16):
                chunks.append(chunk)
                burst += len(chunk)
                if burst >= 256 << 10:
                    burst = 0
                    time.sleep(float(SEND_TIMEOUT) / 4)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert dechunked(body) == whole.content
        assert scraped(server, "conntel_send_timeouts_total") == 0
    finally:
        server.stop()


def test_a_live_tail_that_stops_reading_ends_after_the_send_timeout(world: World, tmp_path: Path):
    connector = world.new_connector()
    server = Server(world.db, log_dir=tmp_path, extra_args=("--send-timeout", SEND_TIMEOUT)).start()
    path = f"{world.events_url(connector)}/stream".split(str(world.server.port), 1)[1]
    try:
        with stopped_reader(server, path, world.read_token) as reader:
            assert wait_for(lambda: answered(reader), timeout=30)
            assert wait_for(lambda: scraped(server, "conntel_live_streams") == 1, timeout=30)
            # More than the socket's buffers take, less than the stream's mailbox (8 MiB): only the send
            # timeout can end this stream.
            for event in big_events(5):
                post_events(world, [event], connector=connector).raise_for_status()
            assert wait_for(lambda: scraped(server, "conntel_send_timeouts_total") == 1, timeout=60)
            assert wait_for(lambda: scraped(server, "conntel_live_streams") == 0, timeout=60)
            assert 'reason="fell_behind"' not in httpx.get(server.origin + "/metrics").text
            received = read_until_cut(reader)  # the server closed the connection
            assert received.startswith(b"HTTP/1.1 200") and b"event: error" not in received
    finally:
        server.stop()
