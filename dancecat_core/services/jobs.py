"""Jobs: saved queries, their destinations and manual runs (previews: ``probes``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dancecat_core import chains, destinations, parameters
from dancecat_core.delivery_rules import SendWhen
from dancecat_core.errors import Conflict, NotFound, ValidationError
from dancecat_core.inputs.fields import Problems
from dancecat_core.inputs.job import MAX_QUERY_CHARS as MAX_QUERY_CHARS
from dancecat_core.inputs.job import JobInput
from dancecat_core.inputs.run import RunInput
from dancecat_core.models import Connection, Job, JobRecipient, Schedule, Tracker, User, utcnow
from dancecat_core.services import access, naming
from dancecat_core.services.keyset import Keyset

if TYPE_CHECKING:  # only named in annotations: importing it would load every plugin module
    from dancecat_core.runtime import Runtime

CONNECTION = JobInput.field("connection_id")
AFTER = JobInput.field("after_job_id")


def usable_connection(session: Session, actor: User | None, number: int) -> Connection:
    connection = session.get(Connection, number)
    try:
        return access.require_visible(actor, connection, "connection")
    except NotFound:
        raise ValidationError(f"{CONNECTION.label}: no such connection", CONNECTION.name) from None


def stored(job: Job) -> dict[str, Any]:
    """The job's present values by input field, for an edit to start from."""
    return {
        "name": job.name,
        "annotation": job.annotation or "",
        "connection_id": job.connection_id,
        "query": job.query,
        "parameters": parameters.load(job.parameters_json),
        "timeout_seconds": job.timeout_seconds,
        "recipients": [recipient_text(recipient) for recipient in job.recipients],
        "after_job_id": job.after_job_id,
        "after_on": job.after_on,
        "shared": bool(job.shared),
        "subject_template": job.subject_template,
        "body_template": job.body_template,
        "filename_template": job.filename_template,
        "body_rows": job.body_rows or 0,
        "alert_after_failures": job.alert_after_failures,
    }


RECIPIENTS = JobInput.field("recipients")


def _checked(
    runtime: Runtime,
    session: Session,
    actor: User | None,
    data: JobInput,
    job_id: int | None = None,
) -> dict[str, Any]:
    """Every field checked at once; the refusals are raised together."""
    problems = Problems()
    values = data.cleaned(runtime, problems)
    number = values.pop("connection_id", None)
    if number is not None:
        try:
            values["connection"] = usable_connection(session, actor, number)
        except ValidationError as error:
            problems.add(error)
    try:
        _check_chain(session, actor, job_id, values)
    except ValidationError as error:
        problems.add(error)
    if values.get("query") and "connection" in values and not problems.has("parameters"):
        try:
            parameters.check_query(
                values["query"], values.get("parameters", ()), values["connection"].driver
            )
        except ValidationError as error:
            problems.add(error)
    problems.raise_any()
    return values


def _check_chain(
    session: Session, actor: User | None, job_id: int | None, values: dict[str, Any]
) -> None:
    """The job it runs after must be one ``actor`` may see, and no cycle may close."""
    after = values.get("after_job_id")
    if after is None:
        values["after_on"] = None
        return
    try:
        access.require_visible(actor, session.get(Job, after), "job")
    except NotFound:
        raise ValidationError(f"{AFTER.label}: no such job", AFTER.name) from None
    loop = chains.cycle(session, job_id, after)
    if loop:
        names = " → ".join(loop)
        raise ValidationError(f"{AFTER.label}: that would make a cycle: {names}", AFTER.name)


def _apply(runtime: Runtime, job: Job, values: dict[str, Any]) -> tuple[str, ...]:
    """Set the job's fields; returns the one-time lines showing secrets generated for new
    destinations ("webhook secret for URL: SECRET")."""
    typed = values.pop("recipients")
    job.parameters_json = parameters.dump(values.pop("parameters", ()))
    for key, value in values.items():
        setattr(job, key, value)
    box = runtime.secret_box
    current = {r.destination: r for r in job.recipients}
    kept = destinations.stored_secrets(box, job.recipients)
    rows: dict[str, JobRecipient] = {}
    announcements = []
    for rule in typed:
        try:
            [item] = destinations.resolve(runtime.notifiers, [rule.destination], kept)
        except ValidationError as error:
            raise ValidationError(f"{RECIPIENTS.label}: {error}", RECIPIENTS.name) from None
        if item.shown in rows:
            continue  # listed twice: its first entry counts, as for any recipient
        row = current.get(item.shown) or JobRecipient(destination=item.shown)
        if item.secrets != kept.get(item.shown):
            row.secrets_encrypted = destinations.seal(box, item.secrets)
        row.send_when = rule.send_when.value
        row.condition = rule.condition.text if rule.condition else None
        rows[item.shown] = row
        if item.announce:
            announcements.append(item.announce)
    job.recipients = list(rows.values())
    return tuple(announcements)


def recipient_text(recipient: JobRecipient) -> str:
    """A stored recipient in the form it is typed: ``DESTINATION [when RULE] [if
    CONDITION]`` (the destination as shown: its secrets masked)."""
    parts = [recipient.destination]
    if recipient.send_when and recipient.send_when != SendWhen.ALWAYS:
        parts.append(f"when {recipient.send_when}")
    if recipient.condition:
        parts.append(f"if {recipient.condition}")
    return " ".join(parts)


def create(runtime: Runtime, session: Session, actor: User | None, data: JobInput) -> Job:
    """A new job; ``job.announcements`` holds the secrets to show its creator once."""
    job = Job(owner_id=actor.id if actor else None)
    values = _checked(runtime, session, actor, data)
    naming.require_unique(session, Job, job.owner_id, values["name"])
    job.announcements = _apply(runtime, job, values)
    session.add(job)
    session.flush()
    return job


def update(
    runtime: Runtime, session: Session, actor: User | None, job_id: int, data: JobInput
) -> Job:
    """Change the fields ``data`` gives; the ones it leaves unset keep their values.
    ``job.announcements``: as for ``create``, for destinations new to the job."""
    job = access.require_changeable(actor, session.get(Job, job_id), "job")
    values = _checked(runtime, session, actor, data.merged(stored(job)), job.id)
    naming.require_unique(session, Job, job.owner_id, values["name"], current=job)
    job.announcements = _apply(runtime, job, values)
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
    page: Keyset | None = None,
    recipients: bool = False,
) -> list[Job]:
    """Jobs ``actor`` may see: most recently edited first (``ix_jobs_updated_at_id``,
    the screens' order, paged by ``limit``/``offset``), or one ``page`` newest first (the
    API's order, which edits do not change).

    Each job's connection and owner come with it (a query each for the whole list, not
    one per job); ``recipients=True`` loads the recipients the same way.
    """
    loads = [selectinload(Job.connection), selectinload(Job.owner)]
    if recipients:
        loads.append(selectinload(Job.recipients))
    query = (
        select(Job)
        .where(Job.deleted_at.is_(None), access.visible_filter(actor, Job))
        .options(*loads)
    )
    if page is not None:
        return list(session.scalars(page.apply(query, Job.id)))
    query = query.order_by(Job.updated_at.desc(), Job.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def queue_run(
    session: Session, actor: User | None, job_id: int, run: RunInput | None = None
) -> Tracker:
    """Create a Queued tracker for a manual run. The caller enqueues it after commit.

    The parameter values ``run`` gives are read by their declared types here, so a wrong
    one is refused before any run exists; the defaults and built-in dates are filled in
    when it runs (``runner.RunQuery``)."""
    job = get(session, actor, job_id)
    if job.connection.is_deleted:
        raise Conflict("the job's connection was deleted; choose another connection first")
    given = (run or RunInput()).cleaned()["parameters"]
    values = parameters.read_values(parameters.load(job.parameters_json), given)
    tracker = Tracker(
        job_id=job.id,
        triggered_by_id=actor.id if actor else None,
        parameter_values_json=parameters.values_json(values) if values else None,
    )
    session.add(tracker)
    job.run_count = (job.run_count or 0) + 1
    job.last_run_at = tracker.queued_at = utcnow()
    session.flush()
    return tracker
