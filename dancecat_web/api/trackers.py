"""``/api/v1/runs`` (every run you may see), ``/api/v1/trackers`` (one run) and the result
downloads (one tracker's, or a job's latest)."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.services import trackers
from dancecat_web.api import MAX_ID, bodies, object_id, paging
from dancecat_web.api.jobs import STATUSES, runs_answer
from dancecat_web.api.present import tracker_json
from dancecat_web.results import download_response


@view_config(route_name="api.runs", request_method="GET", renderer="json")
def list_all_runs(request: Request) -> dict[str, Any]:
    """Runs of every job you may see (deleted jobs' too), newest first (``paging``);
    ``job`` narrows to one job's (a job you may not see has none), ``status`` to one
    status, ``since`` to runs queued at or after an instant."""
    job_id = bodies.query_int(request, "job", default=None, minimum=1, maximum=MAX_ID)
    status = bodies.query_choice(request, "status", STATUSES)
    since = bodies.query_timestamp(request, "since")
    page = paging.requested(request)
    found = trackers.run_rows(
        request.dbsession, request.user, page, job_id=job_id, status=status, since=since
    )
    return runs_answer(request, page, found)


@view_config(route_name="api.tracker", request_method="GET", renderer="json")
def get_tracker(request: Request) -> dict[str, Any]:
    tracker = trackers.get(request.dbsession, request.user, object_id(request))
    return {"tracker": tracker_json(tracker, request.runtime.value_patterns)}


@view_config(route_name="api.tracker.result", request_method="GET")
def tracker_result(request: Request) -> Response:
    tracker = trackers.get(request.dbsession, request.user, object_id(request))
    return download_response(request, tracker, request.matchdict["format"])


@view_config(route_name="api.job.latest_result", request_method="GET")
def latest_result(request: Request) -> Response:
    """The job's newest result that is still valid; 410 saying when the last one expired."""
    tracker = trackers.latest_result(request.dbsession, request.user, object_id(request))
    return download_response(request, tracker, request.matchdict["format"])
