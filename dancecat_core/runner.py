"""A run from start to end: claim the tracker, stream rows into the store, finish it.

``execute_tracker`` is what the huey task and ``dancecat job run`` call. Rows go
driver -> (column scrub) -> canonical CSV -> value masker -> result store blob, and never sit
whole in memory. Every state change is a compare-and-set on the tracker's status, so a run
is executed at most once per tracker even if the queue delivers it twice, and a run the
sweeper already declared dead cannot come back as Success.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import attrs
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from dancecat_core.columns import Column
from dancecat_core.csvcodec import RowFormatter, header_line
from dancecat_core.db import session_scope
from dancecat_core.drivers import ConnectionParams, DriverSession
from dancecat_core.error_text import clean_error
from dancecat_core.errors import DancecatError, QueryError, QueryTimeout
from dancecat_core.models import (
    Connection as DbConnection,
)
from dancecat_core.models import (
    Job,
    JobRecipient,
    Tracker,
    TrackerStatus,
    check_transition,
    utcnow,
)
from dancecat_core.resultstore import ResultMeta, untraced_note
from dancecat_core.runtime import Runtime
from dancecat_core.scrubbing import ValueMasker, mask_value

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
BATCH_ROWS = 5000
# How long a run waits for the app database to come back before giving up on a status
# change (a PostgreSQL restart takes seconds; a failover, tens of seconds).
APP_DB_PATIENCE_SECONDS = 120

_active_lock = threading.Lock()
_active: dict[int, _Watchdog] = {}


class RunInterrupted(DancecatError):
    """The worker is shutting down; the run is handed back to the queue."""

    code = "interrupted"


def app_db_unavailable(exc: BaseException) -> bool:
    """True for the app database being unreachable (restart, failover, network), as
    opposed to a bug in a statement: these are worth waiting out."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def with_app_db(what: str, fn: Callable[[], Any], patience: float | None = None) -> Any:
    """Call ``fn`` (one short app-database transaction), retrying while the database is
    unreachable, for up to ``APP_DB_PATIENCE_SECONDS``. ``fn`` must be safe to repeat."""
    deadline = time.monotonic() + (APP_DB_PATIENCE_SECONDS if patience is None else patience)
    delay = 0.25
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if not app_db_unavailable(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "%s: the app database is unavailable (%s); retrying in %.1f s",
                what,
                type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def result_key(tracker_id: int) -> str:
    return f"tracker-{tracker_id}"


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


def _recipient_emails(job_id: int) -> Callable[[Session], tuple[str, ...]]:
    def read(session: Session) -> tuple[str, ...]:
        return tuple(
            session.scalars(
                select(JobRecipient.email)
                .where(JobRecipient.job_id == job_id)
                .order_by(JobRecipient.id)
            )
        )

    return read


class _Watchdog:
    """Cancels the query when the run outlives its deadline; keeps the heartbeat fresh."""

    def __init__(self, runtime: Runtime, tracker_id: int, deadline: float):
        self.runtime = runtime
        self.tracker_id = tracker_id
        self.deadline = deadline
        self.session: DriverSession | None = None
        self.fired = False
        self.interrupted = False
        stale = runtime.settings.worker_stale_seconds
        self.beat_seconds = max(0.5, min(HEARTBEAT_SECONDS, stale / 3))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="dancecat-watchdog")

    def __enter__(self) -> _Watchdog:
        with _active_lock:
            _active[self.tracker_id] = self
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with _active_lock:
            _active.pop(self.tracker_id, None)
        self._stop.set()
        self._thread.join(timeout=5)

    def interrupt(self) -> None:
        """Stop the run now (the worker is shutting down); the runner hands it back."""
        self.interrupted = True
        session = self.session
        if session is not None:
            try:
                session.cancel()
            except Exception:
                log.exception("tracker %s: cancel failed", self.tracker_id)

    def _watch(self) -> None:
        next_beat = time.monotonic() + self.beat_seconds
        wait = min(1.0, self.beat_seconds)
        while not self._stop.wait(min(wait, max(0.0, self.deadline - time.monotonic()))):
            now = time.monotonic()
            if now >= self.deadline and not self.fired:
                self.fired = True
                if self.session is not None:
                    log.warning("tracker %s: past its deadline, cancelling", self.tracker_id)
                    try:
                        self.session.cancel()
                    except Exception:
                        log.exception("tracker %s: cancel failed", self.tracker_id)
            if now >= next_beat:
                next_beat = now + self.beat_seconds
                try:
                    with session_scope(self.runtime.session_factory) as session:
                        session.execute(
                            update(Tracker)
                            .where(Tracker.id == self.tracker_id)
                            .values(heartbeat_at=utcnow())
                        )
                except Exception:
                    log.warning("tracker %s: heartbeat failed", self.tracker_id)


@attrs.frozen
class RunOutcome:
    tracker_id: int
    status: TrackerStatus
    row_count: int | None = None
    error: str | None = None
    # The job's recipients as the final status change read them (same transaction);
    # None when not read (the run did not finish here, or finished another way).
    recipients: tuple[str, ...] | None = None
    # Set (and nothing done) when asked to wait for the due time and it is still ahead.
    not_before: dt.datetime | None = None


def _job_timeout(runtime: Runtime, job: Job) -> int:
    return job.timeout_seconds or runtime.settings.db_timeout


def _load_and_claim(
    runtime: Runtime, tracker_id: int, worker: str, wait_for_due: bool, repeat: bool
) -> RunOutcome | tuple:
    """Read what a run needs and, if it may start, claim it (Queued -> Running, a
    compare-and-set): one transaction, one SELECT. Returns an outcome when there is
    nothing to run, else ``(claimed, expired, reason, job_id, sql, timeout, params)``;
    ``claimed`` is False when the run must not start (expired, or ``reason``), in which
    case nothing was written. Safe to repeat (``with_app_db``): a ``repeat`` that finds
    the tracker Running under this worker's name knows an earlier attempt claimed it (its
    commit went through, the answer was lost with the connection)."""
    settings = runtime.settings
    now = utcnow()
    with session_scope(runtime.session_factory) as session:
        found = session.execute(
            select(Tracker, Job, DbConnection)
            .join(Job, Job.id == Tracker.job_id)
            .join(DbConnection, DbConnection.id == Job.connection_id)
            .where(Tracker.id == tracker_id)
        ).first()
        if found is None:
            log.warning("tracker %s: does not exist, nothing to run", tracker_id)
            return RunOutcome(tracker_id, TrackerStatus.FAILED, error="no such tracker")
        tracker, job, connection = found
        mine = repeat and tracker.status == TrackerStatus.RUNNING and tracker.worker == worker
        if tracker.status != TrackerStatus.QUEUED and not mine:
            log.info("tracker %s: already %s, not running it again", tracker_id, tracker.status)
            return RunOutcome(tracker_id, TrackerStatus(tracker.status))
        if not mine and wait_for_due and tracker.due_at is not None and tracker.due_at > now:
            return RunOutcome(tracker_id, TrackerStatus.QUEUED, not_before=tracker.due_at)
        queued_for = (now - tracker.queued_at).total_seconds()
        reason = None
        if tracker.due_at is not None:
            queued_for = (now - max(tracker.due_at, tracker.queued_at)).total_seconds()
        if not mine and queued_for > settings.job_worker_enqueue_timeout:
            expired = True
        else:
            expired = False
            if not mine and job.is_deleted:
                reason = "the job was deleted before the run started"
            elif not mine and connection.is_deleted:
                reason = "the job's connection was deleted"
        params = None if reason or expired else runtime.connection_params(connection)
        loaded = (job.id, job.query, _job_timeout(runtime, job), params)
        if reason or expired or mine:
            return (mine, expired, reason, *loaded)
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
        return (True, expired, reason, *loaded)


def execute_tracker(
    runtime: Runtime,
    tracker_id: int,
    *,
    on_claimed: Callable[[], None] | None = None,
    wait_for_due: bool = False,
) -> RunOutcome:
    """Run the tracker's job once. A tracker that is not Queued any more is left alone.

    With ``wait_for_due``, a tracker whose due time is still ahead is not touched: the
    outcome's ``not_before`` says when it may run (the queue delivered it early).
    """
    settings = runtime.settings
    worker = worker_name()
    attempts: list[int] = []

    def load_and_claim() -> RunOutcome | tuple:
        attempts.append(1)
        return _load_and_claim(runtime, tracker_id, worker, wait_for_due, len(attempts) > 1)

    loaded = with_app_db(f"tracker {tracker_id}: load and claim", load_and_claim)
    if isinstance(loaded, RunOutcome):
        return loaded
    claimed, expired, reason, job_id, sql, timeout, params = loaded
    enqueue_limit = settings.job_worker_enqueue_timeout

    if expired:
        set_status(
            runtime,
            tracker_id,
            TrackerStatus.QUEUED,
            TrackerStatus.DIED_IN_QUEUE,
            finished_at=utcnow(),
            error=f"waited in the queue over JOB_WORKER_ENQUEUE_TIMEOUT ({enqueue_limit} s)",
        )
        return RunOutcome(tracker_id, TrackerStatus.DIED_IN_QUEUE)
    if reason:
        set_status(
            runtime,
            tracker_id,
            TrackerStatus.QUEUED,
            TrackerStatus.FAILED,
            finished_at=utcnow(),
            error=reason,
        )
        return RunOutcome(tracker_id, TrackerStatus.FAILED, error=reason)

    assert claimed
    if on_claimed:
        on_claimed()
    log.info("tracker %s: running job %s", tracker_id, job_id)
    assert params is not None
    clock = time.monotonic()
    deadline = clock + min(timeout + 5, settings.job_worker_execute_timeout)
    key = result_key(tracker_id)
    store = runtime.store
    try:
        with _Watchdog(runtime, tracker_id, deadline) as watchdog:
            try:
                meta, size = _stream_to_store(runtime, params, sql, timeout, key, watchdog)
            except QueryError as exc:
                if watchdog.fired and not isinstance(exc, QueryTimeout):
                    limit = min(timeout, settings.job_worker_execute_timeout)
                    raise QueryTimeout(
                        f"the run took longer than {limit} s and was cancelled"
                    ) from None
                raise
    except Exception as exc:
        if watchdog.interrupted:
            return _hand_back(runtime, tracker_id)
        message = _failure_message(runtime, exc, params, sql)
        finished = utcnow()
        failed, emails = _set_status(
            runtime,
            tracker_id,
            TrackerStatus.RUNNING,
            TrackerStatus.FAILED,
            {
                "finished_at": finished,
                "error": message,
                "duration_ms": int((time.monotonic() - clock) * 1000),
            },
            also=_recipient_emails(job_id),
        )
        log.warning("tracker %s: failed: %s", tracker_id, message)
        return RunOutcome(
            tracker_id, TrackerStatus.FAILED, error=message, recipients=emails if failed else None
        )

    finished = utcnow()
    try:
        ok, emails = _set_status(
            runtime,
            tracker_id,
            TrackerStatus.RUNNING,
            TrackerStatus.SUCCESS,
            {
                "finished_at": finished,
                "duration_ms": int((time.monotonic() - clock) * 1000),
                "row_count": meta.row_count,
                "result_store": store.name,
                "result_key": key,
                "result_bytes": size,
                "result_meta_json": json.dumps(meta.to_dict(), ensure_ascii=False),
                "result_expires_at": finished
                + dt.timedelta(seconds=settings.job_result_valid_seconds),
            },
            also=_recipient_emails(job_id),
        )
    except Exception:
        # The app database stayed away past our patience: the tracker stays Running and
        # the sweeper fails it once its heartbeat is stale. Leave no orphaned result.
        store.delete(key)
        raise
    if not ok:
        # The sweeper gave up on this run while it was still going: keep its verdict.
        store.delete(key)
        log.warning("tracker %s: finished after being declared dead; result dropped", tracker_id)
        return RunOutcome(tracker_id, TrackerStatus.FAILED, error="declared dead")
    log.info("tracker %s: success, %s rows, %s bytes", tracker_id, meta.row_count, size)
    return RunOutcome(
        tracker_id, TrackerStatus.SUCCESS, row_count=meta.row_count, recipients=emails
    )


def _hand_back(runtime: Runtime, tracker_id: int) -> RunOutcome:
    """The worker is shutting down mid-run: put the tracker back to Queued (its partial
    result was already thrown away) and on the queue again, for another worker."""
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
        return RunOutcome(tracker_id, TrackerStatus.FAILED, error="declared dead")
    log.warning("tracker %s: interrupted by shutdown; handed back to the queue", tracker_id)
    try:
        from dancecat_core.tasks import enqueue_run

        enqueue_run(tracker_id)
    except Exception:
        # Still Queued: the sweeper's redelivery puts it back on the queue later.
        log.exception("tracker %s: could not be enqueued again", tracker_id)
    return RunOutcome(tracker_id, TrackerStatus.QUEUED)


def interrupt_active_runs() -> list[int]:
    """Cancel every run in progress in this process; each is handed back to the queue.

    Called by a consumer whose graceful shutdown ran out of time (``DancecatConsumer``).
    """
    with _active_lock:
        watchdogs = list(_active.values())
    for watchdog in watchdogs:
        watchdog.interrupt()
    return [w.tracker_id for w in watchdogs]


def _connection_names(params: ConnectionParams) -> tuple[str | None, ...]:
    """Names the user typed into the connection form, which errors may quote back."""
    return (params.database, params.user, params.host)


def database_error_text(
    runtime: Runtime, exc: BaseException, params: ConnectionParams, sql: str
) -> str:
    """``exc``'s text cleaned as a database's message about ``sql`` (``clean_error``)."""
    return clean_error(
        str(exc),
        sql=sql,
        names=_connection_names(params),
        secrets=params.secrets,
        patterns=runtime.value_patterns,
    )


def _failure_message(
    runtime: Runtime, exc: BaseException, params: ConnectionParams, sql: str
) -> str:
    if isinstance(exc, QueryError):
        return database_error_text(runtime, exc, params, sql)[:4000]
    if isinstance(exc, DancecatError):
        text = clean_error(str(exc), secrets=params.secrets, patterns=runtime.value_patterns)
        return text[:4000]
    # Anything else may quote data too (a driver error that escaped translation).
    text = clean_error(
        f"internal error ({type(exc).__name__}): {exc}",
        sql=sql,
        names=_connection_names(params),
        secrets=params.secrets,
        patterns=runtime.value_patterns,
    )
    log.error(
        "unexpected error in a run: %s\n%s",
        text,
        "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
    )
    return text[:4000]


def _stream_to_store(
    runtime: Runtime,
    params: ConnectionParams,
    sql: str,
    timeout: int,
    key: str,
    watchdog: _Watchdog,
) -> tuple[ResultMeta, int]:
    """Run ``sql`` and write its scrubbed rows as canonical CSV under ``key``."""
    driver = runtime.driver(params.driver)
    writer = runtime.store.create(key)
    try:
        with driver.connect(params, timeout=runtime.settings.connect_timeout) as session:
            watchdog.session = session
            if watchdog.interrupted:
                raise RunInterrupted("the worker is shutting down")
            cursor = session.open_query(sql, timeout=timeout)
            try:
                plan = runtime.scrub_plan(cursor.columns)
                keep = plan.keep
                masker = ValueMasker(writer, runtime.value_patterns)
                masker.write(header_line([c.name for c in plan.kept_columns]))
                rows = cursor.copy_csv(keep, masker)
                if rows is None:
                    formatter = RowFormatter(plan.kept_columns)
                    rows = 0
                    everything = keep == list(range(len(cursor.columns)))
                    for batch in cursor.batches(BATCH_ROWS):
                        if not everything:
                            batch = [[row[i] for i in keep] for row in batch]
                        masker.write(formatter.lines(batch).encode("utf-8"))
                        rows += len(batch)
                    columns: list[Column] = formatter.resolved_columns()
                else:
                    columns = plan.kept_columns
                masker.flush_all()
            finally:
                cursor.close()
        size = writer.commit()
    except BaseException:
        writer.abort()
        raise
    meta = ResultMeta(
        columns=tuple(columns),
        row_count=rows,
        removed=tuple(plan.describe()),
        masked=dict(masker.counts),
        untraced=tuple(plan.untraced),
    )
    return meta, size


@attrs.frozen
class Preview:
    """The first rows of a query, scrubbed, as the job form's Run button shows them."""

    header: list[str]
    rows: list[list[Any]]
    columns: list[Column]
    removed: list[dict[str, str]]
    masked: dict[str, int]
    elapsed_ms: int
    truncated: bool
    untraced: list[str] = attrs.field(factory=list)

    @property
    def untraced_note(self) -> str:
        return untraced_note(self.untraced)


def preview_query(
    runtime: Runtime,
    params: ConnectionParams,
    sql: str,
    *,
    timeout: int | None = None,
    limit: int | None = None,
) -> Preview:
    """Run ``sql`` for its first ``QUERY_TEST_LIMIT`` rows without storing anything."""
    limit = limit or runtime.settings.query_test_limit
    timeout = timeout or runtime.settings.db_timeout
    clock = time.monotonic()
    driver = runtime.driver(params.driver)
    try:
        with driver.connect(params, timeout=runtime.settings.connect_timeout) as session:
            timer = threading.Timer(timeout + 5, session.cancel)
            timer.start()
            try:
                cursor = session.open_query(sql, timeout=timeout, limit=limit + 1)
                plan = runtime.scrub_plan(cursor.columns)
                keep = plan.keep
                rows: list[list[Any]] = []
                for batch in cursor.batches(limit + 1):
                    rows.extend([row[i] for i in keep] for row in batch)
                    if len(rows) > limit:
                        break
                cursor.close()
            finally:
                timer.cancel()
    except QueryError as exc:
        raise type(exc)(database_error_text(runtime, exc, params, sql)) from None
    truncated = len(rows) > limit
    rows = rows[:limit]
    masker = ValueMasker(_NullSink(), runtime.value_patterns)
    rows = [[mask_value(value, masker) for value in row] for row in rows]
    return Preview(
        header=[c.name for c in plan.kept_columns],
        rows=rows,
        columns=plan.kept_columns,
        removed=plan.describe(),
        masked=dict(masker.counts),
        elapsed_ms=int((time.monotonic() - clock) * 1000),
        truncated=truncated,
        untraced=plan.untraced,
    )


class _NullSink:
    def write(self, data: bytes) -> int:
        return len(data)


def check_connection(runtime: Runtime, params: ConnectionParams) -> tuple[bool, str | None, int]:
    """Connect and ping within the connection timeout: (ok, scrubbed error, elapsed ms)."""
    clock = time.monotonic()
    try:
        driver = runtime.driver(params.driver)
        with driver.connect(params, timeout=runtime.settings.connect_timeout) as session:
            session.ping()
    except DancecatError as exc:
        elapsed = int((time.monotonic() - clock) * 1000)
        return False, database_error_text(runtime, exc, params, ""), elapsed
    return True, None, int((time.monotonic() - clock) * 1000)
