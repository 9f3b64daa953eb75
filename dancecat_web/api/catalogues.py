"""``/api/v1/connections/{id}/schema``: the connection's catalogue for the schema browser and
the editor's autocomplete; ``/api/v1/format-sql``: the editor's Format SQL."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.view import view_config

from dancecat_core.errors import ValidationError
from dancecat_core.inputs.job import JobInput
from dancecat_core.services import catalogues, connections
from dancecat_core.services.catalogues import CachedCatalogue
from dancecat_core.sql_format import format_sql
from dancecat_web.api import bodies, object_id

FORMAT_BODY = {
    "query": bodies.Field("string"),
    "connection_id": bodies.Field("integer", nullable=True),
}


def catalogue_json(found: CachedCatalogue) -> dict[str, Any]:
    """Tables in the database's order; ``columns`` is null for a table not opened yet."""
    return {
        "connection_id": found.connection.id,
        "driver": found.connection.driver,
        "read_at": found.read_at.isoformat(),
        "read_ms": found.read_ms,
        "left_out": found.left_out,
        "tables": [
            {
                **table.to_dict(),
                "columns": (
                    [column.to_dict() for column in found.columns[(table.schema, table.name)]]
                    if (table.schema, table.name) in found.columns
                    else None
                ),
            }
            for table in found.tables
        ],
    }


@view_config(route_name="api.connection.schema", request_method="GET", renderer="json")
def get_schema(request: Request) -> dict[str, Any]:
    found = catalogues.get(request.runtime, request.dbsession, request.user, object_id(request))
    return {"schema": catalogue_json(found)}


@view_config(route_name="api.connection.schema.refresh", request_method="POST", renderer="json")
def refresh_schema(request: Request) -> dict[str, Any]:
    found = catalogues.refresh(request.runtime, request.dbsession, request.user, object_id(request))
    return {"schema": catalogue_json(found)}


def _name(request: Request, key: str) -> str:
    value = request.GET.get(key)
    if not value:
        raise ValidationError(f"{key} is required", key)
    return value


@view_config(route_name="api.connection.schema.columns", request_method="GET", renderer="json")
def get_columns(request: Request) -> dict[str, Any]:
    schema, table = _name(request, "schema"), _name(request, "table")
    found = catalogues.columns(
        request.runtime, request.dbsession, request.user, object_id(request), schema, table
    )
    return {"schema": schema, "table": table, "columns": [column.to_dict() for column in found]}


@view_config(route_name="api.format_sql", request_method="POST", renderer="json")
def format_query(request: Request) -> dict[str, Any]:
    """Laid out in the dialect of the connection when one is named (where its strings and
    comments end decides which ``{{ name }}`` are parameters)."""
    values = bodies.parse(request, FORMAT_BODY, required=("query",))
    query = JobInput(query=values["query"]).cleaned(only=("query",))["query"]
    dialect = "standard"
    if values.get("connection_id") is not None:
        dialect = connections.get(request.dbsession, request.user, values["connection_id"]).driver
    return {"query": format_sql(query, dialect)}
