"""Runs as the screens see them: live status for the poller, downloads with real error pages.

Downloads go through the same streaming helper as the API (``dancecat_web.results``); what
differs is the refusal: an expired result gets a page saying when it expired with a button
to run the job again, not a bare status.
"""

from __future__ import annotations

from typing import Any

from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.errors import Conflict, NotFound, ResultExpired
from dancecat_core.models import FINISHED, Tracker, TrackerStatus
from dancecat_core.services import trackers
from dancecat_web.results import download_response
from dancecat_web.ui.jobs import tracker_row
from dancecat_web.ui.requests import object_id

MAX_POLLED = 100


@view_config(route_name="ui.trackers.status", request_method="GET", renderer="json")
def tracker_status(request: Request) -> dict[str, Any]:
    """``?ids=3,4,5``: each visible run's status and its freshly rendered table row."""
    ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.isdigit()]
    answer = []
    for tracker_id in ids[:MAX_POLLED]:
        try:
            tracker = trackers.get(request.dbsession, request.user, tracker_id)
        except NotFound:  # a run the user cannot see is simply left out
            continue
        answer.append(
            {
                "id": tracker.id,
                "status": tracker.status,
                "finished": TrackerStatus(tracker.status) in FINISHED,
                "html": tracker_row(request, tracker),
            }
        )
    return {"trackers": answer}


def _refusal_page(request: Request, tracker: Tracker, error: Exception, status: int) -> Response:
    response = render_to_response(
        "error.jinja2",
        {
            "status": status,
            "code": "gone" if status == 410 else "conflict",
            "message": str(error),
            "tracker": tracker,
            "expired_at": tracker.result_expires_at if status == 410 else None,
        },
        request=request,
    )
    response.status_int = status
    return response


def _download(request: Request, tracker: Tracker) -> Response:
    try:
        return download_response(request, tracker, request.matchdict["format"])
    except ResultExpired as error:
        return _refusal_page(request, tracker, error, 410)
    except Conflict as error:
        return _refusal_page(request, tracker, error, 409)


@view_config(route_name="ui.tracker.download", request_method="GET")
def download_tracker(request: Request) -> Response:
    return _download(request, trackers.get(request.dbsession, request.user, object_id(request)))


@view_config(route_name="ui.latest.download", request_method="GET")
def download_latest(request: Request) -> Response:
    tracker = trackers.latest_success(request.dbsession, request.user, object_id(request))
    return _download(request, tracker)
