"""A worker killed mid-run: known dead at once on its own machine, its read-only runs run
again (RUN_RETRIES), the others failed with the reason; a worker that was only stalled
cannot finish a run that was given to another attempt.

Real ``dancecat worker`` processes, killed with SIGKILL (no handler runs, as with the OOM
killer); the survivors are consumers on the same machine.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import update
from test_worker import App

from dancecat_core import db, lifecycle, tasks, worker_processes
from dancecat_core.models import Connection, Job, Tracker, TrackerStatus
from dancecat_core.resultstore import ResultMeta
from dancecat_core.worker_processes import WorkerProcess

# A few seconds of SQLite's CPU: long enough to be killed in, short enough to run again.
SLOW_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 8000000) "
    "SELECT count(*) AS n FROM c"
)
# Far longer than the test: anything resolved is resolved by the dead-process check.
STALE_SECONDS = 600


@pytest.fixture
def make_app(tmp_path, sqlite_chinook):
    apps: list[App] = []

    def make(**env: object) -> App:
        app = App(tmp_path / str(len(apps)), sqlite_chinook, **env)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def _job(app: App, sql: str, *, read_only: bool) -> int:
    with db.session_scope(app.runtime.session_factory) as session:
        connection = Connection(
            name=f"chinook-{read_only}",
            driver="sqlite",
            database=str(app.chinook),
            read_only=read_only,
        )
        job = Job(name=f"job-{read_only}-{time.monotonic_ns()}", connection=connection, query=sql)
        session.add_all([connection, job])
        session.flush()
        return job.id


def _started_consumer(app: App, workers: int, queue: str | None = None) -> subprocess.Popen:
    """A consumer, started; on a queue of its own when ``queue`` is given (same app
    database: it sees the same trackers but takes none of the other queue's runs)."""
    before = app.logs().count(" threads on queue ")
    env = app.env
    if queue is not None:
        app.env = {**env, "DANCECAT_HUEY_NAME": queue}
    try:
        process = app.worker(workers=workers)
    finally:
        app.env = env
    app.wait("the consumer to start", lambda: app.logs().count(" threads on queue ") > before)
    time.sleep(1)  # past its start-up sweep
    return process


def _kill(process: subprocess.Popen) -> float:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()  # reaped, as systemd or a shell would
    return time.monotonic()


def test_killed_worker_read_only_run_again_other_failed_within_seconds(make_app):
    app = make_app(WORKER_STALE_SECONDS=STALE_SECONDS)
    read_only = app.queue_run(_job(app, SLOW_SQL, read_only=True))
    writable = app.queue_run(_job(app, SLOW_SQL, read_only=False))
    # Already running on the same machine, on another queue: the victim gets both runs.
    survivor = _started_consumer(app, workers=2, queue=f"{app.settings.huey_name}-survivor")
    victim = _started_consumer(app, workers=2)
    for tracker_id in (read_only, writable):
        tasks.enqueue_run(tracker_id)
    app.wait(
        "both runs to start",
        lambda: all(app.tracker(t).status == TrackerStatus.RUNNING for t in (read_only, writable)),
    )
    first = WorkerProcess.from_text(app.tracker(read_only).worker_process)
    assert first is not None and first.pid == victim.pid
    killed_at = _kill(victim)

    def settled() -> bool:
        return app.tracker(read_only).attempts == 2 and app.tracker(writable).status in (
            TrackerStatus.FAILED,
        )

    app.wait("the survivor to settle both runs", settled, timeout=30)
    resolved_after = time.monotonic() - killed_at
    app.wait(
        "the run again",
        lambda: app.tracker(read_only).status == TrackerStatus.SUCCESS,
        timeout=90,
    )

    again = app.tracker(read_only)
    assert again.attempts == 2 and again.row_count == 1, (again.status, again.error)
    assert again.note.startswith(
        f"attempt 1: the worker running it stopped (process {victim.pid} on "
    ), again.note
    assert again.note.endswith("run again (a query on a read-only connection; RUN_RETRIES=1)")
    second = WorkerProcess.from_text(again.worker_process)
    assert second is not None and second.pid == survivor.pid
    failed = app.tracker(writable)
    assert failed.error == (
        f"the worker running it stopped (process {victim.pid} on {first.host} ended); not run "
        "again: its connection is not read-only, and its statement may have run"
    )
    assert failed.attempts == 1 and failed.note is None
    # Known from the process, not the heartbeat: a check every 2 s, not 600 s of silence.
    assert resolved_after < 10, resolved_after
    print(f"\nSIGKILL to both runs settled by a live consumer: {resolved_after:.1f} s")


def test_restarted_worker_settles_its_dead_runs_at_start_and_retries_run_out(make_app):
    app = make_app(WORKER_STALE_SECONDS=STALE_SECONDS, RUN_RETRIES=0)
    tracker_id = app.queue_run(_job(app, SLOW_SQL, read_only=True))
    victim = _started_consumer(app, workers=1)
    tasks.enqueue_run(tracker_id)
    app.wait("the run to start", lambda: app.tracker(tracker_id).status == TrackerStatus.RUNNING)
    killed_at = _kill(victim)
    app.worker(workers=1)  # as systemd's Restart=always would
    app.wait("the restart's sweep", lambda: app.tracker(tracker_id).status != "Running")
    resolved_after = time.monotonic() - killed_at
    tracker = app.tracker(tracker_id)
    assert tracker.status == TrackerStatus.FAILED
    assert tracker.error.endswith("; not run again: it was started 1 times (RUN_RETRIES=0)")
    assert resolved_after < 15, resolved_after  # a consumer's start, then its first sweep
    print(f"\nSIGKILL to settled by the restarted consumer: {resolved_after:.1f} s")


def test_a_stalled_worker_cannot_finish_a_run_given_to_another_attempt(runtime, sqlite_chinook):
    """The heartbeat path (another machine, or no /proc): the run is queued again; when
    the old attempt comes back its finish is refused, whatever the new attempt does."""
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(name="c", driver="sqlite", database=str(sqlite_chinook))
        job = Job(name="j", connection=connection, query="SELECT 1")
        tracker = Tracker(job=job)
        session.add_all([connection, job, tracker])
        session.flush()
        tracker_id = tracker.id
    old = lifecycle.claim(runtime, tracker_id)
    assert isinstance(old, lifecycle.ClaimedRun) and old.attempt == 1
    elsewhere = WorkerProcess("other-host", "another-boot", "pid:[1]", 4242, 1)
    with db.session_scope(runtime.session_factory) as session:
        session.execute(
            update(Tracker)
            .where(Tracker.id == tracker_id)
            .values(worker_process=elsewhere.to_text())
        )
    assert lifecycle.sweep_running(runtime).changed == 0  # alive as far as we can tell
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=runtime.settings.worker_stale_seconds)
    swept = lifecycle.sweep_running(runtime, now=later + dt.timedelta(seconds=1))
    assert swept.retried == (tracker_id,)
    new = lifecycle.claim(runtime, tracker_id)
    assert isinstance(new, lifecycle.ClaimedRun) and new.attempt == 2
    meta = ResultMeta(columns=(), row_count=1)
    late = lifecycle.succeed(runtime, old, store="file", key="k", meta=meta, size=1, duration_ms=1)
    assert late.status == TrackerStatus.FAILED and late.error == "declared dead"
    assert lifecycle.fail(runtime, old, "boom", 1).recipients is None
    done = lifecycle.succeed(runtime, new, store="file", key="k", meta=meta, size=1, duration_ms=1)
    assert done.status == TrackerStatus.SUCCESS
    with runtime.session_factory() as session:
        tracker = session.get(Tracker, tracker_id)
        assert (tracker.status, tracker.attempts) == ("Success", 2)
        assert "no heartbeat since" in tracker.note and "from " in tracker.note


def test_worker_process_is_dead_only_when_this_machine_can_tell():
    me = worker_processes.current()
    assert me is not None and me.pid == os.getpid() and not worker_processes.is_dead(me)
    assert WorkerProcess.from_text(me.to_text()) == me
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = worker_processes._process(child.pid)
        assert alive is not None and not worker_processes.is_dead(alive)
        # The same pid started at another moment is another process.
        reused = WorkerProcess(alive.host, alive.boot_id, alive.pid_namespace, child.pid, 1)
        assert worker_processes.is_dead(reused)
        child.kill()
        child.wait()
        assert worker_processes.is_dead(alive)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # Another boot, another pid namespace: cannot tell, so not dead.
    for other in (
        WorkerProcess("h", "another-boot", me.pid_namespace, 999999, 1),
        WorkerProcess("h", me.boot_id, "pid:[1]", 999999, 1),
    ):
        assert not worker_processes.is_dead(other)
    assert WorkerProcess.from_text("host:123:456") is None
