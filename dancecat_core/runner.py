"""A run from start to end: claim the tracker, stream rows into the store, finish it.

``execute_tracker`` is what the huey task and ``dancecat job run`` call. Rows go
driver -> (column scrub) -> canonical CSV -> value masker -> result store blob, and never sit
whole in memory. The tracker's status changes are ``dancecat_core.lifecycle``'s
(compare-and-set: at most once per tracker); what to do after a run (enqueue it again,
notify) is the caller's, from the returned ``RunOutcome``.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any

import attrs
from sqlalchemy import and_, or_, update

from dancecat_core import delivery_rules, lifecycle, parameters
from dancecat_core.columns import Column
from dancecat_core.csvcodec import RowFormatter, header_line
from dancecat_core.db import session_scope
from dancecat_core.drivers import BoundQuery, ConnectionParams, DriverSession
from dancecat_core.error_text import clean_error
from dancecat_core.errors import DancecatError, QueryError, QueryTimeout
from dancecat_core.lifecycle import ClaimedRun, RunOutcome
from dancecat_core.models import Tracker, TrackerStatus, utcnow
from dancecat_core.resultstore import ResultMeta, untraced_note
from dancecat_core.runtime import Runtime
from dancecat_core.scrubbing import ValueMasker, mask_value

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
# How often the watchdog thread looks at deadlines (a run's deadline has 5 s of slack).
WATCH_SECONDS = 0.5
BATCH_ROWS = 5000


class RunInterrupted(DancecatError):
    """The worker is shutting down; the run is handed back to the queue."""

    code = "interrupted"


def result_key(tracker_id: int) -> str:
    return f"tracker-{tracker_id}"


class _Watchdog:
    """One run under watch: its query is cancelled past its deadline or on shutdown.

    The watching is done by one thread per process (``_Watcher``), not one per run: a
    thread started and joined per run was a noticeable part of a trivial run's cost.
    """

    def __init__(self, runtime: Runtime, run: ClaimedRun, deadline: float):
        self.runtime = runtime
        self.tracker_id = run.tracker_id
        self.attempt = run.attempt
        self.deadline = deadline
        self.session: DriverSession | None = None
        self.fired = False
        self.interrupted = False

    def __enter__(self) -> _Watchdog:
        _watcher.add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _watcher.remove(self)

    def interrupt(self) -> None:
        """Stop the run now (the worker is shutting down); the runner hands it back."""
        self.interrupted = True
        self._cancel()

    def expire(self) -> None:
        """Past its deadline: cancel the query (the runner reports the timeout)."""
        self.fired = True
        if self.session is not None:
            log.warning("tracker %s: past its deadline, cancelling", self.tracker_id)
            self._cancel()

    def _cancel(self) -> None:
        session = self.session
        if session is not None:
            try:
                session.cancel()
            except Exception:
                log.exception("tracker %s: cancel failed", self.tracker_id)


def beat_seconds(runtime: Runtime) -> float:
    """How often a run's heartbeat is written: well inside WORKER_STALE_SECONDS."""
    return max(0.5, min(HEARTBEAT_SECONDS, runtime.settings.worker_stale_seconds / 3))


class _Watcher:
    """The process's one watchdog thread: deadlines checked every half second, and one
    heartbeat UPDATE per app database for all its runs every ``beat_seconds``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[int, _Watchdog] = {}
        self._next_beat: dict[int, float] = {}  # per runtime (id), when it beats next
        self._thread: threading.Thread | None = None

    def add(self, watchdog: _Watchdog) -> None:
        runtime = watchdog.runtime
        with self._lock:
            if not any(w.runtime is runtime for w in self._runs.values()):
                # A claim wrote the first heartbeat: the next is due one interval later.
                self._next_beat[id(runtime)] = time.monotonic() + beat_seconds(runtime)
            self._runs[watchdog.tracker_id] = watchdog
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._watch, daemon=True, name="dancecat-watchdog"
                )
                self._thread.start()

    def remove(self, watchdog: _Watchdog) -> None:
        with self._lock:
            if self._runs.get(watchdog.tracker_id) is watchdog:
                del self._runs[watchdog.tracker_id]

    def active(self) -> list[_Watchdog]:
        with self._lock:
            return list(self._runs.values())

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            now = time.monotonic()
            runs = self.active()
            for watchdog in runs:
                if now >= watchdog.deadline and not watchdog.fired:
                    watchdog.expire()
            by_runtime: dict[int, list[_Watchdog]] = {}
            for watchdog in runs:
                by_runtime.setdefault(id(watchdog.runtime), []).append(watchdog)
            due = []
            with self._lock:
                for key, group in by_runtime.items():
                    if now >= self._next_beat.get(key, now):
                        self._next_beat[key] = now + beat_seconds(group[0].runtime)
                        due.append(group)
            for group in due:
                _beat(group)


def _beat(group: list[_Watchdog]) -> None:
    """Freshen the heartbeat of these runs (one runtime's), each only at its attempt."""
    runtime = group[0].runtime
    try:
        with session_scope(runtime.session_factory) as session:
            session.execute(
                update(Tracker)
                .where(
                    or_(
                        *(
                            and_(Tracker.id == w.tracker_id, Tracker.attempts == w.attempt)
                            for w in group
                        )
                    )
                )
                .values(heartbeat_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    except Exception:
        log.warning("trackers %s: heartbeat failed", [w.tracker_id for w in group])


_watcher = _Watcher()


@attrs.frozen
class _Written:
    """A run's result as committed to the store."""

    key: str
    meta: ResultMeta
    size: int
    observer: delivery_rules.ResultObserver


def execute_tracker(runtime: Runtime, tracker_id: int, *, wait_for_due: bool = False) -> RunOutcome:
    """Run the tracker's job once. A tracker that is not Queued any more is left alone.

    With ``wait_for_due``, a tracker whose due time is still ahead is not touched: the
    outcome's ``not_before`` says when it may run (the queue delivered it early).
    """
    run = lifecycle.claim(runtime, tracker_id, wait_for_due=wait_for_due)
    if isinstance(run, RunOutcome):
        return run
    log.info("tracker %s: running job %s", tracker_id, run.job_id)
    clock = time.monotonic()
    used: str | None = None
    try:
        # Every value is typed before anything connects: a wrong one fails the run here.
        bound, values = run.parameters.bind(run.sql, run.params.driver)
        used = parameters.values_json(values)
        written = _run_query(runtime, run, bound)
    except RunInterrupted:
        return lifecycle.hand_back(runtime, run)
    except Exception as exc:
        return _record_failure(runtime, run, exc, clock, used)
    return _record_success(runtime, run, written, clock, used)


def _run_query(runtime: Runtime, run: ClaimedRun, bound: BoundQuery) -> _Written:
    """Stream the run's rows into the store under the watchdog: past the deadline the
    query is cancelled (``QueryTimeout``); on shutdown, ``RunInterrupted``."""
    settings = runtime.settings
    deadline = time.monotonic() + min(run.timeout + 5, settings.job_worker_execute_timeout)
    key = result_key(run.tracker_id)
    with _Watchdog(runtime, run, deadline) as watchdog:
        try:
            meta, size, observer = _stream_to_store(runtime, run, bound, key, watchdog)
        except Exception as exc:
            if watchdog.interrupted:
                raise RunInterrupted("the worker is shutting down") from exc
            if isinstance(exc, QueryError) and watchdog.fired and not isinstance(exc, QueryTimeout):
                limit = min(run.timeout, settings.job_worker_execute_timeout)
                raise QueryTimeout(
                    f"the run took longer than {limit} s and was cancelled"
                ) from None
            raise
    return _Written(key, meta, size, observer)


def _elapsed_ms(clock: float) -> int:
    return int((time.monotonic() - clock) * 1000)


def _record_failure(
    runtime: Runtime, run: ClaimedRun, exc: BaseException, clock: float, used: str | None
) -> RunOutcome:
    message = _failure_message(runtime, exc, run.params, run.sql)
    outcome = lifecycle.fail(runtime, run, message, _elapsed_ms(clock), used)
    log.warning("tracker %s: failed: %s", run.tracker_id, message)
    return outcome


def _record_success(
    runtime: Runtime, run: ClaimedRun, written: _Written, clock: float, used: str | None
) -> RunOutcome:
    """Mark the run Success with its result; drop the result if that is not to be."""
    store = runtime.store
    try:
        outcome = lifecycle.succeed(
            runtime,
            run,
            store=store.name,
            key=written.key,
            meta=written.meta,
            size=written.size,
            duration_ms=_elapsed_ms(clock),
            content_hash=written.observer.content_hash,
            delivery_facts=delivery_rules.facts_json(written.observer, written.meta.row_count),
            values_json=used,
        )
    except Exception:
        # The app database stayed away past our patience: the tracker stays Running and
        # the sweeper fails it once its heartbeat is stale. Leave no orphaned result.
        store.delete(written.key)
        raise
    if outcome.status != TrackerStatus.SUCCESS:
        # The sweeper gave up on this run while it was still going: keep its verdict.
        store.delete(written.key)
        log.warning(
            "tracker %s: finished after being declared dead; result dropped", run.tracker_id
        )
        return outcome
    log.info(
        "tracker %s: success, %s rows, %s bytes",
        run.tracker_id,
        written.meta.row_count,
        written.size,
    )
    return outcome


def interrupt_active_runs() -> list[int]:
    """Cancel every run in progress in this process; each is handed back to the queue.

    Called by a consumer whose graceful shutdown ran out of time (``DancecatConsumer``).
    """
    watchdogs = _watcher.active()
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
    runtime: Runtime, run: ClaimedRun, sql: BoundQuery, key: str, watchdog: _Watchdog
) -> tuple[ResultMeta, int, delivery_rules.ResultObserver]:
    """Run ``sql`` (the job's SQL with its values bound) and write its scrubbed rows as
    canonical CSV under ``key``; the observer sees those bytes too (content hash, the
    recipients' conditions)."""
    params, timeout = run.params, run.timeout
    driver = runtime.driver(params.driver)
    writer = runtime.store.create(key)
    observer = delivery_rules.ResultObserver(writer, run.conditions)
    try:
        with driver.connect(params, timeout=runtime.settings.connect_timeout) as session:
            watchdog.session = session
            if watchdog.interrupted:
                raise RunInterrupted("the worker is shutting down")
            cursor = session.open_query(sql, timeout=timeout)
            try:
                plan = runtime.scrub_plan(cursor.columns)
                keep = plan.keep
                masker = ValueMasker(observer, runtime.value_patterns)
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
    return meta, size, observer


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
    sql: str | BoundQuery,
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
        text = sql if isinstance(sql, str) else "".join(sql.parts)
        raise type(exc)(database_error_text(runtime, exc, params, text)) from None
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
