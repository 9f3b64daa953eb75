"""A run end to end through the runtime: real databases in, every format out, scrubbed.

These go through ``execute_tracker`` and the service layer exactly as the worker does, with
every built-in plugin loaded from the entry-point group.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time

import attrs
import openpyxl
import psycopg2
import pymysql
import pytest
from sqlalchemy import text

from dancecat_core.models import Connection, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.services import connections, jobs, probes, trackers
from dancecat_core.services.connections import ConnectionInput
from dancecat_core.services.jobs import JobInput

TRACKS_SQL = {
    "sqlite": "SELECT TrackId, Name, Composer, UnitPrice FROM Track ORDER BY TrackId",
    "postgresql": "SELECT track_id, name, composer, unit_price FROM track ORDER BY track_id",
    "mysql": "SELECT TrackId, Name, Composer, UnitPrice FROM Track ORDER BY TrackId",
}


def add_job(runtime, data: ConnectionInput, sql: str, timeout=None) -> int:
    with runtime.session_factory() as session:
        connection = connections.create(runtime, session, None, data)
        job = jobs.create(
            runtime,
            session,
            None,
            JobInput(name="job", connection_id=connection.id, query=sql, timeout_seconds=timeout),
        )
        session.commit()
        return job.id


def run(runtime, job_id: int) -> Tracker:
    with runtime.session_factory() as session:
        tracker = jobs.queue_run(session, None, job_id)
        session.commit()
        tracker_id = tracker.id
    execute_tracker(runtime, tracker_id)
    with runtime.session_factory() as session:
        return session.get(Tracker, tracker_id)


def download(runtime, tracker: Tracker, fmt: str) -> bytes:
    return b"".join(trackers.export(runtime, tracker, fmt).chunks)


def connection_input(kind: str, facts, **overrides) -> ConnectionInput:
    if kind == "sqlite":
        return ConnectionInput(name=kind, driver="sqlite", database=str(facts), **overrides)
    return ConnectionInput(
        name=kind,
        driver=kind,
        host=facts["host"],
        port=facts["port"],
        database=facts["database"],
        user=facts["user"],
        **overrides,
    )


def source_rows(kind: str, facts) -> list[tuple]:
    sql = TRACKS_SQL[kind]
    if kind == "sqlite":
        with sqlite3.connect(facts) as db:
            return db.execute(sql).fetchall()
    if kind == "postgresql":
        with (
            psycopg2.connect(
                host=facts["host"], port=facts["port"], user=facts["user"], dbname=facts["database"]
            ) as db,
            db.cursor() as cursor,
        ):
            cursor.execute(sql)
            return cursor.fetchall()
    db = pymysql.connect(
        host=facts["host"], port=facts["port"], user=facts["user"], database=facts["database"]
    )
    with db.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    db.close()
    return list(rows)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def chinook(request):
    fixture = {"sqlite": "sqlite_chinook", "postgresql": "pg_chinook", "mysql": "mysql_chinook"}[
        request.param
    ]
    return request.param, request.getfixturevalue(fixture)


@pytest.mark.parametrize("store", ["file", "database"])
def test_chinook_tracks_in_every_format(runtime, chinook, store):
    kind, facts = chinook
    runtime.settings = attrs.evolve(runtime.settings, result_store=store)
    job_id = add_job(runtime, connection_input(kind, facts), TRACKS_SQL[kind])
    tracker = run(runtime, job_id)
    assert tracker.status == TrackerStatus.SUCCESS, tracker.error
    assert tracker.result_store == store
    expected = source_rows(kind, facts)
    assert tracker.row_count == len(expected) == 3503

    rows = list(csv.reader(io.StringIO(download(runtime, tracker, "csv").decode())))
    assert len(rows) == 3504
    assert [r[1] for r in rows[1:]] == [e[1] for e in expected]

    data = json.loads(download(runtime, tracker, "json"))
    assert len(data["header"]) == 4
    assert [[r[0], r[1], r[2]] for r in data["rows"]] == [[e[0], e[1], e[2]] for e in expected]
    assert [str(r[3]) for r in data["rows"]] == [str(e[3]) for e in expected]

    book = openpyxl.load_workbook(io.BytesIO(download(runtime, tracker, "xlsx")), read_only=True)
    sheet = book.worksheets[0]
    values = list(sheet.iter_rows(values_only=True))
    assert len(values) == 3504
    assert [v[0] for v in values[1:]] == [e[0] for e in expected]
    assert [v[2] for v in values[1:]] == [e[2] for e in expected]  # composer, None included


def test_secrets_never_leave_through_any_output(runtime, sqlite_chinook):
    hashed = "$2b$12$" + "x" * 53
    with sqlite3.connect(sqlite_chinook) as db:
        db.execute("CREATE TABLE staff (id INTEGER, login TEXT, password TEXT, notes TEXT)")
        db.execute(
            "INSERT INTO staff VALUES (1, 'ann', 'hunter2', ?)", (f"old hash {hashed} here",)
        )
    job_id = add_job(
        runtime,
        connection_input("sqlite", sqlite_chinook),
        "SELECT id, login, password, password AS p2, notes FROM staff",
    )
    with runtime.session_factory() as session:
        preview = probes.preview(
            runtime,
            session,
            None,
            connection_id=1,
            query="SELECT id, login, password, notes FROM staff",
        )
    assert preview.header == ["id", "login", "notes"]
    assert "hunter2" not in repr(preview.rows) and hashed not in repr(preview.rows)
    assert preview.masked == {"bcrypt hash": 1}
    tracker = run(runtime, job_id)
    assert tracker.status == TrackerStatus.SUCCESS, tracker.error
    meta = tracker.result_meta
    # SQLite names no source column; the tracer finds p2's (dancecat_core.provenance).
    assert [r["column"] for r in meta["removed"]] == ["password", "p2"]
    assert meta["masked"] == {"bcrypt hash": 1}
    for fmt in ("csv", "json", "xlsx"):
        body = download(runtime, tracker, fmt)
        if fmt == "xlsx":
            book = openpyxl.load_workbook(io.BytesIO(body))
            body = repr([list(ws.iter_rows(values_only=True)) for ws in book.worksheets])
        else:
            body = body.decode()
        assert hashed not in body and "$2b$12$" not in body, fmt


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_aliased_password_column_is_removed_on_servers(runtime, kind, request):
    facts = request.getfixturevalue("pg_database" if kind == "postgresql" else "mysql_database")
    statements = [
        "CREATE TABLE staff (id INT, pass_word_hash TEXT, password TEXT)",
        "INSERT INTO staff VALUES (1, 'a', 'hunter2')",
    ]
    if kind == "postgresql":
        with (
            psycopg2.connect(
                host=facts["host"], user=facts["user"], dbname=facts["database"]
            ) as db,
            db.cursor() as cursor,
        ):
            for statement in statements:
                cursor.execute(statement)
    else:
        db = pymysql.connect(
            host=facts["host"], user=facts["user"], database=facts["database"], autocommit=True
        )
        with db.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        db.close()
    job_id = add_job(runtime, connection_input(kind, facts), "SELECT id, password AS p FROM staff")
    tracker = run(runtime, job_id)
    assert tracker.status == TrackerStatus.SUCCESS, tracker.error
    assert download(runtime, tracker, "csv") == b"id\n1\n"


@pytest.mark.parametrize(
    ("case", "sql", "says"),
    [
        ("bad sql", "SELEKT 1", "syntax"),
        ("no such table", "SELECT * FROM nowhere", "nowhere"),
        ("read-only", "DELETE FROM Track", "read-only"),
    ],
)
def test_failures_end_failed_with_a_clear_reason(runtime, sqlite_chinook, case, sql, says):
    job_id = add_job(runtime, connection_input("sqlite", sqlite_chinook), sql)
    tracker = run(runtime, job_id)
    assert tracker.status == TrackerStatus.FAILED
    assert says in tracker.error.lower(), tracker.error
    assert "Traceback" not in tracker.error
    with sqlite3.connect(sqlite_chinook) as db:
        assert db.execute("SELECT COUNT(*) FROM Track").fetchone()[0] == 3503


def test_unreachable_host_and_wrong_password_fail_within_the_timeout(runtime, pg_server):
    job_id = add_job(
        runtime,
        ConnectionInput(
            name="nowhere",
            driver="postgresql",
            host="127.0.0.1",
            port=1,
            database="x",
            user="u",
            password="pw-unreachable-123",
        ),
        "SELECT 1",
    )
    clock = time.monotonic()
    tracker = run(runtime, job_id)
    assert tracker.status == TrackerStatus.FAILED
    assert time.monotonic() - clock < runtime.settings.connect_timeout + 5
    assert "pw-unreachable-123" not in tracker.error


def test_unknown_driver_fails_the_run(runtime, sqlite_chinook):
    job_id = add_job(runtime, connection_input("sqlite", sqlite_chinook), "SELECT 1")
    with runtime.session_factory() as session:
        session.execute(text("UPDATE connections SET driver = 'oracle9'"))
        session.commit()
    tracker = run(runtime, job_id)
    assert tracker.status == TrackerStatus.FAILED
    assert "unknown driver 'oracle9'" in tracker.error


def test_deleted_connection_fails_queued_runs_but_keeps_old_results(runtime, sqlite_chinook):
    job_id = add_job(runtime, connection_input("sqlite", sqlite_chinook), "SELECT 1 AS one")
    done = run(runtime, job_id)
    with runtime.session_factory() as session:
        queued = jobs.queue_run(session, None, job_id)
        session.commit()
        connections.delete(session, None, session.get(Connection, 1).id)
        session.commit()
    outcome = execute_tracker(runtime, queued.id)
    assert outcome.status == TrackerStatus.FAILED
    assert outcome.error == "the job's connection was deleted"
    assert download(runtime, done, "csv") == b"one\n1\n"


def test_a_million_rows_stream_in_bounded_memory(tmp_path):
    """Peak RSS of a real `dancecat job run` at 1,000,000 rows vs 10 rows: growth < 100 MB."""
    home = tmp_path / "home"
    env = {
        **os.environ,
        "DANCECAT_HOME": str(home),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
    }

    def dancecat(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "dancecat_core.console", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def peak_rss_kib(*args: str) -> int:
        code = (
            "import resource, subprocess, sys; "
            "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, sys.executable, "-m", "dancecat_core.console", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    dancecat("init")
    db_file = tmp_path / "numbers.sqlite"
    sqlite3.connect(db_file).close()
    dancecat("connection", "add", "numbers", "--driver", "sqlite", "--database", str(db_file))
    series = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) "
        "SELECT i, i * 2.5 AS half, 'row number ' || i AS label, "
        "date('2020-01-01', '+' || (i % 3650) || ' days') AS day FROM n"
    )
    dancecat("job", "add", "small", "--connection", "numbers", "--sql", series.format(10))
    dancecat("job", "add", "big", "--connection", "numbers", "--sql", series.format(1_000_000))
    small = peak_rss_kib("job", "run", "small")
    clock = time.monotonic()
    big = peak_rss_kib("job", "run", "big")
    elapsed = time.monotonic() - clock
    tracker = dancecat("job", "run", "small").split()[1].rstrip(":")
    assert tracker
    growth_mb = (big - small) / 1024
    print(
        f"\n1M-row SQLite run: {elapsed:.1f} s, peak RSS {big / 1024:.0f} MB "
        f"(10-row run {small / 1024:.0f} MB, growth {growth_mb:.0f} MB)"
    )
    assert growth_mb < 100
