"""Trigger URLs and chains: signed deliveries, one run per Idempotency-Key under
concurrent deliveries, cycles refused on save, one downstream run per upstream run, a
chain run end to end through the real embedded queue, and the console commands."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select
from test_web_helpers import make_app, make_user

from dancecat_core import chains, migrations, tasks
from dancecat_core.db import session_scope
from dancecat_core.models import Job, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.services import jobs
from dancecat_core.settings import load_settings

QUERY = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 2"


def _job(app, member, connection, name, query=QUERY, **extra):
    body = {"name": name, "connection_id": connection["id"], "query": query, **extra}
    return app.post_json("/api/v1/jobs", body, headers=member.auth).json["job"]


def _trigger(app, member, job_id, signed=False):
    return app.post_json(
        f"/api/v1/jobs/{job_id}/triggers",
        {"name": "etl done", "signed": signed},
        headers=member.auth,
        status=201,
    ).json["trigger"]


def _path(url):
    return re.sub(r"^https?://[^/]+", "", url)


def _sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_trigger_queues_a_run_and_an_idempotency_key_queues_one(app, alice, connection, queued):
    job = _job(app, alice, connection, "nightly")
    made = _trigger(app, alice, job["id"])
    assert made["secret"] is None and made["signed"] is False
    path = _path(made["url"])
    first = app.post(path, status=202).json["run"]  # no session, no CSRF token
    assert queued == [first]
    again = app.post(path, headers={"Idempotency-Key": "etl-2024-05-01"}, status=202).json["run"]
    same = app.post(path, headers={"Idempotency-Key": "etl-2024-05-01"}, status=202).json["run"]
    assert again == same != first
    assert queued == [first, again]  # the repeat is answered, not enqueued again
    other = app.post(path, headers={"Idempotency-Key": "etl-2024-05-02"}, status=202).json["run"]
    assert other not in (first, again)
    run = app.get(f"/api/v1/trackers/{again}", headers=alice.auth).json["tracker"]
    assert run["trigger_id"] == made["id"] and run["status"] == "Queued"
    listed = app.get(f"/api/v1/jobs/{job['id']}/triggers", headers=alice.auth).json["triggers"]
    assert listed[0]["last_used_at"] is not None and "url" not in listed[0]
    assert app.get(f"/api/v1/jobs/{job['id']}", headers=alice.auth).json["job"]["run_count"] == 3
    app.delete(f"/api/v1/triggers/{made['id']}", headers=alice.auth, status=204)
    app.post(path, status=404)
    app.get(path, status=405)  # a trigger is POSTed, never fetched


def test_signed_trigger_needs_the_signature_of_the_raw_body(app, alice, connection, queued):
    job = _job(app, alice, connection, "signed")
    made = _trigger(app, alice, job["id"], signed=True)
    secret, path = made["secret"], _path(made["url"])
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    body = b'{"parameters": {}}'
    headers = {"Content-Type": "application/json"}
    for signature in (
        None,
        "",
        "sha256=",
        _sign("wrong secret", body),
        _sign(secret, body + b" "),  # signed another body
        _sign(secret, body).replace("sha256=", "sha1="),
        _sign(secret, body)[:-1],
        _sign(secret, body) + "00",
        "sha256=" + "é" * 64,
    ):
        sent = {**headers, **({"X-DanceCat-Signature": signature} if signature is not None else {})}
        answer = app.post(path, body, headers=sent, status=401)
        assert answer.json["error"]["code"] == "bad_signature"
    assert queued == []
    good = {**headers, "X-DanceCat-Signature": _sign(secret, body).upper().replace("SHA", "sha")}
    assert app.post(path, body, headers=good, status=202).json["run"] == queued[0]
    empty = {"X-DanceCat-Signature": _sign(secret, b"")}
    app.post(path, b"", headers=empty, status=202)
    # The secret is never shown again, and stored only encrypted.
    listed = app.get(f"/api/v1/jobs/{job['id']}/triggers", headers=alice.auth).json["triggers"]
    assert "secret" not in listed[0] and listed[0]["signed"] is True


def test_trigger_bodies_and_keys_are_checked(app, alice, connection, queued):
    job = _job(app, alice, connection, "checked")
    path = _path(_trigger(app, alice, job["id"])["url"])
    app.post(path, b"{not json", status=400)
    error = app.post_json(path, {"parameters": {"day": "2024-05-01"}}, status=422).json["error"]
    assert "day" in error["message"] and error["field"] == "parameters"
    app.post_json(path, {"other": 1}, status=422)
    app.post_json(path, [1, 2], status=422)
    for key in ("x" * 201, "has space", "é"):
        headers = {"Idempotency-Key": key.encode("utf-8").decode("latin-1")}
        assert app.post(path, headers=headers, status=422).json["error"]["field"] == (
            "Idempotency-Key"
        )
    assert queued == []
    app.post_json(path, {"parameters": {}}, status=202)


def test_concurrent_deliveries_with_one_key_make_one_run_on_postgresql(
    pg_database, tmp_path, sqlite_chinook
):
    """Twelve threads deliver the same key at once to a PostgreSQL app database: the
    unique constraint, not a check, decides; every answer names the one run."""
    settings = load_settings(
        environ={
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_DATABASE_URL": pg_database["url"],
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        }
    )
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    queued: list[int] = []
    app = make_app(runtime, queued)
    alice = make_user(runtime, "alice@example.com")
    connection = {
        "id": app.post_json(
            "/api/v1/connections",
            {"name": "c", "driver": "sqlite", "database": str(sqlite_chinook)},
            headers=alice.auth,
        ).json["connection"]["id"]
    }
    job = _job(app, alice, connection, "raced")
    path = _path(_trigger(app, alice, job["id"])["url"])
    barrier = threading.Barrier(12)
    answers: list[tuple[int, int]] = []

    def deliver() -> None:
        barrier.wait()
        answer = app.post(path, headers={"Idempotency-Key": "once"}, expect_errors=True)
        answers.append((answer.status_int, answer.json["run"]))

    threads = [threading.Thread(target=deliver) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert len(answers) == 12 and {status for status, _ in answers} == {202}
        assert len({run for _, run in answers}) == 1
        assert len(queued) == 1
        with session_scope(runtime.session_factory) as session:
            assert session.scalar(select(func.count()).select_from(Tracker)) == 1
    finally:
        runtime.engine.dispose()


def test_chain_is_saved_checked_for_cycles_and_shown(app, alice, connection):
    a = _job(app, alice, connection, "a")
    b = _job(app, alice, connection, "b", after_job_id=a["id"])
    assert (b["after_job_id"], b["after_on"]) == (a["id"], "success")
    c = _job(app, alice, connection, "c", after_job_id=b["id"], after_on="failure")
    error = app.patch_json(
        f"/api/v1/jobs/{a['id']}", {"after_job_id": c["id"]}, headers=alice.auth, status=422
    ).json["error"]
    assert error["field"] == "after_job_id"
    assert "cycle: a → c → b → a" in error["message"] and error["message"].startswith("Run after")
    error = app.patch_json(
        f"/api/v1/jobs/{a['id']}", {"after_job_id": a["id"]}, headers=alice.auth, status=422
    ).json["error"]
    assert "a → a" in error["message"]
    error = app.patch_json(
        f"/api/v1/jobs/{a['id']}", {"after_job_id": 999}, headers=alice.auth, status=422
    ).json["error"]
    assert error["message"] == "Run after job: no such job"
    app.patch_json(
        f"/api/v1/jobs/{a['id']}", {"after_on": "sometimes"}, headers=alice.auth, status=422
    )
    bob = make_user(app.app.registry["dancecat.runtime"], "bob@example.com")
    # Bob cannot chain after a job he may not see.
    bob_connection = app.post_json(
        "/api/v1/connections",
        {"name": "chinook", "driver": "sqlite", "database": connection["database"]},
        headers=bob.auth,
    ).json["connection"]
    body = {
        "name": "bobs",
        "connection_id": bob_connection["id"],
        "query": QUERY,
        "after_job_id": a["id"],
    }
    app.post_json("/api/v1/jobs", body, headers=bob.auth, status=422)
    unchained = app.patch_json(
        f"/api/v1/jobs/{b['id']}", {"after_job_id": None}, headers=alice.auth
    ).json["job"]
    assert unchained["after_job_id"] is None and unchained["after_on"] is None


def test_each_upstream_run_claims_one_downstream_run_per_job(app, alice, connection, runtime):
    a = _job(app, alice, connection, "upstream")
    after_ok = [_job(app, alice, connection, f"ok{i}", after_job_id=a["id"]) for i in range(3)]
    on_fail = _job(app, alice, connection, "onfail", after_job_id=a["id"], after_on="failure")
    with session_scope(runtime.session_factory) as session:
        upstream = jobs.queue_run(session, None, a["id"]).id
    assert chains.downstream_runs(runtime, upstream) == []  # not finished yet
    assert execute_tracker(runtime, upstream).status == TrackerStatus.SUCCESS
    claimed: list[list[int]] = []
    barrier = threading.Barrier(6)

    def ask() -> None:
        barrier.wait()
        claimed.append(chains.downstream_runs(runtime, upstream))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    flat = sorted(run for runs in claimed for run in runs)
    assert len(flat) == 3 and len(set(flat)) == 3
    with session_scope(runtime.session_factory) as session:
        rows = session.execute(
            select(Tracker.job_id, Tracker.upstream_tracker_id).where(Tracker.id.in_(flat))
        ).all()
    assert sorted(job_id for job_id, _ in rows) == sorted(j["id"] for j in after_ok)
    assert {up for _, up in rows} == {upstream}
    assert on_fail["id"] not in {job_id for job_id, _ in rows}
    assert chains.downstream_runs(runtime, upstream) == []


def test_chain_runs_end_to_end_through_the_embedded_queue(tmp_path, sqlite_chinook):
    """A fails, B (after A's failure) runs, C (after B's success) runs, D (after A's
    success) does not; each follower carries the upstream's due time."""
    settings = load_settings(
        environ={
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        }
    )
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    app = make_app(runtime)
    alice = make_user(runtime, "alice@example.com")
    body = {"name": "c", "driver": "sqlite", "database": str(sqlite_chinook)}
    connection = app.post_json("/api/v1/connections", body, headers=alice.auth).json["connection"]
    a = _job(app, alice, connection, "a", query="SELECT * FROM no_such_table")
    b = _job(app, alice, connection, "b", after_job_id=a["id"], after_on="failure")
    c = _job(app, alice, connection, "c", after_job_id=b["id"])
    d = _job(app, alice, connection, "d", after_job_id=a["id"])
    due = None
    with session_scope(runtime.session_factory) as session:
        tracker = jobs.queue_run(session, None, a["id"])
        import datetime as dt

        due = dt.datetime(2024, 5, 1, 7, 0, tzinfo=dt.UTC)
        tracker.due_at = due
        upstream = tracker.id
    tasks.configure(runtime=runtime)
    stop = tasks.start_embedded_consumer(workers=2)
    try:
        tasks.enqueue_run(upstream)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with session_scope(runtime.session_factory) as session:
                done = {
                    job_id: status
                    for job_id, status in session.execute(select(Tracker.job_id, Tracker.status))
                }
            if done.get(c["id"]) == TrackerStatus.SUCCESS.value:
                break
            time.sleep(0.2)
    finally:
        stop()
        tasks.huey.storage.flush_queue()
        tasks.configure(None)
    with session_scope(runtime.session_factory) as session:
        runs = {t.job_id: t for t in session.scalars(select(Tracker))}
        counts = dict(session.execute(select(Job.id, Job.run_count)).all())
    runtime.engine.dispose()
    assert runs[a["id"]].status == TrackerStatus.FAILED.value
    assert runs[b["id"]].status == TrackerStatus.SUCCESS.value
    assert runs[c["id"]].status == TrackerStatus.SUCCESS.value
    assert d["id"] not in runs
    assert runs[b["id"]].upstream_tracker_id == upstream
    assert runs[c["id"]].upstream_tracker_id == runs[b["id"]].id
    assert runs[b["id"]].due_at == due and runs[c["id"]].due_at == due
    assert counts[b["id"]] == counts[c["id"]] == 1


def test_a_run_swept_as_dead_starts_its_failure_followers_once(app, alice, connection, runtime):
    """A run whose worker died (stale heartbeat) is Failed by the sweep, which starts the
    jobs chained after its failure, once, however many consumers sweep at the same time."""
    import datetime as dt

    from dancecat_core.models import utcnow

    a = _job(app, alice, connection, "upstream")
    on_fail = _job(app, alice, connection, "onfail", after_job_id=a["id"], after_on="failure")
    on_ok = _job(app, alice, connection, "onok", after_job_id=a["id"])
    stale = utcnow() - dt.timedelta(seconds=runtime.settings.worker_stale_seconds * 3)
    with session_scope(runtime.session_factory) as session:
        tracker = jobs.queue_run(session, None, a["id"])
        tracker.status = TrackerStatus.RUNNING.value
        tracker.started_at = tracker.heartbeat_at = stale
        tracker.worker = "gone:1:1"
        tracker.attempts = runtime.settings.run_retries + 1  # no retry left: it is Failed
        upstream = tracker.id
    tasks.configure(runtime=runtime)
    barrier = threading.Barrier(3)
    swept: list[int] = []

    def sweep() -> None:
        barrier.wait()
        swept.append(tasks.sweep.call_local())

    try:
        threads = [threading.Thread(target=sweep) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(swept) == [0, 0, 1]
        assert tasks.sweep.call_local() == 0
        assert tasks.enqueue_chained(runtime, upstream) == []  # claimed already
        queued = tasks.huey.pending_count()
    finally:
        tasks.huey.storage.flush_queue()
        tasks.configure(None)
    with session_scope(runtime.session_factory) as session:
        runs = session.execute(
            select(Tracker.job_id, Tracker.upstream_tracker_id, Tracker.status)
        ).all()
        status = session.get(Tracker, upstream).status
    assert status == TrackerStatus.FAILED.value
    followers = [(job_id, up) for job_id, up, _ in runs if job_id != a["id"]]
    assert followers == [(on_fail["id"], upstream)]
    assert on_ok["id"] not in {job_id for job_id, _, _ in runs}
    assert queued == 1  # the follower, enqueued once


def _console(home, allowed, *args):
    env = {"DANCECAT_HOME": str(home), "DANCECAT_SQLITE_ALLOWED_DIRS": str(allowed)}
    import os

    return subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("DANCECAT_")}, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_console_pull_urls_triggers_and_after(tmp_path, sqlite_chinook):
    home = tmp_path / "home"

    def ok(*args):
        done = _console(home, tmp_path, *args)
        assert done.returncode == 0 and done.stderr == "", (args, done.stdout, done.stderr)
        return done.stdout

    def refused(*args, says):
        done = _console(home, tmp_path, *args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)
        assert says in done.stderr, done.stderr
        return done.stderr

    ok("init")
    ok("connection", "add", "c", "--driver", "sqlite", "--database", str(sqlite_chinook))
    ok("job", "add", "a", "--connection", "c", "--sql", QUERY)
    ok("job", "add", "b", "--connection", "c", "--sql", QUERY, "--after", "a")
    ok("job", "add", "f", "--connection", "c", "--sql", QUERY, "--after", "a", "--on", "failure")
    refused("job", "edit", "a", "--after", "b", says="Run after job: that would make a cycle")
    refused(
        "job",
        "add",
        "x",
        "--connection",
        "c",
        "--sql",
        "SELECT 1",
        "--after",
        "nope",
        says="no job named 'nope'",
    )
    created = ok("pull-url", "create", "a", "--name", "finance")
    link = re.search(r"(http\S+/pull/(dcp_\S+)\.csv)", created)
    assert link and created.count(link.group(2)) == 2  # CSV and JSON, this once
    listed = json.loads(ok("pull-url", "list", "a", "--json"))
    assert listed[0]["name"] == "finance" and listed[0]["active"] is True
    assert link.group(2) not in json.dumps(listed)
    rotated = ok("pull-url", "rotate", "a", str(listed[0]["id"]))
    assert "revoked" in rotated and link.group(2) not in rotated
    new_id = json.loads(ok("pull-url", "list", "a", "--json"))[0]["id"]
    assert ok("pull-url", "revoke", "a", str(new_id)).strip() == f"pull URL {new_id} revoked"
    refused("pull-url", "revoke", "b", str(new_id), says=f"job 2 b has no pull URL {new_id}")
    trigger = ok("trigger", "create", "b", "--signed")
    assert re.search(r"POST http\S+/trigger/dcg_\S+", trigger)
    secret = re.search(r"signing secret .*: ([0-9a-f]{64})$", trigger.strip())
    assert secret
    table = ok("trigger", "list", "b")
    assert table.splitlines()[0].split("\t")[:3] == ["id", "name", "prefix"]
    assert secret.group(1) not in table
    ok("trigger", "revoke", "b", "1")
    ran = ok("job", "run", "a")
    assert re.search(r"^run 1: Success, 2 rows$", ran, re.M)
    assert re.search(r"^run 2 queued \(chained after run 1\)$", ran, re.M)
    ok("job", "edit", "b", "--no-after")
    runs = json.loads(ok("runs", "--json"))
    assert {run["job"] for run in runs} == {"a", "b"}


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def app_database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.sqlite'}"
    return request.getfixturevalue(
        "pg_database" if request.param == "postgresql" else "mysql_database"
    )["url"]


def test_two_saves_closing_a_cycle_at_once_cannot_both_pass(
    app_database_url, tmp_path, sqlite_chinook
):
    """A after B and B after A, saved at the same moment on every app database: each save
    checks and waits for the other before committing (as two web processes could), yet
    one is refused, because the check runs under the ``job_chains`` lock."""
    from dancecat_core.errors import ValidationError
    from dancecat_core.inputs.job import JobInput
    from dancecat_core.models import Connection

    settings = load_settings(
        environ={
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_DATABASE_URL": app_database_url,
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        }
    )
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    try:
        with session_scope(runtime.session_factory) as session:
            connection = Connection(name="c", driver="sqlite", database=str(sqlite_chinook))
            session.add(connection)
            session.flush()
            made = [
                jobs.create(
                    runtime, session, None,
                    JobInput(name=name, connection_id=connection.id, query=QUERY),
                ).id
                for name in ("a", "b")
            ]  # fmt: skip
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def save(job_id: int, after_id: int) -> None:
            session = runtime.session_factory()
            try:
                jobs.update(runtime, session, None, job_id, JobInput(after_job_id=after_id))
                # Both checked: now both commit. Broken: the other waits for the lock.
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=3)
                session.commit()
                outcomes.append("saved")
            except ValidationError as error:
                session.rollback()
                outcomes.append(str(error))
            finally:
                session.close()

        a, b = made
        threads = [
            threading.Thread(target=save, args=(a, b)),
            threading.Thread(target=save, args=(b, a)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert sorted(outcomes)[1] == "saved", outcomes
        assert "that would make a cycle" in sorted(outcomes)[0], outcomes
        with session_scope(runtime.session_factory) as session:
            chained = session.execute(select(Job.id, Job.after_job_id)).all()
        assert sum(after is not None for _, after in chained) == 1
    finally:
        runtime.engine.dispose()
