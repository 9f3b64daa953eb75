"""The seed's browser result routes: ``/job/result/<tracker_id>/<format>`` and
``/job/latest-result/<job_id>/<format>``.

``raw`` is the JSON document shown in the browser (``inline``, as the original showed it);
``csv`` and ``xlsx`` are downloads.
"""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.services import trackers
from dancecat_web.api import object_id
from dancecat_web.results import latest_or_refusal, result_or_refusal

FORMATS = {"raw": "json", "csv": "csv", "xlsx": "xlsx"}


@view_config(route_name="results.tracker", request_method="GET")
def tracker_result(request: Request) -> Response:
    tracker = trackers.get(request.dbsession, request.user, object_id(request))
    name = request.matchdict["format"]
    return result_or_refusal(request, tracker, FORMATS[name], inline=name == "raw")


@view_config(route_name="results.latest", request_method="GET")
def latest_result(request: Request) -> Response:
    name = request.matchdict["format"]
    return latest_or_refusal(request, object_id(request), FORMATS[name], inline=name == "raw")
