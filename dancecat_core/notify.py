"""Telling people a run finished: one Notification row per (tracker, notifier, recipient).

The pipeline is apart from the run on purpose (the original corrupted results when mail
failed): notifications are created after the tracker is already final, only read the
tracker and its result, and keep their own status, attempt count and last error.

Delivery is exactly once as far as the database can tell: a try claims the row with a
compare-and-set on ``attempts`` while it is ``pending`` and not claimed by a try in
progress (``claimed_at``), and marks it ``sent`` right after the notifier returns. A retry
(huey ``retries``/``retry_delay``, doubling) only ever happens while the row is still
pending. A try renews its claim while it runs (``_holding``: a slow upload is not a dead
try); a try whose worker died (its claim older than ``DELIVERY_LEASE_SECONDS``) is queued
again by the sweep (``requeue_stalled``).

The one window left is a crash between the receiver accepting the message and the
``sent`` update: that message may go out twice. Every try of one row carries the same
``delivery_key`` (``X-DanceCat-Delivery`` for webhooks, the same file name for folders), so
the receiving side can drop the duplicate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dancecat_core import delivery_rules, destinations, messages, parameters
from dancecat_core.db import session_scope
from dancecat_core.error_text import clean_error
from dancecat_core.models import (
    JobRecipient,
    Notification,
    NotificationStatus,
    Tracker,
    TrackerStatus,
    utcnow,
)
from dancecat_core.notifiers import Export, RunNotice
from dancecat_core.resultstore import ResultMeta
from dancecat_core.runtime import Runtime
from dancecat_core.services.trackers import export, stored_result

log = logging.getLogger(__name__)

NOTIFIED = frozenset({TrackerStatus.SUCCESS.value, TrackerStatus.FAILED.value})


def create_notifications(runtime: Runtime, tracker_id: int) -> list[int]:
    """Create the missing notification rows for a finished run; return the new pending ids.

    Idempotent: ``UNIQUE(tracker_id, notifier, recipient)`` keeps a second call (a
    redelivered task, the sweeper) from creating a second message.
    """
    rows: list[Notification] = []
    try:
        with session_scope(runtime.session_factory) as session:
            rows = _add_missing(runtime, session, tracker_id)
    except IntegrityError:
        # Another process created them at the same moment; it will queue their delivery.
        log.info("tracker %s: notifications created concurrently elsewhere", tracker_id)
        return []
    created = [row.id for row in rows if row.status == NotificationStatus.PENDING.value]
    if created:
        log.info("tracker %s: %s notification(s) to send", tracker_id, len(created))
    return created


def _add_missing(runtime: Runtime, session: Session, tracker_id: int) -> list[Notification]:
    """One row per (notifier, recipient); a recipient whose rule or condition says no
    gets a ``skipped`` row saying why, so the run shows every recipient's fate."""
    rows: list[Notification] = []
    tracker = session.get(Tracker, tracker_id)
    if tracker is None or tracker.status not in NOTIFIED:
        return []
    decide = delivery_rules.decider(session, tracker)
    emails = [r.destination for r in tracker.job.recipients]
    existing = {
        (n.notifier, n.recipient)
        for n in session.scalars(select(Notification).where(Notification.tracker_id == tracker_id))
    }
    for name, notifier in sorted(runtime.notifiers.items()):
        configured = notifier.configured
        for recipient in notifier.recipients_for(emails):
            if (name, recipient) in existing:
                continue
            decision = decide(recipient)
            row = Notification(
                tracker_id=tracker_id,
                notifier=name,
                recipient=recipient,
                note=decision.reason,
                delivery_key=new_delivery_key(),
            )
            if not decision.send:
                row.status = NotificationStatus.SKIPPED.value
            elif not configured:
                row.status = NotificationStatus.FAILED.value
                row.last_error = notifier.unconfigured_reason
            session.add(row)
            rows.append(row)
    session.flush()
    return rows


def new_delivery_key() -> str:
    """A delivery key: random, so unique per run and destination across installations."""
    return uuid.uuid4().hex


def wanted(runtime: Runtime, emails: Sequence[str] | None) -> bool:
    """False when no notifier would pick a recipient from the job's ``emails`` (read when
    the run finished), so ``after_run`` would create nothing: a run need not pay for it.
    ``None`` (not known) is True: let ``after_run`` look."""
    if emails is None:
        return True
    try:
        return any(n.recipients_for(emails) for n in runtime.notifiers.values())
    except Exception:
        return True  # after_run will log what is wrong


def after_run(runtime: Runtime, tracker_id: int) -> list[int]:
    """Create a finished run's notifications; return the ids to deliver. Never raises:
    whatever goes wrong with notifying must not touch the run."""
    try:
        return create_notifications(runtime, tracker_id)
    except Exception:
        log.exception("tracker %s: could not create notifications", tracker_id)
        return []


def _secrets(runtime: Runtime, session: Session, job_id: int, shown: str) -> dict[str, str]:
    """The stored secrets of the job's destination ``shown`` ({} once it was removed from
    the job, or when it has none: a notifier needing them says so when it delivers)."""
    sealed = session.scalar(
        select(JobRecipient.secrets_encrypted).where(
            JobRecipient.job_id == job_id, JobRecipient.destination == shown
        )
    )
    return destinations.unseal(runtime.secret_box, sealed)


def _notice(runtime: Runtime, session: Session, tracker: Tracker, row: Notification) -> RunNotice:
    meta = tracker.result_meta
    scrub_note = ResultMeta.from_dict(meta).scrub_note if meta else ""
    error = clean_error(tracker.error, patterns=runtime.value_patterns) if tracker.error else ""
    job = tracker.job
    return RunNotice(
        tracker_id=tracker.id,
        job_id=tracker.job_id,
        job_name=tracker.job.name,
        status=tracker.status,
        recipient=row.recipient,
        row_count=tracker.row_count,
        duration_ms=tracker.duration_ms,
        error=error or tracker.error,
        scrub_note=scrub_note,
        finished_at=tracker.finished_at.isoformat() if tracker.finished_at else None,
        templates=messages.Templates(
            job.subject_template, job.body_template, job.filename_template
        ),
        context=messages.run_context(
            tracker,
            row.recipient,
            scrub_note=scrub_note,
            error=error,
            first_rows=_first_rows(runtime, tracker),
        ),
        parameters=parameters.summary(tracker.parameter_values_json),
        parameter_values=parameters.load_values(tracker.parameter_values_json),
        due_at=tracker.due_at.isoformat() if tracker.due_at else None,
        delivery_key=row.delivery_key or f"dc-{row.id}",
        secrets=_secrets(runtime, session, tracker.job_id, row.recipient),
    )


def _first_rows(runtime: Runtime, tracker: Tracker) -> tuple[list[str], list[list[str | None]]]:
    """The first ``Job.body_rows`` rows of the stored (scrubbed) result, read no further;
    none if they cannot be read: the message then goes without its table."""
    count = min(tracker.job.body_rows or 0, messages.MAX_BODY_ROWS)
    if not count or not tracker.result_available:
        return [], []
    try:
        result = stored_result(runtime, tracker)
        rows = list(itertools.islice(result.text_rows(), count))
    except Exception:
        log.warning("tracker %s: could not read the first rows for the mail", tracker.id)
        return [], []
    return [column.name for column in result.columns], rows


def _export(runtime: Runtime, tracker: Tracker) -> Export | None:
    """How a notifier reads a successful run's result; None for a run without one."""
    if tracker.status != TrackerStatus.SUCCESS.value:
        return None
    return lambda fmt: export(runtime, tracker, fmt)


def _with_notes(reason: str | None, notes: Sequence[str]) -> str:
    return "; ".join([*([reason] if reason else []), *notes])[:4000]


def _lease_start(runtime: Runtime) -> dt.datetime:
    """Claims older than this are taken for lost: their worker died mid-try."""
    return utcnow() - dt.timedelta(seconds=runtime.settings.delivery_lease_seconds)


def _unclaimed(runtime: Runtime) -> ColumnElement[bool]:
    return or_(Notification.claimed_at.is_(None), Notification.claimed_at < _lease_start(runtime))


def _claim(runtime: Runtime, notification_id: int) -> Notification | None:
    """Take the row for one attempt; None if it is not pending or another try holds it."""
    with session_scope(runtime.session_factory) as session:
        row = session.get(Notification, notification_id)
        if row is None or row.status != NotificationStatus.PENDING.value:
            return None
        taken = session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status == NotificationStatus.PENDING.value,
                Notification.attempts == row.attempts,
                _unclaimed(runtime),
            )
            .values(attempts=row.attempts + 1, claimed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:
            return None
        session.expunge(row)
        return row


@contextlib.contextmanager
def _holding(runtime: Runtime, notification_id: int, attempt: int) -> Iterator[None]:
    """Keep this try's claim fresh while it runs: a slow upload (a big result to SFTP or
    S3) must not look like a dead worker's try, which the sweep would send again beside it.
    The claim is renewed every third of ``DELIVERY_LEASE_SECONDS``, only while the row is
    still this attempt's and pending."""
    stop = threading.Event()
    every = max(0.5, runtime.settings.delivery_lease_seconds / 3)

    def renew() -> None:
        while not stop.wait(every):
            try:
                _update(
                    runtime,
                    notification_id,
                    Notification.attempts == attempt,
                    Notification.claimed_at.is_not(None),
                    claimed_at=utcnow(),
                )
            except Exception as exc:  # the next renewal, or the lease, takes over
                log.warning("notification %s: could not renew its claim: %s", notification_id, exc)

    renewer = threading.Thread(target=renew, name="dancecat-delivery-claim", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


def _update(
    runtime: Runtime, notification_id: int, *conditions: ColumnElement[bool], **values: object
) -> None:
    """Set ``values`` on the row while it is pending (and ``conditions`` hold)."""
    with session_scope(runtime.session_factory) as session:
        session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status == NotificationStatus.PENDING.value,
                *conditions,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _finish(runtime: Runtime, notification_id: int, **values: object) -> None:
    """End a try: its values, and the claim given back."""
    _update(runtime, notification_id, claimed_at=None, **values)


def deliver(runtime: Runtime, notification_id: int, *, final: bool = True) -> str:
    """Send one notification. Raises on failure unless ``final`` (so huey retries it)."""
    row = _claim(runtime, notification_id)
    if row is None:
        log.info("notification %s: not pending (sent, failed or in progress)", notification_id)
        return "skipped"
    tracker_id = row.tracker_id
    notifier = runtime.notifiers.get(row.notifier)
    if notifier is None:
        _finish(
            runtime,
            notification_id,
            status=NotificationStatus.FAILED.value,
            last_error=f"no notifier named {row.notifier!r} is installed",
        )
        log.warning("tracker %s: notifier %s is not installed", tracker_id, row.notifier)
        return "failed"
    secrets: list[str] = list(notifier.secrets)
    try:
        with _holding(runtime, notification_id, row.attempts + 1):
            with runtime.session_factory() as session:
                tracker = session.get(Tracker, tracker_id)
                notice = _notice(runtime, session, tracker, row)
                secrets += notice.secrets.values()
                notice, attachment = notifier.prepare(notice, _export(runtime, tracker))
            if notice.notes:  # a template fell back to the default: the run says so
                _update(runtime, notification_id, note=_with_notes(row.note, notice.notes))
            notifier.deliver(notice, attachment)
    except Exception as exc:
        error = clean_error(
            f"{type(exc).__name__}: {exc}", secrets=secrets, patterns=runtime.value_patterns
        )[:2000]
        values: dict[str, object] = {"last_error": error}
        if final:
            values["status"] = NotificationStatus.FAILED.value
        _finish(runtime, notification_id, **values)
        log.warning(
            "tracker %s: %s to %s failed (attempt %s%s): %s",
            tracker_id,
            row.notifier,
            row.recipient,
            row.attempts + 1,
            ", giving up" if final else ", will retry",
            error,
        )
        if final:
            return "failed"
        raise
    _finish(
        runtime,
        notification_id,
        status=NotificationStatus.SENT.value,
        sent_at=utcnow(),
        last_error=None,
    )
    log.info("tracker %s: %s to %s sent", tracker_id, row.notifier, row.recipient)
    return "sent"


def stalled(runtime: Runtime) -> list[int]:
    """Pending notifications whose try began more than ``DELIVERY_LEASE_SECONDS`` ago and
    never finished: the worker sending them died. The sweep queues them again; the claim
    lets only one try take each."""
    with runtime.session_factory() as session:
        return list(
            session.scalars(
                select(Notification.id)
                .where(
                    Notification.status == NotificationStatus.PENDING.value,
                    Notification.claimed_at < _lease_start(runtime),
                )
                .order_by(Notification.id)
                .limit(500)
            )
        )
