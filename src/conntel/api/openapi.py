"""The OpenAPI 3.1 document, generated from the operations table and the msgspec types the code validates with."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

from conntel import __version__
from conntel.api.envelope import WireError
from conntel.api.routing import PREFIX
from conntel.events import PAYLOAD_TYPES
from conntel.ids import ID_PATTERN

if TYPE_CHECKING:
    from conntel.api.operations import Operation

REF = "#/components/schemas/{name}"


def _path_parameters(path: str) -> list[dict[str, Any]]:
    parameters = []
    for name in re.findall(r"{(\w+)}", path):
        if name in ("event_t", "event_n"):
            schema: dict[str, Any] = {"type": "number", "minimum": 0}
            description = "Time the event was recorded" if name == "event_t" else "Sequence number"
        elif name == "snapshot_t":
            schema, description = {"type": "number", "minimum": 0}, "Time the snapshot was recorded"
        else:
            schema, description = {"type": "string", "pattern": f"^{ID_PATTERN}$", "maxLength": 32}, "Identifier"
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema, "description": description})
    return parameters


def _envelope(result_schema: dict[str, Any], success: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["result", "success", "errors", "messages"],
        "properties": {
            "result": result_schema,
            "success": {"const": success},
            "errors": {"type": "array", "items": {"$ref": REF.format(name="WireError")}},
            "messages": {"type": "array", "items": {"type": "object"}},
        },
    }


def build_openapi(operations: list[Operation]) -> dict[str, Any]:
    types: list[Any] = [WireError, *PAYLOAD_TYPES]  # payloads: referenced by every event's `e`
    for op in operations:
        types += [t for t in (op.body, op.result) if t is not None]
    (schemas_of, components) = msgspec.json.schema_components(types, ref_template=REF)
    schema = dict(zip(types, schemas_of, strict=False))
    error_response = {
        "description": "An error, in the v4 envelope (see the README for every code)",
        "content": {"application/json": {"schema": _envelope({"type": "null"}, False)}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = (op.doc_path or op.path).removeprefix(PREFIX)
        document: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "parameters": _path_parameters(path)
            + [
                {
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "schema": p.schema(),
                    "description": p.description,
                }
                for p in op.query
            ],
            "responses": {
                "200": {
                    "description": "Success",
                    "content": {"application/json": {"schema": _envelope(schema[op.result], True)}},
                },
                "4XX": error_response,
            },
        }
        if op.accepts is not None:
            document["x-permissions"] = sorted(op.accepts)
            document["security"] = [{"api_token": []}, {"api_email": [], "api_key": []}]
        else:
            document["security"] = [{"api_token": []}]
        if op.body is not None:
            document["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema[op.body]}},
            }
        paths.setdefault(path, {})[op.method.lower()] = document
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "conntel: Magic WAN Connector telemetry events",
            "version": __version__,
            "description": "Wire-compatible with the Cloudflare v4 API; every response is the v4 envelope.",
        },
        "servers": [{"url": PREFIX}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "api_token": {"type": "http", "scheme": "bearer"},
                "api_email": {"type": "apiKey", "in": "header", "name": "X-Auth-Email"},
                "api_key": {"type": "apiKey", "in": "header", "name": "X-Auth-Key"},
            },
        },
    }
