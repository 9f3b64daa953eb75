"""The API tokens page: create (the token is shown on that one response), list, revoke."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from dancecat_core.errors import ValidationError
from dancecat_core.inputs.token import TokenInput
from dancecat_core.services import accounts
from dancecat_web.ui.forms import FormErrors, text
from dancecat_web.ui.helpers import flash
from dancecat_web.ui.requests import object_id, refuse


def _page(request: Request, **extra: Any) -> dict[str, Any]:
    page = {
        "tokens": accounts.list_tokens(request.dbsession, request.user),
        "created": None,
        "clear": None,
        "errors": FormErrors(),
        "fields": TokenInput.fields(),
        "name": "",
    }
    page.update(extra)
    return page


@view_config(route_name="ui.tokens", request_method="GET", renderer="tokens.jinja2")
def list_tokens(request: Request) -> dict[str, Any]:
    return _page(request)


@view_config(route_name="ui.tokens", request_method="POST", renderer="tokens.jinja2")
def create_token(request: Request) -> dict[str, Any]:
    """Rendered, not redirected: the clear token must appear on this response only."""
    name = text(request.POST, "name")
    try:
        token, clear = accounts.create_token(request.dbsession, request.user, name)
    except ValidationError as error:
        errors = FormErrors()
        errors.add(error)
        refuse(request)
        return _page(request, errors=errors, name=name)
    return _page(request, created=token, clear=clear)


@view_config(route_name="ui.token.revoke", request_method="POST")
def revoke_token(request: Request) -> HTTPSeeOther:
    token = accounts.revoke_token(request.dbsession, request.user, object_id(request))
    flash(request, f"Token “{token.name}” revoked; it no longer works.")
    return HTTPSeeOther(request.route_url("ui.tokens"))
