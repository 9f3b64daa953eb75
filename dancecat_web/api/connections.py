"""``/api/v1/connections``: list, create, read, replace, patch, delete and test."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.models import Connection
from dancecat_core.services import connections, probes
from dancecat_core.services.connections import UNSET, ConnectionInput
from dancecat_web.api import bodies, created, no_content, object_id
from dancecat_web.api.bodies import Field
from dancecat_web.api.present import connection_json

FIELDS = {
    "name": Field("string"),
    "driver": Field("string"),
    "host": Field("string", nullable=True),
    "port": Field("integer", nullable=True),
    "database": Field("string"),
    "user": Field("string", nullable=True),
    "password": Field("string", nullable=True),
    "read_only": Field("boolean"),
    "shared": Field("boolean"),
    "options": Field("object"),
}
REQUIRED = ("name", "driver", "database")


def _input(values: dict[str, Any]) -> ConnectionInput:
    return ConnectionInput(
        name=values["name"],
        driver=values["driver"],
        database=values["database"],
        host=values.get("host"),
        port=values.get("port"),
        user=values.get("user"),
        password=values.get("password", UNSET),
        read_only=values.get("read_only", True),
        shared=values.get("shared", False),
        options=values.get("options") or {},
    )


def _current(connection: Connection) -> dict[str, Any]:
    """The connection's present values in body form, for PATCH to start from."""
    return {
        "name": connection.name,
        "driver": connection.driver,
        "host": connection.host,
        "port": connection.port,
        "database": connection.database,
        "user": connection.user_name,
        "read_only": connection.read_only,
        "shared": connection.shared,
        "options": connection.options,
    }


def _one(request: Request, connection: Connection) -> dict[str, Any]:
    return {"connection": connection_json(connection)}


@view_config(route_name="api.connections", request_method="GET", renderer="json")
def list_connections(request: Request) -> dict[str, Any]:
    found = connections.list_visible(request.dbsession, request.user)
    return {"connections": [connection_json(connection) for connection in found]}


@view_config(route_name="api.connections", request_method="POST", renderer="json")
def create_connection(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, FIELDS, required=REQUIRED)
    connection = connections.create(
        request.runtime, request.dbsession, request.user, _input(values)
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
    connection = connections.update(
        request.runtime, request.dbsession, request.user, object_id(request), _input(values)
    )
    return _one(request, connection)


@view_config(route_name="api.connection", request_method="PATCH", renderer="json")
def patch_connection(request: Request) -> dict[str, Any]:
    changes = bodies.parse(request, FIELDS)
    current = connections.get(request.dbsession, request.user, object_id(request))
    connection = connections.update(
        request.runtime,
        request.dbsession,
        request.user,
        current.id,
        _input({**_current(current), **changes}),
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
        probes.check_unsaved(request.runtime, request.dbsession, request.user, _input(values))
    )
