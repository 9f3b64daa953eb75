"""Alerts to a job's owner (and opted-in admins): once per streak, a recovery notice ends
it; the freshness check catches a schedule that stopped. Mail goes to aiosmtpd."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from test_notify import Mailer, free_port, setup, wait  # noqa: F401  (setup: a fixture)

from dancecat_core import alerts, db, migrations, tasks
from dancecat_core.db import session_scope
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.job import JobInput
from dancecat_core.models import Alert, Connection, Job, Schedule, Tracker, TrackerStatus, utcnow
from dancecat_core.runtime import build_runtime
from dancecat_core.services import accounts
from dancecat_core.services import jobs as job_service
from dancecat_core.settings import load_settings
from dancecat_core.tasks import enqueue_run

OWNER, ADMIN, OTHER_ADMIN = "owner@example.com", "root@example.com", "quiet@example.com"
PASSWORD = "correct horse battery"


@pytest.fixture
def mail(request):
    """``test_notify``'s fixture: (runtime, mailer) with aiosmtpd and a running consumer."""
    return request.getfixturevalue("setup")


def people(runtime) -> int:
    """The owner, an admin who opted in and one who did not; returns the owner's id."""
    with session_scope(runtime.session_factory) as session:
        for email, admin in ((OWNER, False), (ADMIN, True), (OTHER_ADMIN, True)):
            accounts.allow_email(session, email, admin=admin)
            accounts.sign_in(session, runtime.settings, email, PASSWORD, PASSWORD)
        admin = accounts.user_by_email(session, None, ADMIN)
        accounts.set_alerts_opt_in(session, None, admin, True)
        owner = accounts.user_by_email(session, None, OWNER)
        with pytest.raises(ValidationError, match="not an admin"):
            accounts.set_alerts_opt_in(session, None, owner, True)
        return owner.id


def owned_job(runtime, chinook, owner_id: int, sql: str, failures: int = 1) -> int:
    with session_scope(runtime.session_factory) as session:
        connection = Connection(
            name=f"chinook-{uuid.uuid4().hex[:6]}",
            driver="sqlite",
            database=str(chinook),
            owner_id=owner_id,
        )
        session.add(connection)
        session.flush()
        owner = session.get(accounts.User, owner_id)
        data = JobInput(
            name="Orders", connection_id=connection.id, query=sql, alert_after_failures=failures
        )
        return job_service.create(runtime, session, owner, data).id


def run(runtime, job_id: int) -> int:
    with db.session_scope(runtime.session_factory) as session:
        tracker_id = job_service.queue_run(session, None, job_id).id
    enqueue_run(tracker_id)
    wait(
        f"run {tracker_id}",
        lambda: _status(runtime, tracker_id) in (TrackerStatus.SUCCESS, TrackerStatus.FAILED),
    )
    return tracker_id


def _status(runtime, tracker_id: int) -> str:
    with runtime.session_factory() as session:
        return session.get(Tracker, tracker_id).status


def alert_mails(mailer) -> list[tuple[list[str], str]]:
    return [
        (sorted(rcpt), message["Subject"])
        for rcpt, message in mailer.inbox.messages
        if message["Subject"].startswith("DanceCat alert")
    ]


def test_failing_streak_is_told_once_and_ended_by_a_recovery(mail, sqlite_chinook):
    runtime, mailer = mail(WORKER_STALE_SECONDS=3)  # the scheduler's pass every second
    job_id = owned_job(runtime, sqlite_chinook, people(runtime), "SELECT * FROM Nope", 2)
    first = run(runtime, job_id)
    time.sleep(2.5)
    assert alert_mails(mailer) == []  # one failure of the two it takes
    second = run(runtime, job_id)
    wait("the alert", lambda: len(alert_mails(mailer)) == 1)
    assert alert_mails(mailer) == [([OWNER, ADMIN], "DanceCat alert: Orders is failing")]
    [(_, message)] = [m for m in mailer.inbox.messages if "alert" in m[1]["Subject"]]
    text = message.get_body(("plain",)).get_content()
    assert f"the last 2 runs failed; run {second}: no such table: Nope" in text
    assert f"/jobs/{job_id}" in text and first != second

    run(runtime, job_id)
    time.sleep(2.5)
    assert len(alert_mails(mailer)) == 1  # still the same streak: not told again

    with db.session_scope(runtime.session_factory) as session:
        job_service.update(runtime, session, None, job_id, JobInput(query="SELECT 1 AS ok"))
    fixed = run(runtime, job_id)
    wait("the recovery", lambda: len(alert_mails(mailer)) == 2)
    assert alert_mails(mailer)[1] == ([OWNER, ADMIN], "DanceCat alert: Orders has recovered")
    recovery = mailer.inbox.messages[-1][1].get_body(("plain",)).get_content()
    assert f"run {fixed} succeeded" in recovery

    run(runtime, job_id)  # one failure again: a new streak needs two
    time.sleep(2.5)
    assert len(alert_mails(mailer)) == 2
    with runtime.session_factory() as session:
        [streak] = session.query(Alert).all()
        assert streak.open_key is None and streak.closed_by_tracker_id == fixed


@pytest.fixture
def quiet(tmp_path, sqlite_chinook):
    """A runtime and an SMTP server, no consumer: the test drives each pass itself."""
    mailer = Mailer(free_port())
    runtime = build_runtime(
        load_settings(
            environ={
                "DANCECAT_HOME": str(tmp_path / "home"),
                "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
                "DANCECAT_HUEY_NAME": f"dc-test-{uuid.uuid4().hex[:10]}",
                "DANCECAT_SMTP_HOST": "127.0.0.1",
                "DANCECAT_SMTP_PORT": str(mailer.port),
                "DANCECAT_MAIL_SENDER": "reports@dancecat.example",
                "DANCECAT_FRESHNESS_GRACE_SECONDS": "3600",
            }
        )
    )
    migrations.upgrade(runtime.engine)
    mailer.start()
    yield runtime, mailer
    mailer.stop()
    runtime.engine.dispose()


def scheduled(runtime, chinook, owner_id: int, kind: str, created: dt.datetime) -> int:
    job_id = owned_job(runtime, chinook, owner_id, "SELECT 1")
    with session_scope(runtime.session_factory) as session:
        session.add(
            Schedule(
                job_id=job_id,
                type=kind,
                start_local=dt.datetime(2026, 1, 1, 7, 0),
                timezone="Europe/Paris",
                created_at=created,
                next_run_at=created,
            )
        )
        session.get(Job, job_id).name = f"{kind} report"
    return job_id


def succeeded(runtime, job_id: int, at: dt.datetime) -> int:
    with session_scope(runtime.session_factory) as session:
        tracker = Tracker(
            job_id=job_id, status=TrackerStatus.SUCCESS.value, queued_at=at, finished_at=at
        )
        session.add(tracker)
        session.flush()
        return tracker.id


def test_freshness_check_catches_a_stopped_schedule_once_until_a_success(quiet, sqlite_chinook):
    runtime, mailer = quiet
    owner = people(runtime)
    now = utcnow()
    daily = scheduled(runtime, sqlite_chinook, owner, "daily", now - dt.timedelta(days=3))
    hourly = scheduled(runtime, sqlite_chinook, owner, "hourly", now - dt.timedelta(days=3))
    fresh = scheduled(runtime, sqlite_chinook, owner, "daily", now - dt.timedelta(days=3))
    succeeded(runtime, fresh, now - dt.timedelta(hours=20))
    succeeded(runtime, hourly, now - dt.timedelta(minutes=110))  # 1 h interval + 1 h grace
    succeeded(runtime, daily, now - dt.timedelta(hours=26))  # 24 h + 1 h: too long

    opened = alerts.check_freshness(runtime, now)
    assert len(opened) == 1
    assert alerts.check_freshness(runtime, now) == []  # the streak is open: once
    assert alerts.deliver_pending(runtime) == 1
    assert alerts.deliver_pending(runtime) == 0
    assert alert_mails(mailer) == [
        ([OWNER, ADMIN], "DanceCat alert: daily report has not succeeded for too long")
    ]
    text = mailer.inbox.messages[0][1].get_body(("plain",)).get_content()
    assert (
        "no successful run since" in text and "interval (1 d) plus the grace period (1 h)" in text
    )

    later = now + dt.timedelta(minutes=20)  # the hourly job is now 130 min without success
    assert len(alerts.check_freshness(runtime, later)) == 1

    alerts.after_finish(runtime, succeeded(runtime, daily, later))
    assert alerts.deliver_pending(runtime) == 2  # hourly's opening, daily's recovery
    subjects = sorted(subject for _, subject in alert_mails(mailer))
    assert subjects == [
        "DanceCat alert: daily report has not succeeded for too long",
        "DanceCat alert: daily report has recovered",
        "DanceCat alert: hourly report has not succeeded for too long",
    ]


def test_a_run_dying_in_the_queue_alerts_at_once_and_smtp_down_only_delays(quiet, sqlite_chinook):
    runtime, mailer = quiet
    job_id = owned_job(runtime, sqlite_chinook, people(runtime), "SELECT 1", failures=3)
    old = utcnow() - dt.timedelta(seconds=runtime.settings.job_worker_enqueue_timeout * 2)
    with session_scope(runtime.session_factory) as session:
        session.add(Tracker(job_id=job_id, queued_at=old))
    mailer.stop()
    tasks.configure(runtime=runtime)
    try:
        assert tasks.sweep.call_local() == 1  # the worker's sweep, alert hook included
    finally:
        tasks.huey.storage.flush_queue()
        tasks.configure(None)
    assert alerts.deliver_pending(runtime) == 0  # the server is down: kept, with why
    with runtime.session_factory() as session:
        [streak] = session.query(Alert).all()
        assert "died in the queue" in streak.reason and streak.opened_sent_at is None
        assert "Connection refused" in (streak.last_error or "")
    mailer.start()
    assert alerts.deliver_pending(runtime) == 1
    assert alert_mails(mailer) == [([OWNER, ADMIN], "DanceCat alert: Orders is failing")]
