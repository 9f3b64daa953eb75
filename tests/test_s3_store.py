"""The S3 result store against moto's S3-compatible server (``conftest.moto``), and HTTP
byte ranges on downloads from every store."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import tracemalloc
import uuid

import boto3
import pytest
from test_web_helpers import dancecat, make_app, make_user
from test_worker import App

from dancecat_core import migrations, tasks
from dancecat_core.errors import ConfigError, StoreError
from dancecat_core.models import Connection, Job, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.services import connections, jobs, trackers
from dancecat_core.services.connections import ConnectionInput
from dancecat_core.services.jobs import JobInput
from dancecat_core.settings import load_settings
from dancecat_plugins.s3_transfer import MIN_PART_SIZE

KEY_ID, SECRET = "AKIDSTORE", "st0re/secret+key"
PREFIX = "dancecat/"
# About 2 MiB of CSV: more than one chunk of the database store, so a range skips chunks.
ROWS_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
    "SELECT x AS n, 'row number ' || x AS label FROM c"
)


def s3(moto):
    return boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


@pytest.fixture
def bucket(moto) -> str:
    name = f"results-{uuid.uuid4().hex[:8]}"
    s3(moto).create_bucket(Bucket=name)
    return name


def s3_env(moto, bucket: str) -> dict[str, str]:
    return {
        "RESULT_STORE": "s3",
        "RESULT_S3_BUCKET": bucket,
        "RESULT_S3_ENDPOINT": moto.endpoint,
        "RESULT_S3_REGION": "us-east-1",
        "RESULT_S3_PREFIX": PREFIX,
        "RESULT_S3_ACCESS_KEY": KEY_ID,
        "RESULT_S3_SECRET_KEY": SECRET,
        "S3_PART_SIZE": str(MIN_PART_SIZE),
    }


def runtime_with(tmp_path, sqlite_chinook, **env: str):
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(sqlite_chinook.parent),
        **{f"DANCECAT_{key}": value for key, value in env.items()},
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    return runtime


@pytest.fixture
def s3_runtime(tmp_path, sqlite_chinook, moto, bucket):
    runtime = runtime_with(tmp_path, sqlite_chinook, **s3_env(moto, bucket))
    yield runtime
    runtime.engine.dispose()


def objects(moto, bucket: str) -> list[str]:
    return [o["Key"] for o in s3(moto).list_objects_v2(Bucket=bucket).get("Contents", [])]


def uploads(moto, bucket: str) -> list[str]:
    return [u["Key"] for u in s3(moto).list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def _stream(total: int, chunk: int = 64 * 1024):
    """``total`` bytes in ``chunk``s, made as they are read (never all in memory)."""
    line = b"0123456789abcdef" * 4
    made = 0
    while made < total:
        piece = (line * (chunk // len(line)))[: min(chunk, total - made)]
        made += len(piece)
        yield piece


def test_a_blob_is_visible_only_once_committed_and_reads_whole_or_in_ranges(s3_runtime):
    store, moto_bucket = s3_runtime.store, s3_runtime.settings.result_s3_bucket
    total = 2 * MIN_PART_SIZE + 1234  # three parts, the last short
    data = b"".join(_stream(total))
    writer = store.create("run-1.csv")
    for piece in _stream(total):
        writer.write(piece)
    assert not store.exists("run-1.csv") and store.size("run-1.csv") is None
    assert writer.commit() == total
    assert store.size("run-1.csv") == total
    with store.open("run-1.csv") as handle:
        assert handle.read() == data
    for start, length in [(0, 10), (MIN_PART_SIZE - 3, 7), (total - 5, 5)]:
        with store.open_range("run-1.csv", start, length) as handle:
            assert handle.read() == data[start : start + length]
    head = boto3.client(
        "s3",
        endpoint_url=store.place.endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    ).head_object(Bucket=moto_bucket, Key=PREFIX + "run-1.csv", PartNumber=1)
    assert head["PartsCount"] == 3
    store.delete("run-1.csv")
    store.delete("run-1.csv")  # idempotent
    assert not store.exists("run-1.csv")
    with pytest.raises(StoreError, match=r"result run-1\.csv is not in the store"):
        store.open("run-1.csv")


def test_an_aborted_blob_leaves_no_object_and_no_parts(s3_runtime, moto):
    bucket = s3_runtime.settings.result_s3_bucket
    writer = s3_runtime.store.create("run-2.csv")
    for piece in _stream(MIN_PART_SIZE + 10):
        writer.write(piece)
    assert uploads(moto, bucket) == [PREFIX + "run-2.csv"]  # a part is on its way
    writer.abort()
    assert objects(moto, bucket) == [] and uploads(moto, bucket) == []


def _peak(store, key: str, total: int) -> tuple[int, int]:
    """Peak Python memory while writing ``total`` bytes, then while reading them back."""
    tracemalloc.start()
    try:
        writer = store.create(key)
        for piece in _stream(total):
            writer.write(piece)
        writer.commit()
        written = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        with store.open(key) as handle:
            while piece := handle.read(64 * 1024):
                digest.update(piece)
        read = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == hashlib.sha256(b"".join(_stream(total))).hexdigest()
    return written, read


def test_memory_stays_flat_whatever_the_result_size(s3_runtime):
    store = s3_runtime.store
    _peak(store, "warm.csv", 10)  # a client and its first requests
    peaks = {mib: _peak(store, f"big-{mib}.csv", mib << 20) for mib in (10, 20, 40)}
    print(
        "\npeak MiB (write, read): "
        + ", ".join(f"{mib} MiB: {w / 2**20:.1f}, {r / 2**20:.1f}" for mib, (w, r) in peaks.items())
    )
    writes = [w for w, _ in peaks.values()]
    reads = [r for _, r in peaks.values()]
    assert max(writes) < 2 * MIN_PART_SIZE  # about one part held, never the result
    assert max(writes) - min(writes) < MIN_PART_SIZE // 2  # flat from 10 to 40 MiB
    assert max(reads) < 4 << 20 and max(reads) - min(reads) < 1 << 20


def _job(runtime, chinook, sql: str = ROWS_SQL) -> int:
    with runtime.session_factory() as session:
        connection = connections.create(
            runtime,
            session,
            None,
            ConnectionInput(
                name=f"c-{uuid.uuid4().hex[:6]}", driver="sqlite", database=str(chinook)
            ),
        )
        job = jobs.create(
            runtime,
            session,
            None,
            JobInput(name=f"j-{uuid.uuid4().hex[:6]}", connection_id=connection.id, query=sql),
        )
        session.commit()
        return job.id


def _run(runtime, job_id: int) -> int:
    with runtime.session_factory() as session:
        tracker = jobs.queue_run(session, None, job_id)
        session.commit()
        tracker_id = tracker.id
    assert execute_tracker(runtime, tracker_id).status == TrackerStatus.SUCCESS
    return tracker_id


@pytest.mark.parametrize("store", ["file", "database", "s3"])
def test_downloads_answer_one_byte_range_from_every_store(store, tmp_path, sqlite_chinook, request):
    env = {"RESULT_STORE": store}
    if store == "s3":
        moto = request.getfixturevalue("moto")
        env = s3_env(moto, request.getfixturevalue("bucket"))
    runtime = runtime_with(tmp_path, sqlite_chinook, **env)
    try:
        tracker_id = _run(runtime, _job(runtime, sqlite_chinook))
        member = make_user(runtime, "ranges@example.com", admin=True)
        app = make_app(runtime)
        url = f"/api/v1/trackers/{tracker_id}/result.csv"
        whole = app.get(url, headers=member.auth)
        body = whole.body
        assert whole.status_int == 200 and whole.headers["Accept-Ranges"] == "bytes"
        assert len(body) > 1 << 20 and body.startswith(b"n,label\n1,row number 1\n")
        size = len(body)
        for header, start, stop in [
            ("bytes=0-99", 0, 100),
            ("bytes=1500000-1500099", 1_500_000, 1_500_100),  # inside the second MiB
            (f"bytes={size - 10}-", size - 10, size),
            ("bytes=-25", size - 25, size),
            (f"bytes=100-{size + 50}", 100, size),  # a last byte past the end is cut
        ]:
            part = app.get(url, headers={**member.auth, "Range": header}, status=206)
            assert part.body == body[start:stop], header
            assert part.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
            assert int(part.headers["Content-Length"]) == stop - start
        refused = app.get(url, headers={**member.auth, "Range": f"bytes={size}-"}, status=416)
        assert refused.headers["Content-Range"] == f"bytes */{size}"
        for ignored in ("bytes=0-1,5-6", "bytes=9-1", "lines=0-1"):
            assert app.get(url, headers={**member.auth, "Range": ignored}).body == body
        xlsx = f"/api/v1/trackers/{tracker_id}/result.xlsx"
        rendered = app.get(xlsx, headers=member.auth).body  # rendered and kept in the store
        tail = app.get(xlsx, headers={**member.auth, "Range": "bytes=-100"}, status=206)
        assert tail.body == rendered[-100:]
    finally:
        runtime.engine.dispose()


def test_expiry_deletes_the_objects_through_the_same_sweep(s3_runtime, sqlite_chinook, moto):
    bucket = s3_runtime.settings.result_s3_bucket
    tracker_id = _run(s3_runtime, _job(s3_runtime, sqlite_chinook))
    member = make_user(s3_runtime, "expiry@example.com", admin=True)
    app = make_app(s3_runtime)
    app.get(f"/api/v1/trackers/{tracker_id}/result.xlsx", headers=member.auth)
    with s3_runtime.session_factory() as session:
        tracker = session.get(Tracker, tracker_id)
        key, later = tracker.result_key, tracker.result_expires_at
    assert sorted(objects(moto, bucket)) == [PREFIX + key, f"{PREFIX}{key}.xlsx"]
    assert trackers.expire_results(s3_runtime, now=later) == 1
    assert objects(moto, bucket) == []
    app.get(f"/api/v1/trackers/{tracker_id}/result.csv", headers=member.auth, status=410)


def test_the_sweep_drops_parts_a_dead_writer_left_only_once_they_are_old(s3_runtime, moto):
    bucket = s3_runtime.settings.result_s3_bucket
    writer = s3_runtime.store.create("dead.csv")
    for piece in _stream(MIN_PART_SIZE + 1):
        writer.write(piece)  # and never committed nor aborted: its worker was killed
    # moto dates every upload 2010-11-10 20:48:33 UTC, so the age is checked around that.
    begun = dt.datetime(2010, 11, 10, 20, 48, 33, tzinfo=dt.UTC)
    assert s3_runtime.store.drop_abandoned(begun - dt.timedelta(seconds=1)) == 0
    assert uploads(moto, bucket) == [PREFIX + "dead.csv"]  # a run could still be writing it
    longest = dt.timedelta(
        seconds=s3_runtime.settings.job_worker_execute_timeout
        + s3_runtime.settings.worker_stale_seconds
    )
    assert trackers.expire_results(s3_runtime, now=begun + longest) == 0
    assert uploads(moto, bucket) == [PREFIX + "dead.csv"]  # not older than the longest run
    trackers.expire_results(s3_runtime, now=begun + longest + dt.timedelta(seconds=1))
    assert uploads(moto, bucket) == [] and objects(moto, bucket) == []


def test_settings_are_checked_at_start_up_and_the_secret_never_shown(
    tmp_path, sqlite_chinook, moto, bucket
):
    env = s3_env(moto, bucket)
    with pytest.raises(ConfigError, match=r"^setting RESULT_S3_BUCKET: the s3 result store"):
        runtime_with(tmp_path / "a", sqlite_chinook, **{**env, "RESULT_S3_BUCKET": ""})
    with pytest.raises(ConfigError, match="set both, or neither"):
        runtime_with(tmp_path / "b", sqlite_chinook, **{**env, "RESULT_S3_SECRET_KEY": ""})
    with pytest.raises(ConfigError, match=r"^setting RESULT_S3_PREFIX: 'x' names a folder"):
        runtime_with(tmp_path / "c", sqlite_chinook, **{**env, "RESULT_S3_PREFIX": "x"})
    with pytest.raises(ConfigError, match=r"^setting RESULT_S3_ENDPOINT: 'ftp://h' must be an"):
        runtime_with(tmp_path / "d", sqlite_chinook, **{**env, "RESULT_S3_ENDPOINT": "ftp://h"})
    runtime = runtime_with(tmp_path / "e", sqlite_chinook, **env)
    assert SECRET not in repr(runtime.settings) and SECRET not in repr(runtime.store.place)
    runtime.engine.dispose()
    shown = dancecat(
        tmp_path / "e" / "home", "settings", env={f"DANCECAT_{k}": v for k, v in env.items()}
    )
    assert "RESULT_S3_SECRET_KEY" in shown and SECRET not in shown


def test_credentials_from_the_environment_when_the_settings_have_none(
    tmp_path, sqlite_chinook, moto, bucket, monkeypatch
):
    env = s3_env(moto, bucket)
    del env["RESULT_S3_ACCESS_KEY"], env["RESULT_S3_SECRET_KEY"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    runtime = runtime_with(tmp_path, sqlite_chinook, **env)
    try:
        writer = runtime.store.create("env.csv")
        writer.write(b"a\n1\n")
        writer.commit()
        assert runtime.store.open("env.csv").read() == b"a\n1\n"
        assert runtime.store.place.access_key_id is None  # boto3's chain found them
    finally:
        runtime.engine.dispose()


def _writable_job(app: App, sql: str) -> int:
    """A job on a connection not marked read-only: a run whose worker died is failed, not
    started again (its statement may have written), so the test sees the verdict."""
    with app.runtime.session_factory() as session:
        connection = Connection(
            name="chinook-rw", driver="sqlite", database=str(app.chinook), read_only=False
        )
        job = Job(name=f"job-{uuid.uuid4().hex[:6]}", connection=connection, query=sql)
        session.add_all([connection, job])
        session.commit()
        return job.id


def test_a_worker_killed_mid_upload_leaves_no_result_and_the_run_fails_clearly(
    tmp_path, sqlite_chinook, moto, bucket
):
    env = {**s3_env(moto, bucket), "WORKER_STALE_SECONDS": "13"}
    app = App(tmp_path, sqlite_chinook, **env)
    try:
        big = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) "
            "SELECT x AS n, printf('%080d', x) AS padding FROM c"
        )
        tracker_id = app.queue_run(_writable_job(app, big))
        tasks.enqueue_run(tracker_id)
        worker = app.worker(workers=1)
        app.wait("a part of the result on its way", lambda: uploads(moto, bucket), timeout=60)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        assert objects(moto, bucket) == []  # S3 shows nothing of an unfinished upload
        assert app.tracker(tracker_id).status == TrackerStatus.RUNNING
        app.worker(workers=1)  # its sweep finds the dead worker's run
        app.wait(
            "the sweep",
            lambda: app.tracker(tracker_id).status != TrackerStatus.RUNNING,
            timeout=60,
        )
        swept = app.tracker(tracker_id)
        assert swept.status == TrackerStatus.FAILED, swept.status
        assert swept.error.startswith("the worker running it stopped"), swept.error
        assert objects(moto, bucket) == []
        with pytest.raises(Exception, match="no result"):
            trackers.stored_result(app.runtime, swept)
    finally:
        app.close()
