"""The JSON API under ``/api/v1``: thin views that parse, call a service, present.

Helpers every API view shares live here; each resource has its own module.
"""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.renderers import JSON
from pyramid.request import Request
from pyramid.response import Response

from dancecat_core import jsontext
from dancecat_core.errors import NotFound

# Ids beyond this cannot exist (and would overflow some databases' integer columns).
MAX_ID = 2**62


def object_id(request: Request, name: str = "id") -> int:
    """The route's id; absurdly large ids are simply not found."""
    number = int(request.matchdict[name])
    if number > MAX_ID:
        raise NotFound("not found")
    return number


def created(request: Request, location: str) -> None:
    """Mark the response 201 Created with the new object's URL."""
    request.response.status_int = 201
    request.response.headers["Location"] = location


def no_content() -> Response:
    response = Response(status=204)
    response.content_type = None
    return response


def includeme(config: Configurator) -> None:
    """Every ``renderer="json"`` answer is written by ``jsontext`` (exact decimals)."""
    config.add_renderer("json", JSON(serializer=jsontext.dumps))
