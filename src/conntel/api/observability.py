"""Operability: Prometheus metrics, health and readiness, and one structured log line per request.

Metrics carry route templates, methods, statuses and event kinds — never
account or connector ids, never credentials. With `--workers N` every process
writes its counts to a shared folder (prometheus_client's multiprocess mode,
set up by conntel.server.run), so `/metrics` answers for the whole server.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conntel.api.routing import PREFIX


class AccessLog:
    """Request log lines for stderr, gathered in memory and written in one go by `flush`."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr.buffer
        self._pending: list[bytes] = []

    def write(self, line: bytes) -> None:
        self._pending.append(line)

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = self._pending, []
            self.stream.write(b"".join(lines))
            self.stream.flush()


_encode_json = msgspec.json.Encoder().encode
# One request's log line: its strings JSON-encoded first (the route and method once per tally), the numbers
# formatted here (%-formatting a line costs half what encoding a dict of it did, per request).
_LINE = b'{"time":%.3f,"method":%s,"path":%s,"route":%s,"status":%d,"ms":%.2f}\n'

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "conntel_requests", "HTTP requests answered", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "conntel_request_duration_seconds",
            "Time from request to complete response",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events_ingested = Counter(
            "conntel_events_ingested", "New events written (duplicates excluded)", ["kind"], registry=self.registry
        )
        self.auth_failures = Counter(
            "conntel_auth_failures", "Requests refused for their credentials", ["reason"], registry=self.registry
        )
        self.rate_limit_unchecked = Counter(
            "conntel_rate_limit_unchecked",
            "Requests served without a rate-limit check because the shared rate-limit storage did not answer",
            registry=self.registry,
        )
        # Live tails (api/livefeed.py): one feed, so one store poll, per watched account per process.
        self.live_streams = Gauge(
            "conntel_live_streams", "Open live tails", registry=self.registry, multiprocess_mode="livesum"
        )
        self.live_feeds = Gauge(
            "conntel_live_feeds", "Accounts polled for live tails", registry=self.registry, multiprocess_mode="livesum"
        )
        self.live_polls = Counter("conntel_live_polls", "Store polls made for live tails", registry=self.registry)
        self.webhook_deliveries = Counter(
            "conntel_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, failed: to be retried, given_up)",
            ["outcome"],
            registry=self.registry,
        )
        self.live_endings = Counter(
            "conntel_live_stream_endings",
            "Live tails the server ended, by reason (revoked, expired, fell_behind, ...)",
            ["reason"],
            registry=self.registry,
        )

        self.send_timeouts = Counter(
            "conntel_send_timeouts",
            "Connections reset because their client read nothing of what waited for it for --send-timeout",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # several worker processes: add up everyone's counts
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
            return generate_latest(registry)
        return generate_latest(self.registry)


METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class _StoreCollector:
    def __init__(self, counts: list[tuple[str, str, int]], outbox: int):
        self.counts = counts
        self.outbox = outbox

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "conntel_connectors",
            "Connectors by account and health (read from the store)",
            labels=["account_id", "health"],
        )
        for account_id, health, count in self.counts:
            family.add_metric([account_id, health], count)
        yield family
        yield GaugeMetricFamily(
            "conntel_webhook_outbox",
            "Webhook messages waiting to be delivered (read from the store)",
            value=self.outbox,
        )


def store_exposition(counts: list[tuple[str, str, int]], outbox: int) -> bytes:
    """Figures read from the store when scraped, the same whichever process is asked (so never added up
    across workers): `conntel_connectors{account_id, health}` (the one metric with account ids: alerting
    on a fleet needs them) and `conntel_webhook_outbox`."""
    registry = CollectorRegistry()
    registry.register(_StoreCollector(counts, outbox))
    return generate_latest(registry)


class _Tally:
    """One route, method and status: its Prometheus children, and what it gathered since the last fold."""

    __slots__ = ("buckets", "count", "label", "latency", "log_fields", "requests", "seconds")

    def __init__(self, label: str, method: str, requests: Any, latency: Any):
        self.label, self.requests, self.latency = label, requests, latency
        self.log_fields = (_encode_json(method), _encode_json(label))  # as the access log line writes them
        self.count, self.seconds, self.buckets = 0, 0.0, [0] * (len(LATENCY_BUCKETS) + 1)

    def fold(self) -> None:
        """Add what was gathered to the Prometheus metrics, and start again."""
        if not self.count:
            return
        self.requests.inc(self.count)
        # prometheus_client can only observe one value at a time; a batch goes straight into
        # the histogram child's values (pinned version; tests/test_operability.py checks them).
        self.latency._sum.inc(self.seconds)
        for bucket, count in enumerate(self.buckets):
            if count:
                self.latency._buckets[bucket].inc(count)
        self.count, self.seconds, self.buckets = 0, 0.0, [0] * len(self.buckets)


class RequestRecorder:
    """Counts, times and logs one answered request: shared by Observe and the hot path.

    Per request it only adds to plain counters and appends a log line; every
    FLUSH_SECONDS the loop folds the counts into the Prometheus metrics (which
    cost microseconds per call, with their locks) and writes the log lines in
    one write. `flush` also runs before /metrics answers and at shutdown.
    """

    FLUSH_SECONDS = 0.1

    def __init__(self, metrics: Metrics, access_log: AccessLog | None):
        self.metrics = metrics
        self.access_log = access_log
        self._tallies: dict[tuple[str | None, str, int], _Tally] = {}
        self._scheduled = False

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"]
        route = scope.get("route")
        key = (route.path if route is not None else scope.get("route_path"), method, status)
        tally = self._tallies.get(key)
        if tally is None:  # labels: worked out once per key
            label = route_label(scope)
            tally = self._tallies[key] = _Tally(
                label,
                method,
                self.metrics.requests.labels(label, method, str(status)),
                self.metrics.latency.labels(label, method),
            )
        tally.count += 1
        tally.seconds += seconds
        tally.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # Prometheus buckets are `le`: bound included
        if self.access_log is not None:
            method_json, route_json = tally.log_fields
            # The path: ids, never credentials (those travel in headers).
            path_json = _encode_json(scope["path"])
            self.access_log.write(_LINE % (time.time(), method_json, path_json, route_json, status, seconds * 1000))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        for tally in self._tallies.values():
            tally.fold()
        if self.access_log is not None:
            self.access_log.flush()


class Observe:
    """ASGI layer that times every HTTP request, counts it, and logs one JSON line for it."""

    def __init__(self, app: ASGIApp, recorder: RequestRecorder):
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.recorder.record(scope, status, time.perf_counter() - started)


def route_label(scope: Scope) -> str:
    """The route template a request matched (`unmatched` for unknown paths)."""
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("route_path") or "unmatched"
    return _CONVERTOR.sub(r"{\1}", path.removeprefix(PREFIX)) or "/"


_CONVERTOR = re.compile(r"{(\w+):\w+}")  # `{event_ref:event_ref}` reads `{event_ref}`
