"""Jobs: saved queries, their recipients and manual runs (previews: ``probes``)."""

from __future__ import annotations

from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dancecat_core.errors import Conflict, NotFound, ValidationError
from dancecat_core.models import Connection, Job, JobRecipient, Schedule, Tracker, User, utcnow
from dancecat_core.services import access, naming, validation

MAX_QUERY_CHARS = 1_000_000
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600


@attrs.frozen
class JobInput:
    name: str
    connection_id: int | str | None
    query: str
    annotation: str = ""
    timeout_seconds: int | str | None = None
    recipients: tuple[str, ...] | list[str] = ()
    shared: bool = False


def usable_connection(session: Session, actor: User | None, connection_id: Any) -> Connection:
    """The connection a job form names, if ``actor`` may use it (else a field error)."""
    number = validation.optional_int(connection_id, "connection_id", minimum=1, maximum=2**62)
    if number is None:
        raise ValidationError("connection_id is required", "connection_id")
    connection = session.get(Connection, number)
    try:
        return access.require_visible(actor, connection, "connection")
    except NotFound:
        raise ValidationError("connection_id: no such connection", "connection_id") from None


def _checked(session: Session, actor: User | None, data: JobInput) -> dict[str, Any]:
    if not isinstance(data.recipients, list | tuple):
        raise ValidationError("recipients must be a list of email addresses", "recipients")
    recipients = []
    for address in data.recipients:
        checked = validation.email(address, "recipients")
        if checked not in recipients:
            recipients.append(checked)
    return {
        "name": validation.text(data.name, "name", max_length=200),
        "annotation": validation.text(
            data.annotation, "annotation", max_length=100_000, required=False
        ),
        "connection": usable_connection(session, actor, data.connection_id),
        "query": validation.text(data.query, "query", max_length=MAX_QUERY_CHARS),
        "timeout_seconds": validation.optional_int(
            data.timeout_seconds, "timeout_seconds", minimum=1, maximum=MAX_TIMEOUT_SECONDS
        ),
        "shared": validation.boolean(data.shared, "shared"),
        "recipients": recipients,
    }


def _apply(job: Job, values: dict[str, Any]) -> None:
    recipients = values.pop("recipients")
    for key, value in values.items():
        setattr(job, key, value)
    current = {r.email: r for r in job.recipients}
    job.recipients = [current.get(address) or JobRecipient(email=address) for address in recipients]


def create(session: Session, actor: User | None, data: JobInput) -> Job:
    job = Job(owner_id=actor.id if actor else None)
    values = _checked(session, actor, data)
    naming.require_unique(session, Job, job.owner_id, values["name"])
    _apply(job, values)
    session.add(job)
    session.flush()
    return job


def update(session: Session, actor: User | None, job_id: int, data: JobInput) -> Job:
    job = access.require_changeable(actor, session.get(Job, job_id), "job")
    values = _checked(session, actor, data)
    naming.require_unique(session, Job, job.owner_id, values["name"], current=job)
    _apply(job, values)
    job.updated_at = utcnow()
    session.flush()
    return job


def delete(session: Session, actor: User | None, job_id: int) -> Job:
    """Logical delete; the job's schedules are deleted with it and never fire again."""
    job = access.require_changeable(actor, session.get(Job, job_id), "job")
    now = utcnow()
    job.deleted_at = now
    session.execute(
        sa.update(Schedule)
        .where(Schedule.job_id == job.id, Schedule.deleted_at.is_(None))
        .values(deleted_at=now, active=False)
    )
    session.flush()
    return job


def active_schedule_count(session: Session, job_id: int) -> int:
    """How many of the job's schedules would still fire."""
    return session.scalar(
        select(sa.func.count())
        .select_from(Schedule)
        .where(Schedule.job_id == job_id, Schedule.deleted_at.is_(None), Schedule.active.is_(True))
    )


def get(session: Session, actor: User | None, job_id: int) -> Job:
    return access.require_visible(actor, session.get(Job, job_id), "job")


def get_by_name(session: Session, actor: User | None, name: str) -> Job:
    """The job ``actor`` may see with exactly this name; ``Conflict`` if several have it
    (two owners' jobs, or a database from before names were unique)."""
    found = session.scalars(
        select(Job)
        .where(Job.name == name, Job.deleted_at.is_(None), access.visible_filter(actor, Job))
        .order_by(Job.id)
        .limit(10)
    ).all()
    return access.require_visible(actor, naming.only_one(found, name, "job"), "job")


def list_visible(
    session: Session,
    actor: User | None,
    *,
    limit: int | None = None,
    offset: int = 0,
    recipients: bool = False,
) -> list[Job]:
    """Jobs ``actor`` may see, most recently updated first (``ix_jobs_updated_at_id``).

    Each job's connection and owner come with it (a query each for the whole list, not
    one per job); ``recipients=True`` loads the recipients the same way.
    """
    loads = [selectinload(Job.connection), selectinload(Job.owner)]
    if recipients:
        loads.append(selectinload(Job.recipients))
    query = (
        select(Job)
        .where(Job.deleted_at.is_(None), access.visible_filter(actor, Job))
        .order_by(Job.updated_at.desc(), Job.id.desc())
        .options(*loads)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def queue_run(session: Session, actor: User | None, job_id: int) -> Tracker:
    """Create a Queued tracker for a manual run. The caller enqueues it after commit."""
    job = get(session, actor, job_id)
    if job.connection.is_deleted:
        raise Conflict("the job's connection was deleted; choose another connection first")
    tracker = Tracker(job_id=job.id, triggered_by_id=actor.id if actor else None)
    session.add(tracker)
    job.run_count = (job.run_count or 0) + 1
    session.flush()
    return tracker
