"""Authentication and authorization: every case of CONTRACT §5/§7, and the permission matrix."""

from __future__ import annotations

import math
import time

import httpx
import pytest
from helpers import CREDENTIAL_TTL, World, bearer, cli, global_key, post_events, store_dump, wait_for

T0 = 1_700_000_000
READ, WRITE = "Magic WAN Read", "Magic WAN Write"


@pytest.fixture(scope="module")
def event_ref(world: World) -> str:
    post_events(world, [{"t": T0, "n": 77, "e": {"k": "Init"}}]).raise_for_status()
    return f"{T0}.77"


def get_event(world: World, headers: dict, ref: str, account: str | None = None, connector: str | None = None):
    return httpx.get(f"{world.events_url(connector, account)}/{ref}", headers=headers)


def errors_of(response: httpx.Response) -> list[dict]:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return body["errors"]


def test_no_credentials(world: World, event_ref: str):
    response = get_event(world, {}, event_ref)
    assert response.status_code == 400
    assert errors_of(response) == [
        {"code": 9106, "message": "Missing X-Auth-Key, X-Auth-Email or Authorization headers"}
    ]


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "bearer " + "a" * 40,
        "Bearer " + "a" * 39,
        "Bearer " + "a" * 41,
        "Bearer " + "a" * 39 + "!",
        "Basic dXNlcjpwYXNz",
        "Bearer  " + "a" * 40,
        "a" * 40,
    ],
)
def test_malformed_authorization(world: World, event_ref: str, value: str):
    response = get_event(world, {"Authorization": value}, event_ref)
    assert response.status_code == 400
    assert errors_of(response) == [
        {
            "code": 6003,
            "message": "Invalid request headers",
            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
        }
    ]


@pytest.mark.parametrize(
    ("headers", "chain"),
    [
        ({"X-Auth-Email": "ops@example.com"}, [6103]),
        ({"X-Auth-Key": "144c9defac04969c7bfad8efaa8ea194"}, [6102]),
        ({"X-Auth-Email": "not-an-email", "X-Auth-Key": "144c9defac04969c7bfad8efaa8ea194"}, [6102]),
        ({"X-Auth-Email": "ops@example.com", "X-Auth-Key": "XYZ"}, [6103]),
        ({"X-Auth-Email": "ops@example.com", "X-Auth-Key": "144C9DEFAC04969C7BFAD8EFAA8EA194"}, [6103]),
        ({"X-Auth-Email": "ops@example.com", "X-Auth-Key": "a" * 31}, [6103]),
        ({"X-Auth-Email": "ops@example.com", "X-Auth-Key": "a" * 65}, [6103]),
        ({"X-Auth-Email": "nope", "X-Auth-Key": "nope"}, [6102, 6103]),
    ],
)
def test_malformed_global_key_headers(world: World, event_ref: str, headers: dict, chain: list[int]):
    response = get_event(world, headers, event_ref)
    assert response.status_code == 400
    (error,) = errors_of(response)
    assert error["code"] == 6003
    assert [link["code"] for link in error["error_chain"]] == chain


def test_unknown_token_is_401(world: World, event_ref: str):
    response = get_event(world, bearer("A" * 40), event_ref)
    assert response.status_code == 401
    assert errors_of(response) == [{"code": 10000, "message": "Authentication error"}]


def test_wrong_global_key_is_403_9103(world: World, event_ref: str):
    for headers in (global_key(world.email, "0" * 37), global_key("nobody@example.com", world.api_key)):
        response = get_event(world, headers, event_ref)
        assert response.status_code == 403
        assert errors_of(response) == [{"code": 9103, "message": "Unknown X-Auth-Key or X-Auth-Email"}]


def test_global_key_email_is_case_insensitive(world: World, event_ref: str):
    response = get_event(world, global_key(world.email.upper(), world.api_key), event_ref)
    assert response.status_code == 200


def test_authorization_header_wins_over_global_key(world: World, event_ref: str):
    headers = {**global_key(world.email, world.api_key), **bearer("B" * 40)}
    assert get_event(world, headers, event_ref).status_code == 401


# -- the matrix: credential kind x permission x own/other account x read/ingest --


def credentials(world: World, which: str) -> dict:
    return {
        "read token": bearer(world.read_token),
        "write token": bearer(world.write_token),
        "global key": global_key(world.email, world.api_key),
        "other account's token": bearer(world.other_write_token),
        "other account's global key": global_key(world.other_email, world.other_api_key),
    }[which]


@pytest.mark.parametrize(
    ("who", "may_read", "may_write"),
    [
        ("read token", True, False),
        ("write token", True, True),
        ("global key", True, True),
        ("other account's token", False, False),
        ("other account's global key", False, False),
    ],
)
def test_permission_matrix_on_own_account(world: World, event_ref: str, who: str, may_read: bool, may_write: bool):
    headers = credentials(world, who)
    read = get_event(world, headers, event_ref)
    assert read.status_code == (200 if may_read else 403), read.text
    if not may_read:
        assert errors_of(read) == [{"code": 10000, "message": "Authentication error"}]
    connector = world.new_connector()
    write = httpx.post(world.events_url(connector), json=[{"t": T0, "n": 1, "e": {"k": "Init"}}], headers=headers)
    assert write.status_code == (200 if may_write else 403), write.text
    if not may_write:
        assert errors_of(write)[0]["code"] == 10000
        assert get_event(world, bearer(world.write_token), f"{T0}.1", connector=connector).status_code == 404


@pytest.mark.parametrize("who", ["read token", "write token", "global key"])
def test_nobody_reaches_another_accounts_data(world: World, who: str):
    other = httpx.post(
        world.events_url(world.other_connector, world.other_account),
        json=[{"t": T0, "n": 5, "e": {"k": "Init"}}],
        headers=bearer(world.other_write_token),
    )
    assert other.status_code == 200, other.text
    headers = credentials(world, who)
    read = get_event(world, headers, f"{T0}.5", account=world.other_account, connector=world.other_connector)
    assert read.status_code == 403
    write = httpx.post(
        world.events_url(world.other_connector, world.other_account),
        json=[{"t": T0, "n": 6, "e": {"k": "Init"}}],
        headers=headers,
    )
    assert write.status_code == 403
    # and a nonexistent account looks the same as a foreign one: no existence leak
    assert get_event(world, headers, f"{T0}.5", account="f" * 32).status_code == 403


def test_revoked_token_stops_working(world: World, event_ref: str):
    token = world.new_token(READ)
    assert get_event(world, bearer(token["value"]), event_ref).status_code == 200
    assert cli("tokens", "revoke", token["id"], db=world.db) == {"id": token["id"], "revoked": True}
    took = wait_for(lambda: get_event(world, bearer(token["value"]), event_ref).status_code == 401, timeout=3)
    assert took < CREDENTIAL_TTL + 1  # within the server's --credential-ttl (and the polls' own time)
    assert errors_of(get_event(world, bearer(token["value"]), event_ref))[0]["code"] == 10000


def test_expired_token_is_401(world: World, event_ref: str):
    expired = world.new_token(READ, expires_on="2020-01-01T00:00:00Z")
    response = get_event(world, bearer(expired["value"]), event_ref)
    assert response.status_code == 401
    assert errors_of(response) == [{"code": 10000, "message": "Authentication error"}]


def test_token_expiring_soon_works_until_then(world: World, event_ref: str):
    expiry = math.ceil(time.time()) + 2  # whole seconds, as --expires-on takes them: 2 to 3 s from now
    token = world.new_token(READ, expires_on=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry)))
    assert get_event(world, bearer(token["value"]), event_ref).status_code == 200
    refused_at = []

    def refused() -> bool:
        status = get_event(world, bearer(token["value"]), event_ref).status_code
        assert status in (200, 401), status
        if status == 401:
            refused_at.append(time.time())  # after the answer: not before the server's own clock
        return status == 401

    wait_for(refused, timeout=expiry + CREDENTIAL_TTL + 3 - time.time(), interval=0.1)
    assert refused_at[0] >= expiry  # accepted until it expired, then refused


def test_secrets_are_stored_hashed_and_never_logged(world: World, event_ref: str):
    get_event(world, bearer(world.read_token), event_ref)
    get_event(world, global_key(world.email, world.api_key), event_ref)
    stored = store_dump(world.db)
    assert world.token_ids["read"].encode() in stored  # the dump does hold the tokens table
    for secret in (world.read_token, world.write_token, world.api_key):
        assert secret.encode() not in stored
        assert secret not in world.server.server_log()
