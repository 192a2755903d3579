"""The device side over HTTP: connector credentials (what they may and may not do), interrupts
(the operator's side), check-ins and executed reports (the connector's side), on both backends."""

from __future__ import annotations

import re

import httpx
import pytest
from helpers import CREDENTIAL_TTL, Server, World, bearer, cli, global_key, wait_for

T0 = 1_700_000_000
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def connectors_url(world: World, account: str | None = None) -> str:
    return f"{world.server.base_url}/accounts/{account or world.account}/magic/connectors"


def connector_url(world: World, connector: str, account: str | None = None) -> str:
    return f"{connectors_url(world, account)}/{connector}"


def mint(world: World, connector: str, account: str | None = None) -> str:
    made = cli("connectors", "credential", "--account", account or world.account, "--connector", connector, db=world.db)
    assert made["connector_id"] == connector and re.fullmatch(r"[A-Za-z0-9_-]{40}", made["value"])
    return made["value"]


def push(world: World, connector: str, token: str, events: list[dict] | None = None, account: str | None = None):
    body = events if events is not None else [{"t": T0, "n": 0, "e": {"k": "Init"}}]
    return httpx.post(f"{connector_url(world, connector, account)}/telemetry/events", json=body, headers=bearer(token))


def check_in(world: World, connector: str, token: str, body: dict | None = None, account: str | None = None):
    url = f"{connector_url(world, connector, account)}/checkin"
    return (
        httpx.post(url, headers=bearer(token), json=body)
        if body is not None
        else httpx.post(url, headers=bearer(token))
    )


def interrupt(world: World, connector: str, body: dict, token: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{connector_url(world, connector)}/interrupts", json=body, headers=bearer(token or world.write_token)
    )


def interrupts(world: World, connector: str, token: str | None = None) -> list[dict]:
    response = httpx.get(f"{connector_url(world, connector)}/interrupts", headers=bearer(token or world.read_token))
    return result(response)


def result(response: httpx.Response):
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["errors"] == []
    return body["result"]


def error(response: httpx.Response) -> tuple[int, int]:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return response.status_code, body["errors"][0]["code"]


# -- device credentials --


def test_a_minted_credential_pushes_its_connectors_events(world: World):
    connector = world.new_connector()
    secret = mint(world, connector)
    assert result(push(world, connector, secret)) == {"accepted": 1, "duplicates": 0}
    stored = httpx.get(f"{connector_url(world, connector)}/telemetry/events/{T0}.0", headers=bearer(world.read_token))
    assert result(stored)["e"] == {"k": "Init"}


def test_minting_again_replaces_the_old_credential(world: World):
    connector = world.new_connector()
    old = mint(world, connector)
    assert push(world, connector, old).status_code == 200
    new = mint(world, connector)
    assert new != old
    assert push(world, connector, new).status_code == 200
    # The old one stops within the servers' credential TTL (this world's: CREDENTIAL_TTL).
    took = wait_for(lambda: push(world, connector, old).status_code == 401, timeout=5)
    assert took < CREDENTIAL_TTL + 2
    assert error(push(world, connector, old)) == (401, 10000)


def test_minting_for_a_connector_that_is_not_there_is_refused(world: World):
    done = cli("connectors", "credential", "--account", world.account, "--connector", "nope", db=world.db, check=False)
    assert done["returncode"] == 1 and "No connector 'nope'" in done["stderr"]
    other = cli(
        "connectors", "credential", "--account", world.account, "--connector", world.other_connector,
        db=world.db, check=False,
    )  # fmt: skip
    assert other["returncode"] == 1


def test_a_license_key_is_a_device_credential_until_provisioned_anew(world: World):
    made = result(
        httpx.post(
            connectors_url(world), json={"device": {"provision_license": True}}, headers=bearer(world.write_token)
        )
    )
    connector, key = made["id"], made["license_key"]
    assert result(push(world, connector, key))["accepted"] == 1
    assert result(check_in(world, connector, key)) == {}
    renewed = httpx.patch(
        connector_url(world, connector), json={"provision_license": True}, headers=bearer(world.write_token)
    )
    new_key = result(renewed)["license_key"]
    assert push(world, connector, new_key).status_code == 200
    wait_for(lambda: push(world, connector, key).status_code == 401, timeout=5)


def test_a_deleted_connectors_credential_stops_working(world: World):
    connector = world.new_connector()
    secret = mint(world, connector)
    assert check_in(world, connector, secret).status_code == 200
    assert httpx.delete(connector_url(world, connector), headers=bearer(world.write_token)).status_code == 200
    wait_for(lambda: check_in(world, connector, secret).status_code == 401, timeout=5)


def _matrix(world: World, connector: str, other: str) -> list[tuple[str, str, dict]]:
    """Every request a device credential may not make: (method, url, extra request arguments)."""
    me, them = connector_url(world, connector), connector_url(world, other)
    foreign = connector_url(world, world.other_connector, world.other_account)
    event = [{"t": T0, "n": 1, "e": {"k": "Init"}}]
    return [
        ("GET", f"{me}/telemetry/events/{T0}.0", {}),
        ("GET", f"{me}/telemetry/events?from=0&to={T0}", {}),
        ("GET", f"{me}/telemetry/events/latest", {}),
        ("GET", f"{me}/telemetry/events/stream", {}),
        ("GET", f"{connectors_url(world)}/telemetry/events/stream", {}),
        ("GET", connectors_url(world), {}),
        ("POST", connectors_url(world), {"json": {"device": {"serial_number": "X"}}}),
        ("GET", me, {}),
        ("PUT", me, {"json": {}}),
        ("PATCH", me, {"json": {"notes": "mine now"}}),
        ("DELETE", me, {}),
        ("GET", f"{me}/interrupts", {}),
        ("POST", f"{me}/interrupts", {"json": {"reboot": {}}}),
        ("POST", f"{me}/credential", {}),
        # another connector of the same account, and one of another account
        ("POST", f"{them}/telemetry/events", {"json": event}),
        ("POST", f"{them}/checkin", {}),
        ("POST", f"{them}/checkin", {"json": {"executed": "x"}}),
        ("GET", f"{them}/telemetry/events/{T0}.0", {}),
        ("POST", f"{foreign}/telemetry/events", {"json": event}),
        ("POST", f"{foreign}/checkin", {}),
        ("GET", f"{connector_url(world, connector, world.other_account)}/telemetry/events/latest", {}),
        # snapshots: only its own may be pushed; none read
        ("GET", f"{me}/telemetry/snapshots?from=0&to={T0}", {}),
        ("GET", f"{me}/telemetry/snapshots/latest", {}),
        ("GET", f"{me}/telemetry/snapshots/{T0}", {}),
        ("POST", f"{them}/telemetry/snapshots", {"json": [snapshot(T0)]}),
        ("POST", f"{foreign}/telemetry/snapshots", {"json": [snapshot(T0)]}),
    ]


def snapshot(t: int) -> dict:
    """The smallest snapshot: its six required fields."""
    counts = ("count_reclaim_failures", "count_reclaimed_paths", "count_record_failed", "count_transmit_failures")
    return {**dict.fromkeys(counts, 0), "t": t, "v": "2026.1.0"}


def test_a_device_credential_pushes_its_snapshots_and_learns_its_operation(world: World):
    connector = world.new_connector()
    secret = mint(world, connector)
    url = f"{connector_url(world, connector)}/telemetry/snapshots"
    assert result(httpx.post(url, json=[snapshot(T0)], headers=bearer(secret))) == {"accepted": 1, "duplicates": 0}
    made = result(interrupt(world, connector, {"restart": {}}))
    pushed = result(httpx.post(url, json=[snapshot(T0 + 60)], headers=bearer(secret)))
    assert pushed["operation"]["id"] == made["id"] and pushed["operation"]["action"] == "restart"
    assert result(httpx.post(url, json=[snapshot(T0 + 60)], headers=bearer(world.write_token)))["duplicates"] == 1


def test_a_device_credential_may_do_nothing_else(world: World):
    connector, other = world.new_connector(), world.new_connector()
    secret = mint(world, connector)
    assert push(world, connector, secret).status_code == 200
    refused = []
    for method, url, extra in _matrix(world, connector, other):
        response = httpx.request(method, url, headers=bearer(secret), **extra)
        if (response.status_code, response.json()["errors"][0]["code"] if response.status_code >= 400 else 0) != (
            403,
            10000,
        ):
            refused.append((method, url, response.status_code, response.text[:200]))
    assert refused == []
    # Nothing changed: the connector is still there with its settings, and no interrupt was made.
    assert result(httpx.get(connector_url(world, connector), headers=bearer(world.read_token)))["notes"] == ""
    assert interrupts(world, connector) == []
    # Token verify: a device credential is not an API token (CONTRACT §5: 401, 1000).
    verify = httpx.get(f"{world.server.base_url}/user/tokens/verify", headers=bearer(secret))
    assert error(verify) == (401, 1000)


def test_account_tokens_keep_working_and_read_tokens_may_not_check_in(world: World):
    connector = world.new_connector()
    assert result(push(world, connector, world.write_token))["accepted"] == 1
    assert result(check_in(world, connector, world.write_token)) == {}
    assert error(check_in(world, connector, world.read_token)) == (403, 10000)
    assert error(check_in(world, "nosuchconnector", world.write_token)) == (404, 20002)
    by_key = httpx.post(f"{connector_url(world, connector)}/checkin", headers=global_key(world.email, world.api_key))
    assert result(by_key) == {}


# -- interrupts: the operator's side --


def test_create_and_list_interrupts(world: World):
    connector = world.new_connector()
    assert interrupts(world, connector) == []
    made = result(interrupt(world, connector, {"reboot": {}}))
    assert set(made) == {"id", "submitted_at", "reboot"} and made["reboot"] == {"purge": False}
    assert ISO.fullmatch(made["submitted_at"])
    assert interrupts(world, connector) == [made]
    # One pending at a time: 409.
    assert error(interrupt(world, connector, {"shutdown": {"purge": True}})) == (409, 20041)
    secret = mint(world, connector)
    result(check_in(world, connector, secret, {"executed": made["id"]}))
    second = result(interrupt(world, connector, {"shutdown": {"purge": True}}))
    assert second["shutdown"] == {"purge": True}
    listed = interrupts(world, connector, world.write_token)
    assert [item["id"] for item in listed] == [second["id"], made["id"]]  # newest first
    assert "triggered_at" not in listed[0] and ISO.fullmatch(listed[1]["triggered_at"])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reboot": {}, "restart": {}},
        {"reboot": {"purge": "yes"}},
        {"reboot": {"force": True}},
        {"reboot": None},
        {"halt": {}},
        [],
        {"reboot": {}, "extra": 1},
    ],
)
def test_a_create_body_needs_exactly_one_action(world: World, body):
    connector = world.new_connector()
    assert error(interrupt(world, connector, body)) == (400, 20040)
    assert interrupts(world, connector) == []


def test_interrupt_permissions_and_unknown_connectors(world: World):
    connector = world.new_connector()
    assert error(interrupt(world, connector, {"restart": {}}, world.read_token)) == (403, 10000)
    assert error(interrupt(world, connector, {"restart": {}}, world.other_write_token)) == (403, 10000)
    assert error(interrupt(world, "nosuch", {"restart": {}})) == (404, 20002)
    missing = httpx.get(f"{connector_url(world, 'nosuch')}/interrupts", headers=bearer(world.read_token))
    assert error(missing) == (404, 20002)
    assert result(interrupt(world, connector, {"restart": {}}, world.write_token))["restart"] == {"purge": False}


# -- check-ins: the connector's side --


def test_a_bare_check_in_learns_the_pending_operation_until_it_is_reported(world: World):
    connector = world.new_connector()
    secret = mint(world, connector)
    assert result(check_in(world, connector, secret)) == {}
    made = result(interrupt(world, connector, {"reboot": {"purge": True}}))
    operation = {"id": made["id"], "action": "reboot", "purge": True, "submitted_at": made["submitted_at"]}
    # A lost answer: the next check-in learns the same operation.
    assert result(check_in(world, connector, secret)) == {"operation": operation}
    assert result(check_in(world, connector, secret)) == {"operation": operation}
    # A push learns it too.
    assert result(push(world, connector, secret))["operation"] == operation
    # Reported executed: triggered_at is set, and nothing is pending any more.
    assert result(check_in(world, connector, secret, {"executed": made["id"]})) == {}
    triggered = interrupts(world, connector)[0]["triggered_at"]
    assert ISO.fullmatch(triggered)
    # A retried report changes nothing (the first one wins).
    assert result(check_in(world, connector, secret, {"executed": made["id"]})) == {}
    assert interrupts(world, connector)[0]["triggered_at"] == triggered
    assert "operation" not in result(push(world, connector, secret, [{"t": T0 + 1, "n": 0, "e": {"k": "Init"}}]))


def test_a_report_answers_what_is_pending_after_it(world: World):
    connector = world.new_connector()
    secret = mint(world, connector)
    first = result(interrupt(world, connector, {"restart": {}}))
    result(check_in(world, connector, secret, {"executed": first["id"]}))
    second = result(interrupt(world, connector, {"shutdown": {}}))
    # Reporting the first again (a retry whose answer was lost) learns the second.
    again = result(check_in(world, connector, secret, {"executed": first["id"]}))
    assert again["operation"]["id"] == second["id"] and again["operation"]["action"] == "shutdown"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"executed": "nosuchoperation"}, (404, 20043)),
        ({"executed": 12}, (400, 20042)),
        ({"executed": ""}, (400, 20042)),
        ({"executed": "x", "also": 1}, (400, 20042)),
        ([], (400, 20042)),
        ("not json", (400, 20004)),
    ],
)
def test_bad_check_ins(world: World, body, expected):
    connector = world.new_connector()
    secret = mint(world, connector)
    url = f"{connector_url(world, connector)}/checkin"
    content = body.encode() if isinstance(body, str) else None
    response = httpx.post(url, headers=bearer(secret), content=content, json=None if content else body)
    assert error(response) == expected


def test_an_empty_body_is_a_bare_check_in_and_query_strings_are_refused(world: World):
    connector = world.new_connector()
    secret = mint(world, connector)
    url = f"{connector_url(world, connector)}/checkin"
    assert result(httpx.post(url, headers=bearer(secret), content=b"")) == {}
    assert result(httpx.post(url, headers={**bearer(secret), "Content-Type": "application/json"}, json={})) == {}
    assert error(httpx.post(url + "?x=1", headers=bearer(secret))) == (400, 20010)
    assert error(httpx.post(url, headers={**bearer(secret), "Content-Length": "3"}, content=b"{}x")) == (400, 20004)
    assert error(httpx.get(url, headers=bearer(secret))) == (405, 20003)
    assert error(httpx.post(url)) == (400, 9106)


def test_a_check_in_is_a_heartbeat(world: World):
    connector = world.new_connector()
    secret = mint(world, connector)
    get = lambda: result(httpx.get(connector_url(world, connector), headers=bearer(world.read_token)))  # noqa: E731
    assert "last_heartbeat" not in get()
    assert check_in(world, connector, secret).status_code == 200
    wait_for(lambda: "last_heartbeat" in get(), timeout=5)
    assert ISO.fullmatch(get()["last_heartbeat"])


def test_delivery_survives_a_server_restart(world: World, tmp_path):
    """Submitted through one server, which stops; a new one delivers it at the next check-in."""
    connector = world.new_connector()
    secret = mint(world, connector)
    first = Server(world.db, log_dir=tmp_path).start()
    try:
        url = f"{first.base_url}/accounts/{world.account}/magic/connectors/{connector}/interrupts"
        made = result(httpx.post(url, json={"shutdown": {}}, headers=bearer(world.write_token)))
    finally:
        first.stop()
    second = Server(world.db, log_dir=tmp_path).start()
    try:
        url = f"{second.base_url}/accounts/{world.account}/magic/connectors/{connector}/checkin"
        assert result(httpx.post(url, headers=bearer(secret)))["operation"]["id"] == made["id"]
    finally:
        second.stop()


def test_a_write_token_mints_a_connectors_credential_over_the_api(world: World):
    connector = world.new_connector()
    url = f"{connector_url(world, connector)}/credential"
    assert error(httpx.post(url, headers=bearer(world.read_token))) == (403, 10000)
    assert error(httpx.post(f"{connector_url(world, 'nosuch')}/credential", headers=bearer(world.write_token))) == (
        404,
        20002,
    )
    made = result(httpx.post(url, headers=bearer(world.write_token)))
    assert made["connector_id"] == connector and re.fullmatch(r"[A-Za-z0-9_-]{40}", made["value"])
    assert result(check_in(world, connector, made["value"])) == {}
    again = result(httpx.post(url, headers=bearer(world.write_token)))["value"]
    wait_for(lambda: check_in(world, connector, made["value"]).status_code == 401, timeout=5)
    assert result(check_in(world, connector, again)) == {}
