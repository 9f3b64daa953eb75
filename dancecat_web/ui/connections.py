"""The DB Connection tab: list, new, edit, delete (with a warning) and Test Connection.

The stored password is never put in a page: the edit form's password field is always
empty and an empty submission keeps the old one (``ConnectionInput.password`` UNSET).
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from dancecat_core.errors import ValidationError
from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.models import Connection
from dancecat_core.services import connections, jobs, probes
from dancecat_web.ui import forms
from dancecat_web.ui.helpers import flash
from dancecat_web.ui.requests import object_id, refuse


def _form_page(
    request: Request,
    connection: Connection | None,
    values: dict[str, Any],
    errors: forms.FormErrors | None = None,
    check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "connection": connection,
        "fields": ConnectionInput.fields(),
        "values": values,
        "errors": errors or forms.FormErrors(),
        "check": check,
    }


def _typed(request: Request, connection: Connection | None) -> dict[str, Any]:
    """What the form shows again: the posted values over the stored (or default) ones."""
    stored = connections.stored(connection) if connection is not None else None
    return {
        **forms.form_values(ConnectionInput, stored),
        **forms.posted(ConnectionInput, request.POST),
    }


def _posted_input(request: Request) -> ConnectionInput:
    return ConnectionInput.from_values(forms.posted(ConnectionInput, request.POST))


@view_config(route_name="ui.connections", request_method="GET", renderer="connections.jinja2")
def list_connections(request: Request) -> dict[str, Any]:
    return {"connections": connections.list_visible(request.dbsession, request.user)}


@view_config(
    route_name="ui.connection.new", request_method="GET", renderer="connection_form.jinja2"
)
def new_connection(request: Request) -> dict[str, Any]:
    return _form_page(request, None, forms.form_values(ConnectionInput))


@view_config(
    route_name="ui.connection.edit", request_method="GET", renderer="connection_form.jinja2"
)
def edit_connection(request: Request) -> dict[str, Any]:
    connection = connections.get(request.dbsession, request.user, object_id(request))
    values = forms.form_values(ConnectionInput, connections.stored(connection))
    return _form_page(request, connection, values)


def _check(request: Request, connection_id: int | None) -> dict[str, Any]:
    """Test Connection: connect with the form's values, save nothing."""
    ok, error, elapsed_ms = probes.check_unsaved(
        request.runtime,
        request.dbsession,
        request.user,
        _posted_input(request),
        connection_id,
    )
    return {"ok": ok, "error": error, "elapsed_ms": elapsed_ms}


@view_config(
    route_name="ui.connection.new", request_method="POST", renderer="connection_form.jinja2"
)
@view_config(
    route_name="ui.connection.edit", request_method="POST", renderer="connection_form.jinja2"
)
def save_connection(request: Request) -> Any:
    connection_id = object_id(request) if "id" in request.matchdict else None
    connection = (
        connections.get(request.dbsession, request.user, connection_id)
        if connection_id is not None
        else None
    )
    values = _typed(request, connection)
    errors = forms.FormErrors()
    try:
        if request.POST.get("action") == "test":
            return _form_page(request, connection, values, check=_check(request, connection_id))
        data = _posted_input(request)
        if connection_id is None:
            saved = connections.create(request.runtime, request.dbsession, request.user, data)
        else:
            saved = connections.update(
                request.runtime, request.dbsession, request.user, connection_id, data
            )
    except ValidationError as error:
        errors.add(error)
        refuse(request)
        return _form_page(request, connection, values, errors)
    flash(request, f"Connection “{saved.name}” saved.")
    return HTTPSeeOther(request.route_url("ui.connections"))


@view_config(route_name="ui.connection.test", request_method="POST", renderer="json")
def test_connection(request: Request) -> dict[str, Any]:
    """The form's Test Connection button, for script: JSON, never saves."""
    raw_id = request.POST.get("connection_id", "")
    connection_id = int(raw_id) if raw_id.isdigit() else None
    try:
        return _check(request, connection_id)
    except ValidationError as error:
        return {"ok": False, "error": str(error), "elapsed_ms": 0, "field": error.field}


def _jobs_using(request: Request, connection: Connection) -> list:
    return [
        job
        for job in jobs.list_visible(request.dbsession, request.user)
        if job.connection_id == connection.id
    ]


@view_config(
    route_name="ui.connection.delete",
    request_method="GET",
    renderer="connection_delete.jinja2",
)
def confirm_delete_connection(request: Request) -> dict[str, Any]:
    connection = connections.get(request.dbsession, request.user, object_id(request))
    return {"connection": connection, "jobs": _jobs_using(request, connection)}


@view_config(route_name="ui.connection.delete", request_method="POST")
def delete_connection(request: Request) -> HTTPSeeOther:
    connection = connections.delete(request.dbsession, request.user, object_id(request))
    flash(request, f"Connection “{connection.name}” deleted.")
    return HTTPSeeOther(request.route_url("ui.connections"))
