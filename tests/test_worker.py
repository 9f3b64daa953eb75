"""Real consumer processes on both queue backends: runs, redelivery, lateness (a worker
killed with SIGKILL: tests/test_worker_deaths.py)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dancecat_core import db, migrations, tasks
from dancecat_core.models import Connection, Job, Schedule, Tracker, TrackerStatus
from dancecat_core.runtime import build_runtime
from dancecat_core.services import jobs as job_service
from dancecat_core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
UTC = dt.UTC
SLOW_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) "
    "SELECT count(*) AS n FROM c"
)


class App:
    """A DanceCat home (SQLite app database) plus the environment its processes share."""

    def __init__(self, tmp_path: Path, chinook: Path, **env: object):
        self.env = {
            **os.environ,
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(chinook.parent),
            "DANCECAT_HUEY_NAME": f"dc-test-{uuid.uuid4().hex[:10]}",
            "DANCECAT_FREQUENCY_INTERVAL_SECONDS": "2",
            **{f"DANCECAT_{k}": str(v) for k, v in env.items()},
        }
        self.env.pop("DANCECAT_CONFIG", None)
        self.settings = load_settings(environ=self.env)
        self.runtime = build_runtime(self.settings)
        migrations.upgrade(self.runtime.engine)
        tasks.configure(runtime=self.runtime)
        self.chinook = chinook
        self.processes: list[subprocess.Popen] = []

    def job(self, sql: str = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 5") -> int:
        with db.session_scope(self.runtime.session_factory) as session:
            connection = Connection(name="chinook", driver="sqlite", database=str(self.chinook))
            job = Job(name=f"job-{uuid.uuid4().hex[:6]}", connection=connection, query=sql)
            session.add_all([connection, job])
            session.flush()
            return job.id

    def queue_run(self, job_id: int) -> int:
        with db.session_scope(self.runtime.session_factory) as session:
            return job_service.queue_run(session, None, job_id).id

    def start(self, *command: str) -> subprocess.Popen:
        log = open(self.settings.home / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            command,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes.append(process)
        return process

    def worker(self, workers: int = 2) -> subprocess.Popen:
        return self.start(str(BIN / "dancecat"), "worker", "--workers", str(workers))

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.settings.home.glob("worker-*.log"))
        )

    def tracker(self, tracker_id: int) -> Tracker:
        with self.runtime.session_factory() as session:
            return session.get(Tracker, tracker_id)

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n--- worker logs ---\n{self.logs()}")

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        try:
            tasks.huey.storage.flush_queue()
            tasks.huey.storage.flush_schedule()
        finally:
            tasks.configure(None)
            self.runtime.engine.dispose()


@pytest.fixture
def make_app(tmp_path, sqlite_chinook) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def make(**env: object) -> App:
        app = App(tmp_path / str(len(apps)), sqlite_chinook, **env)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.mark.parametrize(
    ("backend", "consumer"),
    [("sqlite", "dancecat"), ("redis", "dancecat"), ("sqlite", "huey_consumer")],
)
def test_background_run_reaches_success(request, make_app, backend, consumer):
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    app = make_app(**env)
    job_id = app.job()
    with db.session_scope(app.runtime.session_factory) as session:
        name = session.get(Job, job_id).name
    queued = subprocess.run(
        [str(BIN / "dancecat"), "job", "run", name, "--background"],
        env=app.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    tracker_id = int(queued.stdout.split()[1])
    assert queued.stdout.strip() == f"run {tracker_id} queued"
    assert app.tracker(tracker_id).status == TrackerStatus.QUEUED
    if consumer == "dancecat":
        app.worker()
    else:
        app.start(str(BIN / "huey_consumer"), "dancecat_core.tasks.huey", "-w", "2")
    app.wait("Success", lambda: app.tracker(tracker_id).status == TrackerStatus.SUCCESS)
    tracker = app.tracker(tracker_id)
    assert tracker.row_count == 5 and tracker.duration_ms is not None and tracker.worker


def test_redelivered_run_executes_once(make_app):
    app = make_app()
    tracker_id = app.queue_run(app.job())
    for _ in range(3):  # the queue delivers the same run three times
        tasks.enqueue_run(tracker_id)
    app.worker(workers=3)
    app.wait("Success", lambda: app.tracker(tracker_id).status == TrackerStatus.SUCCESS)
    app.wait("all three deliveries", lambda: app.logs().count(f"tracker {tracker_id}:") >= 3)
    time.sleep(0.5)
    logs = app.logs()
    assert logs.count(f"tracker {tracker_id}: running job") == 1, logs
    assert (
        logs.count(f"tracker {tracker_id}: already Success")
        + logs.count(f"tracker {tracker_id}: claimed by another worker")
        + logs.count(f"tracker {tracker_id}: already Running")
        == 2
    ), logs


@pytest.mark.timeout(180)
def test_start_lateness_of_100_due_schedules_two_consumers_on_redis(make_app, redis_url):
    app = make_app(REDIS_URL=redis_url)
    job_id = app.job()
    due = (dt.datetime.now(UTC) + dt.timedelta(seconds=12)).replace(microsecond=0)
    with db.session_scope(app.runtime.session_factory) as session:
        for _ in range(100):
            session.add(
                Schedule(
                    job_id=job_id,
                    type="once",
                    start_local=due.replace(tzinfo=None),
                    timezone="UTC",
                    next_run_at=due,
                )
            )
    app.worker(workers=4)
    app.worker(workers=4)

    def all_done() -> bool:
        with app.runtime.session_factory() as session:
            statuses = session.scalars(select(Tracker.status)).all()
        return len(statuses) == 100 and all(s == TrackerStatus.SUCCESS for s in statuses)

    app.wait("100 scheduled runs", all_done, timeout=60)
    with app.runtime.session_factory() as session:
        rows = session.execute(select(Tracker.due_at, Tracker.started_at, Tracker.worker)).all()
    lateness = sorted((started - due_at).total_seconds() for due_at, started, _ in rows)
    consumers = {worker.split(":")[1] for _, _, worker in rows}
    median, worst = statistics.median(lateness), max(lateness)
    print(
        f"\nstart lateness for 100 due schedules, 2 consumers on Redis: "
        f"median {median:.3f} s, max {worst:.3f} s, min {lateness[0]:.3f} s; "
        f"runs per consumer process: {len(consumers)} processes"
    )
    assert lateness[0] >= 0, "a run started before its due time"
    assert median < 3 and worst < 10
    assert len(consumers) == 2
