"""A tracker's status and the changes to it: claim, finish, hand back, sweep of dead runs.

The legal moves are ``models.trackers.TRANSITIONS``. Every change of a stored tracker's
status is a compare-and-set (``set_status``; result expiry in ``services.trackers`` uses
it too): a run is executed
at most once per tracker even if the queue delivers it twice, and a run the sweep already
declared dead cannot come back as Success. Nothing here enqueues or notifies: each
function returns what happened (a ``RunOutcome``, a ``Sweep``) and ``dancecat_core.tasks``
does what that asks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import attrs
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dancecat_core import schedule_kinds
from dancecat_core.db import session_scope, with_app_db
from dancecat_core.drivers import ConnectionParams
from dancecat_core.error_text import clean_error
from dancecat_core.models import (
    Connection as DbConnection,
)
from dancecat_core.models import (
    Job,
    JobRecipient,
    Schedule,
    Tracker,
    TrackerStatus,
    check_transition,
    utcnow,
)
from dancecat_core.parameters import RunParameters
from dancecat_core.resultstore import ResultMeta
from dancecat_core.run_dates import occasion_of
from dancecat_core.runtime import Runtime

log = logging.getLogger(__name__)


@attrs.frozen
class RunOutcome:
    """How one attempt to run a tracker ended, and what is left to do about it."""

    tracker_id: int
    status: TrackerStatus
    row_count: int | None = None
    error: str | None = None
    # The job's recipients as the final status change read them (same transaction);
    # None when not read (the run did not finish here, or finished another way).
    recipients: tuple[str, ...] | None = None
    # Set (and nothing done) when asked to wait for the due time and it is still ahead.
    not_before: dt.datetime | None = None
    # This attempt claimed the run, so announcing its end is this attempt's to do.
    claimed: bool = False
    # The worker shut down mid-run: the tracker is Queued again and must be enqueued.
    handed_back: bool = False


@attrs.frozen
class ClaimedRun:
    """A run this worker has claimed (Running, under its name), with what it needs."""

    tracker_id: int
    job_id: int
    sql: str
    timeout: int
    params: ConnectionParams
    parameters: RunParameters
    # The job's recipients' conditions, judged while the result streams (``delivery_rules``).
    conditions: tuple[str, ...] = ()


@attrs.frozen
class _Refused:
    """A Queued run that must not start: it ends at ``target`` without running."""

    target: TrackerStatus
    error: str


@attrs.frozen
class Sweep:
    """What one sweep changed: runs failed (their ends are to be announced) and runs
    that died in the queue (not announced: they never ran)."""

    failed: tuple[int, ...] = ()
    died_in_queue: tuple[int, ...] = ()

    @property
    def changed(self) -> int:
        return len(self.failed) + len(self.died_in_queue)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def set_status(
    runtime: Runtime, tracker_id: int, current: TrackerStatus, target: TrackerStatus, **values: Any
) -> bool:
    """Move a tracker from ``current`` to ``target`` only if it is still ``current``.

    Returns False when another process got there first (the row's status changed). While
    the app database is unreachable it retries (``with_app_db``); if an attempt may have
    committed before the connection dropped, a later attempt that finds the row already
    at ``target`` (and, for a claim, with this worker's name) counts as done.
    """
    return _set_status(runtime, tracker_id, current, target, values)[0]


def _set_status(
    runtime: Runtime,
    tracker_id: int,
    current: TrackerStatus,
    target: TrackerStatus,
    values: dict[str, Any],
    also: Callable[[Session], Any] | None = None,
) -> tuple[bool, Any]:
    """``set_status``; when the move happened, ``also(session)`` runs in the same
    transaction (one round trip instead of a transaction of its own) and its answer is
    returned beside the verdict."""
    check_transition(current, target)
    if values.get("error"):
        # Whatever text a tracker keeps, it keeps masked (runner texts are cleaned already).
        values = {**values, "error": clean_error(values["error"], patterns=runtime.value_patterns)}
    attempts = 0

    def attempt() -> tuple[bool, Any]:
        nonlocal attempts
        attempts += 1
        with session_scope(runtime.session_factory) as session:
            result = session.execute(
                update(Tracker)
                .where(Tracker.id == tracker_id, Tracker.status == current.value)
                .values(status=target.value, **values)
            )
            if result.rowcount == 1:
                return True, also(session) if also else None
            if attempts == 1:
                return False, None
            row = session.execute(
                select(Tracker.status, Tracker.worker).where(Tracker.id == tracker_id)
            ).first()
            done = (
                row is not None
                and row.status == target.value
                and ("worker" not in values or row.worker == values["worker"])
            )
            return done, also(session) if done and also else None

    return with_app_db(f"tracker {tracker_id}: {current} -> {target}", attempt)


def claim(
    runtime: Runtime, tracker_id: int, *, wait_for_due: bool = False
) -> ClaimedRun | RunOutcome:
    """Claim a Queued tracker for this worker (Queued -> Running) and load its run.

    Returns an outcome instead when there is nothing to run: the tracker is gone or not
    Queued, another worker took it, its due time is still ahead (``wait_for_due``: the
    outcome's ``not_before`` says when), or it must not start (it waited past
    JOB_WORKER_ENQUEUE_TIMEOUT: Died in Queue; its job or connection was deleted: Failed).
    """
    worker = worker_name()
    attempts = 0

    def attempt() -> ClaimedRun | RunOutcome | _Refused:
        nonlocal attempts
        attempts += 1
        return _load_and_claim(runtime, tracker_id, worker, wait_for_due, attempts > 1)

    loaded = with_app_db(f"tracker {tracker_id}: load and claim", attempt)
    if not isinstance(loaded, _Refused):
        return loaded
    set_status(
        runtime,
        tracker_id,
        TrackerStatus.QUEUED,
        loaded.target,
        finished_at=utcnow(),
        error=loaded.error,
    )
    if loaded.target == TrackerStatus.DIED_IN_QUEUE:
        return RunOutcome(tracker_id, loaded.target)
    return RunOutcome(tracker_id, loaded.target, error=loaded.error)


def _load_and_claim(
    runtime: Runtime, tracker_id: int, worker: str, wait_for_due: bool, repeat: bool
) -> ClaimedRun | RunOutcome | _Refused:
    """``claim``'s one transaction (one SELECT, one compare-and-set UPDATE). A refusal
    writes nothing here. Safe to repeat (``with_app_db``): a ``repeat`` that finds the
    tracker Running under this worker's name knows an earlier attempt claimed it (its
    commit went through, the answer was lost with the connection)."""
    settings = runtime.settings
    now = utcnow()
    with session_scope(runtime.session_factory) as session:
        found = session.execute(
            select(Tracker, Job, DbConnection, Schedule)
            .join(Job, Job.id == Tracker.job_id)
            .join(DbConnection, DbConnection.id == Job.connection_id)
            .outerjoin(Schedule, Schedule.id == Tracker.schedule_id)
            .where(Tracker.id == tracker_id)
        ).first()
        if found is None:
            log.warning("tracker %s: does not exist, nothing to run", tracker_id)
            return RunOutcome(tracker_id, TrackerStatus.FAILED, error="no such tracker")
        tracker, job, connection, schedule = found
        mine = repeat and tracker.status == TrackerStatus.RUNNING and tracker.worker == worker
        if tracker.status != TrackerStatus.QUEUED and not mine:
            log.info("tracker %s: already %s, not running it again", tracker_id, tracker.status)
            return RunOutcome(tracker_id, TrackerStatus(tracker.status))
        if not mine:
            if wait_for_due and tracker.due_at is not None and tracker.due_at > now:
                return RunOutcome(tracker_id, TrackerStatus.QUEUED, not_before=tracker.due_at)
            refused = _refusal(runtime, tracker, job, connection, schedule, now)
            if refused is not None:
                return refused
        run = ClaimedRun(
            tracker_id=tracker_id,
            job_id=job.id,
            sql=job.query,
            timeout=job.timeout_seconds or settings.db_timeout,
            params=runtime.connection_params(connection),
            parameters=RunParameters(
                job.parameters_json,
                tracker.parameter_values_json or (schedule and schedule.parameter_values_json),
                occasion_of(tracker.due_at or tracker.queued_at, settings.timezone, schedule),
            ),
            conditions=_conditions(session, job.id),
        )
        if mine:
            return run
        claimed = session.execute(
            update(Tracker)
            .where(Tracker.id == tracker_id, Tracker.status == TrackerStatus.QUEUED.value)
            .values(
                status=TrackerStatus.RUNNING.value, started_at=now, heartbeat_at=now, worker=worker
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            log.info("tracker %s: claimed by another worker", tracker_id)
            return RunOutcome(tracker_id, TrackerStatus.RUNNING)
        return run


def _refusal(
    runtime: Runtime,
    tracker: Tracker,
    job: Job,
    connection: DbConnection,
    schedule: Schedule | None,
    now: dt.datetime,
) -> _Refused | None:
    """Why a Queued run must not start now, if it must not."""
    limit = runtime.settings.job_worker_enqueue_timeout
    waited_from = max(tracker.due_at, tracker.queued_at) if tracker.due_at else tracker.queued_at
    if (now - waited_from).total_seconds() > limit:
        return _Refused(TrackerStatus.DIED_IN_QUEUE, _died_in_queue_text(limit))
    if job.is_deleted:
        return _Refused(TrackerStatus.FAILED, "the job was deleted before the run started")
    if connection.is_deleted:
        return _Refused(TrackerStatus.FAILED, "the job's connection was deleted")
    if schedule is not None and schedule.type not in schedule_kinds.registered():
        # Its dates (``period_start``) cannot be computed without the type's rules.
        return _Refused(
            TrackerStatus.FAILED, str(schedule_kinds.UnknownScheduleType(schedule.type))
        )
    return None


def _conditions(session: Session, job_id: int) -> tuple[str, ...]:
    return tuple(
        sorted(
            set(
                session.scalars(
                    select(JobRecipient.condition).where(
                        JobRecipient.job_id == job_id, JobRecipient.condition.is_not(None)
                    )
                )
            )
        )
    )


def _died_in_queue_text(limit: int) -> str:
    return f"waited in the queue over JOB_WORKER_ENQUEUE_TIMEOUT ({limit} s)"


def _recipient_emails(job_id: int) -> Callable[[Session], tuple[str, ...]]:
    def read(session: Session) -> tuple[str, ...]:
        return tuple(
            session.scalars(
                select(JobRecipient.destination)
                .where(JobRecipient.job_id == job_id)
                .order_by(JobRecipient.id)
            )
        )

    return read


def _recorded(values_json: str | None) -> dict[str, Any]:
    """The parameter values a run used, to keep on its tracker (nothing: keep what it
    was given)."""
    return {} if values_json is None else {"parameter_values_json": values_json}


def fail(
    runtime: Runtime,
    run: ClaimedRun,
    message: str,
    duration_ms: int,
    values_json: str | None = None,
) -> RunOutcome:
    """Running -> Failed with ``message`` (already cleaned), reading the job's recipients
    in the same transaction; ``values_json``: the parameter values it ran with."""
    failed, emails = _set_status(
        runtime,
        run.tracker_id,
        TrackerStatus.RUNNING,
        TrackerStatus.FAILED,
        {
            "finished_at": utcnow(),
            "error": message,
            "duration_ms": duration_ms,
            **_recorded(values_json),
        },
        also=_recipient_emails(run.job_id),
    )
    return RunOutcome(
        run.tracker_id,
        TrackerStatus.FAILED,
        error=message,
        recipients=emails if failed else None,
        claimed=True,
    )


def succeed(
    runtime: Runtime,
    run: ClaimedRun,
    *,
    store: str,
    key: str,
    meta: ResultMeta,
    size: int,
    duration_ms: int,
    content_hash: str | None = None,
    delivery_facts: str | None = None,
    values_json: str | None = None,
) -> RunOutcome:
    """Running -> Success with the stored result ``key``, reading the job's recipients in
    the same transaction. A Failed outcome ("declared dead") means the sweep gave up on
    this run while it was still going: its verdict stands and the result is not this
    tracker's (the caller drops it). ``content_hash`` and ``delivery_facts`` are what the
    delivery rules read later (``delivery_rules``)."""
    finished = utcnow()
    ok, emails = _set_status(
        runtime,
        run.tracker_id,
        TrackerStatus.RUNNING,
        TrackerStatus.SUCCESS,
        {
            "finished_at": finished,
            "duration_ms": duration_ms,
            "row_count": meta.row_count,
            "result_store": store,
            "result_key": key,
            "result_bytes": size,
            "result_meta_json": json.dumps(meta.to_dict(), ensure_ascii=False),
            "result_expires_at": finished
            + dt.timedelta(seconds=runtime.settings.job_result_valid_seconds),
            "content_hash": content_hash,
            "delivery_facts_json": delivery_facts,
            **_recorded(values_json),
        },
        also=_recipient_emails(run.job_id),
    )
    if not ok:
        return RunOutcome(run.tracker_id, TrackerStatus.FAILED, error="declared dead", claimed=True)
    return RunOutcome(
        run.tracker_id,
        TrackerStatus.SUCCESS,
        row_count=meta.row_count,
        recipients=emails,
        claimed=True,
    )


def hand_back(runtime: Runtime, tracker_id: int) -> RunOutcome:
    """The worker is shutting down mid-run: put the tracker back to Queued (its partial
    result was already thrown away); the outcome asks for it to be enqueued again."""
    handed = set_status(
        runtime,
        tracker_id,
        TrackerStatus.RUNNING,
        TrackerStatus.QUEUED,
        started_at=None,
        heartbeat_at=None,
        worker=None,
    )
    if not handed:
        return RunOutcome(tracker_id, TrackerStatus.FAILED, error="declared dead", claimed=True)
    log.warning("tracker %s: interrupted by shutdown; handed back to the queue", tracker_id)
    return RunOutcome(tracker_id, TrackerStatus.QUEUED, claimed=True, handed_back=True)


def sweep_dead(runtime: Runtime, now: dt.datetime | None = None) -> Sweep:
    """Fail Running trackers whose worker stopped; Died in Queue for never-run Queued ones.

    A worker beats every 10 s while it runs (``runner._Watchdog``); a heartbeat older than
    ``WORKER_STALE_SECONDS`` means the process is gone (SIGKILL, power loss, OOM). If it
    was only stalled and comes back, ``succeed``'s compare-and-set keeps this verdict.
    """
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
    failed: list[int] = []
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
            failed.append(tracker_id)
            log.warning("tracker %s: swept: %s", tracker_id, reason)
    died: list[int] = []
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
            error=_died_in_queue_text(settings.job_worker_enqueue_timeout),
        ):
            died.append(tracker_id)
            log.warning("tracker %s: swept: died in queue", tracker_id)
    return Sweep(failed=tuple(failed), died_in_queue=tuple(died))
