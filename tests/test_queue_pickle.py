"""The queue carries JSON of plain values: a pickle written into it executes nothing.

An attacker who can write one row into the embedded queue file (or one entry into Redis)
puts a pickle there whose unpickling runs ``id`` into a marker file. A real consumer then
works the queue: the marker never appears, and a real run queued behind the bad row still
succeeds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
import redis

from dancecat_core import migrations, tasks
from dancecat_core.db import session_scope
from dancecat_core.models import Connection, Job, Tracker, TrackerStatus
from dancecat_core.runtime import build_runtime
from dancecat_core.services import jobs
from dancecat_core.settings import load_settings


class RunsShell:
    """Unpickling this runs a shell command, as a real attack payload would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"id > {self.marker}",))


@pytest.fixture
def queue_app(tmp_path, sqlite_chinook, request):
    """A runtime with the embedded queue, or Redis when the test is parametrized so."""
    env = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        "DANCECAT_HUEY_NAME": f"dc-pickle-{uuid.uuid4().hex[:10]}",
    }
    if getattr(request, "param", "sqlite") == "redis":
        env["DANCECAT_REDIS_URL"] = request.getfixturevalue("redis_url")
    runtime = build_runtime(load_settings(environ=env))
    migrations.upgrade(runtime.engine)
    tasks.configure(runtime=runtime)
    with session_scope(runtime.session_factory) as session:
        connection = Connection(name="c", driver="sqlite", database=str(sqlite_chinook))
        job = Job(name="j", connection=connection, query="SELECT Name FROM Artist LIMIT 3")
        session.add_all([connection, job])
        session.flush()
        job_id = job.id
    yield runtime, job_id
    tasks.configure()
    runtime.engine.dispose()


def queue_a_run(runtime, job_id: int) -> int:
    with session_scope(runtime.session_factory) as session:
        tracker_id = jobs.queue_run(session, None, job_id).id
    tasks.enqueue_run(tracker_id)
    return tracker_id


def work_until_done(runtime, tracker_id: int) -> str:
    stop = tasks.start_embedded_consumer(workers=1)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with session_scope(runtime.session_factory) as session:
                status = session.get(Tracker, tracker_id).status
            if status not in (TrackerStatus.QUEUED.value, TrackerStatus.RUNNING.value):
                return status
            time.sleep(0.2)
        return status
    finally:
        stop()


def payloads(marker: Path) -> list[bytes]:
    return [
        pickle.dumps(RunsShell(marker)),
        pickle.dumps(RunsShell(marker), protocol=0),
        json.dumps({"$huey_message": {"name": "os.system", "args": [f"id > {marker}"]}}).encode(),
    ]


def test_a_pickle_in_the_embedded_queue_file_runs_nothing(queue_app, tmp_path):
    runtime, job_id = queue_app
    marker = tmp_path / "pwned"
    name = runtime.settings.huey_name
    tasks.huey.storage  # noqa: B018 - creates the queue file and its tables
    with sqlite3.connect(runtime.settings.huey_file) as queue:
        for payload in payloads(marker):
            queue.execute(
                "INSERT INTO task (queue, data, priority) VALUES (?, ?, 0)", (name, payload)
            )
            queue.execute(
                "INSERT INTO schedule (queue, data, timestamp) VALUES (?, ?, 0)", (name, payload)
            )
    tracker_id = queue_a_run(runtime, job_id)
    assert work_until_done(runtime, tracker_id) == TrackerStatus.SUCCESS.value
    assert not marker.exists()
    with sqlite3.connect(runtime.settings.huey_file) as queue:
        assert queue.execute("SELECT count(*) FROM task").fetchone() == (0,)


@pytest.mark.parametrize("queue_app", ["redis"], indirect=True)
def test_a_pickle_in_redis_runs_nothing(queue_app, tmp_path, redis_url):
    runtime, job_id = queue_app
    marker = tmp_path / "pwned"
    storage = tasks.huey.storage
    client = redis.Redis.from_url(redis_url)
    try:
        for payload in payloads(marker):
            client.lpush(storage.queue_key, payload)
            client.zadd(storage.schedule_key, {payload: 0})
        tracker_id = queue_a_run(runtime, job_id)
        assert work_until_done(runtime, tracker_id) == TrackerStatus.SUCCESS.value
        assert not marker.exists()
        assert client.llen(storage.queue_key) == 0
    finally:
        client.delete(storage.queue_key, storage.schedule_key)


def test_messages_on_the_queue_are_json_of_plain_values(queue_app):
    runtime, job_id = queue_app
    eta = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with session_scope(runtime.session_factory) as session:
        tracker_id = jobs.queue_run(session, None, job_id).id
    tasks.enqueue_run(tracker_id, eta=eta)
    tasks.enqueue_notification(7)
    with sqlite3.connect(runtime.settings.huey_file) as queue:
        rows = [r[0] for r in queue.execute("SELECT data FROM task ORDER BY id")]
    messages = [json.loads(row)["$huey_message"] for row in rows]
    assert [(m["name"].rsplit(".", 1)[1], m["args"]) for m in messages] == [
        ("run_job", [tracker_id]),
        ("deliver_notification", [7]),
    ]
    assert messages[0]["eta"] == {"$datetime": eta.replace(tzinfo=None).isoformat()}
    pending = tasks.huey.pending()
    assert (pending[0].args, pending[0].eta) == ((tracker_id,), eta.replace(tzinfo=None))
    with pytest.raises(TypeError, match="only plain values"):
        tasks.run_job.schedule(args=(object(),), eta=eta)
