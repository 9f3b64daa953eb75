"""Schedules of a job: create, change, delete, list. Every refusal names its field.

Console, JSON API and HTML views call these. Creating or changing a schedule computes its
next run from "now" (a new schedule never back-fires its past occurrences); changing or
deleting one also withdraws its already-claimed runs that have not started yet, so an
inactive or deleted schedule never fires, not even once more.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from dancecat_core import parameters, schedule_kinds
from dancecat_core import schedules as math
from dancecat_core.errors import NotFound, ValidationError
from dancecat_core.inputs.fields import Problems, relabel
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.models import (
    Job,
    Schedule,
    Tracker,
    TrackerStatus,
    User,
    utcnow,
)
from dancecat_core.services import access

START = ScheduleInput.field("start")
# The fields a type reads only if it names them (``ScheduleKind.fields``).
TYPE_FIELDS = ("cron",)


def rule(schedule: Schedule) -> schedule_kinds.Rule:
    """What a stored schedule says about its times, for its type to compute them."""
    return schedule_kinds.Rule(schedule.start_local, schedule.timezone, schedule.cron)


def stored(schedule: Schedule) -> dict[str, Any]:
    """The schedule's present values by input field, for an edit to start from."""
    return {
        "type": schedule.type,
        "start": schedule.start_local,
        "timezone": schedule.timezone,
        "cron": schedule.cron,
        "active": bool(schedule.active),
        "catch_up": schedule.catch_up,
        "parameters": {
            name: parameters.as_text(value)
            for name, value in parameters.load_values(schedule.parameter_values_json).items()
        },
    }


def _fields(data: ScheduleInput, default_timezone: str, problems: Problems) -> dict[str, Any]:
    """Each field checked on its own and with the others (cron only with a type that
    reads it, checked by that type)."""
    values = data.cleaned(problems=problems)
    values["timezone"] = values.get("timezone") or default_timezone
    if "parameters" in values:  # as text, as a form shows them: the same values compare equal
        values["parameters"] = {k: parameters.as_text(v) for k, v in values["parameters"].items()}
    kind = schedule_kinds.registered().get(values.get("type"))  # None: type refused
    if kind is None:
        return values
    needed = [name for name in kind.fields if name in TYPE_FIELDS]
    if not any(problems.has(name) for name in needed):
        try:
            values.update(kind.check({name: values.get(name) for name in needed}))
        except ValidationError as error:
            problems.add(relabel(error, ScheduleInput.field(error.field or "type")))
    for name in TYPE_FIELDS:
        if values.get(name) and name not in kind.fields:
            label = ScheduleInput.field(name).label
            used = " or ".join(schedule_kinds.needing(name))
            problems.add(ValidationError(f"{label} is only used with type {used}", name))
    return values


def _checked(
    data: ScheduleInput, default_timezone: str, now: dt.datetime, job: Job | None = None
) -> dict[str, Any]:
    """The schedule's columns; its fixed parameter values read by the types ``job``
    declares (without a job, only their shape is checked)."""
    problems = Problems()
    values = _fields(data, default_timezone, problems)
    fixed: dict[str, Any] = {}
    if job is not None and not problems.has("parameters"):
        try:
            fixed = parameters.read_values(
                parameters.load(job.parameters_json), values["parameters"]
            )
        except ValidationError as error:
            problems.add(error)
    problems.raise_any()
    start, timezone = values["start"], values["timezone"]
    kind = schedule_kinds.get(values["type"])
    next_run = kind.next_after(
        schedule_kinds.Rule(start, timezone, values["cron"]), now - dt.timedelta(microseconds=1)
    )
    if next_run is None and not kind.repeats:
        when = math.local_text(math.to_utc(start, math.zone(timezone)), timezone)
        raise ValidationError(
            f"{START.label}: {when} is in the past; a {kind.name} schedule must be later",
            "start",
        )
    return {
        "type": kind.name,
        "start_local": start,
        "timezone": timezone,
        "cron": values["cron"],
        "catch_up": values["catch_up"],
        "active": values["active"],
        "next_run_at": next_run if values["active"] else None,
        "parameter_values_json": parameters.values_json(fixed) if fixed else None,
    }


def check(
    data: ScheduleInput, *, default_timezone: str = "UTC", now: dt.datetime | None = None
) -> None:
    """Refuse ``data`` as ``create`` would, saving nothing (a form whose job is refused
    still shows what is wrong with its schedules)."""
    _checked(data, default_timezone, now or utcnow())


def _job(session: Session, actor: User | None, job_id: int) -> Job:
    return access.require_changeable(actor, session.get(Job, job_id), "job")


def _withdraw_unstarted(session: Session, schedule_id: int, now: dt.datetime) -> int:
    """Delete the schedule's claimed runs that are not due yet (still Queued)."""
    result = session.execute(
        sa.delete(Tracker)
        .where(
            Tracker.schedule_id == schedule_id,
            Tracker.status == TrackerStatus.QUEUED.value,
            Tracker.due_at > now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def create(
    session: Session,
    actor: User | None,
    job_id: int,
    data: ScheduleInput,
    *,
    default_timezone: str = "UTC",
    now: dt.datetime | None = None,
) -> Schedule:
    job = _job(session, actor, job_id)
    schedule = Schedule(job_id=job.id, **_checked(data, default_timezone, now or utcnow(), job))
    session.add(schedule)
    session.flush()
    return schedule


def get(session: Session, actor: User | None, schedule_id: int) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None or schedule.deleted_at is not None:
        raise NotFound("schedule not found")
    try:
        access.require_visible(actor, schedule.job, "job")
    except NotFound:
        raise NotFound("schedule not found") from None
    return schedule


def _changeable(session: Session, actor: User | None, schedule_id: int) -> Schedule:
    schedule = get(session, actor, schedule_id)
    try:
        access.require_changeable(actor, schedule.job, "job")
    except NotFound:
        raise NotFound("schedule not found") from None
    return schedule


def _unchanged(schedule: Schedule, data: ScheduleInput, default_timezone: str) -> bool:
    """True when ``data`` (merged with the stored values) says what ``schedule`` is."""
    problems = Problems()
    values = _fields(data, default_timezone, problems)
    if problems.found:
        return False
    return stored(schedule) == {**values, "cron": values["cron"] or None}


def replace_for_job(
    session: Session,
    actor: User | None,
    job_id: int,
    items: Sequence[tuple[int | None, ScheduleInput]],
    *,
    default_timezone: str = "UTC",
) -> None:
    """Make the job's schedules be ``items``, as a job form or a job body lists them.

    An item ``(id, input)`` with the id of one of the job's schedules changes it (only if
    something changed), one with ``None`` adds a schedule, and the job's schedules left out
    are deleted. A refusal names the item: field ``schedules[<index>].<field>``.
    """
    existing = {s.id: s for s in list_for_job(session, actor, job_id)}
    kept: set[int] = set()
    problems = Problems()
    for index, (schedule_id, data) in enumerate(items):
        name = f"schedules[{index}]"
        if schedule_id is not None and (schedule_id not in existing or schedule_id in kept):
            problems.add(
                ValidationError(f"{name}.id: this job has no schedule {schedule_id}", f"{name}.id")
            )
            continue
        try:
            if schedule_id is None:
                create(session, actor, job_id, data, default_timezone=default_timezone)
            else:
                kept.add(schedule_id)
                update(session, actor, schedule_id, data, default_timezone=default_timezone)
        except ValidationError as exc:
            for problem in getattr(exc, "problems", [exc]):
                field = f"{name}.{problem.field}" if problem.field else name
                problems.add(ValidationError(f"{name}: {problem}", field))
    problems.raise_any()
    for schedule_id in existing.keys() - kept:
        delete(session, actor, schedule_id)


def update(
    session: Session,
    actor: User | None,
    schedule_id: int,
    data: ScheduleInput,
    *,
    default_timezone: str = "UTC",
    now: dt.datetime | None = None,
) -> Schedule:
    now = now or utcnow()
    schedule = _changeable(session, actor, schedule_id)
    data = data.merged(stored(schedule))  # a field not given keeps its value
    if _unchanged(schedule, data, default_timezone):
        return schedule  # saving a form again must not disturb runs already claimed
    values = _checked(data, default_timezone, now, schedule.job)
    _withdraw_unstarted(session, schedule.id, now)
    for key, value in values.items():
        setattr(schedule, key, value)
    schedule.updated_at = now
    session.flush()
    return schedule


def set_active(
    session: Session,
    actor: User | None,
    schedule_id: int,
    active: bool,
    *,
    now: dt.datetime | None = None,
) -> Schedule:
    now = now or utcnow()
    schedule = _changeable(session, actor, schedule_id)
    _withdraw_unstarted(session, schedule.id, now)
    schedule.active = bool(active)
    schedule.next_run_at = (
        schedule_kinds.get(schedule.type).next_after(rule(schedule), now) if active else None
    )
    schedule.updated_at = now
    session.flush()
    return schedule


def delete(
    session: Session, actor: User | None, schedule_id: int, *, now: dt.datetime | None = None
) -> Schedule:
    """Logical delete: the row stays for the history of its trackers; it never fires."""
    now = now or utcnow()
    schedule = _changeable(session, actor, schedule_id)
    _withdraw_unstarted(session, schedule.id, now)
    schedule.deleted_at = now
    schedule.active = False
    schedule.next_run_at = None
    session.flush()
    return schedule


def list_for_job(session: Session, actor: User | None, job_id: int) -> list[Schedule]:
    access.require_visible(actor, session.get(Job, job_id), "job")
    return list(
        session.scalars(
            select(Schedule)
            .where(Schedule.job_id == job_id, Schedule.deleted_at.is_(None))
            .order_by(Schedule.id)
        )
    )


def list_for_jobs(
    session: Session, actor: User | None, job_ids: list[int]
) -> dict[int, list[Schedule]]:
    """``list_for_job`` for a page of jobs in one query: job id -> its live schedules.

    Every id is in the answer (an empty list when the job has none); jobs ``actor`` may
    not see, and deleted jobs, have no schedules here.
    """
    found: dict[int, list[Schedule]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return found
    rows = session.scalars(
        select(Schedule)
        .join(Job, Job.id == Schedule.job_id)
        .where(
            Schedule.job_id.in_(sorted(set(job_ids))),
            Schedule.deleted_at.is_(None),
            Job.deleted_at.is_(None),
            access.visible_filter(actor, Job),
        )
        .order_by(Schedule.job_id, Schedule.id)
    )
    for schedule in rows:
        found[schedule.job_id].append(schedule)
    return found


def list_visible(session: Session, actor: User | None) -> list[Schedule]:
    return list(
        session.scalars(
            select(Schedule)
            .join(Job, Job.id == Schedule.job_id)
            .where(
                Schedule.deleted_at.is_(None),
                Job.deleted_at.is_(None),
                access.visible_filter(actor, Job),
            )
            .order_by(Schedule.job_id, Schedule.id)
        )
    )
