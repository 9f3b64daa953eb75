"""How many SQL statements a page costs: bounded, whatever the number of jobs and runs.

The Jobs screen once ran one query per job for its latest result (10,030 statements a
request with 10,000 jobs) and the runs API one per run for its notifications; these tests
count every statement the app database sees during a request, so neither can come back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import event
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core.db import session_scope
from dancecat_core.models import (
    Connection,
    Job,
    Notification,
    Schedule,
    Tracker,
    TrackerStatus,
    User,
    utcnow,
)
from dancecat_core.services import schedules, trackers

JOBS_SCREEN_MAX = 10
RUNS_API_MAX = 6
JOBS_API_MAX = 8


@pytest.fixture
def app(runtime):
    return make_app(runtime, [])


@pytest.fixture
def alice(runtime):
    return make_user(runtime, "alice@example.com")


@contextlib.contextmanager
def counting(runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)


def fill(runtime, owner_id: int, jobs: int, runs: int, *, notify: bool = True) -> list[int]:
    """``jobs`` more jobs of ``owner_id``, each with ``runs`` runs (successes with a
    notification each, every fifth failed) and a schedule; returns their ids."""
    now = utcnow()
    with session_scope(runtime.session_factory) as session:
        connection = session.query(Connection).first()
        if connection is None:
            connection = Connection(
                name="c", driver="sqlite", database=":memory:", owner_id=owner_id
            )
            session.add(connection)
            session.flush()
        made = []
        for number in range(jobs):
            job = Job(
                name=f"job {number}",
                connection_id=connection.id,
                query="SELECT 1",
                owner_id=owner_id,
                updated_at=now - dt.timedelta(seconds=number),
            )
            session.add(job)
            session.flush()
            session.add(
                Schedule(
                    job_id=job.id,
                    type="daily",
                    start_local=now.replace(tzinfo=None),
                    timezone="UTC",
                    active=False,
                )
            )
            for index in range(runs):
                failed = index % 5 == 4
                tracker = Tracker(
                    job_id=job.id,
                    status=(TrackerStatus.FAILED if failed else TrackerStatus.SUCCESS).value,
                    queued_at=now,
                    result_expires_at=now + dt.timedelta(days=1),
                )
                session.add(tracker)
                session.flush()
                if notify:
                    session.add(
                        Notification(
                            tracker_id=tracker.id, notifier="email", recipient="a@example.com"
                        )
                    )
            made.append(job.id)
        return made


def test_jobs_screen_statements_do_not_grow_with_jobs_or_runs(runtime, app, alice):
    sign_in(app, alice.email)
    fill(runtime, alice.id, jobs=3, runs=2)
    app.get("/jobs")  # warm: the first request may load things once per process
    with counting(runtime) as few:
        small = app.get("/jobs")
    fill(runtime, alice.id, jobs=40, runs=12)
    with counting(runtime) as many:
        big = app.get("/jobs")
    assert len(many) <= JOBS_SCREEN_MAX, many
    assert len(many) == len(few), (few, many)
    # 25 jobs a page: the first page has a link to the next, the latest results are there.
    assert small.html.select(".jobs-table tbody tr").__len__() == 3
    assert len(big.html.select(".jobs-table tbody tr")) == 25
    assert big.html.select_one('a[rel="next"]') is not None
    assert "CSV" in big.html.select_one(".jobs-table tbody tr").text
    with counting(runtime) as second:
        page2 = app.get(big.html.select_one('a[rel="next"]')["href"])
    assert len(second) <= JOBS_SCREEN_MAX, second
    assert len(page2.html.select(".jobs-table tbody tr")) == 43 - 25
    assert page2.html.select_one('a[rel="prev"]') is not None
    assert page2.html.select_one('a[rel="next"]') is None


def test_runs_api_statements_do_not_grow_with_runs(runtime, app, alice):
    small_job, big_job = fill(runtime, alice.id, jobs=1, runs=2) + fill(
        runtime, alice.id, jobs=1, runs=60
    )
    app.get(f"/api/v1/jobs/{small_job}/runs", headers=alice.auth)
    with counting(runtime) as few:
        small = app.get(f"/api/v1/jobs/{small_job}/runs", headers=alice.auth).json
    with counting(runtime) as many:
        big = app.get(f"/api/v1/jobs/{big_job}/runs", headers=alice.auth).json
    assert len(many) <= RUNS_API_MAX, many
    assert len(many) == len(few), (few, many)
    assert len(small["runs"]) == 2 and len(big["runs"]) == 50
    assert all(run["notifications"][0]["recipient"] == "a@example.com" for run in big["runs"])
    assert not any(re.search(r"\bnotifications\b", s) and " IN " not in s for s in many[1:])


def test_jobs_api_statements_do_not_grow_with_jobs(runtime, app, alice):
    fill(runtime, alice.id, jobs=2, runs=1)
    app.get("/api/v1/jobs", headers=alice.auth)
    with counting(runtime) as few:
        app.get("/api/v1/jobs", headers=alice.auth)
    fill(runtime, alice.id, jobs=30, runs=1)
    with counting(runtime) as many:
        listed = app.get("/api/v1/jobs", headers=alice.auth).json["jobs"]
    assert len(listed) == 32
    assert len(many) <= JOBS_API_MAX, many
    assert len(many) == len(few), (few, many)


def test_latest_results_matches_latest_result_per_job(runtime, alice):
    job_ids = fill(runtime, alice.id, jobs=4, runs=7, notify=False)
    with session_scope(runtime.session_factory) as session:
        # The newest run of the first job failed; a job without runs has no entry.
        newest = Tracker(job_id=job_ids[0], status=TrackerStatus.FAILED.value, queued_at=utcnow())
        session.add(newest)
    fill(runtime, alice.id, jobs=1, runs=0)
    with session_scope(runtime.session_factory) as session:
        found = trackers.latest_results(session, None, [*job_ids, 999_999])
        assert set(found) == set(job_ids)
        for job_id in job_ids:
            assert found[job_id].valid.id == trackers.latest_result(session, None, job_id).id
        assert schedules.list_for_jobs(session, None, job_ids[:2]).keys() == set(job_ids[:2])


def test_latest_results_leaves_out_jobs_the_actor_cannot_see(runtime, alice):
    bob = make_user(runtime, "bob@example.com")
    mine = fill(runtime, alice.id, jobs=1, runs=1, notify=False)
    theirs = fill(runtime, bob.id, jobs=1, runs=1, notify=False)
    with session_scope(runtime.session_factory) as session:
        user = session.get(User, alice.id)
        assert set(trackers.latest_results(session, user, mine + theirs)) == set(mine)
        assert schedules.list_for_jobs(session, user, theirs) == {theirs[0]: []}
        assert len(schedules.list_for_jobs(session, user, mine)[mine[0]]) == 1
