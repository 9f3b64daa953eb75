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
from typing import Any

from sqlalchemy import Integer, Row, bindparam, select
from sqlalchemy.orm import Session

from dancecat_core.models import Connection, Job, Notification, Tracker, TrackerStatus, User, utcnow
from dancecat_core.prepared import OneOf, Prepared
from dancecat_core.run_status import current_status
from dancecat_core.services import access, trackers

# Statements built once a process: building one and its cache key cost about as much CPU as
# running it on this page.
# Each is ``Prepared``: on a request whose statements commit alone (``dancecat_web.db``,
# PostgreSQL) it runs from a plan its connection keeps; planning the page's five
# statements was about half of PostgreSQL's time for them (pgbench: 2.07 ms a page as
# text, 1.12 ms prepared).
_LATEST_RUNS = Prepared(
    select(Tracker.id, Tracker.row_count, Tracker.result_expires_at).where(OneOf(Tracker.id, "ids"))
)
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


class ConnectionShown:
    """A job's connection as a row names it: ``name`` and whether it is deleted."""

    __slots__ = ("is_deleted", "name")

    def __init__(self, name: str, deleted_at: dt.datetime | None):
        self.name = name
        self.is_deleted = deleted_at is not None


class OwnerShown:
    __slots__ = ("email",)

    def __init__(self, email: str):
        self.email = email


class JobShown:
    """A job as the Jobs screen (and ``access.can_change``) reads it."""

    __slots__ = ("connection", "id", "is_deleted", "name", "owner", "owner_id", "updated_at")

    def __init__(
        self,
        id: int,
        name: str,
        owner_id: int | None,
        updated_at: dt.datetime | None,
        deleted_at: dt.datetime | None,
        connection: ConnectionShown,
        owner: OwnerShown | None,
    ):
        self.id = id
        self.name = name
        self.owner_id = owner_id
        self.updated_at = updated_at
        self.is_deleted = deleted_at is not None
        self.connection = connection
        self.owner = owner


class RunShown:
    """A run as its table row reads it. ``current_status`` is judged once, when read: a
    Success past its expiry reads as Result Expired (``run_status.current_status``)."""

    __slots__ = (
        "current_status",
        "duration_ms",
        "error",
        "id",
        "job",
        "job_id",
        "note",
        "notifications",
        "parameter_values_json",
        "queued_at",
        "result_available",
        "row_count",
        "schedule_id",
        "started_at",
    )

    def __init__(self, row: Row, job: JobShown, notifications: list[Row], now: dt.datetime):
        self.id = row.id
        self.job_id = row.job_id
        self.schedule_id = row.schedule_id
        self.queued_at = row.queued_at
        self.started_at = row.started_at
        self.duration_ms = row.duration_ms
        self.row_count = row.row_count
        self.error = row.error
        self.note = row.note
        self.parameter_values_json = row.parameter_values_json
        self.current_status = current_status(row.status, row.result_expires_at, now)
        self.result_available = self.current_status == TrackerStatus.SUCCESS.value
        self.job = job
        self.notifications = notifications


class LatestShown:
    """``trackers.LatestResult`` with rows for runs: ``valid`` (the newest result still
    valid) or ``expired`` (the newest successful run, whose result has expired), each with
    ``id``, ``row_count`` and ``result_expires_at``."""

    __slots__ = ("expired", "valid")

    def __init__(self, valid: Row | None, expired: Row | None):
        self.valid = valid
        self.expired = expired


def latest_page(session: Session, actor: User | None, job_ids: list[int]) -> dict[int, LatestShown]:
    """``trackers.latest_results`` as rows: the same choice of run (``newest_result_ids``),
    read as three columns rather than as ORM trackers."""
    if not job_ids:
        return {}
    ids = trackers.newest_result_ids(session, actor, job_ids)
    wanted = sorted({run_id for _, *run_ids in ids for run_id in run_ids if run_id})
    found = {row.id: row for row in _LATEST_RUNS.execute(session.connection(), {"ids": wanted})}
    answer = {}
    for job_id, valid, newest in ids:
        if newest is None:
            continue
        if valid is not None:
            answer[job_id] = LatestShown(found[valid], None)
        else:
            answer[job_id] = LatestShown(None, found[newest])
    return answer


@functools.cache
def _jobs_statement(everyone: bool) -> Prepared:
    """``jobs_page``'s query, built once a process per kind of actor (``access``)."""
    return Prepared(
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
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
    )


def _actor_parameters(actor: User | None) -> tuple[bool, dict[str, Any]]:
    everyone = access.sees_everything(actor)
    return everyone, {} if everyone else {"actor_id": actor.id}  # type: ignore[union-attr]


def jobs_page(session: Session, actor: User | None, *, limit: int, offset: int) -> list[JobShown]:
    """``jobs.list_visible(limit=, offset=)`` as rows: the jobs ``actor`` may see, not
    deleted, most recently edited first, each with its connection and owner; one query."""
    everyone, parameters = _actor_parameters(actor)
    rows = _jobs_statement(everyone).execute(
        session.connection(), {**parameters, "offset": offset, "limit": limit}
    )
    return [
        JobShown(
            row.id,
            row.name,
            row.owner_id,
            row.updated_at,
            None,
            ConnectionShown(row.connection_name, row.connection_deleted_at),
            OwnerShown(row.owner_email) if row.owner_email is not None else None,
        )
        for row in rows
    ]


@functools.cache
def _runs_statement(everyone: bool, one_job: bool, one_status: bool, before: bool) -> Prepared:
    """``runs_page``'s query for one combination of filters, built once a process."""
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
    return Prepared(query.order_by(Tracker.id.desc()).limit(bindparam("limit", type_=Integer)))


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
    if before:
        parameters["before"] = before
    statement = _runs_statement(everyone, job_id is not None, bool(status), bool(before))
    rows = statement.execute(session.connection(), {**parameters, "limit": limit}).all()
    notifications: dict[int, list[Row]] = {}
    if rows:
        found = _NOTIFICATIONS.execute(session.connection(), {"ids": [row.id for row in rows]})
        for notification in found:
            notifications.setdefault(notification.tracker_id, []).append(notification)
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
                row.job_deleted_at,
                ConnectionShown(row.connection_name, row.connection_deleted_at),
                None,
            )
        runs.append(RunShown(row, job, notifications.get(row.id, []), now))
    return runs
