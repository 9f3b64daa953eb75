"""The seed's browser result routes: ``/job/result/<tracker_id>/raw`` and
``/job/latest-result/<job_id>/<format>`` (``raw`` is the JSON document)."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.services import trackers
from dancecat_web.api import object_id
from dancecat_web.results import download_response

FORMATS = {"raw": "json", "csv": "csv", "xlsx": "xlsx"}


@view_config(route_name="results.tracker", request_method="GET")
def tracker_result(request: Request) -> Response:
    tracker = trackers.get(request.dbsession, request.user, object_id(request))
    return download_response(request, tracker, FORMATS[request.matchdict["format"]])


@view_config(route_name="results.latest", request_method="GET")
def latest_result(request: Request) -> Response:
    tracker = trackers.latest_success(request.dbsession, request.user, object_id(request))
    return download_response(request, tracker, FORMATS[request.matchdict["format"]])
