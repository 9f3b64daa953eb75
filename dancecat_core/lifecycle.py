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

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import socket
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
from sqlalchemy import (
    ARRAY,
    CTE,
    ColumnElement,
    Select,
    TableClause,
    Update,
    all_,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row

from dancecat_core import schedule_kinds, worker_processes
from dancecat_core.db import each_statement_commits, with_app_db
from dancecat_core.drivers import ConnectionParams
from dancecat_core.error_text import clean_error
from dancecat_core.models import (
    Alert,
    Job,
    JobRecipient,
    Schedule,
    Tracker,
    TrackerStatus,
    check_transition,
    utcnow,
)
from dancecat_core.models import (
    Connection as DbConnection,
)
from dancecat_core.parameters import RunParameters
from dancecat_core.prepared import Prepared
from dancecat_core.resultstore import ResultMeta
from dancecat_core.run_dates import occasion_of
from dancecat_core.runtime import Runtime
from dancecat_core.worker_processes import WorkerProcess

log = logging.getLogger(__name__)


@attrs.frozen
class RunOutcome:
    """How one attempt to run a tracker ended, and what is left to do about it."""

    tracker_id: int
    status: TrackerStatus
    row_count: int | None = None
    error: str | None = None
    # The job's recipients as the final status change read them (right after it);
    # None when not read (the run did not finish here, or finished another way).
    recipients: tuple[str, ...] | None = None
    # Set (and nothing done) when asked to wait for the due time and it is still ahead.
    not_before: dt.datetime | None = None
    # This attempt claimed the run, so announcing its end is this attempt's to do.
    claimed: bool = False
    # The worker shut down mid-run: the tracker is Queued again and must be enqueued.
    handed_back: bool = False
    # Read by the final status change too (None: not known, look): whether any job runs
    # after this one (chains), and whether the end may move the job's alert streaks.
    followers: bool | None = None
    alerting: bool | None = None


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
    # Which start of the tracker this is (``Tracker.attempts``): every later change of
    # this run's tracker is this attempt's only while no later attempt began.
    attempt: int = 1


@attrs.frozen
class _Refused:
    """A Queued run that must not start: it ends at ``target`` without running."""

    target: TrackerStatus
    error: str


@attrs.frozen
class Sweep:
    """What one sweep changed: runs failed (their ends are to be announced), runs whose
    worker died that are Queued again (to be enqueued) and runs that died in the queue
    (not announced: they never ran)."""

    failed: tuple[int, ...] = ()
    died_in_queue: tuple[int, ...] = ()
    retried: tuple[int, ...] = ()

    @property
    def changed(self) -> int:
        return len(self.failed) + len(self.died_in_queue) + len(self.retried)


# The hot path's statements, built once on the tables (SQLAlchemy Core, no ORM): building
# and hashing a statement per call, and the ORM's bulk-update bookkeeping, were most of a
# trivial run's CPU in a consumer (py-spy: claim and finish ~70% of a run's samples).
_T = Tracker.__table__
_J = Job.__table__
_C = DbConnection.__table__
_S = Schedule.__table__
_R = JobRecipient.__table__
_A = Alert.__table__
# Jobs that run after the finishing one (a Core table alias: ORM ``aliased()`` classes lose
# their alias when threads first compile from them at once, ``test_statement_threads``).
_NEXT = _J.alias("next_jobs")

_STATUS_NOW = select(_T.c.status, _T.c.worker, _T.c.attempts).where(_T.c.id == bindparam("b_id"))


def _status_update(keys: tuple[str, ...], with_attempt: bool) -> Update:
    """``UPDATE trackers SET status = :target, <keys> WHERE id = :id AND status = :current
    [AND attempts = :attempt]`` (the values bound as ``b_<key>``)."""
    where = [_T.c.id == bindparam("b_id"), _T.c.status == bindparam("b_current")]
    if with_attempt:
        where.append(_T.c.attempts == bindparam("b_attempt"))
    sets = {_T.c.status: bindparam("b_target", type_=_T.c.status.type)}
    sets.update({_T.c[key]: bindparam(f"b_{key}", type_=_T.c[key].type) for key in keys})
    return update(_T).where(*where).values(sets)


@functools.cache
def _status_change(keys: tuple[str, ...], with_attempt: bool) -> Prepared:
    """``_status_update``, one statement per set of columns."""
    return Prepared(_status_update(keys, with_attempt))


@functools.cache
def _status_change_and_facts(keys: tuple[str, ...], with_attempt: bool) -> Prepared:
    """``_status_update`` and, in the same statement, what the finish reads about the
    run's job (``_facts_of``): one round trip for a run's end instead of two (PostgreSQL:
    an UPDATE inside a WITH). No row: the tracker did not move. A row whose ``job_found``
    is NULL: it moved, and its job is gone."""
    moved = _status_update(keys, with_attempt).returning(_T.c.job_id).cte("moved")
    return Prepared(_facts_of(moved.c.job_id, moved))


@contextlib.contextmanager
def _app_db(runtime: Runtime) -> Iterator[Connection]:
    """A connection for one compare-and-set and the reads around it (a claim, a finish).

    On PostgreSQL each statement commits on its own (``db.each_statement_commits``): a
    transaction's BEGIN and COMMIT were 4 of a trivial run's 8 app-database round trips,
    and it held nothing together: the one write is a single compare-and-set UPDATE (whose
    answer a repeat after a lost connection already reads back, see ``_set_status``).
    Elsewhere one transaction, as before: pymysql's autocommit switch is a round trip
    itself and sends no BEGIN, and SQLite is local.
    """
    engine = runtime.engine
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        each_statement_commits(conn)
        yield conn


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
    facts_of: int | None = None,
    attempt: int | None = None,
) -> tuple[bool, _Finish | None]:
    """``set_status``; with ``facts_of`` (the run's job), when the move happened, what
    the finish reads about that job comes back beside the verdict, read right after the
    move on the same connection (PostgreSQL: in the same statement). With ``attempt``,
    only while the tracker is still at that attempt (a run declared dead and started
    again is not the old attempt's)."""
    check_transition(current, target)
    if values.get("error"):
        # Whatever text a tracker keeps, it keeps masked (runner texts are cleaned already).
        values = {**values, "error": clean_error(values["error"], patterns=runtime.value_patterns)}
    keys = tuple(sorted(values))
    params = {
        "b_id": tracker_id,
        "b_current": current.value,
        "b_target": target.value,
        "b_attempt": attempt,
        **{f"b_{key}": value for key, value in values.items()},
    }
    together = facts_of is not None and runtime.engine.dialect.name == "postgresql"
    statement = (_status_change_and_facts if together else _status_change)(
        keys, attempt is not None
    )
    tries = 0

    def once() -> tuple[bool, _Finish | None]:
        nonlocal tries
        tries += 1
        with _app_db(runtime) as conn:
            if together:
                rows = statement.execute(conn, params).all()
                if rows:
                    return True, _facts_from(rows)
            elif statement.execute(conn, params).rowcount == 1:
                return True, _finish_facts(conn, facts_of) if facts_of is not None else None
            if tries == 1:
                return False, None
            # A repeat: an earlier attempt's commit may have gone through unanswered.
            row = conn.execute(_STATUS_NOW, {"b_id": tracker_id}).first()
            done = (
                row is not None
                and row.status == target.value
                and ("worker" not in values or row.worker == values["worker"])
                and (attempt is None or row.attempts == values.get("attempts", attempt))
            )
            if done and facts_of is not None:
                return True, _finish_facts(conn, facts_of)
            return done, None

    return with_app_db(f"tracker {tracker_id}: {current} -> {target}", once)


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


@attrs.frozen
class _StoredConnection:
    """The connection columns ``Runtime.connection_params`` reads, from ``_LOAD``'s row."""

    driver: str
    database: str | None
    host: str | None
    port: int | None
    user_name: str | None
    password_encrypted: str | None
    read_only: bool
    options_json: str | None

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.options_json or "{}")


_CONNECTION_COLUMNS = tuple(attrs.fields_dict(_StoredConnection))


def _run_of(trackers: TableClause | CTE) -> Select[Any]:
    """What a run needs, read from ``trackers`` (the table, or a claim's ``RETURNING``)
    with its job, connection and schedule: one row per recipient condition (or one row),
    so the conditions come along."""
    return select(
        trackers.c.status,
        trackers.c.worker,
        trackers.c.attempts,
        trackers.c.due_at,
        trackers.c.queued_at,
        trackers.c.parameter_values_json.label("run_values_json"),
        _J.c.id.label("job_id"),
        _J.c.query,
        _J.c.timeout_seconds,
        _J.c.parameters_json,
        _J.c.deleted_at.label("job_deleted_at"),
        _C.c.id.label("connection_id"),
        *(_C.c[name] for name in _CONNECTION_COLUMNS),
        _C.c.deleted_at.label("connection_deleted_at"),
        _S.c.id.label("schedule_id"),
        _S.c.type,
        _S.c.start_local,
        _S.c.timezone,
        _S.c.cron,
        _S.c.parameter_values_json.label("schedule_values_json"),
        _R.c.condition,
    ).select_from(
        trackers.join(_J, _J.c.id == trackers.c.job_id)
        .join(_C, _C.c.id == _J.c.connection_id)
        .outerjoin(_S, _S.c.id == trackers.c.schedule_id)
        .outerjoin(_R, and_(_R.c.job_id == _J.c.id, _R.c.condition.is_not(None)))
    )


_LOAD = Prepared(_run_of(_T).where(_T.c.id == bindparam("b_id")))
_CLAIMED = {
    _T.c.status: TrackerStatus.RUNNING.value,
    _T.c.started_at: bindparam("b_now", type_=_T.c.started_at.type),
    _T.c.heartbeat_at: bindparam("b_now", type_=_T.c.heartbeat_at.type),
    _T.c.worker: bindparam("b_worker", type_=_T.c.worker.type),
    _T.c.worker_process: bindparam("b_process", type_=_T.c.worker_process.type),
    _T.c.attempts: _T.c.attempts + 1,
}
_CLAIM = Prepared(
    update(_T)
    .where(_T.c.id == bindparam("b_id"), _T.c.status == TrackerStatus.QUEUED.value)
    .values(_CLAIMED)
)


@functools.cache
def _load_and_claim_at_once(wait_for_due: bool) -> Prepared:
    """The claim and ``_LOAD`` in one statement (PostgreSQL: an UPDATE inside a WITH), for
    a run that may start now: Queued, due (``wait_for_due``), not waited past
    JOB_WORKER_ENQUEUE_TIMEOUT (bound as ``b_oldest``), its job and connection not
    deleted, its schedule's type one of ``b_types``. The row it returns is the claimed
    one (Running, ``attempts`` counted). No row: anything else, which ``_load_and_claim``
    then reads and judges (``_refusal``) as before; so these conditions may only ever
    be narrower than the judgement, never wider."""
    job_alive = (
        select(_J.c.id)
        .join(_C, _C.c.id == _J.c.connection_id)
        .where(_J.c.id == _T.c.job_id, _J.c.deleted_at.is_(None), _C.c.deleted_at.is_(None))
    )
    unknown_type = select(_S.c.id).where(
        _S.c.id == _T.c.schedule_id,
        _S.c.type != all_(bindparam("b_types", type_=ARRAY(_S.c.type.type))),
    )
    ready = [
        _T.c.id == bindparam("b_id"),
        _T.c.status == TrackerStatus.QUEUED.value,
        # GREATEST skips a NULL due_at: ``_refusal``'s "waited from".
        func.greatest(_T.c.queued_at, _T.c.due_at)
        >= bindparam("b_oldest", type_=_T.c.queued_at.type),
        job_alive.exists(),
        ~unknown_type.exists(),
    ]
    if wait_for_due:
        ready.append(
            or_(_T.c.due_at.is_(None), _T.c.due_at <= bindparam("b_now", type_=_T.c.due_at.type))
        )
    claimed = (
        update(_T)
        .where(*ready)
        .values(_CLAIMED)
        .returning(
            _T.c.id,
            _T.c.job_id,
            _T.c.schedule_id,
            _T.c.status,
            _T.c.worker,
            _T.c.attempts,
            _T.c.due_at,
            _T.c.queued_at,
            _T.c.parameter_values_json,
        )
        .cte("claimed")
    )
    return Prepared(_run_of(claimed))


# Per runtime: connection parameters by the stored row they came from (a changed row,
# password or options is another key). Decrypting and building the file rules per run
# was ~3% of a trivial run's CPU.
_params_cache: dict[int, tuple[weakref.ref[Runtime], dict[tuple[Any, ...], ConnectionParams]]] = {}
_PARAMS_KEPT = 256


def _connection_params(runtime: Runtime, row: Row) -> ConnectionParams:
    key = (row.connection_id, *(getattr(row, name) for name in _CONNECTION_COLUMNS))
    entry = _params_cache.get(id(runtime))
    if entry is None or entry[0]() is not runtime:
        entry = _params_cache[id(runtime)] = (weakref.ref(runtime), {})
    known = entry[1]
    params = known.get(key)
    if params is None:
        if len(known) >= _PARAMS_KEPT:
            known.clear()
        stored = _StoredConnection(*(getattr(row, name) for name in _CONNECTION_COLUMNS))
        params = known[key] = runtime.connection_params(stored)  # type: ignore[arg-type]
    return params


def _load_and_claim(
    runtime: Runtime, tracker_id: int, worker: str, wait_for_due: bool, repeat: bool
) -> ClaimedRun | RunOutcome | _Refused:
    """``claim``'s reads and its one compare-and-set UPDATE (``_app_db``): on PostgreSQL a
    run that may start is claimed and loaded in one statement (``_load_and_claim_at_once``);
    anything else, and elsewhere, is one SELECT, judged, then the UPDATE. A refusal writes
    nothing here. Safe to repeat (``with_app_db``): a ``repeat`` that finds the tracker
    Running under this worker's name knows an earlier attempt claimed it (its commit went
    through, the answer was lost with the connection)."""
    now = utcnow()
    process = worker_processes.current()
    claim_values = {
        "b_id": tracker_id,
        "b_now": now,
        "b_worker": worker,
        "b_process": process.to_text() if process else None,
    }
    with _app_db(runtime) as conn:
        if conn.dialect.name == "postgresql" and not repeat:
            limit = dt.timedelta(seconds=runtime.settings.job_worker_enqueue_timeout)
            claimed = (
                _load_and_claim_at_once(wait_for_due)
                .execute(
                    conn,
                    {
                        **claim_values,
                        "b_oldest": now - limit,
                        "b_types": list(schedule_kinds.registered()),
                    },
                )
                .all()
            )
            if claimed:
                return _claimed_run(runtime, tracker_id, claimed, claimed[0].attempts)
        found = _LOAD.execute(conn, {"b_id": tracker_id}).all()
        if not found:
            log.warning("tracker %s: does not exist, nothing to run", tracker_id)
            return RunOutcome(tracker_id, TrackerStatus.FAILED, error="no such tracker")
        row = found[0]
        if repeat and row.status == TrackerStatus.RUNNING and row.worker == worker:
            return _claimed_run(runtime, tracker_id, found, row.attempts)
        if row.status != TrackerStatus.QUEUED:
            log.info("tracker %s: already %s, not running it again", tracker_id, row.status)
            return RunOutcome(tracker_id, TrackerStatus(row.status))
        if wait_for_due and row.due_at is not None and row.due_at > now:
            return RunOutcome(tracker_id, TrackerStatus.QUEUED, not_before=row.due_at)
        refused = _refusal(runtime, row, now)
        if refused is not None:
            return refused
        if _CLAIM.execute(conn, claim_values).rowcount != 1:
            log.info("tracker %s: claimed by another worker", tracker_id)
            return RunOutcome(tracker_id, TrackerStatus.RUNNING)
        return _claimed_run(runtime, tracker_id, found, (row.attempts or 0) + 1)


def _claimed_run(
    runtime: Runtime, tracker_id: int, rows: Sequence[Row], attempt: int
) -> ClaimedRun:
    """The run ``_run_of``'s rows describe, as its ``attempt``-th start."""
    row = rows[0]
    schedule = row if row.schedule_id is not None else None
    settings = runtime.settings
    return ClaimedRun(
        tracker_id=tracker_id,
        job_id=row.job_id,
        sql=row.query,
        timeout=row.timeout_seconds or settings.db_timeout,
        params=_connection_params(runtime, row),
        parameters=RunParameters(
            row.parameters_json,
            row.run_values_json or (schedule and row.schedule_values_json),
            occasion_of(row.due_at or row.queued_at, settings.timezone, schedule),
        ),
        conditions=tuple(sorted({r.condition for r in rows if r.condition is not None})),
        attempt=attempt,
    )


def _refusal(runtime: Runtime, row: Row, now: dt.datetime) -> _Refused | None:
    """Why a Queued run (``_LOAD``'s row) must not start now, if it must not."""
    limit = runtime.settings.job_worker_enqueue_timeout
    waited_from = max(row.due_at, row.queued_at) if row.due_at else row.queued_at
    if (now - waited_from).total_seconds() > limit:
        return _Refused(TrackerStatus.DIED_IN_QUEUE, _died_in_queue_text(limit))
    if row.job_deleted_at is not None:
        return _Refused(TrackerStatus.FAILED, "the job was deleted before the run started")
    if row.connection_deleted_at is not None:
        return _Refused(TrackerStatus.FAILED, "the job's connection was deleted")
    if row.schedule_id is not None and row.type not in schedule_kinds.registered():
        # Its dates (``period_start``) cannot be computed without the type's rules.
        return _Refused(TrackerStatus.FAILED, str(schedule_kinds.UnknownScheduleType(row.type)))
    return None


def _died_in_queue_text(limit: int) -> str:
    return f"waited in the queue over JOB_WORKER_ENQUEUE_TIMEOUT ({limit} s)"


@attrs.frozen
class _Finish:
    """What the final status change reads about the run's job, on its connection:
    who to notify, and whether the chains and alert streaks need a look at all (most
    jobs have neither followers nor open alerts; looking cost five round trips a run)."""

    recipients: tuple[str, ...]
    followers: bool
    alerts_open: bool
    alert_after_failures: int | None

    def alerting(self, status: TrackerStatus) -> bool:
        """Whether ending at ``status`` may open or close one of the job's streaks."""
        if status == TrackerStatus.SUCCESS:
            return self.alerts_open
        return self.alerts_open or bool(self.alert_after_failures)


def _facts_of(job_id: ColumnElement[int], moved: CTE | None = None) -> Select[Any]:
    """What the finish reads about the job ``job_id``: one row per recipient (or one
    row), each with whether any job follows it and whether it has an open alert. From
    ``moved`` (a status change's ``RETURNING job_id``) when the read rides on it."""
    followers = select(_NEXT.c.id).where(
        _NEXT.c.after_job_id == job_id, _NEXT.c.deleted_at.is_(None)
    )
    alerts = select(_A.c.id).where(_A.c.job_id == job_id, _A.c.open_key.is_not(None))
    columns = (
        _J.c.id.label("job_found"),
        _R.c.destination,
        followers.exists().label("followers"),
        alerts.exists().label("alerts_open"),
        _J.c.alert_after_failures,
    )
    jobs = _J.outerjoin(_R, _R.c.job_id == _J.c.id)
    if moved is None:
        return select(*columns).select_from(jobs).where(_J.c.id == job_id).order_by(_R.c.id)
    return select(*columns).select_from(moved.outerjoin(jobs, _J.c.id == job_id)).order_by(_R.c.id)


_FINISH_FACTS = Prepared(_facts_of(bindparam("b_job")))


def _facts_from(rows: Sequence[Row]) -> _Finish | None:
    """``_Finish`` from ``_facts_of``'s rows; None when the job is gone."""
    if not rows or rows[0].job_found is None:
        return None
    return _Finish(
        recipients=tuple(row.destination for row in rows if row.destination is not None),
        followers=bool(rows[0].followers),
        alerts_open=bool(rows[0].alerts_open),
        alert_after_failures=rows[0].alert_after_failures,
    )


def _finish_facts(conn: Connection, job_id: int) -> _Finish | None:
    return _facts_from(_FINISH_FACTS.execute(conn, {"b_job": job_id}).all())


def _finished(
    run: ClaimedRun, status: TrackerStatus, facts: _Finish | None, **values: Any
) -> RunOutcome:
    """The outcome of a run this attempt ended at ``status``, with what was read."""
    if facts is None:
        return RunOutcome(run.tracker_id, status, claimed=True, **values)
    return RunOutcome(
        run.tracker_id,
        status,
        recipients=facts.recipients,
        followers=facts.followers,
        alerting=facts.alerting(status),
        claimed=True,
        **values,
    )


def _recorded(values_json: str | None) -> dict[str, Any]:
    """The parameter values a run used, to keep on its tracker (nothing: keep what it
    was given)."""
    return {} if values_json is None else {"parameter_values_json": values_json}


def _failure_values(message: str, duration_ms: int, values_json: str | None) -> dict[str, Any]:
    """What ``fail`` writes on the tracker."""
    return {
        "finished_at": utcnow(),
        "error": message,
        "duration_ms": duration_ms,
        **_recorded(values_json),
    }


def _success_values(
    runtime: Runtime,
    store: str,
    key: str,
    meta: ResultMeta,
    size: int,
    duration_ms: int,
    content_hash: str | None,
    delivery_facts: str | None,
    values_json: str | None,
) -> dict[str, Any]:
    """What ``succeed`` writes on the tracker."""
    finished = utcnow()
    return {
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
    }


def make_ready(runtime: Runtime) -> None:
    """Build the statements a run without parameter values sends (its claim, its finish
    either way) and prepare them on a pooled app-database connection (PostgreSQL).

    A consumer calls this as it starts: building them (SQLAlchemy compiling a five-table
    join, the typed ``EXECUTE``) was ~40 ms of CPU a process at its first run, paid when a
    thousand runs fell due at once (``bench/scheduler_case.py``)."""
    if runtime.engine.dialect.name != "postgresql":
        return
    nothing = ResultMeta(columns=(), row_count=0)
    finishes = (
        _success_values(runtime, "", "", nothing, 0, 0, None, None, None),
        _failure_values("", 0, None),
    )
    statements = [
        _load_and_claim_at_once(True),
        *(_status_change_and_facts(tuple(sorted(values)), True) for values in finishes),
    ]
    with _app_db(runtime) as conn:
        for statement in statements:
            statement.make_ready(conn)


def fail(
    runtime: Runtime,
    run: ClaimedRun,
    message: str,
    duration_ms: int,
    values_json: str | None = None,
) -> RunOutcome:
    """Running -> Failed with ``message`` (already cleaned), reading the job's recipients
    on the same connection; ``values_json``: the parameter values it ran with."""
    failed, facts = _set_status(
        runtime,
        run.tracker_id,
        TrackerStatus.RUNNING,
        TrackerStatus.FAILED,
        _failure_values(message, duration_ms, values_json),
        facts_of=run.job_id,
        attempt=run.attempt,
    )
    if not failed:
        return RunOutcome(run.tracker_id, TrackerStatus.FAILED, error=message, claimed=True)
    return _finished(run, TrackerStatus.FAILED, facts, error=message)


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
    the same connection. A Failed outcome ("declared dead") means the sweep gave up on
    this run while it was still going: its verdict stands and the result is not this
    tracker's (the caller drops it). ``content_hash`` and ``delivery_facts`` are what the
    delivery rules read later (``delivery_rules``)."""
    ok, facts = _set_status(
        runtime,
        run.tracker_id,
        TrackerStatus.RUNNING,
        TrackerStatus.SUCCESS,
        _success_values(
            runtime, store, key, meta, size, duration_ms, content_hash, delivery_facts, values_json
        ),
        facts_of=run.job_id,
        attempt=run.attempt,
    )
    if not ok:
        return RunOutcome(run.tracker_id, TrackerStatus.FAILED, error="declared dead", claimed=True)
    return _finished(run, TrackerStatus.SUCCESS, facts, row_count=meta.row_count)


def hand_back(runtime: Runtime, run: ClaimedRun) -> RunOutcome:
    """The worker is shutting down mid-run: put the tracker back to Queued (its partial
    result was already thrown away); the outcome asks for it to be enqueued again. The
    attempt does not count: the next start gets the same number."""
    tracker_id = run.tracker_id
    handed, _ = _set_status(
        runtime,
        tracker_id,
        TrackerStatus.RUNNING,
        TrackerStatus.QUEUED,
        {
            "started_at": None,
            "heartbeat_at": None,
            "worker": None,
            "worker_process": None,
            "attempts": run.attempt - 1,
        },
        attempt=run.attempt,
    )
    if not handed:
        return RunOutcome(tracker_id, TrackerStatus.FAILED, error="declared dead", claimed=True)
    log.warning("tracker %s: interrupted by shutdown; handed back to the queue", tracker_id)
    return RunOutcome(tracker_id, TrackerStatus.QUEUED, claimed=True, handed_back=True)


@attrs.frozen
class _Dead:
    """A Running tracker whose worker is gone, and how we know."""

    tracker_id: int
    attempt: int  # as stored: 0 for a run started before attempts were counted (0011)
    read_only: bool
    how: str  # "the worker running it stopped (...)"


def _dead_runs(runtime: Runtime, now: dt.datetime) -> list[_Dead]:
    """Running trackers whose process this process sees has ended (same machine: at
    once), or whose heartbeat is older than WORKER_STALE_SECONDS (anywhere)."""
    stale_before = now - dt.timedelta(seconds=runtime.settings.worker_stale_seconds)
    with runtime.session_factory() as session:
        running = session.execute(
            select(
                Tracker.id,
                Tracker.heartbeat_at,
                Tracker.started_at,
                Tracker.worker,
                Tracker.worker_process,
                Tracker.attempts,
                DbConnection.read_only,
            )
            .join(Job, Job.id == Tracker.job_id)
            .join(DbConnection, DbConnection.id == Job.connection_id)
            .where(Tracker.status == TrackerStatus.RUNNING.value)
        ).all()
    dead: list[_Dead] = []
    for row in running:
        process = WorkerProcess.from_text(row.worker_process)
        last = row.heartbeat_at or row.started_at
        if process is not None and worker_processes.is_dead(process):
            how = f"the worker running it stopped ({process.describe()} ended)"
        elif last is None or last < stale_before:
            how = (
                "the worker running it stopped (no heartbeat since "
                + (last.isoformat() if last else "it started")
                + (f" from {row.worker}" if row.worker else "")
                + ")"
            )
        else:
            continue
        dead.append(_Dead(row.id, row.attempts or 0, bool(row.read_only), how))
    return dead


def _settle_dead(runtime: Runtime, run: _Dead, now: dt.datetime) -> TrackerStatus | None:
    """Queue a dead read-only run again while it has retries left (``RUN_RETRIES``); fail
    any other, saying why it is not run again. None when someone else settled it first
    (its worker came back and finished, another sweeper was quicker)."""
    retries = runtime.settings.run_retries
    started = max(run.attempt, 1)
    if run.read_only and started <= retries:
        note = (
            f"attempt {started}: {run.how}; run again "
            f"(a query on a read-only connection; RUN_RETRIES={retries})"
        )
        moved = _set_status(
            runtime,
            run.tracker_id,
            TrackerStatus.RUNNING,
            TrackerStatus.QUEUED,
            {
                "started_at": None,
                "heartbeat_at": None,
                "worker": None,
                "worker_process": None,
                "queued_at": now,
                "note": clean_error(note, patterns=runtime.value_patterns),
            },
            attempt=run.attempt,
        )[0]
        if moved:
            log.warning("tracker %s: swept: %s", run.tracker_id, note)
        return TrackerStatus.QUEUED if moved else None
    if not run.read_only:
        why = "not run again: its connection is not read-only, and its statement may have run"
    else:
        why = f"not run again: it was started {started} times (RUN_RETRIES={retries})"
    reason = f"{run.how}; {why}"
    failed = _set_status(
        runtime,
        run.tracker_id,
        TrackerStatus.RUNNING,
        TrackerStatus.FAILED,
        {"finished_at": now, "error": reason},
        attempt=run.attempt,
    )[0]
    if failed:
        log.warning("tracker %s: swept: %s", run.tracker_id, reason)
    return TrackerStatus.FAILED if failed else None


def sweep_running(runtime: Runtime, now: dt.datetime | None = None) -> Sweep:
    """Settle Running trackers whose worker died: run again (read-only, retries left) or
    failed. Cheap enough to run every few seconds: one SELECT of the Running trackers.

    A worker on this machine that is gone is known at once (``worker_processes``); any
    other by a heartbeat older than ``WORKER_STALE_SECONDS`` (a worker beats every few
    seconds while it runs, ``runner``). If it was only stalled and comes back, its
    finish is refused: the compare-and-set names the attempt it was running.
    """
    now = now or utcnow()
    failed: list[int] = []
    retried: list[int] = []
    for run in _dead_runs(runtime, now):
        settled = _settle_dead(runtime, run, now)
        if settled is TrackerStatus.FAILED:
            failed.append(run.tracker_id)
        elif settled is TrackerStatus.QUEUED:
            retried.append(run.tracker_id)
    return Sweep(failed=tuple(failed), retried=tuple(retried))


def sweep_dead(runtime: Runtime, now: dt.datetime | None = None) -> Sweep:
    """``sweep_running``, and Died in Queue for Queued trackers that waited past
    JOB_WORKER_ENQUEUE_TIMEOUT."""
    now = now or utcnow()
    settings = runtime.settings
    running = sweep_running(runtime, now)
    queue_limit = dt.timedelta(seconds=settings.job_worker_enqueue_timeout)
    with runtime.session_factory() as session:
        queued = session.execute(
            select(Tracker.id, Tracker.queued_at, Tracker.due_at).where(
                Tracker.status == TrackerStatus.QUEUED.value,
                Tracker.queued_at < now - queue_limit,
            )
        ).all()
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
    return attrs.evolve(running, died_in_queue=tuple(died))
