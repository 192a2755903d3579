"""The operations table: every JSON operation of the API, how it is routed and how it is documented.

The routes and the OpenAPI document (api/openapi.py) are both built from this
table, so they cannot differ. Each route takes the query parameters its
operation declares and no other: one it does not declare is refused (400,
20010) before the handler runs (api/routing.py), so no route can ignore one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.convertors import register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from conntel.api.connectors import LIST_QUERY as CONNECTOR_QUERY
from conntel.api.connectors import ConnectorRoutes
from conntel.api.events import LIST_QUERY, EventRoutes
from conntel.api.openapi import build_openapi
from conntel.api.params import Param
from conntel.api.routing import CONNECTOR, CONNECTORS, PREFIX, ASGIApp, EventRefConvertor, route
from conntel.api.snapshots import LIST_QUERY as SNAPSHOT_QUERY
from conntel.api.snapshots import SnapshotRoutes
from conntel.api.stream import StreamRoutes
from conntel.api.tokens import TokenRoutes, TokenStatus
from conntel.connectors import Connector, ConnectorCreate, ConnectorEdit, ConnectorUpdate
from conntel.credentials import READ_ACCEPTS, WRITE_ACCEPTS
from conntel.events import AppendResult, Event, EventList, LatestEvents, NewEvent
from conntel.snapshots import LatestSnapshots, RecordedSnapshot, Snapshot, SnapshotList


@dataclass(frozen=True)
class Operation:
    """One HTTP operation: how it is routed and how it is documented."""

    method: str
    path: str  # the Starlette route path
    endpoint: Any  # a handler (request -> response) or an ASGI app
    operation_id: str
    summary: str
    accepts: frozenset[str] | None = None  # permission groups, any one of which is enough
    query: tuple[Param, ...] = ()  # the query parameters it takes; any other is refused
    body: Any = None  # msgspec type of the JSON request body
    result: Any = None  # msgspec type of the envelope's `result`
    doc_path: str | None = None  # the path as OpenAPI names it, when the route path differs


# `event_ref` starts with a digit, so `.../events/latest` is not taken for an event.
register_url_convertor("event_ref", EventRefConvertor())
GET_EVENT = CONNECTOR + "/telemetry/events/{event_ref:event_ref}"
# `snapshot_t` is a number, so it starts with a digit too: `.../snapshots/latest` is Latest Snapshots.
register_url_convertor("snapshot_t", EventRefConvertor())
GET_SNAPSHOT = CONNECTOR + "/telemetry/snapshots/{snapshot_t:snapshot_t}"


def operations_table(
    events: EventRoutes,
    connectors: ConnectorRoutes,
    tokens: TokenRoutes,
    get_event: ASGIApp,
    snapshots: SnapshotRoutes,
) -> list[Operation]:
    """Every JSON operation; `get_event` serves the HEADs of Get Event (its GETs take the hot path)."""
    return [
        Operation(
            "GET",
            GET_EVENT,
            get_event,
            "getEvent",
            "Get Event",
            READ_ACCEPTS,
            result=Event,
            doc_path=CONNECTOR + "/telemetry/events/{event_t}.{event_n}",
        ),
        Operation(
            "GET",
            CONNECTOR + "/telemetry/events/latest",
            events.latest_events,
            "listLatestEvents",
            "Latest Events, newest first",
            READ_ACCEPTS,
            result=LatestEvents,
        ),
        Operation(
            "GET",
            CONNECTOR + "/telemetry/events",
            events.list_events,
            "listEvents",
            "List Events",
            READ_ACCEPTS,
            query=LIST_QUERY,
            result=EventList,
        ),
        Operation(
            "POST",
            CONNECTOR + "/telemetry/events",
            events.ingest,
            "ingestEvents",
            "Ingest a batch of events (conntel's own)",
            WRITE_ACCEPTS,
            body=list[NewEvent],
            result=AppendResult,
        ),
        Operation(
            "GET",
            GET_SNAPSHOT,
            snapshots.get_snapshot,
            "getSnapshot",
            "Get Snapshot",
            READ_ACCEPTS,
            result=RecordedSnapshot,
            doc_path=CONNECTOR + "/telemetry/snapshots/{snapshot_t}",
        ),
        Operation(
            "GET",
            CONNECTOR + "/telemetry/snapshots/latest",
            snapshots.latest_snapshots,
            "listLatestSnapshots",
            "Latest Snapshots, newest first",
            READ_ACCEPTS,
            result=LatestSnapshots,
        ),
        Operation(
            "GET",
            CONNECTOR + "/telemetry/snapshots",
            snapshots.list_snapshots,
            "listSnapshots",
            "List Snapshots",
            READ_ACCEPTS,
            query=SNAPSHOT_QUERY,
            result=SnapshotList,
        ),
        Operation(
            "POST",
            CONNECTOR + "/telemetry/snapshots",
            snapshots.ingest,
            "ingestSnapshots",
            "Ingest a batch of snapshots (conntel's own)",
            WRITE_ACCEPTS,
            body=list[Snapshot],  # type: ignore[valid-type]  # a type built at import time
            result=AppendResult,
        ),
        Operation(
            "GET",
            CONNECTORS,
            connectors.list,
            "listConnectors",
            "List Connectors",
            READ_ACCEPTS,
            query=CONNECTOR_QUERY,
            result=list[Connector],
        ),
        Operation(
            "POST",
            CONNECTORS,
            connectors.create,
            "createConnector",
            "Create Connector",
            WRITE_ACCEPTS,
            body=ConnectorCreate,
            result=Connector,
        ),
        Operation("GET", CONNECTOR, connectors.get, "getConnector", "Get Connector", READ_ACCEPTS, result=Connector),
        Operation(
            "PUT",
            CONNECTOR,
            connectors.update,
            "updateConnector",
            "Update Connector (every setting)",
            WRITE_ACCEPTS,
            body=ConnectorUpdate,
            result=Connector,
        ),
        Operation(
            "PATCH",
            CONNECTOR,
            connectors.edit,
            "editConnector",
            "Edit Connector (given settings only)",
            WRITE_ACCEPTS,
            body=ConnectorEdit,
            result=Connector,
        ),
        Operation(
            "DELETE",
            CONNECTOR,
            connectors.delete,
            "deleteConnector",
            "Delete Connector and its events",
            WRITE_ACCEPTS,
            result=Connector,
        ),
        Operation(
            "GET", PREFIX + "/user/tokens/verify", tokens.verify, "verifyToken", "Verify Token", result=TokenStatus
        ),
    ]


def api_routes(operations: list[Operation], streams: StreamRoutes) -> list[BaseRoute]:
    """The routes under /client/v4: the table's operations, the live tails and the OpenAPI document."""
    document = msgspec.json.encode(build_openapi(operations))

    async def openapi_json(request: Request) -> Response:
        return Response(document, media_type="application/json")

    return [
        # Live tails (Server-Sent Events): outside the OpenAPI document, which describes JSON operations.
        route(CONNECTORS + "/telemetry/events/stream", streams.account_stream, ["GET"]),
        route(CONNECTOR + "/telemetry/events/stream", streams.connector_stream, ["GET"]),
        *(route(op.path, op.endpoint, [op.method], op.query) for op in operations),
        route(PREFIX + "/openapi.json", openapi_json, ["GET"]),
    ]
