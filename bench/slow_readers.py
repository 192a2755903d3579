"""Memory under slow readers: many clients read the largest Latest Events pages, slowly.

Per backend: a fresh store with one connector holding events whose payloads
are as large as ingestion allows (just under 1 MiB), enough for a page of the
largest allowed size (8 MiB of payloads). The loading server is stopped and a
fresh one started, so that its peak RSS (VmHWM) is the readers' alone. Then
--slow-readers clients each ask for Latest Events at once and read the answer
slowly (a small socket receive buffer, a few KiB at a time) for
--slow-seconds, then read the rest at full speed and check that the page is
whole and valid. The figure is the server's largest RSS meanwhile (sampled,
and its VmHWM): the target is a fixed ceiling (≤ 300 MB), whatever the page.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from typing import Any

import httpx
from harness import BASE_T, BenchError, Server, cli_json, fmt_mib, log
from stores import Backend, Dataset, conntel_server

from conntel.api.events import LATEST_MAX_BYTES
from conntel.events import MAX_PAYLOAD_BYTES

TARGET_MB = 300
RECEIVE_BUFFER = 16 << 10  # each reader's socket: the kernel holds little, the server must hold the rest
READ_BYTES = 8 << 10  # read this much...
READ_EVERY = 0.1  # ...this often while slow (80 KiB/s per reader)


def big_events(count: int) -> list[dict]:
    blob = "x" * (MAX_PAYLOAD_BYTES - 100)  # the largest payload ingestion takes, give or take its other fields
    return [{"t": BASE_T + i, "n": 0, "e": {"k": "Reconcile", "i": i, "blob": blob}, "v": "1.0"} for i in range(count)]


def unrecorded(server: Server) -> Server:
    """Out of the run's "Server memory" figure (measure 4): this measure reports its own."""
    server.group = None
    return server


def setup(ds: Dataset, port: int) -> int:
    """Account, connector, tokens (CLI) and the big events (over HTTP); the page's expected count."""
    ds.backend.reset(ds.store)
    store = ds.backend.store_args(ds.store)
    ds.account = cli_json("accounts", "create", "--name", "bench-slow", *store)["id"]
    ds.connector_ids = [cli_json("connectors", "create", "--account", ds.account, *store)["id"]]
    ds.write_token = cli_json("tokens", "create", "--account", ds.account, "--permission", "Magic WAN Write", *store)[
        "value"
    ]
    ds.read_token = cli_json("tokens", "create", "--account", ds.account, "--permission", "Magic WAN Read", *store)[
        "value"
    ]
    events = big_events(ds.events)
    server = unrecorded(conntel_server(ds, port, f"conntel-{ds.backend.name}-slow-load")).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for start in range(0, len(events), 7):  # 7 MiB bodies, under the 8 MiB body limit
                response = http.post(
                    ds.path(), json=events[start : start + 7], headers={"Authorization": f"Bearer {ds.write_token}"}
                )
                if response.status_code != 200:
                    raise BenchError(f"loading big events: {response.status_code} {response.text[:300]}")
    finally:
        server.stop()
    size = len(json.dumps(events[0]["e"], separators=(",", ":")))
    return min(len(events), max(1, LATEST_MAX_BYTES // size))


class SlowReader(threading.Thread):
    """GET Latest Events on a raw socket; read slowly until `fast` is set, then at full speed."""

    def __init__(self, port: int, path: str, token: str, fast: threading.Event, deadline: float):
        super().__init__(daemon=True)
        self.port, self.path, self.token, self.fast, self.deadline = port, path, token, fast, deadline
        self.received = bytearray()
        self.error: str | None = None

    def run(self) -> None:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
                sock.settimeout(30)
                sock.connect(("127.0.0.1", self.port))
                sock.sendall(
                    f"GET {self.path}/latest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {self.token}\r\nConnection: close\r\n\r\n".encode()
                )
                while time.monotonic() < self.deadline:
                    if self.fast.is_set():
                        data = sock.recv(1 << 20)
                    else:
                        data = sock.recv(READ_BYTES)
                        time.sleep(READ_EVERY)
                    if not data:
                        return
                    self.received += data
                self.error = "did not finish in time"
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def page(self) -> dict:
        head, _, body = bytes(self.received).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise BenchError(f"a slow reader got {head[:200]!r}")
        if b"transfer-encoding: chunked" in head.lower():
            body = dechunk(body)
        return json.loads(body)


def dechunk(body: bytes) -> bytes:
    out, at = bytearray(), 0
    while True:
        line_end = body.index(b"\r\n", at)
        size = int(body[at:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[line_end + 2 : line_end + 2 + size]
        at = line_end + 2 + size + 2


def measure(backend: Backend, args: argparse.Namespace, port: int) -> dict[str, Any]:
    ds = Dataset.for_size(backend, args.slow_events, 1, tag="slow")
    log(f"slow readers, {backend.label}: {ds.events} events of ~1 MiB into {ds.where}")
    expected = setup(ds, port)
    server = unrecorded(conntel_server(ds, port, f"conntel-{backend.name}-slow")).start()
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=60) as http:  # warm: one page read at full speed
            warm = http.get(f"{ds.path()}/latest", headers={"Authorization": f"Bearer {ds.read_token}"})
            if warm.status_code != 200 or warm.json()["result"]["count"] != expected:
                raise BenchError(f"Latest Events: {warm.status_code}, expected {expected} items: {warm.text[:200]}")
            page_bytes = len(warm.content)
        idle_kib = server.rss_kib()
        fast = threading.Event()
        deadline = time.monotonic() + args.slow_seconds + 120
        readers = [SlowReader(port, ds.path(), ds.read_token, fast, deadline) for _ in range(args.slow_readers)]
        log(
            f"{len(readers)} readers of {page_bytes / 2**20:.1f} MiB pages ({expected} events), "
            f"slowly for {args.slow_seconds:g}s (server RSS idle {fmt_mib(idle_kib)})"
        )
        for reader in readers:
            reader.start()
        samples: list[int] = []
        slow_until = time.monotonic() + args.slow_seconds
        while time.monotonic() < slow_until:
            samples.append(server.rss_kib() or 0)
            time.sleep(0.1)
        slow_read = sum(len(r.received) for r in readers)
        fast.set()
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        peak_kib = server.peak_kib()
        failed = [r.error for r in readers if r.error]
        if failed:
            raise BenchError(f"slow readers failed: {failed[:3]}")
        counts = {reader.page()["result"]["count"] for reader in readers}
        if counts != {expected}:
            raise BenchError(f"slow readers got pages of {counts} events, expected {expected}")
    finally:
        server.stop()
        backend.drop(ds.store)
    figure = max(max(samples, default=0), peak_kib or 0)
    result = {
        "label": backend.label,
        "readers": args.slow_readers,
        "slow_seconds": args.slow_seconds,
        "page_bytes": page_bytes,
        "page_events": expected,
        "read_while_slow_bytes": slow_read,
        "rss_idle_kib": idle_kib,
        "rss_max_sampled_kib": max(samples, default=None),
        "peak_kib": peak_kib,
        "max_kib": figure,
        "target_mb": TARGET_MB,
        "met": figure * 1024 <= TARGET_MB * 1e6,
    }
    log(
        f"slow readers, {backend.label}: server RSS idle {fmt_mib(idle_kib)}, largest {fmt_mib(figure)} "
        f"({'met' if result['met'] else 'NOT met'}: ≤ {TARGET_MB} MB); read while slow {slow_read / 2**20:.1f} MiB"
    )
    return result


def run(backends: list[Backend], args: argparse.Namespace, port: int) -> list[dict[str, Any]]:
    return [measure(backend, args, port) for backend in backends]
