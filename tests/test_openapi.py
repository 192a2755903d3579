"""The OpenAPI document: valid 3.1, complete, and honoured by the server under schemathesis."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from helpers import ROOT, World, bearer, post_events
from openapi_spec_validator import validate

from conntel.kinds import KIND_NAMES

OPERATIONS = {
    ("get", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events/{event_t}.{event_n}"),
    ("get", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events/latest"),
    ("get", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events"),
    ("post", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events"),
    ("get", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/snapshots/{snapshot_t}"),
    ("get", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/snapshots/latest"),
    ("get", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/snapshots"),
    ("post", "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/snapshots"),
    ("get", "/accounts/{account_id}/magic/connectors"),
    ("post", "/accounts/{account_id}/magic/connectors"),
    ("get", "/accounts/{account_id}/magic/connectors/{connector_id}"),
    ("put", "/accounts/{account_id}/magic/connectors/{connector_id}"),
    ("patch", "/accounts/{account_id}/magic/connectors/{connector_id}"),
    ("delete", "/accounts/{account_id}/magic/connectors/{connector_id}"),
    ("get", "/user/tokens/verify"),
}


def fetch(world: World) -> dict:
    response = httpx.get(world.server.base_url + "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_document_is_valid_openapi_3_1_and_complete(world: World):
    document = fetch(world)
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"] == "3.1.0"
    served = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == OPERATIONS
    schemas = document["components"]["schemas"]
    assert set(KIND_NAMES) <= set(schemas)  # every kind is documented, from the one table
    assert schemas["StartUpgrade"]["required"] == ["k", "url"]
    list_params = document["paths"]["/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events"]["get"]
    limit = next(p for p in list_params["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}


@pytest.mark.timeout(360)  # schemathesis runs bounded at 300 s: let that bound speak first
def test_schemathesis_finds_no_server_error_and_no_schema_violation(world: World, tmp_path):
    connector = world.new_connector()
    events = [{"t": 1_700_000_000 + i, "n": 0, "e": {"k": KIND_NAMES[i % 29], "url": "u"}} for i in range(40)]
    post_events(world, events, connector=connector).raise_for_status()
    required = {"count_reclaim_failures": 0, "count_reclaimed_paths": 0, "count_record_failed": 0, "v": "1"}
    snapshots = [required | {"count_transmit_failures": 0, "t": i, "extra": [i]} for i in range(5)]  # t: 0..4
    snapshots_url = world.events_url(connector).removesuffix("/events") + "/snapshots"
    httpx.post(snapshots_url, json=snapshots, headers=bearer(world.write_token)).raise_for_status()
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": str(ROOT / "tests"),
        "CONNTEL_ACCOUNT": world.account,
        "CONNTEL_CONNECTOR": connector,
    }
    # Snapshot ingestion's body has 175 fields and nine nested arrays: the coverage phase would try ~2,700 bodies
    # (over a minute) and each fuzzed one takes ~0.7 s to generate; 10 fuzzed bodies reach it within the bound.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        '[[operations]]\ninclude-operation-id = "ingestSnapshots"\nphases.coverage.enabled = false\n'
        "generation.max-examples = 10\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            world.server.base_url + "/openapi.json",
            "--url",
            world.server.base_url,
            "--header",
            f"Authorization: Bearer {world.write_token}",
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--max-examples",
            "40",
            "--generation-deterministic",
            "--no-color",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,  # its caches stay out of the tree
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "15 passed" in done.stdout  # every operation was exercised
    assert "Authentication failed" not in done.stdout  # ...past authentication, on real data
