"""The path-style result links: ``/job/result/<tracker_id>/<format>`` and
``/job/latest-result/<job_id>/<format>``.

``<format>`` is any registered download format (a download), or ``raw``: the ``json``
export shown in the browser (``inline``).
"""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.services import trackers
from dancecat_web.api import object_id
from dancecat_web.results import latest_or_refusal, result_or_refusal
from dancecat_web.routes import RAW


def _format(request: Request) -> tuple[str, bool]:
    """The export to send, and whether to show it inline."""
    name = request.matchdict["format"]
    return ("json", True) if name == RAW else (name, False)


@view_config(route_name="results.tracker", request_method="GET")
def tracker_result(request: Request) -> Response:
    tracker = trackers.get(request.dbsession, request.user, object_id(request))
    fmt, inline = _format(request)
    return result_or_refusal(request, tracker, fmt, inline=inline)


@view_config(route_name="results.latest", request_method="GET")
def latest_result(request: Request) -> Response:
    fmt, inline = _format(request)
    return latest_or_refusal(request, object_id(request), fmt, inline=inline)
