"""Every way a claim can go, judged the same on each app database.

On PostgreSQL a run that may start is claimed and loaded by one statement whose WHERE
repeats ``lifecycle._refusal``'s judgement in SQL (``_load_and_claim_at_once``); anything
it does not claim is read and judged as everywhere else. So its conditions must never be
wider than the judgement: a run that must not start (waited too long, job or connection
deleted, a schedule type nobody registers, not due yet) must come out exactly as on SQLite,
which has only the judgement. The finish reads its facts (recipients, followers, open
alerts) inside its status change on PostgreSQL, and after it elsewhere: the same facts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dancecat_core import lifecycle
from dancecat_core.db import session_scope
from dancecat_core.lifecycle import ClaimedRun, RunOutcome
from dancecat_core.models import (
    Alert,
    Connection,
    Job,
    JobRecipient,
    Schedule,
    Tracker,
    TrackerStatus,
    utcnow,
)
from dancecat_core.resultstore import ResultMeta
from dancecat_core.runtime import Runtime


@pytest.fixture(params=["runtime", "pg_runtime"])  # SQLite, PostgreSQL
def app_runtime(request) -> Runtime:
    return request.getfixturevalue(request.param)


def _tracker(
    runtime: Runtime,
    chinook,
    *,
    job: dict[str, Any] | None = None,
    connection: dict[str, Any] | None = None,
    schedule: str | None = None,
    conditions: tuple[str | None, ...] = (),
    **tracker: Any,
) -> int:
    with session_scope(runtime.session_factory) as session:
        conn = Connection(name="c", driver="sqlite", database=str(chinook), **(connection or {}))
        the_job = Job(name="j", connection=conn, query="SELECT 1", **(job or {}))
        session.add_all([conn, the_job])
        session.flush()
        for i, condition in enumerate(conditions):
            session.add(
                JobRecipient(
                    job_id=the_job.id, destination=f"r{i}@example.com", condition=condition
                )
            )
        if schedule is not None:
            plan = Schedule(
                job_id=the_job.id,
                type=schedule,
                start_local=dt.datetime(2026, 1, 1, 9, 0),
                timezone="UTC",
            )
            session.add(plan)
            session.flush()
            tracker["schedule_id"] = plan.id
        row = Tracker(job_id=the_job.id, **tracker)
        session.add(row)
        session.flush()
        return row.id


def _stored(runtime: Runtime, tracker_id: int) -> tuple[str, int, str | None]:
    with runtime.session_factory() as session:
        row = session.get(Tracker, tracker_id)
        return row.status, row.attempts, row.worker


LONG_AGO = dt.timedelta(days=30)  # past the default JOB_WORKER_ENQUEUE_TIMEOUT
SOON = dt.timedelta(hours=1)

# name: (tracker set-up, wait_for_due, what the claim says, the tracker's stored status)
CASES: dict[str, tuple[dict[str, Any], bool, tuple[Any, ...], str]] = {
    "ready": ({}, True, ("claimed", 1), "Running"),
    "ready, a second start": ({"attempts": 1}, True, ("claimed", 2), "Running"),
    "a daily schedule's run": ({"schedule": "daily"}, True, ("claimed", 1), "Running"),
    "not due yet, waiting for it": (
        {"due_at": +SOON},
        True,
        ("outcome", TrackerStatus.QUEUED, None, "not_before"),
        "Queued",
    ),
    "not due yet, run now": ({"due_at": +SOON}, False, ("claimed", 1), "Running"),
    "queued long ago, due just now": (
        {"queued_at": -LONG_AGO, "due_at": -dt.timedelta(seconds=5)},
        True,
        ("claimed", 1),
        "Running",
    ),
    "waited past the enqueue timeout": (
        {"queued_at": -LONG_AGO},
        True,
        ("outcome", TrackerStatus.DIED_IN_QUEUE, None),
        "Died in Queue",
    ),
    "due long ago": (
        {"queued_at": -LONG_AGO, "due_at": -LONG_AGO + dt.timedelta(seconds=1)},
        True,
        ("outcome", TrackerStatus.DIED_IN_QUEUE, None),
        "Died in Queue",
    ),
    "job deleted": (
        {"job": {"deleted_at": -SOON}},
        True,
        ("outcome", TrackerStatus.FAILED, "the job was deleted before the run started"),
        "Failed",
    ),
    "connection deleted": (
        {"connection": {"deleted_at": -SOON}},
        True,
        ("outcome", TrackerStatus.FAILED, "the job's connection was deleted"),
        "Failed",
    ),
    "a schedule type nobody registers": (
        {"schedule": "lunar"},
        True,
        ("outcome", TrackerStatus.FAILED, "lunar"),
        "Failed",
    ),
    "running under another worker": (
        {"status": "Running", "worker": "elsewhere:1:1", "attempts": 1},
        True,
        ("outcome", TrackerStatus.RUNNING, None),
        "Running",
    ),
    "already finished": (
        {"status": "Success", "attempts": 1},
        True,
        ("outcome", TrackerStatus.SUCCESS, None),
        "Success",
    ),
}


def _timed(setup: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Relative times (timedeltas) in ``setup`` made absolute, nested ones too."""
    return {
        key: _timed(value, now)
        if isinstance(value, dict)
        else now + value
        if isinstance(value, dt.timedelta)
        else value
        for key, value in setup.items()
    }


@pytest.mark.parametrize("case", list(CASES))
def test_a_claim_is_judged_the_same_everywhere(app_runtime, sqlite_chinook, case):
    setup, wait, says, stored = CASES[case]
    tracker_id = _tracker(app_runtime, sqlite_chinook, **_timed(setup, utcnow()))
    before = _stored(app_runtime, tracker_id)
    got = lifecycle.claim(app_runtime, tracker_id, wait_for_due=wait)
    status, attempts, worker = _stored(app_runtime, tracker_id)
    assert status == stored
    if says[0] == "claimed":
        assert isinstance(got, ClaimedRun), got
        assert got.attempt == says[1] == attempts
        assert worker == lifecycle.worker_name()
        assert got.sql == "SELECT 1"
        return
    assert isinstance(got, RunOutcome), got
    assert got.status == says[1]
    if says[2] is None:
        assert got.error is None
    else:
        assert says[2] in got.error
    assert (got.not_before is not None) == (says[-1] == "not_before")
    if status in ("Queued", "Running", "Success"):
        assert (status, attempts, worker) == before  # untouched


def test_a_missing_tracker_is_said_so(app_runtime):
    got = lifecycle.claim(app_runtime, 987654, wait_for_due=True)
    assert isinstance(got, RunOutcome)
    assert (got.status, got.error) == (TrackerStatus.FAILED, "no such tracker")


def test_a_claim_brings_its_recipients_conditions(app_runtime, sqlite_chinook):
    tracker_id = _tracker(
        app_runtime, sqlite_chinook, conditions=("rows > 10", None, "rows = 0", "rows > 10")
    )
    got = lifecycle.claim(app_runtime, tracker_id)
    assert isinstance(got, ClaimedRun)
    assert got.conditions == ("rows = 0", "rows > 10")


def _succeed(runtime: Runtime, run: ClaimedRun) -> RunOutcome:
    return lifecycle.succeed(
        runtime,
        run,
        store="file",
        key="k",
        meta=ResultMeta(columns=(), row_count=3),
        size=10,
        duration_ms=1,
    )


@pytest.mark.parametrize("followed", [False, True])
@pytest.mark.parametrize("alert", [False, True])
def test_the_finish_reads_its_jobs_facts(app_runtime, sqlite_chinook, followed, alert):
    tracker_id = _tracker(app_runtime, sqlite_chinook, conditions=(None, "rows > 1"))
    with session_scope(app_runtime.session_factory) as session:
        job_id = session.get(Tracker, tracker_id).job_id
        job = session.get(Job, job_id)
        # A deleted follower never counts; a live one does.
        for name, deleted_at in [("gone", utcnow()), *([("next", None)] if followed else [])]:
            session.add(
                Job(
                    name=name,
                    connection_id=job.connection_id,
                    query="SELECT 2",
                    after_job_id=job_id,
                    deleted_at=deleted_at,
                )
            )
        if alert:
            session.add(
                Alert(job_id=job_id, kind="failing", open_key=f"failing:{job_id}", reason="r")
            )
    run = lifecycle.claim(app_runtime, tracker_id)
    assert isinstance(run, ClaimedRun)
    outcome = _succeed(app_runtime, run)
    assert outcome.status == TrackerStatus.SUCCESS
    assert outcome.recipients == ("r0@example.com", "r1@example.com")
    assert outcome.followers is followed
    assert outcome.alerting is alert
    assert outcome.row_count == 3
    assert _stored(app_runtime, tracker_id)[0] == "Success"


def test_a_finish_after_the_sweep_gave_up_is_refused(app_runtime, sqlite_chinook):
    tracker_id = _tracker(app_runtime, sqlite_chinook)
    run = lifecycle.claim(app_runtime, tracker_id)
    assert isinstance(run, ClaimedRun)
    assert lifecycle.set_status(
        app_runtime, tracker_id, TrackerStatus.RUNNING, TrackerStatus.FAILED, error="swept"
    )
    outcome = _succeed(app_runtime, run)
    assert (outcome.status, outcome.error) == (TrackerStatus.FAILED, "declared dead")
    assert outcome.recipients is None
    assert _stored(app_runtime, tracker_id)[0] == "Failed"


def test_a_finish_of_an_older_attempt_is_refused(app_runtime, sqlite_chinook):
    """The run was declared dead, queued again and started anew: the first attempt's
    finish must not count as the second's."""
    tracker_id = _tracker(app_runtime, sqlite_chinook)
    first = lifecycle.claim(app_runtime, tracker_id)
    assert isinstance(first, ClaimedRun)
    assert lifecycle.set_status(
        app_runtime, tracker_id, TrackerStatus.RUNNING, TrackerStatus.QUEUED
    )
    second = lifecycle.claim(app_runtime, tracker_id)
    assert isinstance(second, ClaimedRun) and second.attempt == 2
    assert _succeed(app_runtime, first).status == TrackerStatus.FAILED
    assert _succeed(app_runtime, second).status == TrackerStatus.SUCCESS
