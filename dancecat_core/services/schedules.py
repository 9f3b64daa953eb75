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

import attrs
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from dancecat_core import schedules as math
from dancecat_core.errors import NotFound, ValidationError
from dancecat_core.models import (
    CatchUp,
    Job,
    Schedule,
    ScheduleType,
    Tracker,
    TrackerStatus,
    User,
    utcnow,
)
from dancecat_core.services import access, validation


@attrs.frozen
class ScheduleInput:
    """What a form, the API or the console gives. ``start`` is 'YYYY-MM-DD HH:MM' in
    ``timezone`` (default: the server's, ``TIMEZONE``)."""

    type: str
    start: str | dt.datetime
    timezone: str | None = None
    cron: str | None = None
    active: bool | str = True
    catch_up: str = CatchUp.ONCE.value


def _checked(data: ScheduleInput, default_timezone: str, now: dt.datetime) -> dict[str, Any]:
    kind = str(data.type or "").strip().lower()
    if kind not in {t.value for t in ScheduleType}:
        choices = ", ".join(t.value for t in ScheduleType)
        raise ValidationError(f"type must be one of {choices}", "type")
    start = math.parse_start(data.start, "start")
    timezone = (data.timezone or "").strip() or default_timezone
    math.zone(timezone, "timezone")
    cron = None
    if kind == ScheduleType.CRON:
        cron = math.check_cron(data.cron, "cron")
    elif data.cron and str(data.cron).strip():
        raise ValidationError("cron is only used with type cron", "cron")
    catch_up = str(data.catch_up or CatchUp.ONCE.value).strip().lower()
    if catch_up not in {c.value for c in CatchUp}:
        raise ValidationError("catch_up must be once or skip", "catch_up")
    active = validation.boolean(data.active, "active")
    next_run = math.next_after(kind, start, timezone, now - dt.timedelta(microseconds=1), cron)
    if kind == ScheduleType.ONCE and next_run is None:
        when = math.local_text(math.to_utc(start, math.zone(timezone)), timezone)
        raise ValidationError(
            f"start: {when} is in the past; a once schedule must be later", "start"
        )
    return {
        "type": kind,
        "start_local": start,
        "timezone": timezone,
        "cron": cron,
        "catch_up": catch_up,
        "active": active,
        "next_run_at": next_run if active else None,
    }


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
    schedule = Schedule(job_id=job.id, **_checked(data, default_timezone, now or utcnow()))
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
    """True when ``data`` says what ``schedule`` already is."""
    try:
        start = math.parse_start(data.start, "start")
        active = validation.boolean(data.active, "active")
    except ValidationError:
        return False
    cron = " ".join(str(data.cron or "").split()) or None
    return (
        schedule.type == str(data.type or "").strip().lower()
        and schedule.start_local == start
        and schedule.timezone == ((data.timezone or "").strip() or default_timezone)
        and (" ".join((schedule.cron or "").split()) or None) == cron
        and schedule.catch_up == str(data.catch_up or CatchUp.ONCE.value).strip().lower()
        and bool(schedule.active) == active
    )


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
    for index, (schedule_id, data) in enumerate(items):
        name = f"schedules[{index}]"
        if schedule_id is not None and (schedule_id not in existing or schedule_id in kept):
            raise ValidationError(f"{name}.id: this job has no schedule {schedule_id}", name)
        try:
            if schedule_id is None:
                create(session, actor, job_id, data, default_timezone=default_timezone)
            else:
                kept.add(schedule_id)
                update(session, actor, schedule_id, data, default_timezone=default_timezone)
        except ValidationError as exc:
            field = f"{name}.{exc.field}" if exc.field else name
            raise ValidationError(f"{name}: {exc}", field) from None
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
    if _unchanged(schedule, data, default_timezone):
        return schedule  # saving a form again must not disturb runs already claimed
    values = _checked(data, default_timezone, now)
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
        math.next_after(schedule.type, schedule.start_local, schedule.timezone, now, schedule.cron)
        if active
        else None
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
