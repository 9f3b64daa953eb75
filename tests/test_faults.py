"""Faults with real processes and real services: the app database restarts, Redis restarts,
the queried database drops the run's connection, the result disk fills up or turns
read-only, a consumer gets SIGTERM.

The machine's shared PostgreSQL, MariaDB and Redis are never stopped (other test runs use
them): the app database and Redis that get restarted here are private instances on free
ports, started and thrown away by the fixtures. Only killing a *query's* backend happens
on the shared servers, and only to a connection this test opened.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pymysql
import pytest
import redis
import requests
from private_services import PrivatePostgres, PrivateRedis
from sqlalchemy import select, update
from test_web_helpers import free_port, make_app, make_user
from test_worker import BIN, ROOT
from test_worker import App as WorkerApp

from dancecat_core import db, migrations, tasks
from dancecat_core.models import Job, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.services import connections, jobs
from dancecat_core.services.connections import ConnectionInput
from dancecat_core.services.jobs import JobInput
from dancecat_core.settings import load_settings

FINISHED = {TrackerStatus.SUCCESS, TrackerStatus.FAILED}


def cte(n: int) -> str:
    """A SQLite query that counts to ``n`` (about 0.3-0.6 s per million here)."""
    return (
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
        "SELECT count(*) AS n FROM c"
    )


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30, logs=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # a check may hit the database while it is down
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def statuses(runtime, ids: list[int]) -> dict[int, Tracker]:
    with runtime.session_factory() as session:
        rows = session.scalars(select(Tracker).where(Tracker.id.in_(ids))).all()
        return {t.id: t for t in rows}


def runs_per_tracker(logs: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for match in re.finditer(r"tracker (\d+): running job", logs):
        tracker_id = int(match.group(1))
        counts[tracker_id] = counts.get(tracker_id, 0) + 1
    return counts


# -- private services ------------------------------------------------------------------


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    yield cluster
    cluster.close()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.close()


@pytest.fixture
def make_worker_app(tmp_path, sqlite_chinook) -> Iterator[Callable[..., WorkerApp]]:
    apps: list[WorkerApp] = []

    def make(**env: object) -> WorkerApp:
        app = WorkerApp(tmp_path / f"app{len(apps)}", sqlite_chinook, **env)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


# -- the app database restarts -----------------------------------------------------------


def test_app_database_restart_loses_no_run_and_the_web_app_answers_503_then_recovers(
    private_pg, make_worker_app
):
    app = make_worker_app(
        DATABASE_URL=private_pg.url, WORKER_STALE_SECONDS=30, EMBEDDED_WORKER="false"
    )
    member = make_user(app.runtime, "ops@example.com", admin=True)  # sees ownerless jobs
    job_id = app.job(cte(4_000_000))
    ids = [app.queue_run(job_id) for _ in range(8)]
    for tracker_id in ids:
        tasks.enqueue_run(tracker_id)
    app.worker(workers=2)
    port = free_port()
    app.start(str(BIN / "dancecat"), "serve", "--port", str(port), "--threads", "4")
    base = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": f"Bearer {member.token}"}
    wait_for("the web app", lambda: requests.get(f"{base}/me", headers=headers).ok, 30, app.logs)
    wait_for(
        "a run in progress",
        lambda: any(t.status == TrackerStatus.RUNNING for t in statuses(app.runtime, ids).values()),
        30,
        app.logs,
    )
    app.runtime.engine.dispose()

    private_pg.stop("fast")  # terminates every connection, like a restart or failover
    outage = []
    # Down for longer than a run (8 s), so runs finish while it is down and their final
    # status change must wait; at most 20 s even on a slow machine.
    down_since = time.monotonic()
    while time.monotonic() - down_since < 8 or (
        "the app database is unavailable" not in app.logs() and time.monotonic() - down_since < 20
    ):
        response = requests.get(f"{base}/jobs", headers=headers, timeout=10)
        outage.append(response.status_code)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "unavailable"
        assert response.headers["Retry-After"]
        time.sleep(0.5)
    page = requests.get(f"http://127.0.0.1:{port}/jobs", headers=headers, timeout=10)
    assert page.status_code == 503 and "Traceback" not in page.text
    private_pg.start()

    # The web app recovers by itself: no restart, the same process answers again.
    wait_for("the web app to recover", lambda: requests.get(f"{base}/jobs", headers=headers).ok)
    assert requests.get(f"{base}/jobs/{job_id}/runs", headers=headers).status_code == 200
    # No tracker lost or stuck: each one finishes, Success or Failed with a reason.
    wait_for(
        "every run to finish",
        lambda: all(t.status in FINISHED for t in statuses(app.runtime, ids).values()),
        timeout=120,
        logs=app.logs,
    )
    final = statuses(app.runtime, ids)
    for tracker in final.values():
        assert tracker.status == TrackerStatus.SUCCESS or tracker.error, tracker
    counts = runs_per_tracker(app.logs())
    assert all(counts.get(i, 0) <= 1 for i in ids), counts
    logs = app.logs()
    assert "the app database is unavailable" in logs  # a status change waited it out
    print(
        f"\napp database restart: {len(ids)} runs -> "
        f"{sum(t.status == TrackerStatus.SUCCESS for t in final.values())} Success, "
        f"{sum(t.status == TrackerStatus.FAILED for t in final.values())} Failed; "
        f"web answers during the outage: {outage}"
    )


# -- Redis restarts ------------------------------------------------------------------------


def test_redis_restart_with_runs_queued_none_lost_none_twice(private_redis, make_worker_app):
    app = make_worker_app(REDIS_URL=private_redis.url, WORKER_STALE_SECONDS=3)
    quick = app.job()
    slower = app.job(cte(400_000))
    # 1. Queued with no consumer; Redis dies and comes back empty: the messages are gone.
    lost = [app.queue_run(quick) for _ in range(15)]
    for tracker_id in lost:
        tasks.enqueue_run(tracker_id)
    assert tasks.huey.pending_count() == 15
    private_redis.kill()
    # 2. Runs created while Redis is down: the enqueue after commit fails.
    never_enqueued = [app.queue_run(quick) for _ in range(5)]
    for tracker_id in never_enqueued:
        with pytest.raises(redis.exceptions.ConnectionError):
            tasks.enqueue_run(tracker_id)
    private_redis.start()
    tasks.configure(runtime=app.runtime)
    assert tasks.huey.pending_count() == 0
    # 3. Consumers running through a second restart with messages still queued.
    app.worker(workers=2)
    app.worker(workers=2)
    busy = [app.queue_run(slower) for _ in range(30)]
    for tracker_id in busy:
        tasks.enqueue_run(tracker_id)
    wait_for(
        "some of the busy runs to finish",
        lambda: sum(t.status in FINISHED for t in statuses(app.runtime, busy).values()) >= 3,
        60,
        app.logs,
    )
    private_redis.kill()
    time.sleep(1.5)
    private_redis.start()
    tasks.configure(runtime=app.runtime)

    everything = lost + never_enqueued + busy
    wait_for(
        "every run to succeed",
        lambda: all(
            t.status == TrackerStatus.SUCCESS for t in statuses(app.runtime, everything).values()
        ),
        timeout=120,
        logs=app.logs,
    )
    time.sleep(4)  # any redelivered duplicate lands by now and must do nothing
    counts = runs_per_tracker(app.logs())
    assert {i: counts.get(i, 0) for i in everything} == {i: 1 for i in everything}
    assert all(
        t.status == TrackerStatus.SUCCESS for t in statuses(app.runtime, everything).values()
    )
    requeued = len(set(re.findall(r"tracker (\d+): Queued but not on the queue", app.logs())))
    print(f"\nredis restarts: {len(everything)} runs, each ran once; {requeued} re-enqueued")


# -- the queried database drops the run ---------------------------------------------------


def _connection_and_job(runtime, kind: str, facts: dict, sql: str, password: str) -> int:
    with db.session_scope(runtime.session_factory) as session:
        connection = connections.create(
            runtime,
            session,
            None,
            ConnectionInput(
                name=f"{kind}-{uuid.uuid4().hex[:6]}",
                driver=kind,
                host=facts["host"],
                port=facts["port"],
                database=facts["database"],
                user=facts["user"],
                password=password,
            ),
        )
        job = jobs.create(
            runtime,
            session,
            None,
            JobInput(
                name=f"job-{uuid.uuid4().hex[:6]}",
                connection_id=connection.id,
                query=sql,
                timeout_seconds=60,
            ),
        )
        return job.id


def _kill_backend(kind: str, facts: dict, marker: str) -> bool:
    if kind == "postgresql":
        with (
            psycopg2.connect(
                host=facts["host"], port=facts["port"], user=facts["user"], dbname="postgres"
            ) as admin,
            admin.cursor() as cursor,
        ):
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND query LIKE %s AND pid <> pg_backend_pid()",
                (facts["database"], f"%{marker}%"),
            )
            return bool(cursor.fetchall())
    admin = pymysql.connect(host=facts["host"], port=facts["port"], user=facts["user"])
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = %s AND info LIKE %s AND id <> CONNECTION_ID()",
                (facts["database"], f"%{marker}%"),
            )
            ids = [row[0] for row in cursor.fetchall()]
            for backend in ids:
                cursor.execute(f"KILL CONNECTION {int(backend)}")
            return bool(ids)
    finally:
        admin.close()


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_queried_database_drops_the_run_fails_clearly_and_the_consumer_goes_on(
    request, kind, tmp_path
):
    facts = request.getfixturevalue("pg_database" if kind == "postgresql" else "mysql_database")
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        "DANCECAT_HUEY_NAME": f"dc-test-{uuid.uuid4().hex[:10]}",
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    tasks.configure(runtime=runtime)
    # PostgreSQL's trust auth ignores a password, so one is stored (and must never show);
    # the shared MariaDB's root refuses any.
    password = f"Kill-{uuid.uuid4().hex[:12]}" if kind == "postgresql" else None
    marker = f"dc_kill_{uuid.uuid4().hex[:8]}"
    sleep = "pg_sleep(60)" if kind == "postgresql" else "SLEEP(60)"
    doomed_job = _connection_and_job(
        runtime, kind, facts, f"SELECT {sleep} AS {marker}, 1 AS x", password
    )
    next_job = _connection_and_job(runtime, kind, facts, "SELECT 42 AS answer", password)
    with db.session_scope(runtime.session_factory) as session:
        doomed = jobs.queue_run(session, None, doomed_job).id
        following = jobs.queue_run(session, None, next_job).id
    stop = tasks.start_embedded_consumer(workers=1)  # one worker: the next run waits
    try:
        tasks.enqueue_run(doomed)
        tasks.enqueue_run(following)
        wait_for(
            "the query to be running",
            lambda: statuses(runtime, [doomed])[doomed].status == TrackerStatus.RUNNING,
        )
        wait_for("the backend to be killed", lambda: _kill_backend(kind, facts, marker), 20)
        killed_at = time.monotonic()
        wait_for(
            "the killed run to fail",
            lambda: statuses(runtime, [doomed])[doomed].status == TrackerStatus.FAILED,
            timeout=60,
        )
        failed_after = time.monotonic() - killed_at
        wait_for(
            "the next run",
            lambda: statuses(runtime, [following])[following].status == TrackerStatus.SUCCESS,
        )
    finally:
        stop()
        tasks.huey.storage.flush_queue()
        tasks.configure(None)
    error = statuses(runtime, [doomed])[doomed].error
    runtime.engine.dispose()
    assert failed_after < 60, "the run must fail well within its 60 s timeout"
    assert re.search(r"(?i)terminat|lost connection|server closed|gone away|killed", error), error
    assert (password is None or password not in error) and "Traceback" not in error
    print(f"\n{kind}: killed backend -> Failed after {failed_after:.1f} s: {error}")


# -- the result store's disk is full or read-only ---------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 256 KiB tmpfs for RESULT_DIR (root may mount; else the test skips, saying why)."""
    mount_point = tmp_path / "results"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(
            "the kernel refused a tmpfs mount here "
            f"({done.stderr.strip()}); test_result_file_size_limit_fails_the_run covers 'full'"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _store_runtime(tmp_path: Path, result_dir: Path):
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_RESULT_DIR": str(result_dir),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    return runtime


def _sqlite_job(runtime, chinook: Path, sql: str) -> int:
    with db.session_scope(runtime.session_factory) as session:
        connection = connections.create(
            runtime,
            session,
            None,
            ConnectionInput(
                name=f"c{uuid.uuid4().hex[:6]}", driver="sqlite", database=str(chinook)
            ),
        )
        return jobs.create(
            runtime,
            session, None, JobInput(name=f"j{uuid.uuid4().hex[:6]}", connection_id=connection.id,
                                    query=sql)
        ).id  # fmt: skip


def _run_now(runtime, job_id: int) -> Tracker:
    with db.session_scope(runtime.session_factory) as session:
        tracker_id = jobs.queue_run(session, None, job_id).id
    execute_tracker(runtime, tracker_id)
    return statuses(runtime, [tracker_id])[tracker_id]


BIG = "SELECT t.*, t.Name || ' ' || t.Name AS twice FROM Track t ORDER BY TrackId"  # ~600 KB


def test_disk_full_or_read_only_fails_the_run_and_serves_no_half_result(
    tmp_path, small_disk, sqlite_chinook
):
    runtime = _store_runtime(tmp_path, small_disk)
    member = make_user(runtime, "disk@example.com", admin=True)  # the jobs have no owner
    web = make_app(runtime)
    big = _sqlite_job(runtime, sqlite_chinook, BIG)
    small = _sqlite_job(runtime, sqlite_chinook, "SELECT ArtistId, Name FROM Artist LIMIT 3")

    full = _run_now(runtime, big)
    assert full.status == TrackerStatus.FAILED
    assert "No space left on device" in full.error, full.error
    assert list(small_disk.iterdir()) == []  # no partial file left behind
    error = web.get(f"/api/v1/trackers/{full.id}/result.csv", headers=member.auth, status=409)
    assert error.json["error"]["code"] == "conflict"

    ok = _run_now(runtime, small)  # the space came back with the partial file's removal
    assert ok.status == TrackerStatus.SUCCESS, ok.error
    # Fill the disk, then ask for an XLSX that must be rendered into the store: a clear
    # 503, no partial workbook kept to be served later, the CSV still whole.
    filler = small_disk / "filler"
    with open(filler, "wb") as handle, contextlib.suppress(OSError):
        handle.write(b"\0" * (512 * 1024))
    xlsx = web.get(f"/api/v1/trackers/{ok.id}/result.xlsx", headers=member.auth, status=503)
    assert "No space left on device" in xlsx.json["error"]["message"]
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", f"tracker-{ok.id}"]
    csv_body = web.get(f"/api/v1/trackers/{ok.id}/result.csv", headers=member.auth).text
    assert csv_body.splitlines()[0] == "ArtistId,Name" and len(csv_body.splitlines()) == 4
    filler.unlink()
    web.get(f"/api/v1/trackers/{ok.id}/result.xlsx", headers=member.auth, status=200)

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        read_only = _run_now(runtime, small)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert read_only.status == TrackerStatus.FAILED
    assert "Read-only file system" in read_only.error, read_only.error
    assert not any(p.name.startswith(".partial") for p in small_disk.iterdir())
    runtime.engine.dispose()


RLIMIT_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from dancecat_core.runner import execute_tracker
    from dancecat_core.runtime import build_runtime
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    print(execute_tracker(build_runtime(), int(sys.argv[1])).status)
    """
)


def test_result_file_size_limit_fails_the_run(tmp_path, sqlite_chinook, pg_database):
    """'Disk full' without mounting anything: the worker process may write at most
    100 kB per file (RLIMIT_FSIZE), so the store's write fails mid-result. (The app
    database is on PostgreSQL here so that only the result file meets the limit.)"""
    result_dir = tmp_path / "results"
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_RESULT_DIR": str(result_dir),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        "DANCECAT_DATABASE_URL": pg_database["url"],
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    tracker_id = None
    job_id = _sqlite_job(runtime, sqlite_chinook, BIG)
    with db.session_scope(runtime.session_factory) as session:
        tracker_id = jobs.queue_run(session, None, job_id).id
    done = subprocess.run(
        [sys.executable, "-c", RLIMIT_CHILD, str(tracker_id)],
        env={**os.environ, **environ},
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tracker = statuses(runtime, [tracker_id])[tracker_id]
    assert tracker.status == TrackerStatus.FAILED
    assert "File too large" in tracker.error, tracker.error
    assert list(result_dir.iterdir()) == []
    runtime.engine.dispose()


# -- SIGTERM to a consumer ------------------------------------------------------------------


def test_sigterm_lets_a_short_run_finish_then_exits(make_worker_app):
    app = make_worker_app()
    tracker_id = app.queue_run(app.job(cte(3_000_000)))
    tasks.enqueue_run(tracker_id)
    worker = app.start(
        str(BIN / "dancecat"), "worker", "--workers", "1", "--shutdown-timeout", "60"
    )
    app.wait("Running", lambda: app.tracker(tracker_id).status == TrackerStatus.RUNNING)
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, app.logs()
    assert app.tracker(tracker_id).status == TrackerStatus.SUCCESS, app.logs()


def test_sigterm_hands_back_a_long_run_which_another_consumer_finishes(make_worker_app):
    app = make_worker_app()
    job_id = app.job(cte(2_000_000_000))  # would run for many minutes
    tracker_id = app.queue_run(job_id)
    tasks.enqueue_run(tracker_id)
    worker = app.start(str(BIN / "dancecat"), "worker", "--workers", "1", "--shutdown-timeout", "2")
    app.wait("Running", lambda: app.tracker(tracker_id).status == TrackerStatus.RUNNING)
    signalled = time.monotonic()
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, app.logs()
    took = time.monotonic() - signalled
    handed = app.tracker(tracker_id)
    assert handed.status == TrackerStatus.QUEUED, app.logs()
    assert handed.worker is None and handed.started_at is None
    assert "handed back to the queue" in app.logs()
    assert took < 2 + 10, took
    # Another consumer takes it (made quick here so the test ends).
    with db.session_scope(app.runtime.session_factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(query=cte(1000)))
    app.worker(workers=1)
    app.wait("Success", lambda: app.tracker(tracker_id).status == TrackerStatus.SUCCESS)
    assert runs_per_tracker(app.logs())[tracker_id] == 2  # once interrupted, once whole
    print(f"\nSIGTERM with a long run: exited after {took:.1f} s, run handed back and finished")


def test_interrupting_the_embedded_consumer_hands_back(tmp_path, sqlite_chinook):
    """``dancecat serve``'s embedded consumer stops the same way (stop(graceful=True))."""
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        "DANCECAT_HUEY_NAME": f"dc-test-{uuid.uuid4().hex[:10]}",
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    tasks.configure(runtime=runtime)
    job_id = _sqlite_job(runtime, sqlite_chinook, cte(2_000_000_000))
    with db.session_scope(runtime.session_factory) as session:
        tracker_id = jobs.queue_run(session, None, job_id).id
    consumer = tasks.huey.create_consumer(workers=1, worker_type="thread", shutdown_timeout=1)
    consumer.start_embedded()
    try:
        tasks.enqueue_run(tracker_id)
        wait_for(
            "Running",
            lambda: statuses(runtime, [tracker_id])[tracker_id].status == TrackerStatus.RUNNING,
        )
        stopper = threading.Thread(target=consumer.stop, kwargs={"graceful": True})
        stopper.start()
        stopper.join(timeout=20)
        assert not stopper.is_alive()
        assert statuses(runtime, [tracker_id])[tracker_id].status == TrackerStatus.QUEUED
        pending = [(t.name, t.args) for t in tasks.huey.pending()]
        assert ("run_job", (tracker_id,)) in pending  # back on the queue
    finally:
        tasks.huey.storage.flush_queue()
        tasks.configure(None)
        runtime.engine.dispose()
