"""Turning schedules into runs exactly once.

``check_due`` is what every consumer runs every ``FREQUENCY_INTERVAL_SECONDS``. Several may
run at the same moment (several consumers, on several machines, plus an operator's
``schedule_update``), so each occurrence is claimed with a compare-and-set on the
schedule's ``next_run_at``::

    UPDATE schedules SET next_run_at = :next WHERE id = :id AND next_run_at = :due ...

in the same transaction that inserts the occurrence's tracker. Only one transaction can
move ``next_run_at`` away from ``:due`` (PostgreSQL and MySQL re-check the WHERE on the
locked, newest row; SQLite has one writer), and ``UNIQUE(schedule_id, due_at)`` on
trackers refuses a second tracker even if that ever failed.

Claims are made in batches (``CLAIM_BATCH`` schedules per transaction: one SELECT, one
UPDATE on PostgreSQL, one multi-row INSERT), not one transaction per occurrence. Where the
database has them, the batch's rows are locked ``FOR UPDATE SKIP LOCKED`` (concurrent
checkers take different rows) and, on PostgreSQL, one checker claims at a time
(``pg_try_advisory_xact_lock``); the compare-and-set stays, as SQLite has neither.

The run is enqueued after commit with huey's ``eta`` = the due time, so it never starts
early; a check claims everything due before the next check (``horizon``) so it does not
start late either.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import attrs
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dancecat_core import schedule_kinds
from dancecat_core.db import session_scope
from dancecat_core.models import CatchUp, Job, Schedule, Tracker, utcnow
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


# Schedules claimed per transaction: one SELECT, one UPDATE (PostgreSQL) and one multi-row
# INSERT per batch instead of a transaction per occurrence.
CLAIM_BATCH = 500
# Any constant: the PostgreSQL advisory lock that lets one checker claim at a time.
CHECK_LOCK_KEY = 0x44434348  # "DCCH"
COUNT_LOCK_KEY = CHECK_LOCK_KEY + 1


def _due_query(until: dt.datetime, after: tuple[dt.datetime, int] | None, limit: int | None):
    """Due, active, not-deleted schedules of not-deleted jobs (``ix_schedules_due``).

    The job test is a subquery, not a join, so ``FOR UPDATE`` locks schedule rows only
    (PostgreSQL and MySQL do not lock the rows a nested subquery reads).
    """
    live_job = select(Job.id).where(Job.id == Schedule.job_id, Job.deleted_at.is_(None))
    query = select(
        Schedule.id,
        Schedule.job_id,
        Schedule.type,
        Schedule.start_local,
        Schedule.timezone,
        Schedule.cron,
        Schedule.catch_up,
        Schedule.next_run_at,
    ).where(
        Schedule.active.is_(True),
        Schedule.deleted_at.is_(None),
        Schedule.next_run_at.is_not(None),
        Schedule.next_run_at <= until,
        live_job.exists(),
    )
    if after is not None:
        # Keyset: past the rows earlier batches looked at (claimed or not).
        query = query.where(
            or_(
                Schedule.next_run_at > after[0],
                and_(Schedule.next_run_at == after[0], Schedule.id > after[1]),
            )
        )
    query = query.order_by(Schedule.next_run_at, Schedule.id)
    return query.limit(limit) if limit else query


def _occurrence(
    old: dt.datetime,
    now: dt.datetime,
    late_limit: dt.datetime,
    following: Callable[[dt.datetime], dt.datetime | None],
    skip: bool,
) -> tuple[dt.datetime | None, dt.datetime | None, int]:
    """The occurrence to run for a schedule due at ``old``: (due, next run after it, missed).

    On time: ``old`` itself. Missed (due before ``late_limit``, i.e. after downtime): walk
    to the newest occurrence at or before now; catch-up "once" runs that one and counts the
    others missed, "skip" (or ``skip``) runs none of them.
    """
    if old >= late_limit:
        return old, following(old), 0
    latest, missed = old, 0
    step = following(latest)
    while step is not None and step <= now and missed < MAX_MISSED_WALK:
        latest, step, missed = step, following(step), missed + 1
    if skip:
        return None, step, missed + 1
    return latest, step, missed


def _plan_claims(
    runtime: Runtime,
    row: Any,
    now: dt.datetime,
    horizon: dt.datetime,
    skip_missed: bool,
) -> list[Claim]:
    """Every occurrence of one due schedule up to the horizon, in claiming order, without
    tracker ids yet (a batch claims them at once, ``_claim_singly`` one by one): the
    catch-up decision for the first, then each following one (at most 1,000). A schedule
    whose type no plugin registers any more is skipped, with a log line, at every check
    (it stays due: it fires again once the plugin is back)."""
    kind = schedule_kinds.registered().get(row.type)
    if kind is None:
        log.warning(
            "schedule %s (job %s) not run: its type %r is not installed",
            row.id,
            row.job_id,
            row.type,
        )
        return []
    rule = schedule_kinds.Rule(row.start_local, row.timezone, row.cron)

    def following(instant: dt.datetime) -> dt.datetime | None:
        return kind.next_after(rule, instant)

    claims: list[Claim] = []
    old: dt.datetime | None = row.next_run_at
    late_limit = late_limit_for(runtime, now)
    for _ in range(1000):
        if old is None or old > horizon:
            break
        due, new_next, missed = _occurrence(
            old, now, late_limit, following, skip_missed or row.catch_up == CatchUp.SKIP.value
        )
        eta = due if due is not None and due > now else None
        claims.append(Claim(row.id, row.job_id, old, new_next, None, due, eta, missed))
        old = new_next
    return claims


def _naive(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.astimezone(dt.UTC).replace(tzinfo=None)


def _move_schedules(
    session: Session, moves: list[tuple[int, dt.datetime, dt.datetime | None, Any]]
) -> set[int]:
    """Compare-and-set every schedule's ``next_run_at`` from its old to its new value;
    return the ids that moved (the others were moved by someone else first)."""
    if not moves:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        rows, params = [], {"now": _naive(utcnow())}
        for i, (sid, old, new, last) in enumerate(moves):
            rows.append(f"(:i{i}, :o{i}, :n{i}, :l{i})")
            params.update({f"i{i}": sid, f"o{i}": _naive(old), f"n{i}": _naive(new)})
            params[f"l{i}"] = _naive(last)
        moved = session.execute(
            text(
                "UPDATE schedules SET"
                " next_run_at = CAST(v.new_next AS TIMESTAMP WITHOUT TIME ZONE),"
                " last_run_at = COALESCE(CAST(v.last_due AS TIMESTAMP WITHOUT TIME ZONE),"
                " schedules.last_run_at), updated_at = :now"
                f" FROM (VALUES {', '.join(rows)}) AS v(id, old_next, new_next, last_due)"
                " WHERE schedules.id = v.id"
                " AND schedules.next_run_at = CAST(v.old_next AS TIMESTAMP WITHOUT TIME ZONE)"
                " AND schedules.active IS TRUE AND schedules.deleted_at IS NULL"
                " RETURNING schedules.id"
            ),
            params,
        )
        return set(moved.scalars())
    won: set[int] = set()
    for sid, old, new, last in moves:
        result = session.execute(
            update(Schedule)
            .where(
                Schedule.id == sid,
                Schedule.next_run_at == old,
                Schedule.active.is_(True),
                Schedule.deleted_at.is_(None),
            )
            .values(next_run_at=new, **({"last_run_at": last} if last is not None else {}))
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            won.add(sid)
    return won


def _count_runs(session: Session, counts: dict[int, int]) -> None:
    """Add the claimed runs to their jobs' run counters."""
    if not counts:
        return
    if session.get_bind().dialect.name == "postgresql":
        rows = ", ".join(f"(:j{i}, :c{i})" for i in range(len(counts)))
        params: dict[str, Any] = {"now": _naive(utcnow())}
        for i, (job_id, count) in enumerate(sorted(counts.items())):
            params[f"j{i}"], params[f"c{i}"] = job_id, count
        session.execute(
            text(
                "UPDATE jobs SET run_count = COALESCE(jobs.run_count, 0) + v.n,"
                f" last_run_at = :now FROM (VALUES {rows}) AS v(id, n) WHERE jobs.id = v.id"
            ),
            params,
        )
        return
    # In id order, so two checkers never wait for each other's rows crosswise.
    for job_id, count in sorted(counts.items()):
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(run_count=func.coalesce(Job.run_count, 0) + count, last_run_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def _claim_batch(
    runtime: Runtime,
    now: dt.datetime,
    horizon: dt.datetime,
    skip_missed: bool,
    after: tuple[dt.datetime, int] | None,
) -> tuple[list[Claim], tuple[dt.datetime, int] | None, list[int]] | None:
    """Claim up to ``CLAIM_BATCH`` due schedules (all their occurrences up to the horizon)
    in one transaction. Returns (claims, keyset position, schedule ids to claim one by
    one), or None when another checker holds the claim lock (PostgreSQL).

    PostgreSQL and MySQL lock the rows (``FOR UPDATE SKIP LOCKED``: concurrent checkers
    take different rows, never wait); PostgreSQL also lets one checker claim at a time
    (``pg_try_advisory_xact_lock``). The compare-and-set on ``next_run_at`` stays on every
    backend (it is what makes SQLite, which has neither, safe), and
    ``UNIQUE(schedule_id, due_at)`` stays the last word.
    """
    dialect = runtime.engine.dialect.name
    with session_scope(runtime.session_factory) as session:
        if dialect == "postgresql" and not session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": CHECK_LOCK_KEY}
        ):
            return None
        query = _due_query(horizon, after, CLAIM_BATCH)
        if dialect in {"postgresql", "mysql", "mariadb"}:
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).all()
        if not rows:
            return [], after, []
        position = (rows[-1].next_run_at, rows[-1].id)
        planned = {row.id: _plan_claims(runtime, row, now, horizon, skip_missed) for row in rows}
        moves = []
        for row in rows:
            claims = planned[row.id]
            if not claims:
                continue
            dues = [c.due_at for c in claims if c.due_at is not None]
            moves.append((row.id, row.next_run_at, claims[-1].new_next, dues[-1] if dues else None))
        won = _move_schedules(session, moves)
        lost = [sid for sid, *_ in moves if sid not in won]
        for sid in lost:
            log.debug("schedule %s: occurrence claimed by another checker", sid)
        mine = [c for row in rows if row.id in won for c in planned[row.id]]
        trackers = [
            Tracker(job_id=c.job_id, schedule_id=c.schedule_id, due_at=c.due_at)
            for c in mine
            if c.due_at is not None
        ]
        session.add_all(trackers)
        try:
            session.flush()
        except IntegrityError:
            # Some occurrence already has its tracker: undo the batch, go one by one.
            session.rollback()
            log.warning("claim batch: an occurrence already has a tracker; claiming singly")
            return [], position, [row.id for row in rows]
        ids = iter(t.id for t in trackers)
        claimed = [
            attrs.evolve(c, tracker_id=next(ids)) if c.due_at is not None else c for c in mine
        ]
        counts: dict[int, int] = {}
        for c in claimed:
            if c.tracker_id is not None:
                counts[c.job_id] = counts.get(c.job_id, 0) + 1
    # Its own transaction, as before: the claim transaction holds schedule rows, and a job
    # deletion holds its job row while it deletes the job's schedules; bumping job rows in
    # the claim transaction could deadlock with it (MySQL: with another checker too, as a
    # tracker INSERT's foreign-key check share-locks the job row).
    if counts:
        with session_scope(runtime.session_factory) as session:
            if dialect == "postgresql":
                # One counter update at a time: a multi-row UPDATE's lock order is the plan's.
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": COUNT_LOCK_KEY})
            _count_runs(session, counts)
    for c in claimed:
        if c.tracker_id is not None:
            log.info(
                "tracker %s: schedule %s occurrence %s claimed (%s)",
                c.tracker_id,
                c.schedule_id,
                c.due_at.isoformat(),
                "catch-up" if c.missed else "on time",
            )
    return claimed, position, []


def _claim_singly(
    runtime: Runtime,
    schedule_id: int,
    now: dt.datetime,
    horizon: dt.datetime,
    skip_missed: bool,
    enqueue: Enqueue | None,
) -> list[Claim]:
    """The one-occurrence-per-transaction path, a batch's fallback: the same plan as the
    batch (``_plan_claims``), each occurrence claimed in its own transaction, in order,
    until one is no longer this checker's to claim."""
    with runtime.session_factory() as session:
        row = session.execute(
            _due_query(horizon, None, None).where(Schedule.id == schedule_id)
        ).first()
    if row is None:
        return []
    claims: list[Claim] = []
    for planned in _plan_claims(runtime, row, now, horizon, skip_missed):
        claim = _claim_one(runtime, planned)
        if claim is None:
            break
        claims.append(claim)
        _enqueue(claim, enqueue)
    return claims


def _enqueue(claim: Claim, enqueue: Enqueue | None) -> None:
    if claim.tracker_id is not None and enqueue is not None:
        try:
            enqueue(claim.tracker_id, claim.eta)
        except Exception:
            # The tracker stays Queued; the sweep marks it Died in Queue later.
            log.exception("tracker %s: could not be enqueued", claim.tracker_id)


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
    after: tuple[dt.datetime, int] | None = None
    while True:
        batch = _claim_batch(runtime, now, horizon, skip_missed, after)
        if batch is None:
            log.debug("schedule check: another checker is claiming; leaving it to that one")
            break
        claimed, position, singly = batch
        # Enqueued only after the batch's commit (a worker must find its tracker).
        for claim in claimed:
            claims.append(claim)
            _enqueue(claim, enqueue)
        for schedule_id in singly:
            claims += _claim_singly(runtime, schedule_id, now, horizon, skip_missed, enqueue)
        if position is None or position == after:
            break
        after = position
    return claims


def _claim_one(runtime: Runtime, planned: Claim) -> Claim | None:
    """Claim one planned occurrence (compare-and-set ``next_run_at``, insert its tracker)
    in its own transaction; None if another checker moved the schedule first."""
    schedule_id, job_id, due = planned.schedule_id, planned.job_id, planned.due_at
    with session_scope(runtime.session_factory) as session:
        claimed = session.execute(
            update(Schedule)
            .where(
                Schedule.id == schedule_id,
                Schedule.next_run_at == planned.old_next,
                Schedule.active.is_(True),
                Schedule.deleted_at.is_(None),
            )
            .values(
                next_run_at=planned.new_next,
                **({"last_run_at": due} if due is not None else {}),
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            session.rollback()
            log.debug(
                "schedule %s: occurrence %s claimed by another checker",
                schedule_id,
                planned.old_next,
            )
            return None
        if due is None:
            return planned
        tracker = Tracker(job_id=job_id, schedule_id=schedule_id, due_at=due)
        session.add(tracker)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            log.warning("schedule %s: occurrence %s already has a tracker", schedule_id, due)
            return _advance_only(runtime, schedule_id, job_id, planned.old_next, planned.new_next)
    _count_run(runtime, job_id)
    log.info(
        "tracker %s: schedule %s occurrence %s claimed (%s)",
        tracker.id,
        schedule_id,
        due.isoformat(),
        "catch-up" if planned.missed else "on time",
    )
    return attrs.evolve(planned, tracker_id=tracker.id)


def _count_run(runtime: Runtime, job_id: int) -> None:
    """Bump the job's run counter in its own short transaction: every claim of one job's
    schedules would otherwise queue up behind the job row's lock until commit."""
    with session_scope(runtime.session_factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(run_count=func.coalesce(Job.run_count, 0) + 1, last_run_at=utcnow())
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
