"""A small client of conntel's own HTTP API, for the reading CLI (`conntel events ...`, `conntel connectors ...`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from conntel.client.urls import api_base


class ClientError(RuntimeError):
    """The server refused a request, or could not be reached; the message says which and why."""


class Client:
    def __init__(self, url: str, token: str, account: str):
        """`url`: the API base, or the server's root (ClientError for anything else)."""
        try:
            base = api_base(url)
        except ValueError as exc:
            raise ClientError(str(exc)) from None
        self.account = account
        self._http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def close(self) -> None:
        self._http.close()

    def _connectors(self) -> str:
        return f"/accounts/{self.account}/magic/connectors"

    def _events(self, connector: str) -> str:
        return f"{self._connectors()}/{connector}/telemetry/events"

    def _result(self, path: str, **params: Any) -> Any:
        try:
            response = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        except httpx.TransportError as exc:
            raise ClientError(f"Cannot reach {self._http.base_url}: {exc}") from None
        return _unwrap(response)

    def _post(self, path: str, body: Any) -> Any:
        try:
            response = self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise ClientError(f"Cannot reach {self._http.base_url}: {exc}") from None
        return _unwrap(response)

    def create_interrupt(self, connector: str, action: str, purge: bool) -> dict[str, Any]:
        made: dict[str, Any] = self._post(f"{self._connectors()}/{connector}/interrupts", {action: {"purge": purge}})
        return made

    def interrupts(self, connector: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self._result(f"{self._connectors()}/{connector}/interrupts")
        return listed

    def get_event(self, connector: str, t: int, n: int) -> dict[str, Any]:
        event: dict[str, Any] = self._result(f"{self._events(connector)}/{t}.{n}")
        return event

    def latest(self, connector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._result(f"{self._events(connector)}/latest")["items"]
        return items

    def fleet_health(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._result(f"{self._connectors()}/telemetry/health")["items"]
        return items

    def connectors(self) -> list[dict[str, Any]]:
        connectors: list[dict[str, Any]] = self._result(self._connectors())
        return connectors

    def pages(
        self, connector: str, start: int, end: int, kind: str | None, limit: int
    ) -> Iterator[list[dict[str, Any]]]:
        """List Events page by page, following the cursor."""
        cursor = None
        while True:
            page = self._result(self._events(connector), **{"from": start, "to": end, "k": kind, "limit": limit,
                                                            "cursor": cursor})  # fmt: skip
            yield page["items"]
            cursor = page.get("cursor")
            if cursor is None:
                return

    def _snapshots(self, connector: str) -> str:
        return f"{self._connectors()}/{connector}/telemetry/snapshots"

    def get_snapshot(self, connector: str, t: str) -> dict[str, Any]:
        """Get Snapshot: `t` as the user wrote it (`1700000000`, `1700000000.0`)."""
        snapshot: dict[str, Any] = self._result(f"{self._snapshots(connector)}/{t}")
        return snapshot

    def latest_snapshots(self, connector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._result(f"{self._snapshots(connector)}/latest")["items"]
        return items

    def snapshot_pages(self, connector: str, start: int, end: int, limit: int) -> Iterator[list[dict[str, Any]]]:
        """List Snapshots page by page, following the cursor: `{a, t}` items."""
        cursor = None
        while True:
            page = self._result(self._snapshots(connector), **{"from": start, "to": end, "limit": limit,
                                                               "cursor": cursor})  # fmt: skip
            yield page["items"]
            cursor = page.get("cursor")
            if cursor is None:
                return

    def tail(self, connector: str | None, last_id: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow the live stream for ever, reconnecting with Last-Event-ID: (id, event) pairs."""
        path = f"{self._events(connector)}/stream" if connector else f"{self._connectors()}/telemetry/events/stream"
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with self._http.stream("GET", path, headers=headers, timeout=httpx.Timeout(30, read=60)) as response:
                    if response.status_code != 200:
                        response.read()
                        _unwrap(response)
                    for message_id, data in _messages(response.iter_lines()):
                        last_id = message_id
                        yield message_id, data
            except httpx.TransportError:
                time.sleep(1)  # the server went away or restarted: resume where we were


def _messages(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    import json

    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields and fields.get("event") != "health":  # health changes: Fleet health's business
                yield fields.get("id", ""), json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def _unwrap(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise ClientError(f"HTTP {response.status_code}: {errors_text(response)}")
    try:
        return response.json()["result"]
    except (ValueError, KeyError, TypeError):
        raise ClientError(f"HTTP {response.status_code} from {response.request.url} (not a v4 answer)") from None


def errors_text(response: httpx.Response) -> str:
    """A refusal's error items as one line: `code message; code message`."""
    try:
        errors = response.json()["errors"]
        return "; ".join(f"{e['code']} {e['message']}" for e in errors) or f"HTTP {response.status_code}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
