"""What the Jobs screen lists, read as plain rows rather than ORM objects.

The screen shows 25 jobs and 25 runs a page and is the app's busiest page. Loading them as
ORM objects (each job's connection and owner, each run's job, connection and
notifications, through selectin loads) cost ~6 ms of CPU a request, as much as the rest
of the request together. Here one joined query reads a page of jobs, one a page of runs
with their job's and connection's names, and one the runs' notifications; each row
becomes a small object with the attribute names the ORM objects have, so the same
templates (``_tracker_row.jinja2``, which the poller also renders from ORM trackers)
draw both. Which jobs and runs a user sees, and in which order, is decided by the same
filters as ``jobs.list_visible`` and ``trackers.list_visible``.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Integer, Row, bindparam, literal_column, select
from sqlalchemy.orm import Session

from dancecat_core.models import Connection, Job, Notification, Tracker, TrackerStatus, User, utcnow
from dancecat_core.prepared import OneOf, Prepared
from dancecat_core.run_status import current_status
from dancecat_core.services import access, trackers

# Statements built once a process: building one and its cache key cost about as much CPU as
# running it on this page.
# Each is ``Prepared``: on a request whose statements commit alone (``dancecat_web.db``,
# PostgreSQL) it runs from a plan its connection keeps; planning the page's statements
# (five when measured, four now) was about half of PostgreSQL's time for them (pgbench:
# 2.07 ms a page as text, 1.12 ms prepared).
#
# _KEPT_PLAN: PostgreSQL plans a prepared statement again at each EXECUTE ("custom
# plans") unless its plan for unknown parameter values looks as cheap; for an unknown
# LIMIT or OFFSET it assumes a tenth of the table, so with either as a parameter every
# EXECUTE planned anew (pg_prepared_statements: custom_plans only). Written into the
# statement, the plan is made once per connection: PostgreSQL's CPU a Jobs screen
# 2.3 -> 1.7 ms under wrk (the same as forcing generic plans for the whole database).
_NOTIFICATIONS = Prepared(
    select(
        Notification.tracker_id,
        Notification.recipient,
        Notification.status,
        Notification.last_error,
        Notification.note,
    )
    .where(OneOf(Notification.tracker_id, "ids"))
    .order_by(Notification.id)
)


# The screen's values are named tuples with every field declared: the Jobs screen's content
# is kept under all of them (``dancecat_web.ui.fragments``), and a named tuple whose fields
# are declared plain values (or such tuples) is keyed as it is, hashed and compared in C
# (0.6 -> 0.1 ms a screen against walking each object's slots in Python).


class ConnectionShown(NamedTuple):
    """A job's connection as a row names it: ``name`` and whether it is deleted."""

    name: str
    is_deleted: bool


class OwnerShown(NamedTuple):
    email: str


class JobShown(NamedTuple):
    """A job as the Jobs screen (and ``access.can_change``) reads it."""

    id: int
    name: str
    owner_id: int | None
    updated_at: dt.datetime | None
    is_deleted: bool
    connection: ConnectionShown
    owner: OwnerShown | None


class NotificationShown(NamedTuple):
    recipient: str
    status: str
    last_error: str | None
    note: str | None


class RunShown(NamedTuple):
    """A run as its table row reads it. ``current_status`` is judged once, when read: a
    Success past its expiry reads as Result Expired (``run_status.current_status``)."""

    id: int
    job_id: int
    schedule_id: int | None
    queued_at: dt.datetime | None
    started_at: dt.datetime | None
    duration_ms: int | None
    row_count: int | None
    error: str | None
    note: str | None
    parameter_values_json: str | None
    current_status: str
    result_available: bool
    job: JobShown
    notifications: tuple[NotificationShown, ...]

    @classmethod
    def of(
        cls, row: Row, job: JobShown, notifications: tuple[NotificationShown, ...], now: dt.datetime
    ) -> RunShown:
        status = current_status(row.status, row.result_expires_at, now)
        return cls(
            row.id,
            row.job_id,
            row.schedule_id,
            row.queued_at,
            row.started_at,
            row.duration_ms,
            row.row_count,
            row.error,
            row.note,
            row.parameter_values_json,
            status,
            status == TrackerStatus.SUCCESS.value,
            job,
            notifications,
        )


class LatestRun(NamedTuple):
    id: int
    row_count: int | None
    result_expires_at: dt.datetime | None


class LatestShown(NamedTuple):
    """``trackers.LatestResult`` as rows: ``valid`` (the newest result still valid) or
    ``expired`` (the newest successful run, whose result has expired)."""

    valid: LatestRun | None
    expired: LatestRun | None


@functools.cache
def _latest_statement(everyone: bool) -> Prepared:
    """``trackers.newest_ids_query`` joined to the two runs it names, with what the screen
    shows of each: one round trip (it was the ids, then the runs)."""
    ids = trackers.newest_ids_query(everyone).subquery()
    # Table aliases, as in ``trackers``: ORM ones can be lost by threads building at once.
    valid, newest = Tracker.__table__.alias("valid_run"), Tracker.__table__.alias("newest_run")
    return Prepared(
        select(
            ids.c.id,
            valid.c.id.label("valid_id"),
            valid.c.row_count.label("valid_row_count"),
            valid.c.result_expires_at.label("valid_expires_at"),
            newest.c.id.label("newest_id"),
            newest.c.row_count.label("newest_row_count"),
            newest.c.result_expires_at.label("newest_expires_at"),
        )
        .select_from(ids)
        .outerjoin(valid, valid.c.id == ids.c.newest_valid)
        .outerjoin(newest, newest.c.id == ids.c.newest_success)
    )


def latest_page(session: Session, actor: User | None, job_ids: list[int]) -> dict[int, LatestShown]:
    """``trackers.latest_results`` as rows: the same choice of run (``newest_ids_query``),
    read as three columns rather than as ORM trackers."""
    if not job_ids:
        return {}
    rows = _latest_statement(access.sees_everything(actor)).execute(
        session.connection(), trackers.newest_ids_parameters(actor, job_ids)
    )
    answer = {}
    for row in rows:
        if row.valid_id is not None:
            valid = LatestRun(row.valid_id, row.valid_row_count, row.valid_expires_at)
            answer[row.id] = LatestShown(valid, None)
        elif row.newest_id is not None:
            newest = LatestRun(row.newest_id, row.newest_row_count, row.newest_expires_at)
            answer[row.id] = LatestShown(None, newest)
    return answer


def _written(number: int) -> ColumnElement[int]:
    """A LIMIT written into the statement's text rather than bound (``_KEPT_PLAN``)."""
    return literal_column(str(int(number)), Integer)


@functools.cache
def _jobs_statement(everyone: bool, limit: int, first_page: bool) -> Prepared:
    """``jobs_page``'s query, built once a process per kind of actor (``access``) and
    page size. The first page, nearly every request, has no OFFSET at all (see
    ``_KEPT_PLAN``)."""
    query = (
        select(
            Job.id,
            Job.name,
            Job.owner_id,
            Job.updated_at,
            Connection.name.label("connection_name"),
            Connection.deleted_at.label("connection_deleted_at"),
            User.email.label("owner_email"),
        )
        .join(Connection, Connection.id == Job.connection_id)
        .outerjoin(User, User.id == Job.owner_id)
        .where(Job.deleted_at.is_(None), access.visible_filter_parameter(Job, everyone))
        .order_by(Job.updated_at.desc(), Job.id.desc())
        .limit(_written(limit))
    )
    if not first_page:
        query = query.offset(bindparam("offset", type_=Integer))
    return Prepared(query)


def _actor_parameters(actor: User | None) -> tuple[bool, dict[str, Any]]:
    everyone = access.sees_everything(actor)
    return everyone, {} if everyone else {"actor_id": actor.id}  # type: ignore[union-attr]


def jobs_page(session: Session, actor: User | None, *, limit: int, offset: int) -> list[JobShown]:
    """``jobs.list_visible(limit=, offset=)`` as rows: the jobs ``actor`` may see, not
    deleted, most recently edited first, each with its connection and owner; one query."""
    everyone, parameters = _actor_parameters(actor)
    if offset:
        parameters["offset"] = offset
    rows = _jobs_statement(everyone, limit, not offset).execute(session.connection(), parameters)
    return [
        JobShown(
            row.id,
            row.name,
            row.owner_id,
            row.updated_at,
            False,
            ConnectionShown(row.connection_name, row.connection_deleted_at is not None),
            OwnerShown(row.owner_email) if row.owner_email is not None else None,
        )
        for row in rows
    ]


@functools.cache
def _runs_statement(
    everyone: bool, one_job: bool, one_status: bool, before: bool, limit: int
) -> Prepared:
    """``runs_page``'s query for one combination of filters and page size, built once a
    process. Its LIMIT is written in (``_KEPT_PLAN``) except with a status filter: there
    a kept plan would be the one for common statuses (walk the runs newest first until 26
    match), which for a rare status reads every run (0.8 s on a million); planned for the
    status at hand each time, it reads that status's index."""
    query = (
        select(
            Tracker.id,
            Tracker.job_id,
            Tracker.schedule_id,
            Tracker.status,
            Tracker.queued_at,
            Tracker.started_at,
            Tracker.duration_ms,
            Tracker.row_count,
            Tracker.error,
            Tracker.note,
            Tracker.parameter_values_json,
            Tracker.result_expires_at,
            Job.name.label("job_name"),
            Job.owner_id.label("job_owner_id"),
            Job.updated_at.label("job_updated_at"),
            Job.deleted_at.label("job_deleted_at"),
            Connection.name.label("connection_name"),
            Connection.deleted_at.label("connection_deleted_at"),
        )
        .join(Job, Job.id == Tracker.job_id)
        .join(Connection, Connection.id == Job.connection_id)
        .where(access.visible_filter_parameter(Job, everyone))
    )
    if one_job:
        query = query.where(Tracker.job_id == bindparam("job_id"))
    if one_status:
        query = query.where(Tracker.status == bindparam("status"))
    if before:
        query = query.where(Tracker.id < bindparam("before"))
    query = query.order_by(Tracker.id.desc())
    if one_status:
        return Prepared(query.limit(bindparam("limit", type_=Integer)))
    return Prepared(query.limit(_written(limit)))


def runs_page(
    session: Session,
    actor: User | None,
    *,
    job_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[RunShown]:
    """``trackers.list_visible`` as rows: runs of every job ``actor`` may see (deleted
    jobs' included), newest first, each with its job's and connection's names and its
    notifications (oldest first); two queries."""
    everyone, parameters = _actor_parameters(actor)
    if job_id is not None:
        parameters["job_id"] = job_id
    if status:
        parameters["status"] = TrackerStatus(status).value
        parameters["limit"] = limit
    if before:
        parameters["before"] = before
    statement = _runs_statement(everyone, job_id is not None, bool(status), bool(before), limit)
    rows = statement.execute(session.connection(), parameters).all()
    notifications: dict[int, tuple[NotificationShown, ...]] = {}
    if rows:
        found = _NOTIFICATIONS.execute(session.connection(), {"ids": [row.id for row in rows]})
        for n in found:
            shown = NotificationShown(n.recipient, n.status, n.last_error, n.note)
            notifications[n.tracker_id] = (*notifications.get(n.tracker_id, ()), shown)
    jobs: dict[int, JobShown] = {}
    now = utcnow()
    runs = []
    for row in rows:
        job = jobs.get(row.job_id)
        if job is None:
            job = jobs[row.job_id] = JobShown(
                row.job_id,
                row.job_name,
                row.job_owner_id,
                row.job_updated_at,
                row.job_deleted_at is not None,
                ConnectionShown(row.connection_name, row.connection_deleted_at is not None),
                None,
            )
        runs.append(RunShown.of(row, job, notifications.get(row.id, ()), now))
    return runs
