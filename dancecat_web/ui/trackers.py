"""Runs as the screens see them: live status for the poller, downloads with real error pages.

Downloads go through the same streaming helper as the API (``dancecat_web.results``); what
differs is the refusal: an expired result gets a page saying when it expired with a button
to run the job again, not a bare status.
"""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.errors import NotFound
from dancecat_core.models import FINISHED, Job, TrackerStatus
from dancecat_core.services import trackers
from dancecat_web.results import latest_or_refusal, result_or_refusal
from dancecat_web.ui.jobs import latest_cell, tracker_row
from dancecat_web.ui.requests import object_id

MAX_POLLED = 100


@view_config(route_name="ui.trackers.status", request_method="GET", renderer="json")
def tracker_status(request: Request) -> dict[str, Any]:
    """``?ids=3,4,5``: each visible run's status and its freshly rendered table row, and for
    the jobs of runs that have finished, their "Latest result" links rendered afresh."""
    ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.isdigit()]
    answer = []
    finished_jobs: dict[int, Job] = {}
    for tracker_id in ids[:MAX_POLLED]:
        try:
            tracker = trackers.get(request.dbsession, request.user, tracker_id)
        except NotFound:  # a run the user cannot see is simply left out
            continue
        finished = TrackerStatus(tracker.current_status) in FINISHED
        if finished:
            finished_jobs[tracker.job_id] = tracker.job
        answer.append(
            {
                "id": tracker.id,
                "status": tracker.current_status,
                "finished": finished,
                "html": tracker_row(request, tracker),
            }
        )
    latest = trackers.latest_results(request.dbsession, request.user, list(finished_jobs))
    return {
        "trackers": answer,
        "latest": [
            {"job_id": job_id, "html": latest_cell(request, job, latest.get(job_id))}
            for job_id, job in finished_jobs.items()
        ],
    }


@view_config(route_name="ui.tracker.download", request_method="GET")
def download_tracker(request: Request) -> Response:
    tracker = trackers.get(request.dbsession, request.user, object_id(request))
    return result_or_refusal(request, tracker, request.matchdict["format"])


@view_config(route_name="ui.latest.download", request_method="GET")
def download_latest(request: Request) -> Response:
    return latest_or_refusal(request, object_id(request), request.matchdict["format"])
