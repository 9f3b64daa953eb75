"""A ``dancecat worker`` SIGKILLed in the middle of an SFTP or S3 upload, then a second
worker resending it: one ``sent`` row, one delivery key, a complete file and no
half-written one visible.

The upload is slowed by a throttling TCP proxy between the worker and its real peer (an
OpenSSH ``sshd``, moto's S3 server), so the kill lands while bytes are still flowing;
the proxy counts the bytes it forwarded, which says when.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from destination_peers import Sshd, keygen
from test_destinations import BIN, ROOT, wait

from dancecat_core import db, migrations, notify, tasks
from dancecat_core.inputs.job import JobInput
from dancecat_core.models import Connection, Notification, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.services import jobs as job_service
from dancecat_core.services import trackers as tracker_service
from dancecat_core.settings import load_settings
from dancecat_plugins.s3_transfer import MIN_PART_SIZE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# About ``rows`` x 100 bytes of CSV, made by the database (no file to ship).
BIG = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "
    "SELECT i AS n, replace(hex(zeroblob(45)), '0', 'a') AS pad FROM n"
)


class Throttle:
    """A TCP proxy on a free port to ``127.0.0.1:target``: bytes towards the target go at
    ``rate`` bytes a second (None: at full speed) and are counted in ``upstream``."""

    def __init__(self, target: int, rate: int | None):
        self.target = target
        self.rate = rate
        self.upstream = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(16384):
                if up and self.rate:
                    time.sleep(len(data) / self.rate)
                sink.sendall(data)
                if up:
                    self.upstream += len(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closing = True
        self.listener.close()


@pytest.fixture
def setting(tmp_path, sqlite_chinook) -> Iterator[Callable[..., tuple]]:
    """``make(client_key) -> (runtime, env)``: an app with a short lease (8 s: longer
    than the slowed upload takes until the kill, so no second try starts beside the first),
    so a killed worker's delivery is sent again within seconds."""
    made: list = []

    def make(client_key: Path | None = None):
        env = {
            **os.environ,
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(sqlite_chinook.parent),
            "DANCECAT_HUEY_NAME": f"dc-test-{uuid.uuid4().hex[:10]}",
            "DANCECAT_DELIVERY_ALLOW_PRIVATE_HOSTS": "true",
            "DANCECAT_DELIVERY_LEASE_SECONDS": "8",
            "DANCECAT_WORKER_STALE_SECONDS": "3",
            "DANCECAT_NOTIFY_RETRY_DELAY": "1",
            "DANCECAT_DELIVERY_TIMEOUT": "20",
            "DANCECAT_S3_PART_SIZE": str(MIN_PART_SIZE),
        }
        if client_key is not None:
            env["DANCECAT_SFTP_KEY_FILE"] = str(client_key)
        env.pop("DANCECAT_CONFIG", None)
        runtime = build_runtime(load_settings(environ=env))
        migrations.upgrade(runtime.engine)
        tasks.configure(runtime=runtime)
        made.append(runtime)
        return runtime, env

    yield make
    for runtime in made:
        tasks.huey.storage.flush_queue()
        tasks.huey.storage.flush_schedule()
        tasks.configure(None)
        runtime.engine.dispose()


def finished_run(runtime, chinook: Path, destination: str, rows: int) -> tuple[int, int, bytes]:
    """A job with ``destination`` run here (not by a worker): its tracker, its one
    notification (not queued yet) and the result as the CSV a file destination gets."""
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(name="chinook", driver="sqlite", database=str(chinook))
        session.add(connection)
        session.flush()
        job = job_service.create(
            runtime, session, None,
            JobInput(name="Big", connection_id=connection.id, query=BIG.format(rows=rows),
                     recipients=[destination]),
        )  # fmt: skip
        tracker_id = job_service.queue_run(session, None, job.id).id
    assert execute_tracker(runtime, tracker_id).status == TrackerStatus.SUCCESS
    [notification] = notify.after_run(runtime, tracker_id)
    with runtime.session_factory() as session:
        download = tracker_service.export(runtime, session.get(Tracker, tracker_id), "csv")
        return tracker_id, notification, b"".join(download.chunks)


class Workers:
    """``dancecat worker`` processes, each in its own process group."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs, self.started = env, logs, []

    def start(self) -> subprocess.Popen:
        log = open(self.logs / f"worker-{len(self.started)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [str(BIN / "dancecat"), "worker", "--workers", "2"],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.started.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)


def row(runtime, notification_id: int) -> Notification:
    with runtime.session_factory() as session:
        return session.get(Notification, notification_id)


def kill_mid_upload_then_resend(
    runtime, env, tmp_path, proxy: Throttle, notification: int, kill_after: int, total: int
) -> Callable[[], None]:
    """Start a worker, SIGKILL it once ``kill_after`` bytes went up, check the row is left
    claimed, and return what starts the second worker (after the caller looked at the
    peer) and waits for its ``sent``."""
    workers = Workers(env, tmp_path)
    first = workers.start()
    tasks.enqueue_notification(notification)
    wait("the upload to be under way", lambda: proxy.upstream > kill_after, timeout=90)
    workers.kill(first)
    assert proxy.upstream < total, "the upload finished before the kill: slow it more"
    left = row(runtime, notification)
    assert (left.status, left.attempts) == ("pending", 1) and left.claimed_at is not None

    def resend() -> None:
        try:
            proxy.rate = None
            workers.start()
            wait("the resend", lambda: row(runtime, notification).status == "sent", timeout=90)
            time.sleep(2)  # a stray third try would land by now
            done = row(runtime, notification)
            assert (done.status, done.attempts) == ("sent", 2)
        finally:
            workers.stop()

    return resend


def test_sftp_worker_killed_mid_upload_leaves_a_temp_file_the_resend_replaces(
    setting, tmp_path, sqlite_chinook
):
    client_key = keygen(tmp_path / "client_key")
    sshd = Sshd(tmp_path / "sshd", client_key)
    proxy = Throttle(sshd.port, rate=400_000)
    try:
        runtime, env = setting(client_key)
        folder = tmp_path / "drop"
        folder.mkdir()
        host_key = sshd.public_host_key().replace(" ", "%20")
        url = f"sftp://{sshd.user}@127.0.0.1:{proxy.port}{folder}/?host_key={host_key}"
        tracker_id, notification, expected = finished_run(runtime, sqlite_chinook, url, 30_000)
        key = row(runtime, notification).delivery_key
        resend = kill_mid_upload_then_resend(
            runtime, env, tmp_path, proxy, notification, 600_000, len(expected)
        )
        # Killed mid-upload: only the temporary name, named by the delivery key, is there.
        [partial] = list(folder.iterdir())
        assert partial.name.startswith(".") and partial.name.endswith(f".{key}.part")
        assert 0 < partial.stat().st_size < len(expected)
        resend()
        # The resend wrote the same temporary name afresh and renamed it into place.
        [written] = list(folder.iterdir())
        assert written.name.startswith("Big_") and written.name.endswith(f"_run{tracker_id}.csv")
        assert partial.name == f".{written.name}.{key}.part"
        assert written.read_bytes() == expected
    finally:
        proxy.close()
        sshd.stop()


def test_s3_worker_killed_mid_upload_leaves_a_dead_multipart_upload_the_resend_survives(
    setting, tmp_path, sqlite_chinook, moto
):
    proxy = Throttle(moto.port, rate=3_000_000)
    try:
        runtime, env = setting()
        bucket = f"b{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3", endpoint_url=moto.endpoint, region_name="us-east-1",
            aws_access_key_id="AKID", aws_secret_access_key="SECRET",
        )  # fmt: skip
        client.create_bucket(Bucket=bucket)
        endpoint = f"http://127.0.0.1:{proxy.port}"
        url = f"s3://AKID:SECRET@{bucket}/daily/?endpoint={endpoint}"
        tracker_id, notification, expected = finished_run(runtime, sqlite_chinook, url, 75_000)
        assert len(expected) > MIN_PART_SIZE + 1_000_000  # two parts at least
        resend = kill_mid_upload_then_resend(
            runtime, env, tmp_path, proxy, notification, MIN_PART_SIZE + 500_000,
            len(expected) + 100_000,
        )  # fmt: skip
        # Killed mid-upload: no object (S3 shows one only once complete), one upload open.
        assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
        [dead] = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
        resend()
        [stored] = client.list_objects_v2(Bucket=bucket)["Contents"]
        assert stored["Key"] == dead["Key"] and stored["Key"].endswith(f"_run{tracker_id}.csv")
        got = client.get_object(Bucket=bucket, Key=stored["Key"])["Body"].read()
        assert got == expected
        # The dead try's upload is still open (it costs storage until a lifecycle rule
        # aborts it: docs/DELIVERY.md); the resend's own upload completed.
        still = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["UploadId"] for u in still] == [dead["UploadId"]]
    finally:
        proxy.close()
