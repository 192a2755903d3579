"""Bounds on what a client can grow (#16, item 7): connector settings, and connectors per account."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from helpers import CONNTEL, Server, World, bearer, cli, drop_pg_database, new_store, store_args

MAX_EMBARGO_DATES = 1000


def connectors_url(server: Server, account: str) -> str:
    return f"{server.base_url}/accounts/{account}/magic/connectors"


def dates(count: int, start: dt.date = dt.date(2030, 1, 1)) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def error_of(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return response.status_code, body["errors"][0]["code"], body["errors"][0]["message"]


# Each a class of setting a client could grow or poison; every one is refused with 400, 20012.
GROWN = {
    "embargo dates beyond the bound": {"interrupt_window_embargo_dates": dates(MAX_EMBARGO_DATES + 1)},
    "one embargo date many times": {"interrupt_window_embargo_dates": ["2030-01-01"] * 100_000},
    "an embargo date twice": {"interrupt_window_embargo_dates": ["2030-01-01", "2030-01-02", "2030-01-01"]},
    "days of week beyond seven": {"interrupt_window_days_of_week": ["Monday"] * 8},
    "notes beyond 4096 characters": {"notes": "x" * 4097},
    "notes with an escape sequence": {"notes": "rack 4\u001b[2J"},
    "notes with a bidi override": {"notes": "abc\u202edef"},
    "notes with DEL": {"notes": "a\u007f"},
    "timezone beyond 64 characters": {"timezone": "Europe/" + "x" * 100},
}


@pytest.mark.parametrize("case", list(GROWN))
def test_grown_settings_are_refused_on_create_put_and_patch(world: World, case: str):
    url = connectors_url(world.server, world.account)
    headers = bearer(world.write_token)
    made = httpx.post(url, json={"device": {"id": "bounds"}}, headers=headers)
    assert made.status_code == 200
    connector = made.json()["result"]
    before = len(httpx.get(url, headers=headers).json()["result"])
    bad = GROWN[case]
    for method, target, body in (
        ("POST", url, {"device": {"id": "bounds"}, **bad}),
        ("PUT", f"{url}/{connector['id']}", bad),
        ("PATCH", f"{url}/{connector['id']}", bad),
    ):
        response = httpx.request(method, target, json=body, headers=headers)
        status, code, _ = error_of(response)
        assert (status, code) == (400, 20012), (method, case, response.text)
    assert len(httpx.get(url, headers=headers).json()["result"]) == before  # nothing created
    assert httpx.get(f"{url}/{connector['id']}", headers=headers).json()["result"] == connector  # nor changed


def test_settings_at_their_bounds_are_accepted(world: World):
    url = connectors_url(world.server, world.account)
    settings = {
        "interrupt_window_embargo_dates": dates(MAX_EMBARGO_DATES),
        "notes": "line one\n\tline two\r\n" + "x" * (4096 - 21),
        "interrupt_window_days_of_week": ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
    }
    response = httpx.post(url, json={"device": {"id": "edge"}, **settings}, headers=bearer(world.write_token))
    assert response.status_code == 200, response.text
    assert {k: response.json()["result"][k] for k in settings} == settings


@pytest.mark.parametrize(
    "device",
    [{"id": "dev\u0000"}, {"id": "dev\n"}, {"serial_number": "S-1\u001b[31m"}, {"serial_number": "S\u2066"}],
)
def test_device_text_with_control_characters_is_refused(world: World, device: dict):
    response = httpx.post(
        connectors_url(world.server, world.account), json={"device": device}, headers=bearer(world.write_token)
    )
    assert error_of(response)[:2] == (400, 20012)


@pytest.fixture
def limited(tmp_path: Path, backend: str):
    """A server whose accounts may have at most 5 connectors, with an account holding none yet."""
    db = new_store(tmp_path, backend)
    account = cli("accounts", "create", db=db)["id"]
    token = cli("tokens", "create", "--account", account, "--permission", "Magic WAN Write", db=db)["value"]
    server = Server(db, log_dir=tmp_path, extra_args=("--max-connectors-per-account", "5")).start()
    yield server, account, token
    server.stop()
    if backend == "postgres":
        drop_pg_database(db)


def test_connectors_per_account_are_bounded_atomically_for_the_api_and_the_cli(limited):
    server, account, token = limited
    url = connectors_url(server, account)

    async def create_many(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(headers=bearer(token), timeout=30) as client:
            return await asyncio.gather(*(client.post(url, json={"device": {"id": f"d{i}"}}) for i in range(n)))

    responses = asyncio.run(create_many(20))  # concurrent: the count is checked where the row is written
    assert sorted(r.status_code for r in responses) == [200] * 5 + [400] * 15
    refused = [error_of(r) for r in responses if r.status_code == 400]
    assert {code for _, code, _ in refused} == {20030}
    assert "5 connectors" in refused[0][2]
    listed = httpx.get(url, headers=bearer(token)).json()["result"]
    assert len(listed) == 5

    # The operator's CLI obeys the same bound, with the same setting.
    done = subprocess.run(
        [*CONNTEL, "connectors", "create", "--account", account, *store_args(server.db),
         "--max-connectors-per-account", "5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "already has 5 connectors" in done.stderr

    # Deleting one makes room again.
    assert httpx.delete(f"{url}/{listed[0]['id']}", headers=bearer(token)).status_code == 200
    assert httpx.post(url, json={"device": {"id": "again"}}, headers=bearer(token)).status_code == 200
    assert httpx.post(url, json={"device": {"id": "over"}}, headers=bearer(token)).status_code == 400


def _store_settings(world: World, connector: str, settings: dict) -> None:
    """Write a connector's settings as an earlier version, under looser rules, could have stored them."""
    encoded = json.dumps(settings).encode()
    if world.backend == "postgres":
        hexed = encoded.hex()
        sql = (
            f"UPDATE connectors SET settings = '\\x{hexed}'::bytea"
            f" WHERE account_id = '{world.account}' AND connector_id = '{connector}'"
        )
        subprocess.run(["psql", str(world.db), "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)
    else:
        conn = sqlite3.connect(world.db)
        with conn:
            conn.execute(
                "UPDATE connectors SET settings = ? WHERE account_id = ? AND connector_id = ?",
                (encoded, world.account, connector),
            )
        conn.close()


def test_settings_stored_under_older_rules_stay_readable_and_editable(world: World):
    url = connectors_url(world.server, world.account)
    headers = bearer(world.write_token)
    connector = httpx.post(url, json={"device": {"id": "legacy"}}, headers=headers).json()["result"]["id"]
    legacy = {"interrupt_window_embargo_dates": ["2030-01-01"] * 1500, "notes": "old \u001b notes"}
    _store_settings(world, connector, legacy)
    got = httpx.get(f"{url}/{connector}", headers=headers)
    assert got.status_code == 200 and got.json()["result"]["notes"] == legacy["notes"]
    assert len(got.json()["result"]["interrupt_window_embargo_dates"]) == 1500
    assert httpx.get(url, headers=headers).status_code == 200
    # An edit that leaves them alone works; one that sends them again is held to today's bounds.
    edited = httpx.patch(f"{url}/{connector}", json={"activated": True}, headers=headers)
    assert edited.status_code == 200 and edited.json()["result"]["activated"] is True
    again = httpx.patch(f"{url}/{connector}", json=legacy, headers=headers)
    assert error_of(again)[:2] == (400, 20012)
