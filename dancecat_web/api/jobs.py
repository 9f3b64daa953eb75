"""``/api/v1/jobs``: saved queries, their previews, runs and run history."""

from __future__ import annotations

import logging
from typing import Any

import attrs
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core.inputs.job import PREVIEW_FIELDS, JobInput
from dancecat_core.inputs.run import RunInput
from dancecat_core.models import Job, TrackerStatus
from dancecat_core.services import jobs, probes, schedules, trackers
from dancecat_core.services.keyset import Keyset
from dancecat_core.services.trackers import RunRows
from dancecat_web.api import bodies, created, no_content, object_id, paging
from dancecat_web.api.bodies import Field
from dancecat_web.api.present import job_json, preview_json, run_rows_json, tracker_json
from dancecat_web.api.schedules import (
    SCHEDULE_FIELDS,
    SCHEDULE_REQUIRED,
    replace_schedules,
    schedule_json,
    schedules_json,
)
from dancecat_web.queue import enqueue_after_commit

log = logging.getLogger(__name__)

FIELDS = {
    **bodies.input_fields(JobInput),
    "schedules": Field("array", items=SCHEDULE_FIELDS, item_required=SCHEDULE_REQUIRED),
}
REQUIRED = bodies.required_fields(JobInput)
RUN_BODY = bodies.input_fields(RunInput)
PREVIEW_BODY = {
    **bodies.input_fields(JobInput, only=PREVIEW_FIELDS),
    "values": bodies.input_fields(RunInput)["parameters"],
}
STATUSES = tuple(status.value for status in TrackerStatus)


def _one(request: Request, job: Job) -> dict[str, Any]:
    """The job; after a save that generated destination secrets, also ``secrets``: the
    lines showing them, this once ("webhook secret for URL: SECRET")."""
    answer: dict[str, Any] = {"job": job_json(job, schedules_json(request, job))}
    if job.announcements:
        answer["secrets"] = list(job.announcements)
    return answer


def _save(request: Request, job_id: int | None, data: JobInput, values: dict[str, Any]) -> Job:
    """Create or change the job, then its schedules when the body lists them."""
    if job_id is None:
        job = jobs.create(request.runtime, request.dbsession, request.user, data)
    else:
        job = jobs.update(request.runtime, request.dbsession, request.user, job_id, data)
    if "schedules" in values:
        replace_schedules(request, job, values["schedules"])
    return job


@view_config(route_name="api.jobs", request_method="GET", renderer="json")
def list_jobs(request: Request) -> dict[str, Any]:
    page = paging.requested(request)
    found = jobs.list_visible(request.dbsession, request.user, page=page, recipients=True)
    # Every listed job's schedules in one query, not one per job.
    listed = schedules.list_for_jobs(request.dbsession, request.user, [job.id for job in found])
    return paging.answer(
        request,
        "jobs",
        page,
        found,
        lambda kept: [
            job_json(job, [schedule_json(schedule) for schedule in listed[job.id]]) for job in kept
        ],
    )


@view_config(route_name="api.jobs", request_method="POST", renderer="json")
def create_job(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, FIELDS, required=REQUIRED)
    job = _save(request, None, JobInput.from_values(values), values)
    created(request, request.route_url("api.job", id=job.id))
    return _one(request, job)


@view_config(route_name="api.job", request_method="GET", renderer="json")
def get_job(request: Request) -> dict[str, Any]:
    return _one(request, jobs.get(request.dbsession, request.user, object_id(request)))


@view_config(route_name="api.job", request_method="PUT", renderer="json")
def replace_job(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, FIELDS, required=REQUIRED)
    # PUT replaces everything: a body without schedules means "no schedules".
    values.setdefault("schedules", [])
    data = JobInput.from_values(values, fill_defaults=True)
    return _one(request, _save(request, object_id(request), data, values))


@view_config(route_name="api.job", request_method="PATCH", renderer="json")
def patch_job(request: Request) -> dict[str, Any]:
    changes = bodies.parse(request, FIELDS)
    # The fields left out keep their values (the service merges them).
    return _one(request, _save(request, object_id(request), JobInput.from_values(changes), changes))


@view_config(route_name="api.job", request_method="DELETE")
def delete_job(request: Request) -> Response:
    jobs.delete(request.dbsession, request.user, object_id(request))
    return no_content()


@view_config(route_name="api.job.preview", request_method="POST", renderer="json")
def preview_job(request: Request) -> dict[str, Any]:
    """The saved job's first ``QUERY_TEST_LIMIT`` rows, scrubbed; nothing is stored."""
    values = bodies.parse(request, RUN_BODY, optional_body=True)
    preview = probes.preview_saved(
        request.runtime,
        request.dbsession,
        request.user,
        object_id(request),
        RunInput.from_values(values),
    )
    return preview_json(preview)


@view_config(route_name="api.preview", request_method="POST", renderer="json")
def preview_query(request: Request) -> dict[str, Any]:
    """The job form's Run button: preview a query before saving it as a job."""
    values = bodies.parse(request, PREVIEW_BODY, required=("connection_id", "query"))
    preview = probes.preview(
        request.runtime,
        request.dbsession,
        request.user,
        connection_id=values["connection_id"],
        query=values["query"],
        timeout_seconds=values.get("timeout_seconds"),
        declared=values.get("parameters", ()),
        run=RunInput(parameters=values.get("values", {})),
    )
    return preview_json(preview)


@view_config(route_name="api.job.runs", request_method="POST", renderer="json")
def run_job(request: Request) -> dict[str, Any]:
    values = bodies.parse(request, RUN_BODY, optional_body=True)
    tracker = jobs.queue_run(
        request.dbsession, request.user, object_id(request), RunInput.from_values(values)
    )
    enqueue_after_commit(request, tracker.id)
    request.response.status_int = 202
    request.response.headers["Location"] = request.route_url("api.tracker", id=tracker.id)
    return {"tracker": tracker_json(tracker, request.runtime.value_patterns)}


@view_config(route_name="api.job.runs", request_method="GET", renderer="json")
def list_runs(request: Request) -> dict[str, Any]:
    """A job's runs, newest first (``paging``)."""
    status = bodies.query_choice(request, "status", STATUSES)
    page = paging.requested(request)
    found = trackers.run_rows_for_job(
        request.dbsession, request.user, object_id(request), page, status=status
    )
    return runs_answer(request, page, found)


def runs_answer(request: Request, page: Keyset, found: RunRows) -> dict[str, Any]:
    """A page of runs as every runs list answers it."""
    return paging.answer(
        request,
        "runs",
        page,
        found.runs,
        lambda kept: run_rows_json(
            attrs.evolve(found, runs=list(kept)), request.runtime.value_patterns
        ),
    )
