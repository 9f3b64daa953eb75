"""Trackers and their results: look-ups, history, exports and expiry."""

from __future__ import annotations

import collections
import datetime as dt
import functools
import logging
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import attrs
from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import Session, contains_eager, selectinload

from dancecat_core.errors import (
    Conflict,
    NotFound,
    RangeNotSatisfiable,
    ResultExpired,
    StoreError,
)
from dancecat_core.exporters import Exporter
from dancecat_core.lifecycle import set_status
from dancecat_core.models import Job, Notification, Tracker, TrackerStatus, User, utcnow
from dancecat_core.prepared import OneOf, Prepared
from dancecat_core.resultstore import ByteRange, ResultMeta, ResultStore, StoredResult
from dancecat_core.runtime import Runtime
from dancecat_core.services import access
from dancecat_core.services.keyset import Keyset

log = logging.getLogger(__name__)
READ_CHUNK = 1 << 20


def get(session: Session, actor: User | None, tracker_id: int) -> Tracker:
    tracker = session.get(Tracker, tracker_id)
    if tracker is None or not access.can_see(actor, tracker.job):
        raise NotFound("run not found")
    return tracker


def _job_runs(
    session: Session,
    actor: User | None,
    job_id: int,
    query: Select,
    status: str | None,
    limit: int,
    before: int | None,
) -> Select:
    """``query`` narrowed to a job's runs, newest first; ``before`` pages by tracker id. A
    deleted job is not found here, as everywhere its id is used (its runs stay reachable
    by tracker id)."""
    access.require_visible(actor, session.get(Job, job_id), "job")
    query = query.where(Tracker.job_id == job_id)  # trackers (job_id, id) pages
    if status:
        query = query.where(Tracker.status == TrackerStatus(status).value)
    if before:
        query = query.where(Tracker.id < before)
    return query.order_by(Tracker.id.desc()).limit(limit)


def list_for_job(
    session: Session,
    actor: User | None,
    job_id: int,
    *,
    status: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[Tracker]:
    """A job's runs as trackers, with the page's notifications in one query."""
    query = select(Tracker).options(selectinload(Tracker.notifications))
    return list(session.scalars(_job_runs(session, actor, job_id, query, status, limit, before)))


RUN_COLUMNS = (
    Tracker.id,
    Tracker.job_id,
    Tracker.schedule_id,
    Tracker.upstream_tracker_id,
    Tracker.trigger_id,
    Tracker.due_at,
    Tracker.status,
    Tracker.queued_at,
    Tracker.started_at,
    Tracker.finished_at,
    Tracker.duration_ms,
    Tracker.row_count,
    Tracker.parameter_values_json,
    Tracker.error,
    Tracker.result_expires_at,
    Tracker.attempts,
    Tracker.note,
)
NOTIFICATION_COLUMNS = (
    Notification.id,
    Notification.tracker_id,
    Notification.notifier,
    Notification.recipient,
    Notification.status,
    Notification.attempts,
    Notification.last_error,
    Notification.sent_at,
    Notification.note,
)


# Rows read into named tuples: a field of one is read ten times faster than an attribute of
# SQLAlchemy's ``Row`` (0.05 against 0.48 µs; the runs API reads 17 of each of 100 runs).
RunRow = collections.namedtuple(  # type: ignore[misc]
    "RunRow", select(*RUN_COLUMNS).selected_columns.keys()
)
NotificationRow = collections.namedtuple(  # type: ignore[misc]
    "NotificationRow", select(*NOTIFICATION_COLUMNS).selected_columns.keys()
)


@attrs.frozen
class RunRows:
    """A page of runs as plain rows (``RUN_COLUMNS``) and each run's notifications
    (``NOTIFICATION_COLUMNS``, oldest first): what the runs API shows, without building an
    ORM object per run and notification (most of that request's time at 50 runs a page)."""

    runs: list[RunRow]
    notifications: dict[int, list[NotificationRow]]


def run_rows(
    session: Session,
    actor: User | None,
    page: Keyset,
    *,
    job_id: int | None = None,
    status: str | None = None,
    since: dt.datetime | None = None,
) -> RunRows:
    """One page of the runs ``actor`` may see (deleted jobs' included), newest first, as
    rows: optionally one job's, one status's, or those queued at or after ``since``. Two
    queries: the runs, and their notifications."""
    everyone = access.sees_everything(actor)
    parameters = {} if everyone else {"actor_id": actor.id}  # type: ignore[union-attr]
    return _run_rows(
        session, not everyone, parameters, page, job_id=job_id, status=status, since=since
    )


@functools.cache
def _run_rows_statement(
    join_visible: bool, one_job: bool, one_status: bool, since: bool, before: bool
) -> Select:
    """``_run_rows``' query for one combination of filters, built once a process (building
    it cost about as much CPU as running it); ``join_visible`` keeps the runs of jobs the
    actor (``actor_id``) may see."""
    query = select(*RUN_COLUMNS)
    if join_visible:
        query = query.join(Job, Job.id == Tracker.job_id).where(
            access.visible_filter_parameter(Job, everyone=False)
        )
    if one_job:
        query = query.where(Tracker.job_id == bindparam("job_id"))  # trackers (job_id, id) pages
    if one_status:
        query = query.where(Tracker.status == bindparam("status"))
    if since:
        query = query.where(Tracker.queued_at >= bindparam("since"))
    if before:  # Keyset.apply with bound values
        query = query.where(Tracker.id < bindparam("before"))
    return query.order_by(Tracker.id.desc()).limit(bindparam("limit"))


_NOTIFICATION_ROWS = (
    select(*NOTIFICATION_COLUMNS)
    .where(Notification.tracker_id.in_(bindparam("tracker_ids", expanding=True)))
    .order_by(Notification.id)
)


def _run_rows(
    session: Session,
    join_visible: bool,
    parameters: dict[str, Any],
    page: Keyset,
    *,
    job_id: int | None,
    status: str | None,
    since: dt.datetime | None = None,
) -> RunRows:
    parameters = {**parameters, "limit": page.limit}
    if job_id is not None:
        parameters["job_id"] = job_id
    if status:
        parameters["status"] = TrackerStatus(status).value
    if since is not None:
        parameters["since"] = since
    if page.before is not None:
        parameters["before"] = page.before
    statement = _run_rows_statement(
        join_visible, job_id is not None, bool(status), since is not None, page.before is not None
    )
    runs = list(map(RunRow._make, session.execute(statement, parameters)))
    notifications: dict[int, list[NotificationRow]] = {}
    if runs:
        found = session.execute(_NOTIFICATION_ROWS, {"tracker_ids": [run.id for run in runs]})
        for notification in map(NotificationRow._make, found):
            notifications.setdefault(notification.tracker_id, []).append(notification)
    return RunRows(runs, notifications)


_JOB_ACCESS = select(Job.id, Job.owner_id, Job.shared, Job.deleted_at).where(
    Job.id == bindparam("job_id")
)


def run_rows_for_job(
    session: Session,
    actor: User | None,
    job_id: int,
    page: Keyset,
    *,
    status: str | None = None,
) -> RunRows:
    """``run_rows`` of one job that ``actor`` may see; a deleted job is not found here, as
    everywhere its id is used (its runs stay reachable by tracker id and in ``run_rows``).
    The job is read as the four columns that decide that, not as an ORM object."""
    job = session.execute(_JOB_ACCESS, {"job_id": job_id}).first()
    access.require_visible(actor, job, "job")  # type: ignore[type-var]
    # Seen to be visible: its runs need no join to its job.
    return _run_rows(session, False, {}, page, job_id=job_id, status=status)


def list_visible(
    session: Session,
    actor: User | None,
    *,
    job_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[Tracker]:
    """Runs of every job ``actor`` may see (deleted jobs' included), newest first.

    The Jobs tab's tracker table: optionally one job's or one status's, paged by
    ``before`` (a tracker id) so new runs arriving never shift a page.
    """
    query = (
        select(Tracker)
        .join(Job, Job.id == Tracker.job_id)
        .where(access.visible_filter(actor, Job))
        # What a row shows, a query each for the whole page: not one per run.
        .options(
            selectinload(Tracker.notifications),
            contains_eager(Tracker.job).selectinload(Job.connection),
        )
    )
    if job_id is not None:
        query = query.where(Tracker.job_id == job_id)
    if status:
        query = query.where(Tracker.status == TrackerStatus(status).value)
    if before:
        query = query.where(Tracker.id < before)
    return list(session.scalars(query.order_by(Tracker.id.desc()).limit(limit)))


SUCCESSFUL = (TrackerStatus.SUCCESS.value, TrackerStatus.RESULT_EXPIRED.value)
# Table aliases, not ORM ``aliased()`` classes: threads first building and compiling
# statements from one ORM alias at once can lose the alias (tests/test_statement_threads.py).
_VALID = Tracker.__table__.alias("valid_runs").c
_SUCCESSES = Tracker.__table__.alias("successes").c


@attrs.frozen
class LatestResult:
    """What "Latest result" shows for a job: its newest result that can still be downloaded,
    and, when there is none, its newest successful run whose result has expired."""

    valid: Tracker | None
    expired: Tracker | None

    @property
    def message(self) -> str:
        """Why there is nothing to download, in words fit to show."""
        if self.expired is None:
            return "this job has no successful run yet"
        return expired_text(self.expired)


def expired_text(tracker: Tracker) -> str:
    """ "the result of run 41 expired on 3 Dec 2026 at 14:08 UTC", fit to show anywhere."""
    when = tracker.result_expires_at
    if when is None:
        return f"the result of run {tracker.id} has expired"
    return f"the result of run {tracker.id} expired on {when:%-d %b %Y at %H:%M} UTC"


def latest_results(
    session: Session, actor: User | None, job_ids: list[int]
) -> dict[int, LatestResult]:
    """Each job's newest result still valid now, or its newest expired one: one query.

    Valid means Success with its expiry in the future, decided here when read (not by the
    sweep), so a page never offers a result that has just expired while an older valid
    one sits in the runs table. Jobs ``actor`` may not see and deleted jobs are left out;
    jobs without any successful run are absent. Each id comes from a correlated
    ``max(id)``: the newest success by walking ``ix_trackers_job_id_id`` backwards, the
    newest valid one from ``ix_trackers_job_id_result_expires_at`` (only the runs whose
    expiry is still ahead, however many have expired).
    """
    if not job_ids:
        return {}
    pairs = newest_result_ids(session, actor, job_ids)
    wanted = sorted({tracker_id for _, *ids in pairs for tracker_id in ids if tracker_id})
    found = {
        tracker.id: tracker
        for tracker in session.scalars(select(Tracker).where(Tracker.id.in_(wanted)))
    }
    answer = {}
    for job_id, valid, newest in pairs:
        if newest is None:
            continue
        if valid is not None:
            answer[job_id] = LatestResult(valid=found[valid], expired=None)
        else:
            answer[job_id] = LatestResult(valid=None, expired=found[newest])
    return answer


@functools.cache
def newest_ids_query(everyone: bool) -> Select[tuple[int, int | None, int | None]]:
    """``newest_result_ids``' query (``newest_ids_parameters`` are its parameters), built
    once a process per kind of actor: building it (two correlated subqueries) and its
    cache key cost more than running it. The Jobs screen reads it joined to the runs it
    names (``jobs_screen.latest_page``)."""
    newest_valid = (
        select(func.max(_VALID.id))
        .where(
            _VALID.job_id == Job.id,
            _VALID.status == TrackerStatus.SUCCESS.value,
            or_(_VALID.result_expires_at.is_(None), _VALID.result_expires_at > bindparam("now")),
        )
        .scalar_subquery()
    )
    newest_success = (
        select(func.max(_SUCCESSES.id))
        # One equality per status (not IN (...)): an IN list of constants is expanded when
        # the statement runs, which a plan made once cannot be.
        .where(_SUCCESSES.job_id == Job.id, or_(*(_SUCCESSES.status == s for s in SUCCESSFUL)))
        .scalar_subquery()
    )
    return select(
        Job.id, newest_valid.label("newest_valid"), newest_success.label("newest_success")
    ).where(
        OneOf(Job.id, "job_ids"),
        Job.deleted_at.is_(None),
        access.visible_filter_parameter(Job, everyone),
    )


@functools.cache
def _newest_ids_statement(everyone: bool) -> Prepared:
    return Prepared(newest_ids_query(everyone))


def newest_ids_parameters(actor: User | None, job_ids: list[int]) -> dict[str, Any]:
    """``newest_ids_query``'s parameters; valid is judged against the clock now."""
    return {
        "now": utcnow(),
        "job_ids": sorted(set(job_ids)),
        **({} if access.sees_everything(actor) else {"actor_id": actor.id}),  # type: ignore[union-attr]
    }


def newest_result_ids(
    session: Session, actor: User | None, job_ids: list[int]
) -> list[tuple[int, int | None, int | None]]:
    """``(job id, newest valid run id, newest successful run id)`` of each of ``job_ids``
    that ``actor`` may see and that is not deleted: ``latest_results``' one query (the
    Jobs screen reads it joined to the runs it names, ``jobs_screen.latest_page``). Valid
    is judged against the clock now, at every call."""
    if not job_ids:
        return []
    rows = _newest_ids_statement(access.sees_everything(actor)).execute(
        session.connection(), newest_ids_parameters(actor, job_ids)
    )
    return [(job_id, valid, newest) for job_id, valid, newest in rows]


def latest_result(session: Session, actor: User | None, job_id: int) -> Tracker:
    """The run behind a job's "latest result" downloads: its newest result still valid.

    Raises ``ResultExpired`` saying when the last one expired when every result has, and
    ``NotFound`` when the job never succeeded.
    """
    access.require_visible(actor, session.get(Job, job_id), "job")
    latest = latest_results(session, actor, [job_id]).get(job_id)
    if latest is None:
        raise NotFound("this job has no successful run yet")
    if latest.valid is None:
        raise ResultExpired(latest.message)
    return latest.valid


def stored_result(runtime: Runtime, tracker: Tracker) -> StoredResult:
    """The tracker's result, or the error that says why there is none to give."""
    status = TrackerStatus(tracker.current_status)
    if status == TrackerStatus.RESULT_EXPIRED:
        raise ResultExpired(expired_text(tracker))
    if status != TrackerStatus.SUCCESS:
        raise Conflict(f"run {tracker.id} has no result: it is {status.value}")
    store = runtime.stores.get(tracker.result_store or "")
    if store is None or tracker.result_key is None or tracker.result_meta_json is None:
        raise Conflict(f"run {tracker.id}'s result store is not configured here")
    return StoredResult(
        store=store,
        key=tracker.result_key,
        meta=ResultMeta.from_dict(tracker.result_meta or {}),
        tracker_id=tracker.id,
    )


@attrs.frozen
class Download:
    """An export ready to stream: the caller iterates ``chunks`` and closes nothing else.
    ``size`` is the length of ``chunks`` when known; ``part`` is ``(first, last, whole)``
    when they are only the bytes ``first``-``last`` of a ``whole``-byte result."""

    filename: str
    media_type: str
    size: int | None
    chunks: Iterator[bytes]
    part: tuple[int, int, int] | None = None


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(READ_CHUNK):
            yield chunk


def _stored(
    store: ResultStore, key: str, filename: str, media_type: str, wanted: ByteRange | None
) -> Download:
    """The blob ``key`` as stored, or the part of it ``wanted`` names."""
    size = store.size(key)
    if wanted is None or size is None:
        return Download(filename, media_type, size, _read_chunks(store.open(key)))
    span = wanted.within(size)
    if span is None:
        raise RangeNotSatisfiable(size)
    start, length = span
    handle = store.open_range(key, start, length)
    return Download(
        filename, media_type, length, _read_chunks(handle), (start, start + length - 1, size)
    )


def export(
    runtime: Runtime, tracker: Tracker, fmt: str, wanted: ByteRange | None = None
) -> Download:
    """Stream the result in ``fmt``; cacheable formats are rendered once and kept.

    The canonical CSV is served as stored. Other formats are rendered into the store
    beside it (atomically) the first time they are asked for, and expire with it.
    ``wanted``: only those bytes of a stored form (a format rendered on the fly has no
    known length, and is sent whole); ``RangeNotSatisfiable`` when none of them exist.
    """
    exporter = runtime.exporter(fmt)
    result = stored_result(runtime, tracker)
    filename = f"Result_tid_{tracker.id}.{exporter.extension}"
    if fmt == "csv":
        return _stored(result.store, result.key, filename, exporter.media_type, wanted)
    if not exporter.cacheable:
        return Download(filename, exporter.media_type, None, _render_stream(exporter, result))
    key = f"{result.key}.{exporter.extension}"
    if not result.store.exists(key):
        render(exporter, result, key)
    try:
        return _stored(result.store, key, filename, exporter.media_type, wanted)
    except StoreError:
        render(exporter, result, key)
        return _stored(result.store, key, filename, exporter.media_type, wanted)


def render(exporter: Exporter, result: StoredResult, key: str) -> int:
    """Render ``result`` with ``exporter`` into the store under ``key``; return its size."""
    writer = result.store.create(key)
    try:
        exporter.export(result, writer)  # type: ignore[arg-type]
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def _render_stream(exporter: Exporter, result: StoredResult) -> Iterator[bytes]:
    with tempfile.TemporaryFile() as spool:
        exporter.export(result, spool)
        spool.seek(0)
        while chunk := spool.read(READ_CHUNK):
            yield chunk


def result_keys(runtime: Runtime, tracker: Tracker) -> list[str]:
    """Every blob a tracker's result may have in its store."""
    if not tracker.result_key:
        return []
    return [tracker.result_key] + [
        f"{tracker.result_key}.{e.extension}"
        for e in runtime.exporters.values()
        if e.format != "csv"
    ]


def expire_results(runtime: Runtime, now: dt.datetime | None = None) -> int:
    """Delete results past their expiry; their trackers become Result Expired."""
    now = now or utcnow()
    with runtime.session_factory() as session:
        due = list(
            session.scalars(
                select(Tracker).where(
                    Tracker.status == TrackerStatus.SUCCESS.value, Tracker.result_expires_at <= now
                )
            )
        )
    expired = 0
    for tracker in due:
        if set_status(runtime, tracker.id, TrackerStatus.SUCCESS, TrackerStatus.RESULT_EXPIRED):
            store = runtime.stores.get(tracker.result_store or "")
            for key in result_keys(runtime, tracker) if store else []:
                try:
                    store.delete(key)
                except StoreError:
                    log.warning("tracker %s: could not delete %s", tracker.id, key)
            expired += 1
    _drop_abandoned(runtime, now)
    return expired


def _drop_abandoned(runtime: Runtime, now: dt.datetime) -> None:
    """Partial results older than the longest a run may write one: their writer died."""
    settings = runtime.settings
    before = now - dt.timedelta(
        seconds=settings.job_worker_execute_timeout + settings.worker_stale_seconds
    )
    try:
        dropped = runtime.store.drop_abandoned(before)
    except StoreError as exc:
        log.warning("could not drop abandoned partial results: %s", exc)
        return
    if dropped:
        log.info("dropped %s partial result(s) whose worker died", dropped)
