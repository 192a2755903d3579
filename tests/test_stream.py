"""Live tail over Server-Sent Events: per connector and per account, resumable, across processes."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from helpers import Server, World, bearer, post_events

T0 = 1_700_000_000


class SseReader:
    """Reads a stream in a thread; parsed messages arrive on a queue (`event: health` ones on their own)."""

    def __init__(self, url: str, headers: dict[str, str]):
        self.messages: queue.Queue[dict] = queue.Queue()
        self.health: queue.Queue[dict] = queue.Queue()
        self.opened = threading.Event()
        self.status: int | None = None
        self._stop = threading.Event()
        self._network_stream: Any = None
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            self._read(url, headers)
        except httpx.HTTPError:  # the server went away (tests stop servers with streams open)
            self.opened.set()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=None)) as client,
            client.stream("GET", url, headers=headers) as r,
        ):
            self.status = r.status_code
            self.content_type = r.headers.get("content-type", "")
            self._network_stream = r.extensions.get("network_stream")
            self.opened.set()
            message: dict = {}
            for line in r.iter_lines():
                if self._stop.is_set():
                    return
                if line == "":
                    if message.get("event") == "health":
                        assert "id" not in message, message  # health changes take no stream position
                        self.health.put(json.loads(message["data"]))
                    elif "data" in message:
                        self.messages.put(
                            {
                                "id": int(message["id"]) if "id" in message else None,  # an error has none
                                "event": message["event"],
                                "data": json.loads(message["data"]),
                            }
                        )
                    message = {}
                elif not line.startswith(":"):
                    field, _, value = line.partition(": ")
                    message[field] = value

    def take(self, count: int, within: float = 3.0, health: bool = False) -> list[dict]:
        """The next `count` messages (with `health`, health changes), failing after `within` seconds."""
        source = self.health if health else self.messages
        deadline, taken = time.monotonic() + within, []
        while len(taken) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"got {len(taken)} of {count} messages in {within}s: {taken}"
            try:
                taken.append(source.get(timeout=remaining))
            except queue.Empty:
                pass
        return taken

    def health_until(self, check: Callable[[dict], bool], within: float = 10.0) -> list[dict]:
        """Health changes up to the first that passes `check` (which ends the list)."""
        deadline, taken = time.monotonic() + within, []
        while not taken or not check(taken[-1]):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no such health change in {within}s: {taken}"
            with contextlib.suppress(queue.Empty):
                taken.append(self.health.get(timeout=remaining))
        return taken

    def nothing_more(self, wait: float = 1.0) -> bool:
        try:
            self.messages.get(timeout=wait)
            return False
        except queue.Empty:
            return True

    def close(self) -> None:
        """Hang up, as a client going away does: the server ends the stream (and need not wait for it to stop)."""
        self._stop.set()
        sock = self._network_stream.get_extra_info("socket") if self._network_stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread: its read ends
        self._thread.join(5)


def stream_url(world: World, connector: str | None = None, base: str | None = None, account: str | None = None) -> str:
    root = f"{base or world.server.base_url}/accounts/{account or world.account}/magic/connectors"
    return f"{root}/{connector}/telemetry/events/stream" if connector else f"{root}/telemetry/events/stream"


def batch(start: int, count: int, **extra) -> list[dict]:
    return [
        {"t": T0 + start + i, "n": 0, "e": {"k": "Reconcile", "i": start + i, **extra}, "v": "1.0"}
        for i in range(count)
    ]


def test_connector_stream_delivers_new_events_within_a_second(world: World):
    connector = world.new_connector()
    post_events(world, batch(0, 3), connector=connector).raise_for_status()  # history: not replayed
    reader = SseReader(stream_url(world, connector), bearer(world.read_token))
    try:
        assert reader.status == 200 and reader.content_type.startswith("text/event-stream")
        sent = time.monotonic()
        post_events(world, batch(10, 5), connector=connector).raise_for_status()
        messages = reader.take(5, within=2)
        assert time.monotonic() - sent < 1.5
        assert [m["data"]["e"]["i"] for m in messages] == [10, 11, 12, 13, 14]
        first = messages[0]["data"]
        assert first["connector_id"] == connector and first["t"] == T0 + 10 and first["n"] == 0
        assert first["v"] == "1.0" and isinstance(first["a"], int)
        ids = [m["id"] for m in messages]
        assert ids == sorted(ids) and len(set(ids)) == 5 and {m["event"] for m in messages} == {"event"}
        # An identical re-send is a duplicate: nothing new on the stream.
        post_events(world, batch(10, 5), connector=connector).raise_for_status()
        assert reader.nothing_more()
    finally:
        reader.close()


def test_account_stream_carries_every_connector(world: World):
    first, second = world.new_connector(), world.new_connector()
    reader = SseReader(stream_url(world), bearer(world.read_token))
    try:
        post_events(world, batch(0, 2), connector=first).raise_for_status()
        post_events(world, batch(0, 2), connector=second).raise_for_status()
        got = [(m["data"]["connector_id"], m["data"]["e"]["i"]) for m in reader.take(4)]
        assert got == [(first, 0), (first, 1), (second, 0), (second, 1)]
    finally:
        reader.close()


def test_resuming_with_last_event_id_has_no_gap_and_no_repeat(world: World):
    connector = world.new_connector()
    reader = SseReader(stream_url(world, connector), bearer(world.read_token))
    post_events(world, batch(0, 4), connector=connector).raise_for_status()
    seen = reader.take(4)
    reader.close()
    # While disconnected, more events arrive.
    post_events(world, batch(4, 3), connector=connector).raise_for_status()
    post_events(world, batch(7, 2), connector=connector).raise_for_status()
    resumed = SseReader(
        stream_url(world, connector), {**bearer(world.read_token), "Last-Event-ID": str(seen[-1]["id"])}
    )
    try:
        rest = resumed.take(5)
        assert [m["data"]["e"]["i"] for m in seen + rest] == list(range(9))
        assert resumed.nothing_more()
    finally:
        resumed.close()


def test_refusals(world: World):
    url = stream_url(world, world.connector)
    assert httpx.get(url).status_code == 400
    assert httpx.get(url, headers=bearer(world.other_write_token)).status_code == 403
    missing = httpx.get(stream_url(world, "nobody"), headers=bearer(world.read_token))
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == 20002
    bad = httpx.get(url, headers={**bearer(world.read_token), "Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == 20010


def test_events_written_through_one_process_stream_from_another(world: World):
    other = Server(world.db, log_dir=world.server.log.parent).start()  # a second process on the same database
    reader = SseReader(stream_url(world, base=other.base_url), bearer(world.read_token))
    connector = world.new_connector()
    try:
        post_events(world, batch(0, 3), connector=connector).raise_for_status()  # through the first process
        assert [m["data"]["e"]["i"] for m in reader.take(3)] == [0, 1, 2]
    finally:
        reader.close()
        other.stop()
