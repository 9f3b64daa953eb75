"""Alerts to a job's owner: told once when a streak of trouble starts, once when it ends.

Two kinds of streak (``AlertKind``):

- ``failing``: the job's last ``Job.alert_after_failures`` runs all failed (default 1; 0
  turns these alerts off), or a run died in the queue or was swept as dead (those open
  the streak at once: nothing will retry them);
- ``stale``: a scheduled job has had no successful run for longer than its schedule's
  interval plus ``FRESHNESS_GRACE_SECONDS`` (``check_freshness``, run by the scheduler:
  it catches a schedule that silently stopped, which no failing run would ever show).

The next successful run ends every open streak of its job with a recovery notice. A
streak is a row in ``alerts`` whose ``open_key`` is unique while open, so however many
runs fail (or processes look) it is opened, and told, once. The rows are also the outbox:
the scheduler's pass (``deliver_pending``) sends what is not told yet through each notifier
that carries alerts (``Notifier.deliver_alert``), and tries again on the next pass.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dancecat_core import schedule_kinds
from dancecat_core.db import session_scope
from dancecat_core.error_text import clean_error
from dancecat_core.models import (
    Alert,
    AlertKind,
    Job,
    Schedule,
    Tracker,
    TrackerStatus,
    User,
    utcnow,
)
from dancecat_core.notifiers import AlertNotice
from dancecat_core.runtime import Runtime

if TYPE_CHECKING:
    from dancecat_core.lifecycle import RunOutcome

log = logging.getLogger(__name__)

SUCCEEDED = (TrackerStatus.SUCCESS.value, TrackerStatus.RESULT_EXPIRED.value)
FAILED = (TrackerStatus.FAILED.value, TrackerStatus.DIED_IN_QUEUE.value)
OPENED, CLOSED = "opened", "closed"
# A sender that claimed a notice this long ago and never finished it has crashed.
CLAIM_SECONDS = 300


ALERTED = frozenset({TrackerStatus.SUCCESS, TrackerStatus.FAILED})


def ended(outcome: RunOutcome) -> bool:
    """Whether this attempt ended the run, so its owner's alert streaks may move: it ran
    and finished, or it died in the queue."""
    if outcome.status is TrackerStatus.DIED_IN_QUEUE:
        return True
    return outcome.claimed and not outcome.handed_back and outcome.status in ALERTED


def after_finish(runtime: Runtime, tracker_id: int, *, swept: bool = False) -> None:
    """Open or end the job's streaks after a run finished. Never raises: alerting must
    not touch the run. ``swept``: the sweeper failed it because its worker stopped."""
    try:
        _after_finish(runtime, tracker_id, swept)
    except Exception:
        log.exception("tracker %s: could not update the owner's alerts", tracker_id)


def _after_finish(runtime: Runtime, tracker_id: int, swept: bool) -> None:
    with runtime.session_factory() as session:
        tracker = session.get(Tracker, tracker_id)
        if tracker is None:
            return
        job_id, status, threshold = tracker.job_id, tracker.status, tracker.job.alert_after_failures
        error = tracker.error or ""
    if status in SUCCEEDED:
        _close_all(runtime, job_id, tracker_id)
        return
    if status not in FAILED or not threshold:
        return
    if status == TrackerStatus.DIED_IN_QUEUE.value:
        reason = f"run {tracker_id} died in the queue: {error}"
    elif swept:
        reason = f"run {tracker_id} was swept as dead: {error}"
    elif _failed_in_a_row(runtime, job_id, threshold):
        reason = (
            f"run {tracker_id} failed: {error}"
            if threshold == 1
            else f"the last {threshold} runs failed; run {tracker_id}: {error}"
        )
    else:
        return
    reason = clean_error(reason, patterns=runtime.value_patterns)[:4000]
    _open(runtime, job_id, AlertKind.FAILING, reason, tracker_id)


def _failed_in_a_row(runtime: Runtime, job_id: int, count: int) -> bool:
    with runtime.session_factory() as session:
        last = session.scalars(
            select(Tracker.status)
            .where(Tracker.job_id == job_id, Tracker.status.in_(SUCCEEDED + FAILED))
            .order_by(Tracker.id.desc())
            .limit(count)
        ).all()
    return len(last) == count and all(status in FAILED for status in last)


def _open(
    runtime: Runtime, job_id: int, kind: AlertKind, reason: str, tracker_id: int | None
) -> int | None:
    """The new streak's id; None when one of this kind is open already."""
    try:
        with session_scope(runtime.session_factory) as session:
            alert = Alert(
                job_id=job_id,
                kind=kind.value,
                open_key=f"{job_id}:{kind.value}",
                reason=reason,
                tracker_id=tracker_id,
            )
            session.add(alert)
            session.flush()
            alert_id = alert.id
    except IntegrityError:
        return None
    log.warning("job %s: %s alert opened: %s", job_id, kind.value, reason)
    return alert_id


def _close_all(runtime: Runtime, job_id: int, tracker_id: int | None) -> list[int]:
    with session_scope(runtime.session_factory) as session:
        open_ids = session.scalars(
            select(Alert.id).where(Alert.job_id == job_id, Alert.open_key.is_not(None))
        ).all()
        closed = []
        for alert_id in open_ids:
            moved = session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.open_key.is_not(None))
                .values(open_key=None, closed_at=utcnow(), closed_by_tracker_id=tracker_id)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount == 1:
                closed.append(alert_id)
    for alert_id in closed:
        log.info("job %s: alert %s ended by run %s", job_id, alert_id, tracker_id)
    return closed


def check_freshness(runtime: Runtime, now: dt.datetime | None = None) -> list[int]:
    """Open a ``stale`` streak for each actively scheduled job whose last success (or,
    never having one, its schedule's creation) is older than the schedule's interval
    plus the grace period. Returns the streaks opened."""
    now = now or utcnow()
    grace = dt.timedelta(seconds=runtime.settings.freshness_grace_seconds)
    with runtime.session_factory() as session:
        # Columns, not ORM objects: a check reads every active schedule (100,000 in the
        # bench), on a consumer that is also running what is due.
        found = session.execute(
            select(
                Schedule.job_id,
                Schedule.type,
                Schedule.start_local,
                Schedule.timezone,
                Schedule.cron,
                Schedule.created_at,
                Job.alert_after_failures,
            )
            .join(Job, Job.id == Schedule.job_id)
            .where(
                Schedule.active.is_(True),
                Schedule.deleted_at.is_(None),
                Job.deleted_at.is_(None),
                Schedule.type.not_in(
                    [name for name, kind in schedule_kinds.registered().items() if not kind.repeats]
                ),
            )
        ).all()
        job_ids = {schedule.job_id for schedule in found}
        last_success = (
            dict(
                session.execute(
                    select(Tracker.job_id, func.max(Tracker.finished_at))
                    .where(Tracker.job_id.in_(job_ids), Tracker.status.in_(SUCCEEDED))
                    .group_by(Tracker.job_id)
                ).all()
            )
            if job_ids
            else {}
        )
        open_stale = set(
            session.scalars(
                select(Alert.job_id).where(
                    Alert.kind == AlertKind.STALE.value, Alert.open_key.is_not(None)
                )
            )
        )
    limits: dict[int, tuple[dt.timedelta, dt.datetime]] = {}
    intervals: dict[tuple[Any, ...], dt.timedelta | None] = {}  # schedules sharing a rule
    for schedule in found:
        if not schedule.alert_after_failures or schedule.job_id in open_stale:
            continue
        rule = (schedule.type, schedule.start_local, schedule.timezone, schedule.cron)
        if rule not in intervals:
            intervals[rule] = _interval(schedule, now)
        interval = intervals[rule]
        if interval is None:
            continue
        since = last_success.get(schedule.job_id) or schedule.created_at
        # With several schedules, the one that runs most often sets the expectation.
        best = limits.get(schedule.job_id)
        if best is None or interval < best[0]:
            limits[schedule.job_id] = (interval, since)
    opened = []
    for job_id, (interval, since) in sorted(limits.items()):
        if now - since <= interval + grace:
            continue
        what = (
            "no successful run since"
            if job_id in last_success
            else "no successful run yet; scheduled since"
        )
        reason = (
            f"{what} {since.isoformat()}: longer than its schedule's interval "
            f"({_span(interval)}) plus the grace period ({_span(grace)})"
        )
        alert_id = _open(runtime, job_id, AlertKind.STALE, reason, None)
        if alert_id:
            opened.append(alert_id)
    return opened


def _interval(schedule: Any, now: dt.datetime) -> dt.timedelta | None:
    """The gap between the schedule's next two occurrences after ``now`` (``schedule``:
    anything with its ``type``, ``start_local``, ``timezone`` and ``cron``)."""
    rule = schedule_kinds.Rule(schedule.start_local, schedule.timezone, schedule.cron)
    try:
        kind = schedule_kinds.get(schedule.type)
        first = kind.next_after(rule, now)
        second = first and kind.next_after(rule, first)
    except Exception:  # a schedule the checker cannot read is the checker's to report
        return None
    return second - first if first and second else None


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def deliver_pending(runtime: Runtime, now: dt.datetime | None = None) -> int:
    """Send every opened or ended streak not told yet (an outbox the scheduler empties on
    each pass, so a mail server that is down only delays the notice). Each notice is
    claimed first (``claimed_at``, a compare-and-set), so several consumers never send
    it twice; a claim older than ``CLAIM_SECONDS`` is a crashed sender's, and is retaken."""
    now = now or utcnow()
    with runtime.session_factory() as session:
        pending = session.execute(
            select(Alert.id, Alert.closed_at.is_not(None))
            .where(
                or_(
                    Alert.opened_sent_at.is_(None),
                    and_(Alert.closed_at.is_not(None), Alert.closed_sent_at.is_(None)),
                ),
                or_(
                    Alert.claimed_at.is_(None),
                    Alert.claimed_at < now - dt.timedelta(seconds=CLAIM_SECONDS),
                ),
            )
            .order_by(Alert.id)
            .limit(100)
        ).all()
    sent = 0
    for alert_id, closed in pending:
        if _claim(runtime, alert_id, now):
            sent += _deliver(runtime, alert_id, closed)
    return sent


def _claim(runtime: Runtime, alert_id: int, now: dt.datetime) -> bool:
    stale = now - dt.timedelta(seconds=CLAIM_SECONDS)
    with session_scope(runtime.session_factory) as session:
        taken = session.execute(
            update(Alert)
            .where(
                Alert.id == alert_id,
                or_(Alert.claimed_at.is_(None), Alert.claimed_at < stale),
            )
            .values(claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        return taken.rowcount == 1


def _deliver(runtime: Runtime, alert_id: int, closed: bool) -> int:
    """Send what this streak still owes: its opening notice, then (if it ended) the
    recovery notice. Returns how many were sent; a failure is kept on the row."""
    sent = 0
    for event in (OPENED, CLOSED) if closed else (OPENED,):
        column = Alert.opened_sent_at if event == OPENED else Alert.closed_sent_at
        with runtime.session_factory() as session:
            alert = session.get(Alert, alert_id)
            if alert is None or getattr(alert, column.key) is not None:
                continue
            notice = _notice(runtime, session, alert, event)
        notifiers = [n for n in runtime.notifiers.values() if n.carries_alerts and n.configured]
        try:
            for notifier in notifiers if notice.recipients else []:
                notifier.deliver_alert(notice)
        except Exception as exc:
            error = clean_error(
                f"{type(exc).__name__}: {exc}",
                secrets=[secret for n in notifiers for secret in n.secrets],
                patterns=runtime.value_patterns,
            )[:2000]
            log.warning("alert %s: the %s notice was not sent: %s", alert_id, event, error)
            _record(runtime, alert_id, last_error=error, claimed_at=None)
            return sent
        _record(runtime, alert_id, **{column.key: utcnow(), "last_error": None})
        sent += 1
    _record(runtime, alert_id, claimed_at=None)
    return sent


def _notice(runtime: Runtime, session: Session, alert: Alert, event: str) -> AlertNotice:
    job = alert.job
    opened = event == OPENED
    return AlertNotice(
        alert_id=alert.id,
        job_id=job.id,
        job_name=job.name,
        kind=alert.kind,
        event=event,
        reason=alert.reason
        if opened
        else f"run {alert.closed_by_tracker_id} succeeded (it began: {alert.reason})",
        recipients=tuple(_recipients(session, job)),
        job_url=f"{runtime.settings.base_url}/jobs/{job.id}",
        tracker_id=alert.tracker_id if opened else alert.closed_by_tracker_id,
    )


def _recipients(session: Session, job: Job) -> list[str]:
    found = []
    if job.owner is not None and job.owner.is_active:
        found.append(job.owner.email)
    admins = session.scalars(
        select(User.email).where(
            User.is_admin.is_(True), User.alerts_opt_in.is_(True), User.disabled_at.is_(None)
        )
    )
    found.extend(email for email in admins if email not in found)
    return found


def _record(runtime: Runtime, alert_id: int, **values: object) -> None:
    with session_scope(runtime.session_factory) as session:
        session.execute(
            update(Alert)
            .where(Alert.id == alert_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
