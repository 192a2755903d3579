"""GET /client/v4/user/tokens/verify."""

from __future__ import annotations

import httpx
from helpers import CREDENTIAL_TTL, World, bearer, cli, global_key, wait_for


def verify(world: World, headers: dict) -> httpx.Response:
    return httpx.get(world.server.base_url + "/user/tokens/verify", headers=headers)


def test_active_token(world: World):
    response = verify(world, bearer(world.read_token))
    assert response.status_code == 200
    assert response.json() == {
        "result": {"id": world.token_ids["read"], "status": "active"},
        "success": True,
        "errors": [],
        "messages": [{"code": 10000, "message": "This API Token is valid and active", "type": None}],
    }


def test_expiry_is_reported(world: World):
    token = world.new_token("Magic WAN Read", expires_on="2099-01-01T00:00:00Z")
    result = verify(world, bearer(token["value"])).json()["result"]
    assert result == {"id": token["id"], "status": "active", "expires_on": "2099-01-01T00:00:00Z"}


def test_missing_header_is_400_1001(world: World):
    for headers in ({}, global_key(world.email, world.api_key)):
        response = verify(world, headers)
        assert response.status_code == 400
        assert response.json()["errors"] == [{"code": 1001, "message": 'Missing "Authorization" header'}]


def test_any_other_token_is_401_1000(world: World):
    expired = world.new_token("Magic WAN Read", expires_on="2001-01-01T00:00:00Z")
    revoked = world.new_token("Magic WAN Read")
    assert verify(world, bearer(revoked["value"])).status_code == 200  # looked up, cached as active
    cli("tokens", "revoke", revoked["id"], db=world.db)
    wait_for(lambda: verify(world, bearer(revoked["value"])).status_code == 401, timeout=CREDENTIAL_TTL + 3)
    for value in (
        "Bearer " + "z" * 40,
        "Bearer short",
        "Basic abc",
        "Bearer " + expired["value"],
        "Bearer " + revoked["value"],
    ):
        response = verify(world, {"Authorization": value})
        assert response.status_code == 401, value
        assert response.json()["errors"] == [{"code": 1000, "message": "Invalid API Token"}]
