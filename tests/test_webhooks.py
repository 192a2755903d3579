"""Webhooks: health changes delivered to a real receiver, signed per Standard Webhooks, at least once."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from helpers import CONNTEL, Server, World, bearer, cli, drop_pg_database, free_port, new_store, store_args, wait_for
from standardwebhooks.webhooks import Webhook

T0 = 1_700_500_000


class Receiver:
    """An HTTP endpoint on a free port: records every request; answers from `answers`, then 200."""

    def __init__(self, answers: list[int] | None = None, port: int | None = None):
        self.requests: list[dict] = []
        self.answers = list(answers or [])
        self.port = port or free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                status = receiver.answers.pop(0) if receiver.answers else 200
                receiver.requests.append({"headers": dict(self.headers), "body": body, "status": status})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def messages(self, secret: str) -> list[tuple[str, dict]]:
        """(webhook-id, body) of every request, each checked against its signature."""
        verified = []
        for request in self.requests:
            headers = {k.lower(): v for k, v in request["headers"].items()}
            body = Webhook(secret).verify(request["body"], headers)
            verified.append((headers["webhook-id"], body))
        return verified


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def new_account(db, *connectors: int) -> tuple[str, str, list[str]]:
    account = cli("accounts", "create", db=db)["id"]
    token = cli("tokens", "create", "--account", account, "--permission", "Magic WAN Write", db=db)["value"]
    made = [
        cli("connectors", "create", "--account", account, db=db)["id"]
        for _ in range(connectors[0] if connectors else 1)
    ]
    return account, token, made


def push(server: Server, account: str, connector: str, token: str, kind: str = "Reconcile", t: int = T0) -> None:
    e: dict = {"k": kind, **({"e": "broken"} if kind.endswith("Failure") else {})}
    url = f"{server.base_url}/accounts/{account}/magic/connectors/{connector}/telemetry/events"
    httpx.post(url, json=[{"t": t, "n": 0, "e": e, "v": "2025.1.0"}], headers=bearer(token)).raise_for_status()


def listed(db, webhook_id: str) -> dict:
    rows = [json.loads(line) for line in cli_lines("webhooks", "list", db=db)]
    return next(row for row in rows if row["id"] == webhook_id)


def cli_lines(*args: str, db) -> list[str]:
    done = subprocess.run([*CONNTEL, *args, *store_args(db), "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_test_message_is_signed_and_verifiable(world: World, receiver: Receiver):
    account, _, _ = new_account(world.db)
    hook = cli("webhooks", "create", "--account", account, "--url", receiver.url, db=world.db)
    assert hook["secret"].startswith("whsec_") and hook["events"] == [
        "connector.failing", "connector.silent", "connector.healthy"]  # fmt: skip
    tested = cli("webhooks", "test", hook["id"], db=world.db)
    assert tested["status"] == 200 and tested["ok"] is True
    [(message_id, body)] = receiver.messages(hook["secret"])
    assert message_id == tested["message_id"] and body["type"] == "webhook.test"
    # The secret is shown once: never listed.
    assert "secret" not in listed(world.db, hook["id"]) and hook["secret"] not in "".join(
        cli_lines("webhooks", "list", db=world.db))  # fmt: skip


def test_health_changes_arrive_signed_and_a_failed_attempt_is_retried_with_the_same_id(world: World):
    receiver = Receiver(answers=[500])
    try:
        account, token, [connector] = new_account(world.db)
        hook = cli("webhooks", "create", "--account", account, "--url", receiver.url, db=world.db)
        push(world.server, account, connector, token, "FinishUpgradeFailure", T0 + 10)

        wait_for(lambda: len(receiver.requests) >= 2, timeout=20)  # the 500, then (5 s later) the 200
        first, second = receiver.messages(hook["secret"])[:2]
        assert first == second  # the same webhook-id and body on the retry
        message_id, body = second
        assert message_id.startswith("msg_") and body["type"] == "connector.failing"
        data = body["data"]
        assert (data["account_id"], data["connector_id"]) == (account, connector)
        assert (data["health"], data["previous"], data["reason"]) == ("failing", "silent", "FinishUpgradeFailure")
        assert data["event"] == {"t": T0 + 10, "n": 0}
        assert data["event_path"].endswith(
            f"/accounts/{account}/magic/connectors/{connector}/telemetry/events/{T0 + 10}.0"
        )
        gotten = httpx.get(world.server.origin + data["event_path"], headers=bearer(token))
        assert gotten.status_code == 200 and gotten.json()["result"]["e"]["k"] == "FinishUpgradeFailure"

        wait_for(lambda: listed(world.db, hook["id"])["delivered"] == 1)
        row = listed(world.db, hook["id"])
        assert (row["failures"], row["last_status"], row["pending"], row["disabled_on"]) == (0, 200, 0, None)
    finally:
        receiver.close()


def test_an_endpoint_gets_only_the_types_it_asked_for(world: World, receiver: Receiver):
    account, token, [connector] = new_account(world.db)
    hook = cli("webhooks", "create", "--account", account, "--url", receiver.url, "--event", "connector.failing",
               db=world.db)  # fmt: skip
    push(world.server, account, connector, token, "Reconcile", T0)  # silent -> healthy: not asked for
    push(world.server, account, connector, token, "FinishRotatePkiFailure", T0 + 1)  # -> failing
    wait_for(lambda: len(receiver.requests) >= 1, timeout=10)
    time.sleep(1.5)  # a delivery loop or two: nothing else arrives
    assert [body["type"] for _, body in receiver.messages(hook["secret"])] == ["connector.failing"]


def test_a_tunnel_down_names_its_snapshot_and_tunnel(world: World, receiver: Receiver):
    account, token, [connector] = new_account(world.db)
    hook = cli("webhooks", "create", "--account", account, "--url", receiver.url, "--event", "connector.failing",
               db=world.db)  # fmt: skip
    snapshot = {
        "count_reclaim_failures": 0, "count_reclaimed_paths": 0, "count_record_failed": 0,
        "count_transmit_failures": 0, "t": T0 + 5, "v": "2025.9.1",
        "tunnels": [{"tunnel_id": "tun-7", "health_state": "down", "health_value": 3, "interface_name": "xfrm7"}],
    }  # fmt: skip
    url = f"{world.server.base_url}/accounts/{account}/magic/connectors/{connector}/telemetry/snapshots"
    httpx.post(url, json=[snapshot], headers=bearer(token)).raise_for_status()
    wait_for(lambda: len(receiver.requests) >= 1, timeout=10)
    [(_, body)] = receiver.messages(hook["secret"])
    data = body["data"]
    assert (data["health"], data["previous"], data["reason"]) == ("failing", "silent", "tunnel_down")
    assert (data["snapshot"], data["tunnel_id"], data["event"], data["operation_id"]) == (
        {"t": T0 + 5}, "tun-7", None, None)  # fmt: skip
    gotten = httpx.get(world.server.origin + data["snapshot_path"], headers=bearer(token))
    assert gotten.status_code == 200 and gotten.json()["result"]["tunnels"][0]["tunnel_id"] == "tun-7"


def test_a_message_committed_before_a_kill_9_is_delivered_after_the_restart(tmp_path: Path, backend: str):
    db = new_store(tmp_path, backend)
    try:
        _kill_9_then_deliver(tmp_path, db)
    finally:
        if backend == "postgres":
            drop_pg_database(db)


def _kill_9_then_deliver(tmp_path: Path, db) -> None:
    account, token, [connector] = new_account(db)
    port = free_port()  # the receiver is down: the first attempt fails, the message waits in the outbox
    hook = cli("webhooks", "create", "--account", account, "--url", f"http://127.0.0.1:{port}/hooks", db=db)
    server = Server(db, log_dir=tmp_path).start()
    push(server, account, connector, token)
    wait_for(lambda: listed(db, hook["id"])["failures"] >= 1)
    assert listed(db, hook["id"])["pending"] == 1
    server.stop(signal.SIGKILL)

    receiver = Receiver(port=port)
    try:
        server = Server(db, log_dir=tmp_path).start()
        wait_for(lambda: len(receiver.requests) >= 1, timeout=20)
        [(_, body)] = receiver.messages(hook["secret"])
        assert body["type"] == "connector.healthy" and body["data"]["connector_id"] == connector
        wait_for(lambda: listed(db, hook["id"])["pending"] == 0)
        server.stop()
    finally:
        receiver.close()


def test_two_processes_deliver_each_message_once_and_a_long_failing_endpoint_is_disabled(
    tmp_path: Path, receiver: Receiver
):
    db = tmp_path / "conntel.db"
    account, token, connectors = new_account(db, 6)
    hook = cli("webhooks", "create", "--account", account, "--url", receiver.url, db=db)
    servers = [Server(db, log_dir=tmp_path).start() for _ in range(2)]
    try:
        for i, connector in enumerate(connectors):
            push(servers[i % 2], account, connector, token)
        wait_for(lambda: len(receiver.requests) >= 6, timeout=20)
        time.sleep(1.5)
        ids = [message_id for message_id, _ in receiver.messages(hook["secret"])]
        assert len(ids) == len(set(ids)) == 6  # each once, whichever process delivered

        # An endpoint whose attempts have all failed for longer than the limit (README: 5 days) is disabled,
        # and what waited for it given up.
        receiver.answers = [503] * 10
        with sqlite3.connect(db) as conn:
            conn.execute(
                "UPDATE webhooks SET failing_since = unixepoch() - 6 * 86400 WHERE webhook_id = ?", (hook["id"],)
            )
        push(servers[0], account, connectors[0], token, "FinishUpgradeFailure", T0 + 5)
        wait_for(lambda: listed(db, hook["id"])["disabled_on"] is not None, timeout=20)
        row = listed(db, hook["id"])
        assert row["pending"] == 0 and row["last_status"] == 503
        metrics = httpx.get(servers[0].origin + "/metrics").text
        assert 'conntel_webhook_deliveries_total{outcome="delivered"}' in metrics
        assert "conntel_webhook_outbox 0.0" in metrics
    finally:
        for server in servers:
            server.stop()
