"""The reading CLI over the HTTP API: events get|list|latest|tail and connectors list."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time

from helpers import CONNTEL, World, post_events

T0 = 1_700_000_000


def run(world: World, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CLOUDFLARE_API_TOKEN": token or world.read_token,
        "CLOUDFLARE_BASE_URL": world.server.base_url,
        "CLOUDFLARE_ACCOUNT_ID": world.account,
    }
    return subprocess.run([*CONNTEL, *args], capture_output=True, text=True, env=env, timeout=60)


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line]


def read_lines(proc: subprocess.Popen[str], count: int, within: float = 20) -> list[dict]:
    """`count` JSON lines from a streaming process's stdout; fails (never hangs) if they take over `within` s."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # the blocking reads, on a thread the test waits on with a deadline
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + within
    taken: list[dict] = []
    while len(taken) < count:
        try:
            taken.append(json.loads(lines.get(timeout=max(0.0, deadline - time.monotonic()))))
        except queue.Empty:
            raise AssertionError(f"{len(taken)} of {count} lines within {within} s: {taken}") from None
    return taken


def test_get_list_latest_and_connectors(world: World):
    connector = world.new_connector()
    events = [
        {"t": T0 + i, "n": 0, "e": {"k": "FinishUpgradeFailure" if i == 3 else "Reconcile", "i": i}, "v": "2.0"}
        for i in range(2500)
    ]
    post_events(world, events, connector=connector).raise_for_status()

    got = run(world, "events", "get", f"{T0 + 3}.0", "--connector", connector, "--json")
    assert json.loads(got.stdout) == events[3]
    readable = run(world, "events", "get", f"{T0 + 3}.0", "--connector", connector)
    assert "FinishUpgradeFailure" in readable.stdout and '"i": 3' in readable.stdout

    listed = run(
        world,
        "events",
        "list",
        "--connector",
        connector,
        "--from",
        str(T0),
        "--to",
        "2023-11-14T22:41:40",
        "--page-size",
        "300",
        "--json",
    )  # the ISO end is T0 + 1700
    items = ndjson(listed.stdout)
    assert [(i["t"], i["k"]) for i in items] == [(e["t"], e["e"]["k"]) for e in events[:1701]]

    table = run(world, "events", "list", "--connector", connector, "--from", str(T0), "--to", str(T0 + 9))
    assert table.returncode == 0 and "FinishUpgradeFailure" in table.stdout and "10 events" in table.stderr

    latest = ndjson(run(world, "events", "latest", "--connector", connector, "--json").stdout)
    assert latest[0] == events[-1] and len(latest) == 100

    connectors = ndjson(run(world, "connectors", "list", "--json").stdout)
    mine = next(c for c in connectors if c["id"] == connector)
    assert mine["last_seen_version"] == "2.0"
    assert connector in run(world, "connectors", "list").stdout


def test_errors_are_one_line_and_nonzero(world: World):
    missing = run(world, "events", "get", f"{T0}.0", "--connector", "nobody")
    assert missing.returncode == 1 and "20002" in missing.stderr and "Traceback" not in missing.stderr
    bad_token = run(world, "connectors", "list", token="x" * 40)
    assert bad_token.returncode == 1 and "401" in bad_token.stderr
    bad_ref = run(world, "events", "get", "soon", "--connector", world.connector)
    assert bad_ref.returncode == 2 and "not T.N" in bad_ref.stderr


def test_tail_follows_live_and_resumes(world: World):
    connector = world.new_connector()
    env = {
        **os.environ,
        "CLOUDFLARE_API_TOKEN": world.read_token,
        "CLOUDFLARE_BASE_URL": world.server.base_url,
        "CLOUDFLARE_ACCOUNT_ID": world.account,
    }
    tail = subprocess.Popen(
        [*CONNTEL, "events", "tail", "--connector", connector, "--json"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        time.sleep(1.5)  # let it connect
        post_events(
            world, [{"t": T0 + i, "n": 0, "e": {"k": "HaError", "i": i}} for i in range(3)], connector=connector
        ).raise_for_status()
        lines = read_lines(tail, 3)
    finally:
        tail.terminate()
        tail.wait(10)
    assert [line["e"]["i"] for line in lines] == [0, 1, 2]
    assert all(line["connector_id"] == connector for line in lines)
    # Resume after the first: the other two, again.
    post_events(world, [{"t": T0 + 9, "n": 0, "e": {"k": "HaError", "i": 9}}], connector=connector)
    resumed = subprocess.Popen([*CONNTEL, "events", "tail", "--connector", connector, "--json", "--since",
                                lines[0]["id"]], stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        again = read_lines(resumed, 3)
    finally:
        resumed.terminate()
        resumed.wait(10)
    assert [line["e"]["i"] for line in again] == [1, 2, 9]


def test_url_may_be_the_server_root_and_anything_else_is_one_clear_line(world: World):
    env = {**os.environ, "CLOUDFLARE_API_TOKEN": world.read_token, "CLOUDFLARE_ACCOUNT_ID": world.account}
    for root in (world.server.origin, world.server.origin + "/"):
        done = subprocess.run([*CONNTEL, "connectors", "list", "--json", "--url", root], capture_output=True,
                              text=True, env=env, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert world.connector in {item["id"] for item in ndjson(done.stdout)}
    wrong = f"{world.server.origin}/client"
    done = subprocess.run([*CONNTEL, "connectors", "list"], capture_output=True, text=True, timeout=60,
                          env={**env, "CLOUDFLARE_BASE_URL": wrong})  # fmt: skip
    assert done.returncode == 1 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert f"Not a conntel API URL: {wrong!r}. Pass the server's root" in done.stderr


def test_interrupts_from_the_terminal(world: World):
    connector = world.new_connector()
    made = run(world, "connectors", "reboot", connector, "--purge", "--json", token=world.write_token)
    assert made.returncode == 0, made.stderr
    interrupt = json.loads(made.stdout)
    assert interrupt["reboot"] == {"purge": True} and "triggered_at" not in interrupt
    # One pending at a time: the 409 is one line, exit status 1.
    again = run(world, "connectors", "shutdown", connector, token=world.write_token)
    assert again.returncode == 1 and "20041" in again.stderr and "Traceback" not in again.stderr
    refused = run(world, "connectors", "restart", connector)  # the read token
    assert refused.returncode == 1 and "403" in refused.stderr
    listed = run(world, "connectors", "interrupts", connector, "--json")
    assert listed.returncode == 0 and ndjson(listed.stdout) == [interrupt]
    table = run(world, "connectors", "interrupts", connector)
    assert table.returncode == 0 and "reboot" in table.stdout and "pending" in table.stdout
