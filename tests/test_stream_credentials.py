"""A live tail lives no longer than its credential: revoked, expired or withdrawn, the stream ends within a second."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime

import httpx
from helpers import World, bearer, cli, global_key, post_events, read_response

T0 = 1_700_000_000


class Tail:
    """Reads a stream to its end in a thread: the messages with the time each arrived, and when it ended."""

    def __init__(self, url: str, headers: dict[str, str]):
        self.messages: list[tuple[float, str, dict]] = []
        self.status: int | None = None
        self.ended_at: float | None = None
        self.error: httpx.HTTPError | None = None
        self._opened = threading.Event()
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        assert self._opened.wait(10), "the stream did not open"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5, read=20)) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                self.status = response.status_code
                self._opened.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line == "":
                        if "data" in fields:
                            self.messages.append((time.monotonic(), fields["event"], json.loads(fields["data"])))
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        fields[name] = value
        except httpx.HTTPError as error:  # the server went away (the session ends with streams open)
            self.error = error
        finally:
            self.ended_at = time.monotonic()
            self._opened.set()
            self._ended.set()

    def wait_end(self, within: float) -> float:
        """When the stream ended (monotonic), failing unless it ends within `within` seconds."""
        assert self._ended.wait(within), f"the stream still runs after {within}s: {self.messages}"
        assert self.ended_at is not None
        return self.ended_at

    def wait_events(self, count: int, within: float = 3.0) -> None:
        deadline = time.monotonic() + within
        while sum(1 for _, kind, _ in self.messages if kind == "event") < count:
            assert time.monotonic() < deadline, f"expected {count} events: {self.messages}"
            time.sleep(0.02)

    def last(self) -> tuple[str, dict]:
        assert self.messages, "no message at all"
        _, kind, data = self.messages[-1]
        return kind, data


def stream_url(world: World, connector: str | None) -> str:
    root = f"{world.server.base_url}/accounts/{world.account}/magic/connectors"
    return f"{root}/{connector}/telemetry/events/stream" if connector else f"{root}/telemetry/events/stream"


def event(i: int) -> dict:
    return {"t": T0 + i, "n": 0, "e": {"k": "Reconcile", "i": i}}


def assert_refusal(tail: Tail, code: int, reason: str) -> None:
    kind, data = tail.last()
    assert kind == "error", tail.messages
    assert data["success"] is False and data["result"] is None and data["reason"] == reason
    assert data["errors"][0]["code"] == code


def test_a_revoked_token_ends_connector_and_account_streams_within_a_second(world: World):
    connector = world.new_connector()
    token = world.new_token("Magic WAN Read")
    tails = [
        Tail(stream_url(world, connector), bearer(token["value"])),
        Tail(stream_url(world, None), bearer(token["value"])),
    ]
    assert [tail.status for tail in tails] == [200, 200]
    post_events(world, [event(0)], connector=connector).raise_for_status()
    for tail in tails:
        tail.wait_events(1)  # the stream works until then
    cli("tokens", "revoke", token["id"], db=world.db)
    revoked = time.monotonic()
    for tail in tails:
        assert tail.wait_end(within=3) - revoked < 1.0 + 0.25  # the bound, plus scheduling slack on a busy machine
        assert_refusal(tail, 10000, "revoked")
    # REST agrees, and nothing was streamed after the refusal (it is the last message).
    assert httpx.get(world.events_url(connector) + "/latest", headers=bearer(token["value"])).status_code == 401


def test_a_token_that_expires_ends_the_stream_when_it_expires(world: World):
    expires_on = int(time.time()) + 3  # the CLI that makes the token takes a second on a busy machine
    token = world.new_token(
        "Magic WAN Read", expires_on=datetime.fromtimestamp(expires_on, UTC).isoformat().replace("+00:00", "Z")
    )
    tail = Tail(stream_url(world, None), bearer(token["value"]))
    assert tail.status == 200
    ended = tail.wait_end(within=5)
    late_by = time.time() - (time.monotonic() - ended) - expires_on
    assert -0.1 <= late_by < 0.6, late_by  # ends once expired (the clock is checked every poll), not before
    assert_refusal(tail, 10000, "expired")


def test_a_user_removed_from_the_account_loses_the_stream_of_its_global_key(world: World):
    user = cli(
        "users",
        "create",
        "--email",
        f"leaver-{time.monotonic_ns()}@example.com",
        "--account",
        world.account,
        db=world.db,
    )
    tail = Tail(stream_url(world, None), global_key(user["email"], user["api_key"]))
    assert tail.status == 200
    cli("users", "remove", "--email", user["email"], "--account", world.account, db=world.db)
    removed = time.monotonic()
    assert tail.wait_end(within=3) - removed < 1.25
    assert tail.error is None  # ended by the server, cleanly
    assert_refusal(tail, 10000, "removed_from_account")
    assert (
        httpx.get(world.events_url() + "/latest", headers=global_key(user["email"], user["api_key"])).status_code == 403
    )


def test_a_changed_global_key_ends_the_stream_of_the_old_key(world: World):
    user = cli(
        "users",
        "create",
        "--email",
        f"rotor-{time.monotonic_ns()}@example.com",
        "--account",
        world.account,
        db=world.db,
    )
    tail = Tail(stream_url(world, world.connector), global_key(user["email"], user["api_key"]))
    assert tail.status == 200
    rotated = cli("users", "rotate-key", "--email", user["email"], db=world.db)
    changed = time.monotonic()
    assert tail.wait_end(within=3) - changed < 1.25
    assert_refusal(tail, 9103, "key_changed")
    # The new key works, on REST and on a new stream.
    new_headers = global_key(user["email"], rotated["api_key"])
    assert httpx.get(world.events_url() + "/latest", headers=new_headers).status_code == 200
    assert Tail(stream_url(world, world.connector), new_headers).status == 200


def test_cli_refuses_to_remove_what_is_not_there(world: World):
    done = cli("users", "remove", "--email", "nobody@example.com", "--account", world.account, db=world.db, check=False)
    assert done["returncode"] == 1 and "not a member" in done["stderr"]
    done = cli("users", "rotate-key", "--email", "nobody@example.com", db=world.db, check=False)
    assert done["returncode"] == 1 and "No user" in done["stderr"]


def test_a_token_revoked_while_a_slow_body_arrives_writes_nothing(world: World):
    """The same class as a stream: a request authorized when it began, its body still arriving (up to the body
    timeout). Once in, the credential is checked again, as a new request would be."""
    connector = world.new_connector()
    token = world.new_token("Magic WAN Write")
    body = json.dumps([event(7)]).encode()
    path = f"/client/v4/accounts/{world.account}/magic/connectors/{connector}/telemetry/events"
    with socket.create_connection(("127.0.0.1", world.server.port), timeout=10) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), token["value"].encode(), len(body), body[:5])
        )
        cli("tokens", "revoke", token["id"], db=world.db)
        deadline = time.monotonic() + 3
        while httpx.get(world.events_url(connector) + "/latest", headers=bearer(token["value"])).status_code != 401:
            assert time.monotonic() < deadline, "REST still takes the revoked token"
            time.sleep(0.05)
        sock.sendall(body[5:])
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 401 ") and b'"code":10000' in answer, answer
    latest = httpx.get(world.events_url(connector) + "/latest", headers=bearer(world.read_token)).json()
    assert latest["result"]["count"] == 0  # nothing written
