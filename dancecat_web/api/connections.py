"""``/api/v1/connections``: list, create, read, replace, patch, delete and test."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.models import Connection
from dancecat_core.services import connections, probes
from dancecat_web.api import bodies, created, no_content, object_id, paging
from dancecat_web.api.present import connection_json

FIELDS = bodies.input_fields(ConnectionInput)
REQUIRED = bodies.required_fields(ConnectionInput)


def _one(request: Request, connection: Connection) -> dict[str, Any]:
    return {"connection": connection_json(connection)}


@view_config(route_name="api.connections", request_method="GET", renderer="json")
def list_connections(request: Request) -> dict[str, Any]:
    page = paging.requested(request)
    found = connections.list_visible(request.dbsession, request.user, page)
    return paging.answer(
        request, "connections", page, found, lambda kept: [connection_json(c) for c in kept]
    )


@view_config(route_name="api.connections", request_method="POST", renderer="json")
def create_connection(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, FIELDS, required=REQUIRED)
    connection = connections.create(
        request.runtime, request.dbsession, request.user, ConnectionInput.from_values(values)
    )
    created(request, request.route_url("api.connection", id=connection.id))
    return _one(request, connection)


@view_config(route_name="api.connection", request_method="GET", renderer="json")
def get_connection(request: Request) -> dict[str, Any]:
    connection = connections.get(request.dbsession, request.user, object_id(request))
    return _one(request, connection)


@view_config(route_name="api.connection", request_method="PUT", renderer="json")
def replace_connection(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, FIELDS, required=REQUIRED)
    # PUT replaces every field: those left out take their defaults (the password is kept).
    data = ConnectionInput.from_values(values, fill_defaults=True)
    connection = connections.update(
        request.runtime, request.dbsession, request.user, object_id(request), data
    )
    return _one(request, connection)


@view_config(route_name="api.connection", request_method="PATCH", renderer="json")
def patch_connection(request: Request) -> dict[str, Any]:
    changes = bodies.parse(request, FIELDS)
    # The fields left out keep their values (the service merges them).
    connection = connections.update(
        request.runtime,
        request.dbsession,
        request.user,
        object_id(request),
        ConnectionInput.from_values(changes),
    )
    return _one(request, connection)


@view_config(route_name="api.connection", request_method="DELETE")
def delete_connection(request: Request) -> Response:
    connections.delete(request.dbsession, request.user, object_id(request))
    return no_content()


def _check_json(result: tuple[bool, str | None, int]) -> dict[str, Any]:
    ok, error, elapsed_ms = result
    return {"ok": ok, "error": error, "elapsed_ms": elapsed_ms}


@view_config(route_name="api.connection.test", request_method="POST", renderer="json")
def test_connection(request: Request) -> dict[str, Any]:
    connection = connections.get(request.dbsession, request.user, object_id(request))
    return _check_json(probes.check(request.runtime, connection))


@view_config(route_name="api.connections.test_unsaved", request_method="POST", renderer="json")
def test_unsaved_connection(request: Request) -> dict[str, Any]:
    """The connection form's Test button: try the values without saving them."""
    values = bodies.parse(request, FIELDS, required=REQUIRED)
    return _check_json(
        probes.check_unsaved(
            request.runtime, request.dbsession, request.user, ConnectionInput.from_values(values)
        )
    )
