"""Chains: a job that runs after each run of another job ends as it asks (success or
failure), carrying the upstream run's due time.

``downstream_runs`` is the one hook: whoever finishes a run asks it which runs follow,
gets their tracker ids back (committed) and enqueues them. Each upstream run gives each
chained job at most one run, however many processes ask: ``UNIQUE(upstream_tracker_id,
job_id)`` on trackers refuses a second claim, as ``UNIQUE(schedule_id, due_at)`` does for
a schedule's occurrence. ``cycle`` is what saving a job checks so chains always end;
it serialises those saves with the ``job_chains`` lock (``app_locks``).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dancecat_core import app_locks
from dancecat_core.db import session_scope
from dancecat_core.models import Connection, Job, RunAfter, Tracker, TrackerStatus, utcnow
from dancecat_core.runtime import Runtime

log = logging.getLogger(__name__)


# The upstream statuses each choice follows. A Success whose result has since expired
# still succeeded; a run that died in the queue never ran, so it is not a failure to act on.
FOLLOWS = {
    RunAfter.SUCCESS: (TrackerStatus.SUCCESS.value, TrackerStatus.RESULT_EXPIRED.value),
    RunAfter.FAILURE: (TrackerStatus.FAILED.value,),
}


def cycle(session: Session, job_id: int | None, after_job_id: int) -> list[str] | None:
    """The names of the jobs in the cycle that running ``job_id`` after ``after_job_id``
    would close (starting and ending with the job), or None when there is none.

    Race-safe: it takes the ``job_chains`` lock (``app_locks``) first, which the caller
    holds until it commits the save, and reads each job's latest committed "run after"
    (a locking read: MariaDB's repeatable read would otherwise show an older snapshot).
    Two saves that would close a cycle between them (A after B, B after A) thus run one
    after the other, and the second sees the first and is refused."""
    if job_id is None:
        return None  # a job being created has no runs after it yet
    app_locks.hold(session, app_locks.JOB_CHAINS)
    path: list[str] = []
    seen: set[int] = set()
    current: int | None = after_job_id
    while current is not None and current not in seen:
        seen.add(current)
        row = session.execute(
            select(Job.name, Job.after_job_id, Job.deleted_at)
            .where(Job.id == current)
            .with_for_update(read=True)
        ).first()
        if row is None or row.deleted_at is not None:
            return None
        path.append(row.name)
        if current == job_id:
            return [path[-1], *path[:-1], path[-1]] if len(path) > 1 else [row.name, row.name]
        current = row.after_job_id
    return None


def _outcome(status: str) -> RunAfter | None:
    for choice, statuses in FOLLOWS.items():
        if status in statuses:
            return choice
    return None


def downstream_runs(runtime: Runtime, tracker_id: int) -> list[int]:
    """Claim the runs that follow the finished run ``tracker_id``; return their tracker
    ids, committed, for the caller to enqueue. Safe to call again: runs claimed before
    are not claimed twice (and are not returned again)."""
    with runtime.session_factory() as session:
        upstream = session.get(Tracker, tracker_id)
        outcome = _outcome(upstream.status) if upstream is not None else None
        if outcome is None:
            return []
        due_at = upstream.due_at
        followers = list(
            session.scalars(
                select(Job.id)
                .join(Connection, Connection.id == Job.connection_id)
                .where(
                    Job.after_job_id == upstream.job_id,
                    Job.after_on == outcome.value,
                    Job.deleted_at.is_(None),
                    Connection.deleted_at.is_(None),
                )
                .order_by(Job.id)
            )
        )
    claimed = []
    for job_id in followers:
        # One transaction per follower: a claim another process made first is refused
        # by the unique constraint and undoes only itself.
        try:
            with session_scope(runtime.session_factory) as session:
                tracker = Tracker(job_id=job_id, upstream_tracker_id=tracker_id, due_at=due_at)
                session.add(tracker)
                session.flush()
                session.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(run_count=Job.run_count + 1, last_run_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
                claimed.append(tracker.id)
        except IntegrityError:
            log.info("run %s: job %s's run after it was claimed already", tracker_id, job_id)
    if claimed:
        log.info("run %s: chained runs %s", tracker_id, claimed)
    return claimed
