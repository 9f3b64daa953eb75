"""The busiest read-only screen on a PostgreSQL app database: its statements run
without a transaction (no BEGIN and ROLLBACK round trips), from plans
the connection keeps, and what they show is still right (the latest result still valid,
not the newest expired one; each run's notifications); writes keep their transaction,
and a connection goes back to the pool with transactions on."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import event, select
from test_web_helpers import make_user

from dancecat_core.db import session_scope
from dancecat_core.models import ApiToken, Connection, Job, Notification, Tracker, utcnow
from dancecat_web.db import READS_ONLY


@pytest.fixture
def runtime(pg_runtime):
    """This module's app (``app``, ``alice``, ``csrf`` from conftest) on PostgreSQL."""
    return pg_runtime


@pytest.fixture
def runs(runtime, alice, sqlite_chinook) -> dict[str, int]:
    """A job with an expired result, a newer valid one (notified twice) and a newer
    failure: the screen's latest result is the valid one."""
    now = utcnow()
    with session_scope(runtime.session_factory) as session:
        conn = Connection(
            name="chinook", driver="sqlite", database=str(sqlite_chinook), owner_id=alice.id
        )
        job = Job(name="artists", connection=conn, query="SELECT 1", owner_id=alice.id)
        done = {"finished_at": now, "result_store": "file", "result_key": "k", "row_count": 7}
        expired = Tracker(
            job=job, status="Success", result_expires_at=now - dt.timedelta(hours=1), **done
        )
        valid = Tracker(
            job=job, status="Success", result_expires_at=now + dt.timedelta(hours=1), **done
        )
        failed = Tracker(job=job, status="Failed", error="no such table: Artists")
        session.add_all([conn, job, expired])
        session.flush()  # ids in this order
        session.add(valid)
        session.flush()
        session.add(failed)
        session.flush()
        for recipient in ("ops@example.com", "cfo@example.com"):
            session.add(
                Notification(
                    tracker_id=valid.id, notifier="email", recipient=recipient, status="sent"
                )
            )
        return {"job": job.id, "expired": expired.id, "valid": valid.id, "failed": failed.id}


@pytest.fixture
def sent(runtime):
    """Each statement sent: its first word and whether its connection was in autocommit."""
    seen: list[tuple[str, bool]] = []

    def statement(conn, cursor, text, parameters, context, executemany):
        seen.append((text.split()[0].upper(), conn.connection.dbapi_connection.autocommit))

    event.listen(runtime.engine, "before_cursor_execute", statement)
    yield seen
    event.remove(runtime.engine, "before_cursor_execute", statement)


def _run_row(page: str, tracker_id: int) -> str:
    return re.search(rf'<tr id="tracker-{tracker_id}".*?</tr>', page, re.S).group(0)


def test_the_jobs_screen_reads_without_a_transaction_from_kept_plans(
    app, runtime, csrf, runs, sent
):
    assert "ui.jobs" in READS_ONLY
    app.get("/jobs")  # prepares on this connection
    sent.clear()
    page = app.get("/jobs").text
    assert sent and all(autocommit for _, autocommit in sent), sent
    # the signed-in user, then the jobs page, the newest results with their runs, the
    # runs page, their notifications
    assert [kind for kind, _ in sent].count("EXECUTE") == 5, sent
    assert "PREPARE" not in [kind for kind, _ in sent]
    latest = re.search(r'<span class="latest-result".*?</span>\s*</span>', page, re.S).group(0)
    assert f"run {runs['valid']}, 7 rows" in latest
    assert "/latest.csv" in latest
    assert "ops@example.com" in _run_row(page, runs["valid"])
    assert "cfo@example.com" in _run_row(page, runs["valid"])
    assert "no such table: Artists" in _run_row(page, runs["failed"])
    assert "ops@example.com" not in _run_row(page, runs["expired"])
    with runtime.engine.connect() as conn:  # back in the pool with transactions on
        assert conn.connection.dbapi_connection.autocommit is False


def _prepared(runtime) -> set[str]:
    """The statements the pooled connection prepared."""
    with runtime.engine.connect() as conn:
        return set(conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars())


def test_the_first_pages_statements_can_keep_their_plans(app, runtime, csrf, runs):
    """PostgreSQL plans a prepared statement anew at each EXECUTE while its plan for
    unknown values looks dearer than a fresh one, as it does for an unknown LIMIT or
    OFFSET (it assumes a tenth of the table; on the bench's million runs every EXECUTE of
    such a statement was planned again): the first page's statements have neither as a
    parameter. A status filter keeps its LIMIT a parameter: a plan kept for it would read
    every run when the status is a rare one."""
    app.get("/jobs")
    plans = _prepared(runtime)
    assert len(plans) == 5, plans
    for text in plans:
        assert not re.search(r"(LIMIT|OFFSET) \$\d", text), text
    app.get("/jobs", {"status": "Failed"})
    [text] = _prepared(runtime) - plans
    assert "status = $" in text and re.search(r"LIMIT \$\d", text), text
    app.get("/jobs", {"page": "2"})
    [text] = _prepared(runtime) - plans - {text}
    assert re.search(r"OFFSET \$\d", text), text


def test_an_admin_by_token_sees_the_screen_and_the_token_is_stamped(app, runtime, runs):
    """An admin's screen (statements without any parameter: everyone's jobs, first page)
    through a bearer token, looked up from a kept plan too; the token's last use is
    recorded."""
    admin = make_user(runtime, "root@example.com", admin=True)
    for _ in range(3):
        page = app.get("/jobs", headers=admin.auth).text
        assert f"run {runs['valid']}, 7 rows" in page
    with session_scope(runtime.session_factory) as session:
        [used] = session.scalars(
            select(ApiToken.last_used_at).where(ApiToken.user_id == admin.id)
        ).all()
    assert used is not None and utcnow() - used < dt.timedelta(minutes=1)


def test_a_job_whose_results_all_expired_says_so(app, runtime, csrf, runs, sent):
    with session_scope(runtime.session_factory) as session:
        session.get(Tracker, runs["valid"]).result_expires_at = utcnow() - dt.timedelta(hours=2)
    page = app.get("/jobs").text
    latest = re.search(r'<span class="latest-result".*?</span>\s*</span>', page, re.S).group(0)
    assert "last result expired" in latest and "/latest.csv" not in latest


def test_a_write_keeps_its_transaction(app, runtime, csrf, runs, sent):
    app.post(f"/jobs/{runs['job']}/run", {"csrf_token": csrf}, status=303)
    assert sent and not any(autocommit for _, autocommit in sent), sent
