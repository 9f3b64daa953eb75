"""The Jobs tab: the list with its trackers, the job page, the form, run and delete."""

from __future__ import annotations

import contextlib
import logging
import zoneinfo
from typing import Any, NamedTuple

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from dancecat_core import schedule_kinds
from dancecat_core import schedules as schedule_math
from dancecat_core.error_position import Position, in_editor
from dancecat_core.errors import Conflict, DancecatError, NotFound, QueryError, ValidationError
from dancecat_core.inputs.destination_test import DestinationTestInput
from dancecat_core.inputs.job import JobInput
from dancecat_core.inputs.job_urls import PullUrlInput, TriggerInput
from dancecat_core.inputs.run import RunInput
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import Job, Tracker, TrackerStatus
from dancecat_core.services import (
    access,
    connections,
    destination_tests,
    job_urls,
    jobs,
    jobs_screen,
    probes,
    schedules,
    trackers,
    validation,
)
from dancecat_core.sql_format import format_sql
from dancecat_web.errors import json_error
from dancecat_web.queue import enqueue_after_commit
from dancecat_web.ui.chart import run_chart
from dancecat_web.ui.forms import FormErrors, form_values
from dancecat_web.ui.helpers import flash
from dancecat_web.ui.job_form import FormRefused, JobForm, blank_schedule, save
from dancecat_web.ui.requests import object_id, refuse, wants_json
from dancecat_web.ui.schedule_times import next_runs

log = logging.getLogger(__name__)
TRACKERS_PER_PAGE = 25
JOBS_PER_PAGE = 25
MAX_PAGE = 10**6
HISTORY_RUNS = 50
STATUSES = [status.value for status in TrackerStatus]


class JobLine(NamedTuple):
    """A line of the Jobs screen's jobs table: declared plain, so kept whole (fragments)."""

    job: jobs_screen.JobShown
    latest: jobs_screen.LatestShown | None
    can_change: bool


class RunLine(NamedTuple):
    run: jobs_screen.RunShown
    available: bool


def tracker_row(request: Request, tracker: Tracker) -> str:
    """One tracker's table row, as the list renders it and the poller replaces it."""
    return render(
        "_tracker_rows.jinja2",
        {"trackers": [(tracker, tracker.result_available)]},
        request=request,
    )


def latest_cell(request: Request, job: Job, latest: trackers.LatestResult | None) -> str:
    """A job's "Latest result" links, as its page renders them and the poller replaces them."""
    return render("_latest_result.jinja2", {"job": job, "latest": latest}, request=request)


def _int_param(request: Request, name: str) -> int | None:
    raw = request.GET.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 18 else None


@view_config(route_name="ui.jobs", request_method="GET", renderer="jobs.jinja2")
def list_jobs(request: Request) -> dict[str, Any]:
    """One page of jobs (each with its latest result) above the runs table.

    A bounded number of queries whatever the number of jobs and runs: the page's jobs
    (with their connections and owners), their latest successful runs in one query, and
    the runs table's page (with its jobs and notifications). Everything the screen's
    content shows is in ``screen`` (whether the user may change each job included), which
    is what lets it be kept whole (``_jobs_screen.jinja2``).
    """
    session, user = request.dbsession, request.user
    page = min(max(_int_param(request, "page") or 1, 1), MAX_PAGE)
    found = jobs_screen.jobs_page(
        session, user, limit=JOBS_PER_PAGE + 1, offset=(page - 1) * JOBS_PER_PAGE
    )
    more_jobs = len(found) > JOBS_PER_PAGE
    found = found[:JOBS_PER_PAGE]
    latest = jobs_screen.latest_page(session, user, [job.id for job in found])
    job_filter = _int_param(request, "job")
    status = request.GET.get("status") or None
    if status not in STATUSES:
        status = None
    before = _int_param(request, "before")
    runs = jobs_screen.runs_page(
        session, user, job_id=job_filter, status=status, limit=TRACKERS_PER_PAGE + 1, before=before
    )
    more = len(runs) > TRACKERS_PER_PAGE
    runs = runs[:TRACKERS_PER_PAGE]
    # The runs filter offers this page's jobs, and the filtered job wherever it is.
    filter_jobs: list[Any] = list(found)
    if job_filter is not None and all(job.id != job_filter for job in found):
        with contextlib.suppress(NotFound):  # a deleted or hidden job: nothing to offer
            filter_jobs.insert(0, jobs.get(session, user, job_filter))
    screen = {
        "jobs": [JobLine(job, latest.get(job.id), access.can_change(user, job)) for job in found],
        "filter_jobs": filter_jobs,
        "page": page,
        # The jobs pager keeps the runs table's filters (not its page of runs).
        "runs_query": {
            key: value
            for key, value in (("job", job_filter), ("status", status))
            if value is not None
        },
        "prev_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if more_jobs else None,
        "trackers": [RunLine(run, run.result_available) for run in runs],
        "job_filter": job_filter,
        "status_filter": status,
        "statuses": STATUSES,
        "next_before": runs[-1].id if more and runs else None,
        "paged": before is not None,
    }
    return {"screen": screen}


def _schedule_rows(job: Job, job_schedules: list) -> list[dict[str, Any]]:
    """Each schedule as the job page shows it; one whose type is not installed says so."""
    rows = []
    kinds = schedule_kinds.registered()
    for schedule in job_schedules:
        kind = kinds.get(schedule.type)
        rows.append(
            {
                "schedule": schedule,
                "label": kind.label if kind else schedule.type,
                "unknown": None if kind else str(schedule_kinds.UnknownScheduleType(schedule.type)),
                "local": schedule_math.local_text(schedule.next_run_at, schedule.timezone),
                "utc": schedule_math.local_text(schedule.next_run_at, "UTC"),
                "last": schedule_math.local_text(schedule.last_run_at, schedule.timezone),
                "done": schedule.is_done,
            }
        )
    return rows


def job_page(request: Request, job_id: int, **extra: Any) -> dict[str, Any]:
    """The job page's values; ``extra`` adds what one answer shows once (a new URL)."""
    session, user = request.dbsession, request.user
    job = jobs.get(session, user, job_id)
    runs = trackers.list_for_job(session, user, job.id, limit=HISTORY_RUNS)
    owned = access.can_change(user, job)
    return {
        "job": job,
        "schedules": _schedule_rows(job, schedules.list_for_job(session, user, job.id)),
        "trackers": [RunLine(run, run.result_available) for run in runs],
        "chart": run_chart(runs),
        "latest": trackers.latest_results(session, user, [job.id]).get(job.id),
        "pull_urls": job_urls.list_pull_urls(session, user, job.id) if owned else [],
        "triggers": job_urls.list_triggers(session, user, job.id) if owned else [],
        "new_url": None,
        "pull_fields": PullUrlInput.fields(),
        "trigger_fields": TriggerInput.fields(),
        "no_errors": FormErrors(),
        **extra,
    }


@view_config(route_name="ui.job", request_method="GET", renderer="job.jinja2")
def show_job(request: Request) -> dict[str, Any]:
    return job_page(request, object_id(request))


def _form_page(
    request: Request,
    form: JobForm,
    job: Job | None,
    errors: FormErrors | None = None,
    preview: dict[str, Any] | None = None,
) -> dict[str, Any]:
    visible = connections.list_visible(request.dbsession, request.user)
    if job is not None and job.connection.is_deleted:
        visible = [job.connection, *visible]
    blocks = []
    for block in form.schedules:
        blocks.append(
            {
                **block,
                "next": next_runs(block["type"], block["start"], block["timezone"], block["cron"]),
            }
        )
    default_timezone = request.dancecat_settings.timezone or "UTC"
    return {
        "job": job,
        "form": form,
        "job_fields": JobInput.fields(),
        "schedule_fields": ScheduleInput.fields(),
        "cron_types": schedule_kinds.needing("cron"),
        "blocks": blocks,
        "blank_block": blank_schedule(default_timezone),
        "connection_choices": [
            (c.id, c.name + (" (connection deleted)" if c.is_deleted else "")) for c in visible
        ],
        "job_choices": [("", "— not chained —")]
        + [
            (other.id, other.name)
            for other in jobs.list_visible(request.dbsession, request.user)
            if job is None or other.id != job.id
        ],
        "errors": errors or FormErrors(),
        "no_errors": FormErrors(),
        "preview": preview,
        "timezones": sorted(zoneinfo.available_timezones()),
        "default_timezone": default_timezone,
    }


@view_config(route_name="ui.job.new", request_method="GET", renderer="job_form.jinja2")
def new_job(request: Request) -> dict[str, Any]:
    visible = connections.list_visible(request.dbsession, request.user)
    return _form_page(request, JobForm.blank(visible[0].id if visible else None), None)


@view_config(route_name="ui.job.edit", request_method="GET", renderer="job_form.jinja2")
def edit_job(request: Request) -> dict[str, Any]:
    session, user = request.dbsession, request.user
    job = jobs.get(session, user, object_id(request))
    form = JobForm.from_job(job, schedules.list_for_job(session, user, job.id))
    return _form_page(request, form, job)


def run_preview(request: Request, form: JobForm) -> dict[str, Any]:
    """The form's Run button: the first rows, scrubbed, or the reason there are none."""
    try:
        preview = probes.preview(
            request.runtime,
            request.dbsession,
            request.user,
            connection_id=form.values["connection_id"] or None,
            query=form.values["query"],
            timeout_seconds=form.values["timeout_seconds"] or None,
            declared=form.values.get("parameters") or (),
        )
    except (ValidationError, QueryError, Conflict) as error:
        return {"error": str(error), "position": _error_position(str(error), form)}
    return {"result": preview, "limit": request.dancecat_settings.query_test_limit}


def _error_position(message: str, form: JobForm) -> Position | None:
    """Where the database says the error is, in the editor's text, for it to point at."""
    typed = form.values["query"] or ""
    try:
        sent = validation.text(typed, "query", max_length=len(typed), required=False)
    except ValidationError:
        return None  # the text never reached the database
    return in_editor(message, typed, sent)


def format_query(request: Request, form: JobForm) -> FormErrors:
    """The Format SQL button without script: the query laid out in its connection's
    dialect, or why it cannot be (under the query field)."""
    errors = FormErrors()
    driver = "standard"
    with contextlib.suppress(DancecatError, ValueError, TypeError):
        connection_id = int(form.values["connection_id"])
        driver = connections.get(request.dbsession, request.user, connection_id).driver
    try:
        form.values["query"] = format_sql(form.values["query"] or "", driver)
    except ValidationError as error:
        errors.add(error)
    return errors


@view_config(route_name="ui.job.new", request_method="POST", renderer="job_form.jinja2")
@view_config(route_name="ui.job.edit", request_method="POST", renderer="job_form.jinja2")
def save_job(request: Request) -> Any:
    session, user = request.dbsession, request.user
    job_id = object_id(request) if "id" in request.matchdict else None
    job = jobs.get(session, user, job_id) if job_id is not None else None
    base = form_values(JobInput, jobs.stored(job)) if job is not None else None
    form = JobForm.from_post(request.POST, base)
    action = request.POST.get("action", "save")
    timezone = request.dancecat_settings.timezone or "UTC"
    if form.apply_button(action, timezone):
        return _form_page(request, form, job)
    if action == "preview":
        return _form_page(request, form, job, preview=run_preview(request, form))
    if action == "format-sql":
        return _form_page(request, form, job, format_query(request, form))
    try:
        saved = save(request, form, job_id)
    except FormRefused as refused:
        refuse(request)
        return _form_page(request, form, job, refused.errors)
    flash(request, f"Job “{saved.name}” saved.")
    for line in saved.announcements:
        flash(request, f"Shown once, keep it now: {line}")
    return HTTPSeeOther(request.route_url("ui.job", id=saved.id))


@view_config(route_name="ui.job.preview", request_method="POST", renderer="_preview.jinja2")
def preview_fragment(request: Request) -> dict[str, Any]:
    """The Run button for script: the same preview box, as an HTML fragment."""
    return {"preview": run_preview(request, JobForm.from_post(request.POST))}


PARAM_PREFIX = "param-"


def run_values(post: Any) -> RunInput:
    """The Run form's ``param-NAME`` inputs (the job page's, or a run's "Run again") as
    the run's values; an empty one is left out, so its default applies."""
    return RunInput(
        parameters={
            key.removeprefix(PARAM_PREFIX): value
            for key, value in post.items()
            if key.startswith(PARAM_PREFIX) and isinstance(value, str) and value != ""
        }
    )


@view_config(route_name="ui.job.run", request_method="POST")
def run_job(request: Request) -> Any:
    """Queue a run; the worker gets it once the tracker is committed."""
    try:
        tracker = jobs.queue_run(
            request.dbsession, request.user, object_id(request), run_values(request.POST)
        )
    except (Conflict, ValidationError) as error:
        if wants_json(request):
            status = 409 if isinstance(error, Conflict) else 422
            return json_error(status, error.code, str(error))
        flash(request, str(error), "error")
        return HTTPSeeOther(request.referer or request.route_url("ui.jobs"))
    enqueue_after_commit(request, tracker.id)
    if wants_json(request):
        body = {"tracker": tracker.id, "html": tracker_row(request, tracker)}
        return Response(json=body, status=202, charset="utf-8")
    flash(request, f"Run {tracker.id} of “{tracker.job.name}” queued.")
    return HTTPSeeOther(request.route_url("ui.jobs"))


@view_config(route_name="ui.job.destination_test", request_method="POST")
def test_destination(request: Request) -> HTTPSeeOther:
    """The "Send test" button: a sample message to one of the job's destinations, now,
    with its stored secrets (``services.destination_tests``); the outcome (or why it
    failed) is flashed on the job page."""
    job_id = object_id(request)
    data = DestinationTestInput(destination=request.POST.get("destination", ""))
    try:
        [outcome] = destination_tests.send_to_job(
            request.runtime, request.dbsession, request.user, job_id, data
        )
    except ValidationError as error:
        flash(request, f"Test not sent: {error}", "error")
    else:
        if outcome.sent:
            flash(request, f"Test message sent to {outcome.destination}.")
        else:
            flash(request, f"Test failed: {outcome.destination}: {outcome.error}", "error")
    return HTTPSeeOther(request.route_url("ui.job", id=job_id))


@view_config(route_name="ui.job.delete", request_method="GET", renderer="job_delete.jinja2")
def confirm_delete_job(request: Request) -> dict[str, Any]:
    return {"job": jobs.get(request.dbsession, request.user, object_id(request))}


@view_config(route_name="ui.job.delete", request_method="POST")
def delete_job(request: Request) -> HTTPSeeOther:
    job = jobs.delete(request.dbsession, request.user, object_id(request))
    flash(request, f"Job “{job.name}” deleted.")
    return HTTPSeeOther(request.route_url("ui.jobs"))
