"""The console as scripts use it: every test runs the installed ``dancecat`` command in a
subprocess (one app database for the module; each test makes its own names)."""

from __future__ import annotations

import copy
import datetime as dt
import email
import email.policy
import json
import os
import pty
import select
import socket
import sqlite3
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from dancecat_core.models import (
    Connection,
    Job,
    Notification,
    NotificationStatus,
    Schedule,
    Tracker,
    utcnow,
)
from dancecat_core.runtime import Runtime, build_runtime
from dancecat_core.services import connections, jobs
from dancecat_core.services.connections import ConnectionInput
from dancecat_core.settings import load_settings

DANCECAT = Path(sys.executable).with_name("dancecat")
HEAVY = ("sqlalchemy", "pyramid", "huey", "alembic", "redis", "waitress", "psycopg2", "pymysql")


class Console:
    def __init__(self, home: Path, allowed: Path):
        self.home = home
        self.env = {**os.environ, "DANCECAT_HOME": str(home)}
        for key in [k for k in self.env if k.startswith("DANCECAT_") and k != "DANCECAT_HOME"]:
            del self.env[key]
        # The tests' SQLite files live in the run's temporary folder.
        self.env["DANCECAT_SQLITE_ALLOWED_DIRS"] = str(allowed)

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        assert DANCECAT.exists(), f"the console script is not installed at {DANCECAT}"
        return subprocess.run(
            [str(DANCECAT), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self(*args, stdin=stdin)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert done.stderr == "", (args, done.stderr)
        return done.stdout

    def refused(self, *args: str, says: str, code: int = 2) -> str:
        """The command fails with exactly one line on stderr, containing ``says``."""
        done = self(*args)
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1, (args, done.stderr)
        assert lines[0].startswith("error: ") and says in lines[0], (args, lines[0])
        return lines[0]

    def json(self, *args: str) -> list[dict]:
        data = json.loads(self.ok(*args, "--json"))
        assert isinstance(data, list)
        return data


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Console:
    home = tmp_path_factory.mktemp("console") / "home"
    cli = Console(home, tmp_path_factory.getbasetemp())
    cli.ok("init")
    return cli


@pytest.fixture(scope="module")
def runtime(console: Console) -> Iterator[Runtime]:
    rt = build_runtime(
        load_settings(
            environ={
                "DANCECAT_HOME": str(console.home),
                "DANCECAT_SQLITE_ALLOWED_DIRS": console.env["DANCECAT_SQLITE_ALLOWED_DIRS"],
            }
        )
    )
    yield rt
    rt.engine.dispose()


@pytest.fixture(scope="module")
def data_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "data.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (n INTEGER, label TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"row {i}") for i in range(10)])
    return path


def name(prefix: str = "job") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def conn(console: Console, data_db: Path) -> str:
    """A fresh connection's name."""
    connection = name("conn")
    console.ok("connection", "add", connection, "--driver", "sqlite", "--database", str(data_db))
    return connection


def add_job(console: Console, conn: str, sql: str = "SELECT * FROM t", job: str = "") -> str:
    job = job or name()
    console.ok("job", "add", job, "--connection", conn, "--sql", sql)
    return job


def job_id(console: Console, job: str) -> int:
    return next(j["id"] for j in console.json("job", "list") if j["name"] == job)


# Start-up: the help never imports the heavy libraries, a list not the web/queue/drivers.


def imported(*args: str, env: dict[str, str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(DANCECAT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_help_imports_no_database_web_or_queue_library(console):
    modules = imported("--help", env=console.env)
    assert "argparse" in modules  # the parse is real: importtime saw the imports
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert loaded == []


def test_job_list_imports_no_web_queue_migration_or_driver(console):
    modules = imported("job", "list", env=console.env)
    assert "sqlalchemy.orm" in modules
    heavy = ("pyramid", "huey", "alembic", "redis", "waitress", "psycopg2", "pymysql", "openpyxl")
    heavy += ("jinja2", "ctypes")  # message templates and memmem: only for what uses them
    assert sorted(m for m in modules if m.split(".")[0] in heavy) == []


# Unique names per owner, and look-ups by id or name.


def test_a_second_job_with_the_same_name_is_refused_in_every_spelling(console, conn):
    job = "Top customers " + uuid.uuid4().hex[:6]
    add_job(console, conn, job=job)
    spellings = [
        job,
        job.upper(),
        job.lower(),
        "  " + job + "  ",
        job.replace(" ", "   "),
        job.replace(" ", "\t"),
        # full-width letters and digits are the same name under NFKC
        "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in job),
    ]
    for spelling in spellings:
        console.refused(
            "job", "add", spelling, "--connection", conn, "--sql", "SELECT 1", says="already exists"
        )
    assert [j["name"] for j in console.json("job", "list")].count(job) == 1


def test_names_that_differ_only_in_unicode_form_are_the_same(console, conn):
    composed = unicodedata.normalize("NFC", "Café " + uuid.uuid4().hex[:6])
    add_job(console, conn, job=composed)
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    console.refused(
        "job", "add", decomposed, "--connection", conn, "--sql", "SELECT 1", says="already exists"
    )


def test_rename_onto_a_taken_name_is_refused_and_changes_nothing(console, conn, runtime):
    first, second = add_job(console, conn), add_job(console, conn)
    console.refused("job", "edit", second, "--name", first.upper(), says="already exists")
    with runtime.session_factory() as session:
        assert session.get(Job, job_id(console, second)).name == second


def test_connection_names_are_unique_too(console, conn, data_db):
    console.refused(
        "connection", "add", conn.upper(), "--driver", "sqlite", "--database", str(data_db),
        says="already exists",
    )  # fmt: skip


def test_other_owners_may_use_the_same_name_and_old_duplicates_keep_working(
    console, conn, runtime, data_db
):
    """Per owner: the console (no owner) and a user each have "Report"; a database from
    before the rule holds two of one owner's jobs with one name: editing either keeps
    working, a name look-up is refused with the ids, and id:N reaches each."""
    from dancecat_core.models import User

    shared = name("Report")
    add_job(console, conn, job=shared)
    ours = job_id(console, shared)
    with runtime.session_factory() as session:
        user = User(email=f"{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
        session.add(user)
        session.flush()
        connection = connections.get_by_name(session, None, conn)
        their_conn = connections.create(
            runtime,
            session,
            user,
            ConnectionInput(name=conn, driver="sqlite", database=str(data_db)),
        )  # the same name as ours: another owner's
        theirs = jobs.create(
            runtime,
            session,
            user,
            jobs.JobInput(name=shared, connection_id=their_conn.id, query="SELECT * FROM t"),
        )
        # An old database's duplicate, written as it was before the rule.
        legacy = Job(name=shared, connection_id=connection.id, query="SELECT 2")
        session.add(legacy)
        session.commit()
        theirs_id, legacy_id = theirs.id, legacy.id
    line = console.refused("job", "run", shared, says="3 jobs are named")
    assert f"(ids {ours}, {theirs_id}, {legacy_id})" in line and "id:N" in line
    assert console.ok("job", "run", f"id:{theirs_id}").startswith("run ")
    console.ok("job", "edit", f"id:{legacy_id}", "--sql", "SELECT 3")  # keeps its own name
    with runtime.session_factory() as session:
        assert session.get(Job, legacy_id).query == "SELECT 3"


def test_jobs_and_connections_are_reachable_by_id_and_by_name(console, conn, runtime):
    job = add_job(console, conn, job="2024")  # a name that looks like a number
    number = job_id(console, job)
    by_name = console.ok("job", "run", "2024")
    assert by_name.startswith("run ") and "Success" in by_name
    runs = console.json("runs", f"id:{number}")
    assert runs[0]["job_id"] == number and runs[0]["job"] == "2024"
    conn_id = next(c["id"] for c in console.json("connection", "list") if c["name"] == conn)
    assert console.ok("connection", "test", f"id:{conn_id}").startswith("ok")
    console.ok("job", "edit", f"id:{number}", "--connection", f"id:{conn_id}")
    if number != 2024:
        console.refused("job", "run", "id:2024", says="not found")


@pytest.mark.parametrize(
    "reference", ["id:", "id:abc", "id:0", "id:-1", "id:1.5", "id:\uff11", "id: 1"]
)
def test_malformed_ids_are_refused_in_one_line(console, reference):
    console.refused("job", "run", reference, says="id:N")


def test_a_number_that_is_not_a_name_says_how_to_give_an_id(console):
    console.refused("job", "run", "987654", says="is id:987654")


# runs


# A run in the foreground tells its recipients, like a worker's; --no-notify skips that.


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture
def mailing(console: Console) -> Iterator[tuple[Console, Inbox]]:
    """The console with SMTP set to a real aiosmtpd server on a free port, and its inbox."""
    inbox = Inbox()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    cli = copy.copy(console)
    cli.env = {
        **console.env,
        "DANCECAT_SMTP_HOST": "127.0.0.1",
        "DANCECAT_SMTP_PORT": str(port),
        "DANCECAT_MAIL_SENDER": "reports@dancecat.example",
        "DANCECAT_BASE_URL": "https://dancecat.example",
    }
    yield cli, inbox
    controller.stop()


def run_id(stdout: str) -> int:
    return int(stdout.split(":")[0].removeprefix("run "))


def test_a_foreground_run_mails_its_recipients_and_no_notify_does_not(mailing, conn, runtime):
    cli, inbox = mailing
    job = name()
    cli.ok(
        "job", "add", job, "--connection", conn, "--sql", "SELECT * FROM t",
        "--recipient", "ana@example.com", "--recipient", "bo@example.org",
    )  # fmt: skip
    mailed = run_id(cli.ok("job", "run", job))
    assert sorted(rcpt for rcpts, _ in inbox.messages for rcpt in rcpts) == [
        "ana@example.com",
        "bo@example.org",
    ]
    for _, message in inbox.messages:
        assert f"run {mailed} succeeded" in message["Subject"]
        [part] = list(message.iter_attachments())
        assert part.get_filename() == f"Result_tid_{mailed}.xlsx"
        body = message.get_body(("plain",)).get_content()
        assert f"https://dancecat.example/runs/{mailed}/result.xlsx" in body
    with runtime.session_factory() as session:
        rows = session.query(Notification).filter_by(tracker_id=mailed).all()
    assert sorted(r.recipient for r in rows) == ["ana@example.com", "bo@example.org"]
    assert all(r.status == NotificationStatus.SENT.value for r in rows)

    quiet = run_id(cli.ok("job", "run", job, "--no-notify"))
    assert quiet != mailed and len(inbox.messages) == 2
    with runtime.session_factory() as session:
        assert session.query(Notification).filter_by(tracker_id=quiet).count() == 0
    cli.refused("job", "run", job, "--no-notify", "--background", says="not allowed with")


def test_a_foreground_run_whose_mail_cannot_go_now_leaves_it_to_a_worker(console, conn, runtime):
    """SMTP down: the run still succeeds; each notification is kept pending, with why, and
    put on the queue for a worker's retries, and the console says so in one line."""
    from dancecat_core import tasks

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    cli = copy.copy(console)
    cli.env = {**console.env, "DANCECAT_SMTP_HOST": "127.0.0.1"}
    cli.env["DANCECAT_SMTP_PORT"] = str(closed_port)
    job = name()
    cli.ok("job", "add", job, "--connection", conn, "--sql", "SELECT 1", "--recipient", "a@x.io")
    done = cli("job", "run", job)
    assert done.returncode == 0 and done.stdout.startswith("run ")
    tracker_id = run_id(done.stdout)
    assert done.stderr == (
        f"warning: run {tracker_id}: 1 notification(s) could not be sent now;"
        " a worker will retry them\n"
    )
    with runtime.session_factory() as session:
        [row] = session.query(Notification).filter_by(tracker_id=tracker_id).all()
    assert row.status == NotificationStatus.PENDING.value and "ConnectionRefused" in row.last_error
    tasks.configure(runtime.settings)
    try:
        queued = [(t.name, t.args) for t in tasks.huey.pending()]
    finally:
        tasks.configure(None)
    assert ("deliver_notification", (row.id,)) in queued


def test_runs_lists_ids_and_filters_by_job_status_and_limit(console, conn):
    good, bad = add_job(console, conn), add_job(console, conn, sql="SELECT * FROM missing")
    for _ in range(2):
        console.ok("job", "run", good)
    assert console(*("job", "run", bad)).returncode == 1
    table = console.ok("runs", good).splitlines()
    assert table[0].split("\t") == [
        "id", "job", "status", "queued_at", "started_at", "finished_at", "rows", "error",
        "parameters",
        "delivery",
    ]  # fmt: skip
    assert len(table) == 3 and all(row.split("\t")[1] == good for row in table[1:])
    assert [row.split("\t")[6] for row in table[1:]] == ["10", "10"]
    ids = [int(row.split("\t")[0]) for row in table[1:]]
    assert ids == sorted(ids, reverse=True)
    failed = console.json("runs", bad, "--status", "FAILED")
    assert len(failed) == 1 and failed[0]["status"] == "Failed" and "missing" in failed[0]["error"]
    assert console.json("runs", good, "--status", "failed") == []
    latest = console.json("runs", "--limit", "1")
    assert [r["id"] for r in latest] == [failed[0]["id"]]
    assert set(latest[0]) == {
        "id", "job_id", "job", "status", "queued_at", "started_at", "finished_at", "rows", "error",
        "parameters",
        "delivery",
    }  # fmt: skip
    assert latest[0]["finished_at"].endswith("Z")
    assert console.json("runs", good, "--status", "result_expired") == []
    assert console.json("runs", good, "--status", "Died-in-Queue") == []
    # The id from runs is what export takes.
    assert console.ok("export", str(ids[0])).splitlines() == ["n,label"] + [
        f"{i},row {i}" for i in range(10)
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--limit", "0"), "--limit"),
        (("--limit", "10001"), "--limit"),
        (("--limit", "-3"), "--limit"),
        (("--limit", "ten"), "--limit"),
        (("--status", "done"), "not a status"),
        (("--status", ""), "not a status"),
    ],
)
def test_runs_refuses_bad_filters_in_one_line(console, args, says):
    console.refused("runs", *args, says=says)


# edit and remove


def test_job_edit_changes_only_the_fields_given(console, runtime, data_db):
    other_conn = name("conn")
    console.ok("connection", "add", other_conn, "--driver", "sqlite", "--database", str(data_db))
    first_conn = name("conn")
    console.ok("connection", "add", first_conn, "--driver", "sqlite", "--database", str(data_db))
    job = name()
    console.ok(
        "job", "add", job, "--connection", first_conn, "--sql", "SELECT n FROM t",
        "--timeout", "77", "--recipient", "a@example.com", "--recipient", "b@example.com",
        "--annotation", "keep me", "--shared",
    )  # fmt: skip
    console.ok(
        "schedule", "add", job, "--type", "daily", "--start", "2030-01-01 06:00",
        "--timezone", "Europe/Paris", "--catch-up", "skip",
    )  # fmt: skip
    number = job_id(console, job)

    def state() -> dict:
        with runtime.session_factory() as session:
            row = session.get(Job, number)
            schedules = [
                (s.type, s.timezone, s.catch_up, s.active, s.deleted_at)
                for s in session.query(Schedule).filter_by(job_id=number)
            ]
            return {
                "name": row.name,
                "connection_id": row.connection_id,
                "query": row.query,
                "timeout_seconds": row.timeout_seconds,
                "recipients": sorted(r.destination for r in row.recipients),
                "annotation": row.annotation,
                "shared": row.shared,
                "owner_id": row.owner_id,
                "run_count": row.run_count,
                "schedules": schedules,
            }

    before = state()
    assert before["timeout_seconds"] == 77 and before["shared"] is True
    new_name = name()
    edits = [
        (("--name", new_name), {"name": new_name}),
        (("--connection", other_conn), {"connection_id": None}),
        (("--sql", "SELECT label FROM t"), {"query": "SELECT label FROM t"}),
        (("--timeout", "5"), {"timeout_seconds": 5}),
        (("--no-timeout",), {"timeout_seconds": None}),
        (("--recipient", "c@example.com"), {"recipients": ["c@example.com"]}),
        (("--no-recipients",), {"recipients": []}),
        (("--annotation", "changed"), {"annotation": "changed"}),
        (("--no-shared",), {"shared": False}),
    ]
    for flags, changed in edits:
        console.ok("job", "edit", f"id:{number}", *flags)
        after = state()
        for key, value in changed.items():
            if key == "connection_id":
                assert after[key] != before[key]
            else:
                assert after[key] == value, (flags, key)
        unchanged = {k: v for k, v in before.items() if k not in changed}
        assert {k: after[k] for k in unchanged} == unchanged, flags
        before = after


def test_connection_edit_keeps_password_options_and_every_other_field(console, runtime, data_db):
    conn = name("conn")
    with runtime.session_factory() as session:
        created = connections.create(
            runtime,
            session,
            None,
            ConnectionInput(
                name=conn,
                driver="postgresql",
                host="db.example.com",
                port=6543,
                database="sales",
                user="reader",
                password="s3cret",
                read_only=False,
                shared=True,
                options={"sslmode": "require"},
            ),
        )
        session.commit()
        number = created.id

    def state() -> dict:
        with runtime.session_factory() as session:
            c = session.get(Connection, number)
            return {
                "name": c.name,
                "driver": c.driver,
                "host": c.host,
                "port": c.port,
                "database": c.database,
                "user_name": c.user_name,
                "password": runtime.secret_box.decrypt(c.password_encrypted),
                "read_only": c.read_only,
                "shared": c.shared,
                "options": c.options,
            }

    before = state()
    new_name = name("conn")
    edits = [
        (("--name", new_name), {"name": new_name}),
        (("--host", "10.0.0.7"), {"host": "10.0.0.7"}),
        (("--port", "5433"), {"port": 5433}),
        (("--database", "sales2"), {"database": "sales2"}),
        (("--user", "writer"), {"user_name": "writer"}),
        (("--read-only",), {"read_only": True}),
        (("--no-shared",), {"shared": False}),
    ]
    # A changed target (host, port, database, user) needs the password typed again: the
    # stored one is only ever sent where it was saved for.
    target = {"host", "port", "database", "user_name"}
    console.refused(
        "connection", "edit", f"id:{number}", "--host", "10.0.0.8", says="type the password again"
    )
    assert state() == before
    for flags, changed in edits:
        if target & set(changed):
            flags = (*flags, "--password-stdin")
        console.ok("connection", "edit", f"id:{number}", *flags, stdin="s3cret\n")
        after = state()
        assert {k: after[k] for k in changed} == changed, flags
        assert {k: after[k] for k in before if k not in changed} == {
            k: v for k, v in before.items() if k not in changed
        }, flags
        before = after
    console.ok("connection", "edit", f"id:{number}", "--password-stdin", stdin="n3w\n")
    assert state() == {**before, "password": "n3w"}
    console.refused("connection", "edit", f"id:{number}", "--port", "70000", says="Port")
    console.refused("connection", "edit", f"id:{number}", "--driver", "oracle", says="Driver")
    assert state() == {**before, "password": "n3w"}


def test_remove_refuses_a_connection_jobs_use_and_a_job_with_active_schedules(console, conn):
    job = add_job(console, conn)
    console.ok("job", "run", job)
    line = console.refused("connection", "remove", conn, says="used by 1 job(s)")
    assert job in line and "--force" in line
    assert conn in [c["name"] for c in console.json("connection", "list")]
    console.ok("schedule", "add", job, "--type", "daily", "--start", "2030-01-01 06:00")
    console.refused("job", "remove", job, says="1 active schedule(s)")
    assert console.ok("job", "remove", job, "--force").endswith("removed\n")
    assert job not in [j["name"] for j in console.json("job", "list")]
    assert [r["job"] for r in console.json("runs", "--limit", "1")] == [job]  # runs stay
    console.refused("job", "run", job, says="no job named")
    assert console.ok("connection", "remove", conn).endswith("removed\n")
    assert conn not in [c["name"] for c in console.json("connection", "list")]


def test_remove_with_force_deletes_a_used_connection(console, conn):
    job = add_job(console, conn)
    console.ok("connection", "remove", conn, "--force")
    listed = next(j for j in console.json("job", "list") if j["name"] == job)
    assert listed["connection"].endswith("(deleted)")
    console.refused("job", "run", job, says="connection was deleted")


# Output: header rows, JSON, one-line cells


def test_lists_have_a_header_row_and_json_with_the_same_keys(console, conn):
    job = add_job(console, conn)
    console.ok("schedule", "add", job, "--type", "hourly", "--start", "2030-01-01 06:00")
    for command in (("job", "list"), ("connection", "list"), ("schedule", "list"), ("runs",)):
        header = console.ok(*command).splitlines()[0].split("\t")
        items = console.json(*command)
        assert items, command
        assert set(header) <= set(items[0]), command


def test_a_name_with_tabs_and_newlines_stays_on_one_row(console, conn):
    odd = f"a\tb\\c {uuid.uuid4().hex[:6]}"
    add_job(console, conn, job=odd)
    rows = [r.split("\t") for r in console.ok("job", "list").splitlines()]
    assert all(len(r) == len(rows[0]) for r in rows)
    assert odd.replace("\\", "\\\\").replace("\t", "\\t") in [r[1] for r in rows]
    assert odd in [j["name"] for j in console.json("job", "list")]


# stderr: one line per error, no log records


def test_a_failed_run_prints_one_line_on_stderr(console, pg_database):
    """A PostgreSQL syntax error is several lines (LINE 1: ..., a caret); the run's
    WARNING log record used to follow it."""
    conn = name("pg")
    console.ok(
        "connection", "add", conn, "--driver", "postgresql", "--host", pg_database["host"],
        "--port", str(pg_database["port"]), "--user", pg_database["user"],
        "--database", pg_database["database"],
    )  # fmt: skip
    job = add_job(console, conn, sql="SELEC 1")
    done = console("job", "run", job)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: run ") and "syntax error" in done.stderr
    assert "WARNING" not in done.stderr
    assert done.stdout.startswith("run ") and "Failed" in done.stdout
    verbose = console("--verbose", "job", "run", job)
    assert "WARNING dancecat_core.runner" in verbose.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("job",), "required"),
        (("job", "run"), "required"),
        (("nonsense",), "invalid choice"),
        (("runs", "--bogus"), "unrecognized arguments"),
        (("export", "x"), "invalid int"),
        (("export", "999999"), "run not found"),
        (("-c",), "expected one argument"),
        (("job", "add", "x", "--connection", "c"), "required"),
    ],
)
def test_usage_errors_are_one_line(console, args, says):
    console.refused(*args, says=says)


def test_debug_keeps_the_traceback(console):
    done = console("--debug", "export", "999999")
    assert done.returncode != 0 and "Traceback" in done.stderr


# Progress on a terminal, none when piped


def on_a_terminal(console: Console, *args: str) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (stdout piped): (status, stdout, stderr)."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [str(DANCECAT), *args],
        env=console.env,
        stdout=subprocess.PIPE,
        stderr=secondary,
        stdin=subprocess.DEVNULL,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read().decode()
    proc.wait(timeout=60)
    os.close(primary)
    return proc.returncode, out, seen.decode(errors="replace")


@pytest.fixture(scope="module")
def big_job(console: Console, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("big") / "big.sqlite"
    sqlite3.connect(path).close()
    conn = name("big")
    console.ok("connection", "add", conn, "--driver", "sqlite", "--database", str(path))
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
        "SELECT i, 'a \"quoted\" label' || char(10) || 'over two lines' AS label FROM n"
    )
    return add_job(console, conn, sql=sql)


def test_job_run_and_export_show_progress_on_a_terminal(console, big_job, tmp_path):
    status, out, err = on_a_terminal(console, "job", "run", big_job)
    assert status == 0, err
    assert "300,000 rows" in err  # the last redraw counts rows, not the newlines in values
    assert "MB" in err and " s" in err and "\r" in err
    assert err.endswith("\r\x1b[K")  # the line is erased when the run ends
    run = out.split()[1].rstrip(":")
    status, out, err = on_a_terminal(console, "export", run, "-o", str(tmp_path / "out.csv"))
    assert status == 0, err
    assert "300,000 rows" in err and "100%" in err and "[" + "#" * 24 + "]" in err
    assert out == f"wrote {tmp_path / 'out.csv'}\n"


def test_piped_output_has_no_progress(console, big_job, tmp_path):
    done = console("job", "run", big_job)
    assert done.returncode == 0 and done.stderr == ""
    run = done.stdout.split()[1].rstrip(":")
    done = console("export", run, "-o", str(tmp_path / "out.csv"))
    assert done.returncode == 0 and done.stderr == ""
    done = subprocess.run(
        [str(DANCECAT), "export", run], env=console.env, capture_output=True, timeout=300
    )
    assert done.returncode == 0 and done.stderr == b""
    assert done.stdout == (tmp_path / "out.csv").read_bytes()


def test_export_to_a_file_copies_the_stored_csv_without_sqlalchemy(
    console, runtime, conn, tmp_path
):
    run = console.ok("job", "run", add_job(console, conn)).split()[1].rstrip(":")
    out = tmp_path / "copied.csv"
    modules = imported("export", run, "-o", str(out), env=console.env)
    assert "dancecat_core.appdb_direct" in modules  # the kernel copy's path was taken
    heavy = ("sqlalchemy", "sqlglot", "pymysql", "openpyxl", "jinja2", "ctypes")
    assert sorted(m for m in modules if m.split(".")[0] in heavy) == []
    # Plugins load (the store is one) without their writers: only a download needs them.
    writers = {"dancecat_plugins.xlsx_writer", "dancecat_plugins.ods_writer"}
    assert "dancecat_core.plugins" in modules and not modules & writers
    assert out.read_bytes() == console.ok("export", run).encode()
    # A result past its expiry is refused as without -o, though its file is still there.
    with runtime.session_factory() as session:
        session.get(Tracker, int(run)).result_expires_at = utcnow() - dt.timedelta(seconds=1)
        session.commit()
    late = tmp_path / "late.csv"
    console.refused("export", run, "-o", str(late), says=f"the result of run {run} expired on")
    assert not late.exists()


# One definition of each input: the console's flags come from it, and an object made
# through the API survives an edit through the console unchanged.


def test_every_declared_field_has_its_console_option(console):
    from dancecat_core.inputs.connection import ConnectionInput
    from dancecat_core.inputs.job import JobInput
    from dancecat_core.inputs.schedule import ScheduleInput
    from dancecat_core.inputs.token import TokenInput

    for command, input_class in (
        (("connection", "edit"), ConnectionInput),
        (("job", "edit"), JobInput),
        (("schedule", "edit"), ScheduleInput),
        (("token", "create"), TokenInput),
    ):
        text = console.ok(*command, "--help")
        for field in input_class.fields():
            flag = field.flag if field.flag.startswith("-") else f"--{field.flag}"
            assert flag in text and field.label in text, (command, field.name)
            if field.off_flag:
                assert field.off_flag in text, (command, field.name)
    # Limits and choice labels come from the declarations too.
    assert "From 1 to 65535" in console.ok("connection", "add", "--help")
    assert "skip: skip the missed occurrences" in console.ok("schedule", "add", "--help")


@pytest.fixture(scope="module")
def api(runtime):
    from test_web_helpers import make_app, make_user

    app = make_app(runtime)
    # An admin: the connection is a read-write SQLite one, which only admins save.
    return app, make_user(runtime, f"{name('api')}@example.com", admin=True)


def test_objects_made_through_the_api_survive_a_console_edit(console, api, runtime, data_db):
    app, alice = api
    connection = app.post_json(
        "/api/v1/connections",
        {
            "name": name("api conn"),
            "driver": "sqlite",
            "host": "db.example.com",
            "port": 5555,
            "database": str(data_db),
            "user": "reader",
            "password": " pass with spaces ",
            "read_only": False,
            "shared": True,
            "options": {"journal_mode": "wal", "pages": [1, 2], "nested": {"on": True}},
        },
        headers=alice.auth,
    ).json["connection"]
    job = app.post_json(
        "/api/v1/jobs",
        {
            "name": name("api job"),
            "annotation": "For the **label** meeting.",
            "connection_id": connection["id"],
            "query": "SELECT n, label\nFROM t\nORDER BY n",
            "timeout_seconds": 77,
            "recipients": ["boss@example.com", "team@example.com"],
            "shared": True,
            "schedules": [
                {
                    "type": "cron",
                    "start": "2031-02-03 04:05",
                    "timezone": "America/New_York",
                    "cron": "15 4 * * 1-5",
                    "active": False,
                    "catch_up": "skip",
                },
                {
                    "type": "daily",
                    "start": "2030-06-01 23:45",
                    "timezone": "Asia/Kolkata",
                    "catch_up": "skip",
                },
            ],
        },
        headers=alice.auth,
    ).json["job"]
    cron, daily = (s["id"] for s in job["schedules"])
    with runtime.session_factory() as session:  # a run the daily schedule already claimed
        claimed = Tracker(
            job_id=job["id"], schedule_id=daily, due_at=utcnow() + dt.timedelta(hours=2)
        )
        session.add(claimed)
        session.commit()
        claimed_id = claimed.id

    def state() -> dict:
        found = {
            kind: app.get(f"/api/v1/{kind}s/{number}", headers=alice.auth).json[kind]
            for kind, number in (("connection", connection["id"]), ("job", job["id"]))
        }
        with runtime.session_factory() as session:
            stored = session.get(Connection, connection["id"])
            found["password"] = runtime.secret_box.decrypt(stored.password_encrypted)
            found["claimed"] = session.get(Tracker, claimed_id) is not None
        for document in (found["connection"], found["job"]):
            del document["updated_at"]
        return found

    before = state()
    for command in (
        ("connection", "edit", f"id:{connection['id']}"),
        ("job", "edit", f"id:{job['id']}"),
    ):
        console.ok(*command)
    console.ok("schedule", "edit", str(cron))
    console.ok("schedule", "edit", str(daily))
    assert state() == before, "an edit that gives no field changed something"

    console.ok("connection", "edit", f"id:{connection['id']}", "--no-shared")
    console.ok("job", "edit", f"id:{job['id']}", "--timeout", "5")
    console.ok("schedule", "edit", str(cron), "--catch-up", "once")
    after = state()
    before["connection"]["shared"] = False
    before["job"]["timeout_seconds"] = 5
    before["job"]["schedules"][0]["catch_up"] = "once"
    assert after == before


def test_schedule_edit_refuses_in_one_line_and_changes_nothing(console, conn):
    job = add_job(console, conn)
    console.ok("schedule", "add", job, "--type", "daily", "--start", "2030-01-01 06:00")
    (listed,) = [s for s in console.json("schedule", "list") if s["job"] == job]
    console.refused(
        "schedule", "edit", str(listed["id"]), "--timezone", "Mars/Olympus", says="Time zone"
    )
    console.refused(
        "schedule", "edit", str(listed["id"]), "--cron", "0 8 * * *", says="Cron expression"
    )
    console.refused("schedule", "edit", str(listed["id"]), "--catch-up", "never", says="--catch-up")
    for bad in ("0", "-1", "x", "99999999999999999999"):
        console.refused("schedule", "edit", bad, "--inactive", says="schedule id")
    console.refused("schedule", "edit", "987654321", says="schedule not found")
    assert [s for s in console.json("schedule", "list") if s["job"] == job] == [listed]
    console.ok("schedule", "edit", str(listed["id"]), "--inactive", "--type", "Weekly")
    (changed,) = [s for s in console.json("schedule", "list") if s["job"] == job]
    assert (changed["type"], changed["active"], changed["status"]) == ("weekly", False, "inactive")


def test_schedule_list_says_a_fired_once_schedule_is_done(console, conn, runtime):
    job = add_job(console, conn)
    console.ok("schedule", "add", job, "--type", "once", "--start", "2030-01-01 06:00")
    (listed,) = [s for s in console.json("schedule", "list") if s["job"] == job]
    assert listed["status"] == "active"
    with runtime.session_factory() as session:  # as the checker leaves it once it fired
        schedule = session.get(Schedule, listed["id"])
        schedule.last_run_at, schedule.next_run_at = utcnow(), None
        session.commit()
    (listed,) = [s for s in console.json("schedule", "list", job) if s["job"] == job]
    assert listed["status"] == "done" and listed["next_run_at"] is None
    table = [row.split("\t") for row in console.ok("schedule", "list", job).splitlines()]
    assert dict(zip(table[0], table[1], strict=True))["status"] == "done"


def test_job_recipients_take_rules_conditions_and_templates(console, conn, runtime):
    job = name()
    console.ok(
        "job", "add", job, "--connection", conn, "--sql", "SELECT n, label FROM t",
        "--recipient", "Always@example.com",
        "--recipient", "rows@example.com", "--send-when", "rows",
        "--recipient", "big@example.com", "--send-when", "changed", "--condition", "n >= 3",
        "--subject", "{{ job_name }}: {{ row_count }} rows", "--body-rows", "5",
        "--alert-after-failures", "3",
    )  # fmt: skip

    def stored() -> tuple:
        with runtime.session_factory() as session:
            row = session.get(Job, job_id(console, job))
            rules = sorted((r.destination, r.send_when, r.condition) for r in row.recipients)
            return rules, row.subject_template, row.body_rows, row.alert_after_failures

    assert stored() == (
        [
            ("always@example.com", "always", None),
            ("big@example.com", "changed", '"n" >= 3'),
            ("rows@example.com", "rows", None),
        ],
        "{{ job_name }}: {{ row_count }} rows",
        5,
        3,
    )
    # An edit that does not name recipients or templates keeps them, rules included.
    console.ok("job", "edit", job, "--annotation", "x")
    assert stored()[0][1] == ("big@example.com", "changed", '"n" >= 3')
    console.refused("job", "edit", job, "--send-when", "rows", says="needs a --recipient before it")
    console.refused(
        "job", "edit", job, "--recipient", "a@example.com", "--send-when", "sometimes",
        says="invalid choice",
    )  # fmt: skip
    console.refused(
        "job", "edit", job, "--recipient", "a@example.com", "--condition", "n >",
        says="Send result to: a@example.com: condition 'n >' has no value",
    )  # fmt: skip
    console.refused(
        "job", "edit", job, "--subject", "{{ config.items() }}",
        says="Mail subject: unknown name 'config'",
    )  # fmt: skip
    console.refused(
        "job", "edit", job, "--body", "{% include '/etc/passwd' %}",
        says="Mail body: templates cannot include",
    )  # fmt: skip
    console.ok("job", "run", job)
    [run] = [r for r in console.json("runs", job)]
    # Each recipient's fate and why; here email is off (no SMTP_HOST), so those it would
    # have mailed failed, saying so, and the condition skipped the third.
    fates = dict(part.split(": ", 1) for part in run["delivery"].split("; "))
    assert fates["big@example.com"] == "skipped (condition false: n = 0)"
    for sent in ("always@example.com", "rows@example.com"):
        assert fates[sent].startswith("failed (email is not configured"), fates
