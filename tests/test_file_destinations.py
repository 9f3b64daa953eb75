"""SFTP and S3 destinations on the ledger: a job saved with the destination, run, delivered
through ``notify`` (one row per run and destination), against a real ``sshd`` and moto."""

from __future__ import annotations

import datetime as dt
import hashlib
import tracemalloc
import uuid

import boto3
import pytest
from destination_peers import Sshd, keygen
from sqlalchemy import update
from test_web_helpers import free_port

from dancecat_core import destinations, migrations, notify
from dancecat_core.errors import ValidationError
from dancecat_core.models import Notification, NotificationStatus, Tracker, TrackerStatus
from dancecat_core.notifiers import RunNotice, scheme_of
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.services import jobs
from dancecat_core.services import trackers as tracker_service
from dancecat_core.services.connections import ConnectionInput, create
from dancecat_core.services.jobs import JobInput
from dancecat_core.settings import load_settings
from dancecat_plugins.s3_transfer import MIN_PART_SIZE
from dancecat_web.api.present import tracker_json

ARTISTS = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 20"


@pytest.fixture
def client_key(tmp_path):
    return keygen(tmp_path / "client_key")


@pytest.fixture
def runtime(tmp_path, client_key):
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
        "DANCECAT_DELIVERY_ALLOW_PRIVATE_HOSTS": "true",
        "DANCECAT_DELIVERY_TIMEOUT": "10",
        "DANCECAT_SFTP_KEY_FILE": str(client_key),
        "DANCECAT_S3_PART_SIZE": str(MIN_PART_SIZE),
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    yield runtime
    runtime.engine.dispose()


def add_job(
    runtime, chinook, destination: str, sql: str = ARTISTS, name: str = "Top artists", **fields
) -> int:
    with runtime.session_factory() as session:
        connection = create(
            runtime,
            session,
            None,
            ConnectionInput(name=name, driver="sqlite", database=str(chinook)),
        )
        job = jobs.create(
            runtime,
            session,
            None,
            JobInput(
                name=name, connection_id=connection.id, query=sql,
                recipients=[destination], **fields,
            ),
        )  # fmt: skip
        session.commit()
        return job.id


def run(runtime, job_id: int) -> tuple[int, list[int]]:
    """Run the job in this process; its new notification ids, not yet delivered."""
    with runtime.session_factory() as session:
        tracker_id = jobs.queue_run(session, None, job_id).id
        session.commit()
    assert execute_tracker(runtime, tracker_id).status == TrackerStatus.SUCCESS
    return tracker_id, notify.after_run(runtime, tracker_id)


def csv_of(runtime, tracker_id: int) -> bytes:
    with runtime.session_factory() as session:
        download = tracker_service.export(runtime, session.get(Tracker, tracker_id), "csv")
        return b"".join(download.chunks)


def traced_peak(action) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def row(runtime, notification_id: int) -> Notification:
    with runtime.session_factory() as session:
        return session.get(Notification, notification_id)


def as_if_the_worker_died(runtime, notification_id: int) -> None:
    """The row as a worker leaves it when it dies after the upload, before marking it sent:
    still pending, its claim older than the lease (``notify.requeue_stalled`` sends it
    again with the same delivery key)."""
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with runtime.session_factory() as session:
        session.execute(
            update(Notification)
            .where(Notification.id == notification_id)
            .values(status=NotificationStatus.PENDING.value, claimed_at=long_ago, sent_at=None)
        )
        session.commit()


@pytest.fixture
def sshd(tmp_path, client_key):
    server = Sshd(tmp_path / "sshd", client_key)
    yield server
    server.stop()


def test_sftp_delivers_the_result_file_and_a_resend_replaces_it(
    runtime, sqlite_chinook, sshd, tmp_path
):
    folder = tmp_path / "drop"
    folder.mkdir()
    host_key = sshd.public_host_key().replace(" ", "%20")
    url = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{folder}/?host_key={host_key}"
    tracker_id, ids = run(runtime, add_job(runtime, sqlite_chinook, url))
    assert len(ids) == 1 and row(runtime, ids[0]).notifier == "sftp"
    assert notify.deliver(runtime, ids[0]) == "sent"
    today = dt.datetime.now(dt.UTC).date().isoformat()
    name = f"Top_artists_{today}_run{tracker_id}.csv"
    assert [p.name for p in folder.iterdir()] == [name]
    assert (folder / name).read_bytes() == csv_of(runtime, tracker_id)

    (folder / name).write_bytes(b"stale")
    # The dead try's half-written temporary file is cleared on the resend.
    (folder / f".{name}.{row(runtime, ids[0]).delivery_key}.part").write_bytes(b"half")
    as_if_the_worker_died(runtime, ids[0])
    assert notify.deliver(runtime, ids[0]) == "sent"
    assert [p.name for p in folder.iterdir()] == [name]  # replaced, not a second file
    assert (folder / name).read_bytes() == csv_of(runtime, tracker_id)
    assert row(runtime, ids[0]).attempts == 2


def test_the_file_name_comes_from_the_jobs_template_made_safe(
    runtime, sqlite_chinook, sshd, moto, tmp_path
):
    """An attacker's template cannot climb out of the folder or the prefix; every try of
    one delivery writes the same name, so a resend replaces the file."""
    folder = tmp_path / "drop"
    folder.mkdir()
    host_key = sshd.public_host_key().replace(" ", "%20")
    template = "../../{{ job_name }}/\u202e{{ run_id }}:{{ parameters|length }}"
    sftp = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{folder}/?host_key={host_key}"
    bucket = f"b{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1",
        aws_access_key_id="AKID", aws_secret_access_key="SECRET",
    )  # fmt: skip
    client.create_bucket(Bucket=bucket)
    s3 = f"s3://AKID:SECRET@{bucket}/p/?endpoint={moto.endpoint}"
    runs = []
    for url, name in ((sftp, "Top artists"), (s3, "S3 artists")):
        job_id = add_job(runtime, sqlite_chinook, url, name=name, filename_template=template)
        tracker_id, [notification] = run(runtime, job_id)
        assert notify.deliver(runtime, notification) == "sent"
        as_if_the_worker_died(runtime, notification)
        assert notify.deliver(runtime, notification) == "sent"
        runs.append(tracker_id)
    assert [p.name for p in folder.iterdir()] == [f"Top artists_{runs[0]}_0.csv"]
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"p/S3 artists_{runs[1]}_0.csv"]


def test_sftp_failing_connect_gives_the_run_row_a_clear_reason(runtime, sqlite_chinook):
    port = free_port()
    url = f"sftp://someone@127.0.0.1:{port}/drop/?trust=first-use"
    tracker_id, ids = run(runtime, add_job(runtime, sqlite_chinook, url))
    assert notify.deliver(runtime, ids[0]) == "failed"
    with runtime.session_factory() as session:
        shown = tracker_json(session.get(Tracker, tracker_id), runtime.value_patterns)
    (notification,) = shown["notifications"]
    assert notification["status"] == "failed"
    assert notification["recipient"] == url
    assert notification["last_error"] == (
        f"DeliveryError: cannot connect to 127.0.0.1 port {port}: Connection refused"
    )


def test_sftp_changed_host_key_is_refused_on_the_run_row(runtime, sqlite_chinook, sshd, tmp_path):
    other = keygen(tmp_path / "other")
    entry = "%20".join(other.with_suffix(".pub").read_text().split()[:2])
    url = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{tmp_path}/?host_key={entry}"
    tracker_id, ids = run(runtime, add_job(runtime, sqlite_chinook, url))
    assert notify.deliver(runtime, ids[0]) == "failed"
    with runtime.session_factory() as session:
        shown = tracker_json(session.get(Tracker, tracker_id), runtime.value_patterns)
    error = shown["notifications"][0]["last_error"]
    assert f"refused: the host key of [127.0.0.1]:{sshd.port} has CHANGED" in error


def test_sftp_password_is_stored_encrypted_and_never_shown(runtime, sqlite_chinook):
    job_id = add_job(runtime, sqlite_chinook, "sftp://ana:pa%2Fss@files.example/in/")
    with runtime.session_factory() as session:
        (recipient,) = jobs.get(session, None, job_id).recipients
        assert recipient.destination == "sftp://ana:***@files.example/in/"
        sealed = recipient.secrets_encrypted
    assert "pa/ss" not in sealed and "pa%2Fss" not in sealed
    assert destinations.unseal(runtime.secret_box, sealed) == {
        "url": "sftp://ana:pa%2Fss@files.example/in/"
    }


def test_s3_streams_a_large_result_from_the_store_in_bounded_memory(runtime, sqlite_chinook, moto):
    bucket = f"results-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1",
        aws_access_key_id="AKID", aws_secret_access_key="SECRET",
    )  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    # About 4.5 parts of CSV: 260,000 rows of about 92 bytes.
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 260000) "
        "SELECT i, printf('%080d', i) AS padding FROM n"
    )
    url = f"s3://AKID:SECRET@{bucket}/daily/?endpoint={moto.endpoint}&region=us-east-1"
    _, (small,) = run(runtime, add_job(runtime, sqlite_chinook, url, "SELECT 1 AS one"))
    baseline = traced_peak(lambda: notify.deliver(runtime, small))  # a client, one PUT
    tracker_id, ids = run(runtime, add_job(runtime, sqlite_chinook, url, sql, "Big"))
    expected = csv_of(runtime, tracker_id)
    assert len(expected) > 4 * MIN_PART_SIZE
    peak = traced_peak(lambda: notify.deliver(runtime, ids[0]))
    today = dt.datetime.now(dt.UTC).date().isoformat()
    key = f"daily/Big_{today}_run{tracker_id}.csv"
    got = s3.get_object(Bucket=bucket, Key=key)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(expected).digest()
    assert s3.head_object(Bucket=bucket, Key=key, PartNumber=1)["PartsCount"] == 5
    extra = peak - baseline
    print(f"{len(expected) / 2**20:.1f} MiB delivered: {extra / 2**20:.1f} MiB above one row's")
    assert extra < 2.5 * MIN_PART_SIZE, extra  # about one part held, never the whole result

    as_if_the_worker_died(runtime, ids[0])
    assert notify.deliver(runtime, ids[0]) == "sent"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed.count(key) == 1 and len(listed) == 2  # overwritten, not a second object


def test_a_test_delivery_writes_dancecat_test_txt(runtime, sshd, moto, tmp_path):
    """What "Send test" hands a notifier: a notice with ``test`` set and no result."""
    folder = tmp_path / "drop"
    folder.mkdir()
    sftp_url = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{folder}/?trust=first-use"
    bucket = f"results-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1",
        aws_access_key_id="AKID", aws_secret_access_key="SECRET",
    )  # fmt: skip
    s3.create_bucket(Bucket=bucket)
    s3_url = f"s3://AKID:SECRET@{bucket}/in/?endpoint={moto.endpoint}"
    for url in (sftp_url, s3_url):
        notifier = next(n for n in runtime.notifiers.values() if scheme_of(url) in n.schemes)
        parsed = notifier.parse(url)
        notice = RunNotice(
            tracker_id=0, job_id=0, job_name="test", status="Success", recipient=parsed.shown,
            row_count=None, duration_ms=None, error=None, secrets=parsed.secrets, test=True,
        )  # fmt: skip
        notifier.deliver(*notifier.prepare(notice, None))
    assert (folder / "dancecat_test.txt").read_bytes() == b"DanceCat test delivery\n"
    got = s3.get_object(Bucket=bucket, Key="in/dancecat_test.txt")["Body"].read()
    assert got == b"DanceCat test delivery\n"


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ("sftp://u@127.0.0.1/in/", "127.0.0.1 is not a public address"),
        ("sftp://u@LocalHost./in/", "localhost. is this machine"),
        ("s3://k:s@bucket/?endpoint=http://[::ffff:10.0.0.1]:9000", "is not a public address"),
        ("sftp://u@files.example/in/?format=docx", "format 'docx' is not one of csv"),
        ("s3://k:s@bucket/p/?format=pdf", "format 'pdf' is not one of csv"),
    ],
)
def test_refused_when_the_job_is_saved(tmp_path, sqlite_chinook, destination, message):
    environ = {
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    try:
        with pytest.raises(ValidationError, match=f"^Send result to: .*{message}") as refused:
            add_job(runtime, sqlite_chinook, destination)
        assert "\n" not in str(refused.value)
    finally:
        runtime.engine.dispose()
