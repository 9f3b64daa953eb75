"""Turning schedules into runs exactly once, and cleaning up after dead workers.

``check_due`` is what every consumer runs every ``FREQUENCY_INTERVAL_SECONDS``. Several may
run at the same moment (several consumers, on several machines, plus an operator's
``schedule_update``), so each occurrence is claimed with a compare-and-set on the
schedule's ``next_run_at``::

    UPDATE schedules SET next_run_at = :next WHERE id = :id AND next_run_at = :due ...

in the same transaction that inserts the occurrence's tracker. Only one transaction can
move ``next_run_at`` away from ``:due`` (PostgreSQL and MySQL re-check the WHERE on the
locked, newest row; SQLite has one writer), and ``UNIQUE(schedule_id, due_at)`` on
trackers refuses a second tracker even if that ever failed. This works the same on every
app database, which ``SELECT ... FOR UPDATE SKIP LOCKED`` would not (SQLite lacks it).

The run is enqueued after commit with huey's ``eta`` = the due time, so it never starts
early; a check claims everything due before the next check (``horizon``) so it does not
start late either.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import attrs
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from dancecat_core import schedules as math
from dancecat_core.db import session_scope
from dancecat_core.models import CatchUp, Job, Schedule, Tracker, TrackerStatus, utcnow
from dancecat_core.runner import set_status
from dancecat_core.runtime import Runtime

log = logging.getLogger(__name__)

Enqueue = Callable[[int, dt.datetime | None], None]
# Walking this many missed occurrences is enough for years of an hourly schedule.
MAX_MISSED_WALK = 200_000


@attrs.frozen
class Claim:
    """What one check did with one schedule occurrence (or run of missed ones)."""

    schedule_id: int
    job_id: int
    old_next: dt.datetime
    new_next: dt.datetime | None
    tracker_id: int | None = None
    due_at: dt.datetime | None = None
    eta: dt.datetime | None = None
    missed: int = 0  # occurrences passed over without a run (downtime)

    def describe(self, timezone: str = "UTC") -> str:
        parts = [f"schedule {self.schedule_id} (job {self.job_id}):"]
        if self.tracker_id is not None:
            when = "now" if self.eta is None else f"at {self.eta.isoformat()}"
            parts.append(f"tracker {self.tracker_id} for {self.due_at.isoformat()} runs {when};")
        if self.missed:
            parts.append(f"skipped {self.missed} missed occurrence(s);")
        parts.append(
            f"next run {self.old_next.isoformat()} -> "
            f"{self.new_next.isoformat() if self.new_next else 'none (finished)'}"
        )
        return " ".join(parts)


def horizon_for(runtime: Runtime, now: dt.datetime) -> dt.datetime:
    """Claim what is due before the next check (with one interval to spare for a late check)."""
    return now + dt.timedelta(seconds=2 * runtime.settings.frequency_interval_seconds)


def late_limit_for(runtime: Runtime, now: dt.datetime) -> dt.datetime:
    """Occurrences due before this were missed (nobody checked in time): catch-up policy."""
    return now - dt.timedelta(seconds=max(2 * runtime.settings.frequency_interval_seconds, 60))


def _due_ids(runtime: Runtime, until: dt.datetime) -> list[int]:
    with runtime.session_factory() as session:
        return list(
            session.scalars(
                select(Schedule.id)
                .join(Job, Job.id == Schedule.job_id)
                .where(
                    Schedule.active.is_(True),
                    Schedule.deleted_at.is_(None),
                    Schedule.next_run_at.is_not(None),
                    Schedule.next_run_at <= until,
                    Job.deleted_at.is_(None),
                )
                .order_by(Schedule.next_run_at, Schedule.id)
            )
        )


def check_due(
    runtime: Runtime,
    *,
    now: dt.datetime | None = None,
    enqueue: Enqueue | None = None,
    only_missed: bool = False,
    skip_missed: bool = False,
) -> list[Claim]:
    """Claim every occurrence due before the next check, enqueue its run, advance next run.

    ``only_missed`` (``schedule_update``) touches only schedules whose next run is already
    past the catch-up limit; ``skip_missed`` advances those without a catch-up run.
    """
    now = now or utcnow()
    horizon = late_limit_for(runtime, now) if only_missed else horizon_for(runtime, now)
    claims: list[Claim] = []
    for schedule_id in _due_ids(runtime, horizon):
        # A schedule may have several occurrences before the horizon (a cron every minute).
        for _ in range(1000):
            claim = _claim_one(runtime, schedule_id, now, horizon, skip_missed)
            if claim is None:
                break
            claims.append(claim)
            if claim.tracker_id is not None and enqueue is not None:
                try:
                    enqueue(claim.tracker_id, claim.eta)
                except Exception:
                    # The tracker stays Queued; the sweep marks it Died in Queue later.
                    log.exception("tracker %s: could not be enqueued", claim.tracker_id)
            if claim.new_next is None or claim.new_next > horizon:
                break
    return claims


def _claim_one(
    runtime: Runtime,
    schedule_id: int,
    now: dt.datetime,
    horizon: dt.datetime,
    skip_missed: bool,
) -> Claim | None:
    """Claim the schedule's next occurrence if it is due and nobody else has; else None."""
    with session_scope(runtime.session_factory) as session:
        schedule = session.get(Schedule, schedule_id)
        if (
            schedule is None
            or not schedule.active
            or schedule.deleted_at is not None
            or schedule.next_run_at is None
            or schedule.next_run_at > horizon
        ):
            return None
        old = schedule.next_run_at
        kind, start, tz, cron = (
            schedule.type,
            schedule.start_local,
            schedule.timezone,
            schedule.cron,
        )
        job_id = schedule.job_id

        def following(instant: dt.datetime) -> dt.datetime | None:
            return math.next_after(kind, start, tz, instant, cron)

        missed = 0
        due: dt.datetime | None = old
        if old < late_limit_for(runtime, now):
            # Downtime: walk to the newest occurrence at or before now.
            latest, missed = old, 0
            step = following(latest)
            while step is not None and step <= now and missed < MAX_MISSED_WALK:
                latest, step, missed = step, following(step), missed + 1
            new_next = step
            if skip_missed or schedule.catch_up == CatchUp.SKIP.value:
                due, missed = None, missed + 1
            else:
                due = latest
        else:
            new_next = following(old)

        claimed = session.execute(
            update(Schedule)
            .where(
                Schedule.id == schedule_id,
                Schedule.next_run_at == old,
                Schedule.active.is_(True),
                Schedule.deleted_at.is_(None),
            )
            .values(
                next_run_at=new_next,
                **({"last_run_at": due} if due is not None else {}),
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            session.rollback()
            log.debug("schedule %s: occurrence %s claimed by another checker", schedule_id, old)
            return None
        tracker_id = None
        if due is not None:
            tracker = Tracker(job_id=job_id, schedule_id=schedule_id, due_at=due)
            session.add(tracker)
            try:
                session.flush()
            except IntegrityError:
                session.rollback()
                log.warning("schedule %s: occurrence %s already has a tracker", schedule_id, due)
                return _advance_only(runtime, schedule_id, job_id, old, new_next)
            tracker_id = tracker.id
    eta = due if due is not None and due > now else None
    if tracker_id is not None:
        _count_run(runtime, job_id)
        log.info(
            "tracker %s: schedule %s occurrence %s claimed (%s)",
            tracker_id,
            schedule_id,
            due.isoformat(),
            "catch-up" if missed else "on time",
        )
    return Claim(schedule_id, job_id, old, new_next, tracker_id, due, eta, missed)


def _count_run(runtime: Runtime, job_id: int) -> None:
    """Bump the job's run counter in its own short transaction: every claim of one job's
    schedules would otherwise queue up behind the job row's lock until commit."""
    with session_scope(runtime.session_factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(run_count=func.coalesce(Job.run_count, 0) + 1)
            .execution_options(synchronize_session=False)
        )


def _advance_only(
    runtime: Runtime,
    schedule_id: int,
    job_id: int,
    old: dt.datetime,
    new_next: dt.datetime | None,
) -> Claim | None:
    """Move past an occurrence that already has its tracker (the constraint said so)."""
    with session_scope(runtime.session_factory) as session:
        moved = session.execute(
            update(Schedule)
            .where(Schedule.id == schedule_id, Schedule.next_run_at == old)
            .values(next_run_at=new_next)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:
            return None
    return Claim(schedule_id, job_id, old, new_next)


def too_early(runtime: Runtime, tracker_id: int) -> dt.datetime | None:
    """The tracker's due time if that is still in the future (the run must wait)."""
    with runtime.session_factory() as session:
        due = session.scalar(select(Tracker.due_at).where(Tracker.id == tracker_id))
    return due if due is not None and due > utcnow() else None


def sweep_dead(runtime: Runtime, now: dt.datetime | None = None) -> int:
    """Fail Running trackers whose worker stopped; Died in Queue for never-run Queued ones.

    A worker beats every 10 s while it runs (``runner._Watchdog``); a heartbeat older than
    ``WORKER_STALE_SECONDS`` means the process is gone (SIGKILL, power loss, OOM). If it
    was only stalled and comes back, the runner's compare-and-set keeps this verdict.
    """
    from dancecat_core import notify

    now = now or utcnow()
    settings = runtime.settings
    stale_before = now - dt.timedelta(seconds=settings.worker_stale_seconds)
    queue_limit = dt.timedelta(seconds=settings.job_worker_enqueue_timeout)
    with runtime.session_factory() as session:
        running = session.execute(
            select(Tracker.id, Tracker.heartbeat_at, Tracker.started_at, Tracker.worker).where(
                Tracker.status == TrackerStatus.RUNNING.value,
                func.coalesce(Tracker.heartbeat_at, Tracker.started_at) < stale_before,
            )
        ).all()
        queued = session.execute(
            select(Tracker.id, Tracker.queued_at, Tracker.due_at).where(
                Tracker.status == TrackerStatus.QUEUED.value,
                Tracker.queued_at < now - queue_limit,
            )
        ).all()
    changed = 0
    for tracker_id, heartbeat, started, worker in running:
        last = heartbeat or started
        reason = (
            f"the worker running it stopped (no heartbeat since {last.isoformat()}"
            + (f" from {worker}" if worker else "")
            + ")"
        )
        if set_status(
            runtime,
            tracker_id,
            TrackerStatus.RUNNING,
            TrackerStatus.FAILED,
            finished_at=now,
            error=reason,
        ):
            changed += 1
            log.warning("tracker %s: swept: %s", tracker_id, reason)
            notify.after_run(runtime, tracker_id)
    for tracker_id, queued_at, due_at in queued:
        waited_from = max(queued_at, due_at) if due_at else queued_at
        if now - waited_from <= queue_limit:
            continue
        if set_status(
            runtime,
            tracker_id,
            TrackerStatus.QUEUED,
            TrackerStatus.DIED_IN_QUEUE,
            finished_at=now,
            error=(
                "waited in the queue over JOB_WORKER_ENQUEUE_TIMEOUT "
                f"({settings.job_worker_enqueue_timeout} s)"
            ),
        ):
            changed += 1
            log.warning("tracker %s: swept: died in queue", tracker_id)
    return changed
