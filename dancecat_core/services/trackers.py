"""Trackers and their results: look-ups, history, exports and expiry."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import attrs
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased, contains_eager, selectinload

from dancecat_core.errors import Conflict, NotFound, ResultExpired, StoreError
from dancecat_core.exporters import Exporter
from dancecat_core.models import Job, Tracker, TrackerStatus, User, utcnow
from dancecat_core.resultstore import ResultMeta, StoredResult
from dancecat_core.runner import set_status
from dancecat_core.runtime import Runtime
from dancecat_core.services import access

log = logging.getLogger(__name__)
READ_CHUNK = 1 << 20


def get(session: Session, actor: User | None, tracker_id: int) -> Tracker:
    tracker = session.get(Tracker, tracker_id)
    if tracker is None or not access.can_see(actor, tracker.job):
        raise NotFound("run not found")
    return tracker


def list_for_job(
    session: Session,
    actor: User | None,
    job_id: int,
    *,
    status: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[Tracker]:
    """A job's runs, newest first; ``before`` pages by tracker id. A deleted job is not
    found here, as everywhere its id is used (its runs stay reachable by tracker id)."""
    access.require_visible(actor, session.get(Job, job_id), "job")
    # The page's notifications in one query, not one per run (trackers (job_id, id) pages).
    query = (
        select(Tracker).where(Tracker.job_id == job_id).options(selectinload(Tracker.notifications))
    )
    if status:
        query = query.where(Tracker.status == TrackerStatus(status).value)
    if before:
        query = query.where(Tracker.id < before)
    return list(session.scalars(query.order_by(Tracker.id.desc()).limit(limit)))


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


def latest_success(session: Session, actor: User | None, job_id: int) -> Tracker:
    access.require_visible(actor, session.get(Job, job_id), "job")
    tracker = session.scalars(
        select(Tracker)
        .where(
            Tracker.job_id == job_id,
            Tracker.status.in_([TrackerStatus.SUCCESS.value, TrackerStatus.RESULT_EXPIRED.value]),
        )
        .order_by(Tracker.id.desc())
        .limit(1)
    ).first()
    if tracker is None:
        raise NotFound("this job has no successful run yet")
    return tracker


SUCCESSFUL = (TrackerStatus.SUCCESS.value, TrackerStatus.RESULT_EXPIRED.value)
_RUNS = aliased(Tracker, name="runs")  # made once: building an alias per call costs ~1 ms


def latest_successes(
    session: Session, actor: User | None, job_ids: list[int]
) -> dict[int, Tracker]:
    """``latest_success`` for many jobs in one query: job id -> its newest successful run.

    Jobs ``actor`` may not see, deleted jobs and jobs without a successful run are left
    out. Each job's run is found by a correlated ``max(id)``, which the databases answer
    by walking ``ix_trackers_job_id_id`` backwards to the first successful run, however
    many runs the job has.
    """
    if not job_ids:
        return {}
    runs = _RUNS
    newest = (
        select(func.max(runs.id))
        .where(runs.job_id == Job.id, runs.status.in_(SUCCESSFUL))
        .scalar_subquery()
    )
    latest_ids = select(newest).where(
        Job.id.in_(sorted(set(job_ids))),
        Job.deleted_at.is_(None),
        access.visible_filter(actor, Job),
    )
    found = session.scalars(select(Tracker).where(Tracker.id.in_(latest_ids)))
    return {tracker.job_id: tracker for tracker in found}


def stored_result(runtime: Runtime, tracker: Tracker) -> StoredResult:
    """The tracker's result, or the error that says why there is none to give."""
    status = TrackerStatus(tracker.status)
    if status == TrackerStatus.RESULT_EXPIRED or (
        status == TrackerStatus.SUCCESS
        and tracker.result_expires_at
        and tracker.result_expires_at <= utcnow()
    ):
        when = tracker.result_expires_at.isoformat() if tracker.result_expires_at else "earlier"
        raise ResultExpired(f"the result of run {tracker.id} expired at {when}")
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
    """An export ready to stream: the caller iterates ``chunks`` and closes nothing else."""

    filename: str
    media_type: str
    size: int | None
    chunks: Iterator[bytes]


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(READ_CHUNK):
            yield chunk


def export(runtime: Runtime, tracker: Tracker, fmt: str) -> Download:
    """Stream the result in ``fmt``; cacheable formats are rendered once and kept.

    The canonical CSV is served as stored. Other formats are rendered into the store
    beside it (atomically) the first time they are asked for, and expire with it.
    """
    exporter = runtime.exporter(fmt)
    result = stored_result(runtime, tracker)
    filename = f"Result_tid_{tracker.id}.{exporter.extension}"
    if fmt == "csv":
        handle = result.open_raw()
        return Download(
            filename, exporter.media_type, result.store.size(result.key), _read_chunks(handle)
        )
    if not exporter.cacheable:
        return Download(filename, exporter.media_type, None, _render_stream(exporter, result))
    key = f"{result.key}.{exporter.extension}"
    if not result.store.exists(key):
        render(exporter, result, key)
    try:
        handle = result.store.open(key)
    except StoreError:
        render(exporter, result, key)
        handle = result.store.open(key)
    return Download(filename, exporter.media_type, result.store.size(key), _read_chunks(handle))


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
    return expired
