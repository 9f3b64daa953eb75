"""Destinations against real receivers on this machine: a webhook receiver checking the
signature, apprise's json:// and form:// against the same receiver, a folder; a receiver
failing twice; a worker process killed mid-delivery; the SSRF guard with its setting off."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_web_helpers import dancecat, make_app, make_user, sign_in

from dancecat_core import db, destinations, migrations, outbound, tasks
from dancecat_core.errors import ValidationError
from dancecat_core.inputs.job import JobInput
from dancecat_core.models import Connection, Job, Notification, Tracker
from dancecat_core.notifiers import RunNotice
from dancecat_core.runtime import build_runtime
from dancecat_core.services import destination_tests
from dancecat_core.services import jobs as job_service
from dancecat_core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SQL = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 7"


class Receiver:
    """A local HTTP server keeping every request; ``answers`` are the statuses to give in
    turn (then 200); ``hold`` makes the first request wait until it is set."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.requests: list[dict] = []
        self.answers = list(answers or [])
        self.hold: threading.Event | None = None
        self.redirect_to: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                if receiver.hold is not None and len(receiver.requests) == 1:
                    receiver.hold.wait(60)
                if receiver.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                    self.end_headers()
                    return
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def wait(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def consumer(tmp_path, sqlite_chinook) -> Iterator[Callable[..., object]]:
    """A runtime with an embedded consumer; ``make(**settings)``."""
    made: list[tuple] = []

    def make(**env: object):
        environ = {
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(sqlite_chinook.parent),
            "DANCECAT_HUEY_NAME": f"dc-test-{uuid.uuid4().hex[:10]}",
            "DANCECAT_NOTIFY_RETRY_DELAY": "1",
            "DANCECAT_NOTIFY_RETRIES": "4",
            "DANCECAT_BASE_URL": "https://dancecat.example",
            "DANCECAT_DELIVERY_ALLOW_PRIVATE_HOSTS": "true",
            **{f"DANCECAT_{k}": str(v) for k, v in env.items()},
        }
        runtime = build_runtime(load_settings(environ=environ))
        migrations.upgrade(runtime.engine)
        tasks.configure(runtime=runtime)
        stop = tasks.start_embedded_consumer(workers=2)
        made.append((runtime, stop))
        return runtime

    yield make
    for runtime, stop in made:
        stop()
        tasks.huey.storage.flush_queue()
        tasks.configure(None)
        runtime.engine.dispose()


def add_job(runtime, chinook: Path, *recipients: str) -> Job:
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(name="chinook", driver="sqlite", database=str(chinook))
        session.add(connection)
        session.flush()
        job = job_service.create(
            runtime,
            session,
            None,
            JobInput(
                name="Top artists",
                connection_id=connection.id,
                query=SQL,
                recipients=list(recipients),
            ),
        )
        session.expunge(job)
        return job


def run(runtime, job_id: int) -> int:
    with db.session_scope(runtime.session_factory) as session:
        tracker_id = job_service.queue_run(session, None, job_id).id
    tasks.enqueue_run(tracker_id)
    return tracker_id


def rows_of(runtime, tracker_id: int) -> list[Notification]:
    with runtime.session_factory() as session:
        return list(session.get(Tracker, tracker_id).notifications)


def sent(runtime, tracker_id: int, count: int = 1) -> bool:
    found = rows_of(runtime, tracker_id)
    return len(found) == count and all(n.status == "sent" for n in found)


def failed(runtime, tracker_id: int) -> bool:
    found = rows_of(runtime, tracker_id)
    return bool(found) and found[0].status == "failed"


def secret_of(job: Job) -> str:
    [line] = job.announcements
    return line.rpartition(": ")[2]


def signed(request: dict, secret: str) -> bool:
    expected = hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(request["headers"]["X-DanceCat-Signature"], f"sha256={expected}")


def test_webhook_posts_signed_json_and_keeps_its_secrets_encrypted(
    consumer, receiver, sqlite_chinook
):
    runtime = consumer()
    typed = receiver.url("/hook?token=s3cr3t-value&team=ops")
    job = add_job(runtime, sqlite_chinook, typed, "ana@example.com")
    shown = f"http://127.0.0.1:{receiver.port}/hook?token=***&team=ops"
    assert job.announcements[0].startswith(f"webhook secret for {shown}: ")
    secret = secret_of(job)
    with runtime.session_factory() as session:
        stored = {r.destination: r.secrets_encrypted for r in session.get(Job, job.id).recipients}
    assert set(stored) == {shown, "ana@example.com"}
    assert "s3cr3t" not in stored[shown] and secret not in stored[shown]
    assert stored["ana@example.com"] is None

    tracker_id = run(runtime, job.id)
    wait("the webhook", lambda: any(n.notifier == "webhook" and n.status == "sent"
                                    for n in rows_of(runtime, tracker_id)))  # fmt: skip
    [request] = receiver.requests
    assert request["path"] == "/hook?token=s3cr3t-value&team=ops"
    assert signed(request, secret)
    [row] = [n for n in rows_of(runtime, tracker_id) if n.notifier == "webhook"]
    assert request["headers"]["X-DanceCat-Delivery"] == row.delivery_key
    assert row.recipient == shown
    body = json.loads(request["body"])
    with runtime.session_factory() as session:
        tracker = session.get(Tracker, tracker_id)
        finished = tracker.finished_at.isoformat()
    assert body == {
        "job": {"id": job.id, "name": "Top artists"},
        "run": {
            "id": tracker_id,
            "status": "Success",
            "rows": 7,
            "due_at": None,
            "finished_at": finished,
            "parameters": {},
        },
        "links": {
            fmt: f"https://dancecat.example/runs/{tracker_id}/result.{fmt}"
            for fmt in ("csv", "json", "ods", "xlsx")  # every registered format
        },
        "error": None,
    }
    # A tampered body does not verify.
    assert not signed({**request, "body": request["body"] + b" "}, secret)


def test_receiver_failing_twice_gets_one_delivery_with_one_key(consumer, sqlite_chinook):
    receiver = Receiver(answers=[500, 503])
    try:
        runtime = consumer()
        job = add_job(runtime, sqlite_chinook, receiver.url())
        tracker_id = run(runtime, job.id)
        wait("the third try to succeed", lambda: sent(runtime, tracker_id), timeout=40)
        time.sleep(1.5)  # a stray duplicate would land by now
        [row] = rows_of(runtime, tracker_id)
        assert row.attempts == 3 and row.last_error is None
        keys = [r["headers"]["X-DanceCat-Delivery"] for r in receiver.requests]
        assert keys == [row.delivery_key] * 3
        assert all(signed(r, secret_of(job)) for r in receiver.requests)
    finally:
        receiver.close()


def test_failure_reason_is_on_the_notification_row(consumer, sqlite_chinook):
    receiver = Receiver(answers=[500] * 10)
    try:
        runtime = consumer(NOTIFY_RETRIES=1)
        job = add_job(runtime, sqlite_chinook, receiver.url())
        tracker_id = run(runtime, job.id)
        wait("giving up", lambda: failed(runtime, tracker_id))
        [row] = rows_of(runtime, tracker_id)
        assert row.last_error == "DancecatError: HTTP 500 Internal Server Error: ok"
    finally:
        receiver.close()


def test_redirect_to_another_host_is_not_followed(consumer, receiver, sqlite_chinook):
    other = Receiver()
    try:
        receiver.redirect_to = f"http://localhost:{other.port}/elsewhere"
        runtime = consumer(NOTIFY_RETRIES=0)
        job = add_job(runtime, sqlite_chinook, receiver.url())
        tracker_id = run(runtime, job.id)
        wait("the refusal", lambda: failed(runtime, tracker_id))
        assert "redirected to another host (localhost); not followed" in (
            rows_of(runtime, tracker_id)[0].last_error or ""
        )
        assert other.requests == []
    finally:
        other.close()


# --- the SSRF guard, DELIVERY_ALLOW_PRIVATE_HOSTS off -------------------------------------


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "10.1.2.3",
     "192.168.0.1", "172.16.0.1", "169.254.169.254", "100.64.0.1", "fd00::1", "fe80::1",
     "0.0.0.0", "::", "224.0.0.1"],
)  # fmt: skip
def test_not_public_addresses(address):
    assert not outbound.is_public(address)


def test_public_addresses():
    assert outbound.is_public("8.8.8.8") and outbound.is_public("2001:4860:4860::8888")


@pytest.mark.parametrize(
    "host", ["0x7f.1", "2130706433", "127.1", "0177.0.0.1", "::ffff:127.0.0.1", "localhost",
             "localhost.", "LOCALHOST", "a.localhost"],
)  # fmt: skip
def test_every_spelling_of_this_machine_is_refused_at_connect(receiver, host):
    with pytest.raises(outbound.RefusedHost):
        outbound.connect(host, receiver.port, timeout=2, allow_private=False)
    assert receiver.requests == []


def test_a_name_resolved_to_a_private_address_at_delivery_is_refused(runtime, receiver):
    """DNS rebinding: a name is checked when connecting, on what it resolves to then. This
    machine's own name resolves to a loopback or private address and passes parsing as a
    name; the delivery is still refused and nothing reaches the receiver."""
    name = socket.gethostname()
    resolved = {a[4][0] for a in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    if any(outbound.is_public(a) for a in resolved):
        pytest.skip(f"{name} resolves to a public address here")
    webhook = runtime.notifiers["webhook"]
    url = f"http://{name}:{receiver.port}/hook"
    parsed = webhook.parse(url)  # a name: nothing to refuse before resolving it
    with pytest.raises(outbound.RefusedHost, match="not public"):
        webhook.deliver(_notice(parsed.shown, url), None)
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/x", "http://[::ffff:127.0.0.1]/x", "https://localhost./x",
            "http://169.254.169.254/latest/meta-data", "http://[fd12:3456::1]/x",
            "http://10.0.0.5:8080/x"],
)  # fmt: skip
def test_literal_private_webhooks_are_refused_when_saved(runtime, url):
    with pytest.raises(ValidationError, match="DELIVERY_ALLOW_PRIVATE_HOSTS"):
        runtime.notifiers["webhook"].parse(url)


def _notice(shown: str, url: str) -> RunNotice:
    return RunNotice(
        tracker_id=1, job_id=1, job_name="j", status="Success", recipient=shown, row_count=1,
        duration_ms=1, error=None, delivery_key="k", secrets={"url": url, "generated": "s"},
    )  # fmt: skip


# --- editing keeps stored secrets; masked forms never move them --------------------------


def test_editing_keeps_the_secret_unless_replaced(runtime, sqlite_chinook):
    typed = "https://hooks.example.com/services/T0001/B0002/abcdEFGH1234ijklMNOP"
    job = add_job(runtime, sqlite_chinook, typed)
    shown = "https://hooks.example.com/services/T0001/B0002/***"
    assert [r.destination for r in job.recipients] == [shown]
    box = runtime.secret_box
    with db.session_scope(runtime.session_factory) as session:
        before = destinations.stored_secrets(box, session.get(Job, job.id).recipients)[shown]
        assert before["url"] == typed and before["generated"] == secret_of(job)
        edited = job_service.update(
            runtime, session, None, job.id, JobInput(recipients=[shown, "bo@example.com"])
        )
        assert edited.announcements == ()  # nothing new to show
        after = destinations.stored_secrets(box, edited.recipients)
        assert after[shown] == before
        with pytest.raises(ValidationError, match="not one this job has stored; type"):
            job_service.update(
                runtime, session, None, job.id,
                JobInput(recipients=["https://evil.example.com/services/T0001/B0002/***"]),
            )  # fmt: skip
        replaced = job_service.update(
            runtime, session, None, job.id,
            JobInput(recipients=[typed.replace("abcd", "wxyz")]),
        )  # fmt: skip
        now = destinations.stored_secrets(box, replaced.recipients)[shown]
        assert now["url"].endswith("wxyzEFGH1234ijklMNOP")
        assert now["generated"] == before["generated"]  # the signing secret stays


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("ftp://example.com/x", "no destination type for ftp:"),
        ("https://", "needs a host"),
        ("https://example.com:99999/", "port is not a number"),
        ("not-an-address", "is not a valid email address"),
        ("slack://", "not a valid slack:// URL"),
        ("file:///etc/", "outside DELIVERY_ALLOWED_DIRS"),
    ],
)
def test_bad_destinations_get_one_line_by_label(runtime, typed, message):
    with pytest.raises(ValidationError) as caught:
        JobInput.field("recipients").clean([typed], runtime)
    text = str(caught.value)
    assert text.startswith("Send result to: ") and message in text and "\n" not in text


# --- chat through apprise -----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["json", "form"])
def test_chat_through_apprise_carries_summary_table_and_links(
    consumer, receiver, sqlite_chinook, scheme
):
    runtime = consumer()
    job = add_job(runtime, sqlite_chinook, f"{scheme}://user:pa55word@127.0.0.1:{receiver.port}/chat")
    [shown] = [r.destination for r in job.recipients]
    assert "pa55word" not in shown and "***" in shown
    tracker_id = run(runtime, job.id)
    wait("the chat message", lambda: sent(runtime, tracker_id))
    [request] = receiver.requests
    if scheme == "json":
        message = json.loads(request["body"])
    else:
        message = dict(urllib.parse.parse_qsl(request["body"].decode()))
    assert message["title"] == f"DanceCat: Top artists — run {tracker_id} succeeded"
    body = message["message"]
    assert "**Rows:** 7" in body
    assert "ArtistId | Name" in body and "1        | AC/DC" in body
    assert "Alice In Chains" in body and "Antônio" not in body  # rows 1..5 of 7
    assert f"https://dancecat.example/runs/{tracker_id}/result.xlsx" in body
    assert request["headers"]["Authorization"].startswith("Basic ")


# --- folders --------------------------------------------------------------------------------


@pytest.fixture
def drop(tmp_path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def test_folder_gets_the_result_atomically_and_a_resend_replaces_it(
    consumer, drop, sqlite_chinook
):
    runtime = consumer(DELIVERY_ALLOWED_DIRS=drop)
    job = add_job(runtime, sqlite_chinook, f"file://{drop}/", f"file://{drop}/?format=xlsx")
    tracker_id = run(runtime, job.id)
    wait("both files", lambda: sent(runtime, tracker_id, 2))
    with runtime.session_factory() as session:
        finished = session.get(Tracker, tracker_id).finished_at.date().isoformat()
    name = f"Top_artists_{finished}_run{tracker_id}"
    assert sorted(p.name for p in drop.iterdir()) == [f"{name}.csv", f"{name}.xlsx"]
    written = drop / f"{name}.csv"
    assert oct(written.stat().st_mode & 0o777) == "0o640"
    rows = list(csv.reader(io.StringIO(written.read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["ArtistId", "Name"] and len(rows) == 8
    # A resend (as after a worker died mid-write) replaces the file: still two files.
    first = written.stat().st_ino
    with runtime.session_factory() as session:
        row = next(n for n in session.get(Tracker, tracker_id).notifications
                   if not n.recipient.endswith("xlsx"))  # fmt: skip
        notifier = runtime.notifiers["folder"]
        from dancecat_core import notify

        tracker = session.get(Tracker, tracker_id)
        notice = notify._notice(runtime, session, tracker, row)
        notice, _ = notifier.prepare(notice, notify._export(runtime, tracker))
    notifier.deliver(notice, None)
    assert sorted(p.name for p in drop.iterdir()) == [f"{name}.csv", f"{name}.xlsx"]
    assert written.stat().st_ino != first and written.read_bytes().count(b"\n") == 8


def test_folder_paths_outside_the_allowed_ones_are_refused(tmp_path, drop, sqlite_chinook):
    home = tmp_path / "home"
    settings = load_settings(
        environ={
            "DANCECAT_HOME": str(home),
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
            "DANCECAT_DELIVERY_ALLOWED_DIRS": f"{drop},{tmp_path}",
        }
    )
    runtime = build_runtime(settings)
    folder = runtime.notifiers["folder"]
    (drop / "sub").mkdir()
    (drop / "to_home").symlink_to(home)
    (drop / "to_etc").symlink_to("/etc")
    assert folder.parse(f"file://{drop}/sub/").shown == f"file://{drop}/sub/"
    assert folder.parse(f"file://{drop}/sub/%2e%2e/sub/?format=json").shown == (
        f"file://{drop}/sub/?format=json"
    )
    refusals = {
        f"file://{drop}/../../": "outside DELIVERY_ALLOWED_DIRS",
        f"file://{drop}/%2e%2e/%2E%2E/": "outside DELIVERY_ALLOWED_DIRS",
        f"file://{drop}/to_etc/": "outside DELIVERY_ALLOWED_DIRS",
        f"file://{drop}/to_home/": "DanceCat's own folders",
        f"file://{home}/": "DanceCat's own folders",
        f"file://{home}/results/": "DanceCat's own folders",
        f"file://{drop}/missing/": "is not a folder",
        "file://host.example/share/": "no host",
        f"file://{drop}/?format=pdf": "format 'pdf' is not one of",
        f"file://{drop}/?name=x": r"takes only \?format=FORMAT",
    }
    for url, why in refusals.items():
        with pytest.raises(ValidationError, match=why):
            folder.parse(url)
    runtime.engine.dispose()


# --- a worker killed mid-delivery -----------------------------------------------------------


def test_worker_killed_mid_delivery_resends_with_the_same_key(tmp_path, sqlite_chinook):
    receiver = Receiver()
    receiver.hold = threading.Event()
    env = {
        **os.environ,
        "DANCECAT_HOME": str(tmp_path / "home"),
        "DANCECAT_SQLITE_ALLOWED_DIRS": str(sqlite_chinook.parent),
        "DANCECAT_HUEY_NAME": f"dc-test-{uuid.uuid4().hex[:10]}",
        "DANCECAT_DELIVERY_ALLOW_PRIVATE_HOSTS": "true",
        "DANCECAT_DELIVERY_LEASE_SECONDS": "3",
        "DANCECAT_WORKER_STALE_SECONDS": "3",
        "DANCECAT_NOTIFY_RETRY_DELAY": "1",
    }
    env.pop("DANCECAT_CONFIG", None)
    runtime = build_runtime(load_settings(environ=env))
    migrations.upgrade(runtime.engine)
    tasks.configure(runtime=runtime)
    workers: list[subprocess.Popen] = []

    def worker() -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(workers)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [str(BIN / "dancecat"), "worker", "--workers", "2"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        workers.append(process)
        return process

    try:
        job = add_job(runtime, sqlite_chinook, receiver.url())
        tracker_id = run(runtime, job.id)
        first = worker()
        wait("the first try to reach the receiver", lambda: len(receiver.requests) == 1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        receiver.hold.set()
        [row] = rows_of(runtime, tracker_id)
        assert row.status == "pending" and row.attempts == 1 and row.claimed_at is not None
        worker()
        wait("the resend", lambda: sent(runtime, tracker_id), timeout=40)
        time.sleep(2)  # a stray third try would land by now
        [row] = rows_of(runtime, tracker_id)
        assert row.attempts == 2
        keys = [r["headers"]["X-DanceCat-Delivery"] for r in receiver.requests]
        assert keys == [row.delivery_key] * 2
        assert all(signed(r, secret_of(job)) for r in receiver.requests)
    finally:
        for process in workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
        receiver.close()
        tasks.huey.storage.flush_queue()
        tasks.huey.storage.flush_schedule()
        tasks.configure(None)
        runtime.engine.dispose()


def test_a_slow_delivery_keeps_its_claim_so_no_second_try_starts_beside_it(
    consumer, receiver, sqlite_chinook
):
    """A try slower than DELIVERY_LEASE_SECONDS (a big upload) renews its claim: the sweep
    does not take it for a dead worker's try, and no other try can claim it meanwhile."""
    from dancecat_core import notify

    receiver.hold = threading.Event()
    runtime = consumer(DELIVERY_LEASE_SECONDS=2)
    job = add_job(runtime, sqlite_chinook, receiver.url())
    tracker_id = run(runtime, job.id)
    wait("the try to reach the receiver", lambda: len(receiver.requests) == 1)
    [row] = rows_of(runtime, tracker_id)
    held_until = time.monotonic() + 3 * runtime.settings.delivery_lease_seconds
    while time.monotonic() < held_until:  # three leases, a sweep's look every 0.2 s
        assert notify.stalled(runtime) == []
        assert notify.deliver(runtime, row.id, final=False) == "skipped"
        time.sleep(0.2)
    receiver.hold.set()
    wait("the delivery", lambda: sent(runtime, tracker_id))
    time.sleep(1)
    [row] = rows_of(runtime, tracker_id)
    assert row.attempts == 1 and row.claimed_at is None
    assert len(receiver.requests) == 1


# --- Send test ----------------------------------------------------------------------------


def test_send_test_reaches_the_destination_with_its_stored_secret(runtime, receiver):
    settings = runtime.settings
    allowed = build_runtime(
        load_settings(
            environ={
                "DANCECAT_HOME": str(settings.home),
                "DANCECAT_DELIVERY_ALLOW_PRIVATE_HOSTS": "true",
            }
        ),
        engine=runtime.engine,
    )
    stored = {receiver.url(): {"generated": "the-secret"}}
    outcome = destination_tests.send(allowed, receiver.url(), stored, job_name="J")
    assert outcome.sent and outcome.announce is None
    [request] = receiver.requests
    assert signed(request, "the-secret")
    assert json.loads(request["body"])["test"] is True
    assert request["headers"]["X-DanceCat-Delivery"].startswith("test-")
    with pytest.raises(ValidationError, match="DELIVERY_ALLOW_PRIVATE_HOSTS") as refused:
        destination_tests.send(runtime, receiver.url("/x?token=zzz"), {}, job_name="J")
    assert refused.value.field == "destination" and "zzz" not in str(refused.value)


# --- console, API and screens --------------------------------------------------------------


def test_console_shows_the_webhook_secret_once_and_tests_a_destination(
    tmp_path, receiver, sqlite_chinook
):
    home = tmp_path / "home"
    env = {"DANCECAT_DELIVERY_ALLOW_PRIVATE_HOSTS": "true"}
    dancecat(home, "init", env=env)
    dancecat(home, "connection", "add", "chinook", "--driver", "sqlite",
             "--database", str(sqlite_chinook), env=env)  # fmt: skip
    url = receiver.url("/hook?token=t0ken")
    added = dancecat(home, "job", "add", "J", "--connection", "chinook", "--sql", "SELECT 1",
                     "--recipient", url, "--recipient", "ana@example.com", env=env)  # fmt: skip
    shown = f"http://127.0.0.1:{receiver.port}/hook?token=***"
    lines = added.splitlines()
    assert lines[0].startswith("job ") and lines[1].startswith(f"webhook secret for {shown}: ")
    secret = lines[1].rpartition(": ")[2]
    # Editing with the masked form keeps the secret and shows nothing new.
    edited = dancecat(home, "job", "edit", "J", "--recipient", shown, env=env)
    assert "secret" not in edited and "t0ken" not in edited
    listed = json.loads(dancecat(home, "job", "list", "--json", env=env))
    assert "t0ken" not in json.dumps(listed)
    tested = dancecat(home, "destination", "test", shown, "--job", "J", env=env)
    assert tested == f"test message sent to {shown}\n"
    [request] = receiver.requests
    assert signed(request, secret) and request["path"] == "/hook?token=t0ken"
    # Without DELIVERY_ALLOW_PRIVATE_HOSTS: refused in one line.
    done = subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", "destination", "test", url],
        env={**os.environ, "DANCECAT_HOME": str(home)}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0 and len(done.stderr.splitlines()) == 1
    assert "DELIVERY_ALLOW_PRIVATE_HOSTS" in done.stderr and "t0ken" not in done.stderr


def test_api_and_job_page_show_secrets_masked_and_send_test(runtime, receiver, sqlite_chinook):
    allowed = build_runtime(
        load_settings(
            environ={
                "DANCECAT_HOME": str(runtime.settings.home),
                "DANCECAT_SQLITE_ALLOWED_DIRS": str(sqlite_chinook.parent),
                "DANCECAT_DELIVERY_ALLOW_PRIVATE_HOSTS": "true",
            }
        ),
        engine=runtime.engine,
    )
    owner = make_user(allowed, "owner@example.com")
    app = make_app(allowed)
    with db.session_scope(allowed.session_factory) as session:
        connection = Connection(
            name="c", driver="sqlite", database=str(sqlite_chinook), owner_id=owner.id
        )
        session.add(connection)
        session.flush()
        connection_id = connection.id
    typed = f"json://bot:hunter22@127.0.0.1:{receiver.port}/chat"
    created = app.post_json(
        "/api/v1/jobs",
        {"name": "J", "connection_id": connection_id, "query": "SELECT 1",
         "recipients": [receiver.url("/h?token=abc123"), typed]},
        headers=owner.auth, status=201,
    ).json  # fmt: skip
    shown = created["job"]["recipients"]
    assert "abc123" not in json.dumps(created["job"]) and "hunter22" not in json.dumps(created)
    [line] = created["secrets"]
    assert line.startswith(f"webhook secret for http://127.0.0.1:{receiver.port}/h?token=***: ")
    job_id = created["job"]["id"]
    again = app.get(f"/api/v1/jobs/{job_id}", headers=owner.auth).json
    assert again["job"]["recipients"] == shown and "secrets" not in again
    # PATCH with the masked forms keeps every secret.
    app.patch_json(f"/api/v1/jobs/{job_id}", {"recipients": shown}, headers=owner.auth)
    sign_in(app, owner.email)
    page = app.get(f"/jobs/{job_id}")
    assert "abc123" not in page.text and "hunter22" not in page.text
    assert "SMTP_HOST" not in page.text  # email is off, but no destination is an email
    chat = next(s for s in shown if s.startswith("json://"))
    form = next(f for f in page.forms.values() if f.get("destination", default=None)
                and f["destination"].value == chat)  # fmt: skip
    after = form.submit(status=303).follow()
    assert f"Test message sent to {chat}" in after.text
    [request] = receiver.requests
    assert json.loads(request["body"])["title"] == "DanceCat: test message for J"
    assert request["headers"]["Authorization"].startswith("Basic ")


def test_send_test_over_the_api_echoes_no_secret_and_hides_other_users_jobs(
    runtime, receiver, sqlite_chinook
):
    allowed = build_runtime(
        load_settings(
            environ={
                "DANCECAT_HOME": str(runtime.settings.home),
                "DANCECAT_DELIVERY_ALLOW_PRIVATE_HOSTS": "true",
                "DANCECAT_DELIVERY_TIMEOUT": "5",
            }
        ),
        engine=runtime.engine,
    )
    alice = make_user(allowed, "alice@example.com")
    bob = make_user(allowed, "bob@example.com")
    admin = make_user(allowed, "root@example.com", admin=True)
    app = make_app(allowed)
    with db.session_scope(allowed.session_factory) as session:
        connection = Connection(
            name="c", driver="sqlite", database=str(sqlite_chinook), owner_id=alice.id,
            shared=True,
        )  # fmt: skip
        session.add(connection)
        session.flush()
        connection_id = connection.id
    chat = f"json://bot:hunter22@127.0.0.1:{receiver.port}/chat"
    created = app.post_json(
        "/api/v1/jobs",
        {"name": "J", "connection_id": connection_id, "query": "SELECT 1", "shared": True,
         "recipients": [receiver.url("/h?token=abc123"), chat]},
        headers=alice.auth, status=201,
    ).json  # fmt: skip
    job_id, shown = created["job"]["id"], created["job"]["recipients"]
    secrets = ("abc123", "hunter22", created["secrets"][0].rpartition(": ")[2])
    path = f"/api/v1/jobs/{job_id}/destinations/test"

    every = app.post(path, headers=alice.auth).json
    assert every == {"results": [{"destination": s, "sent": True, "error": None} for s in shown]}
    assert len(receiver.requests) == 2 and receiver.requests[0]["path"] == "/h?token=abc123"
    one = app.post_json(path, {"destination": shown[1]}, headers=admin.auth).json
    assert [r["destination"] for r in one["results"]] == [shown[1]]
    refused = app.post_json(path, {"destination": chat}, headers=alice.auth, status=422).json
    assert refused["error"]["field"] == "destination" and "hunter22" not in json.dumps(refused)

    # Another user's job answers exactly like an unknown id, even a shared job bob may run.
    unknown = app.post(f"/api/v1/jobs/{2**40}/destinations/test", headers=bob.auth, status=404)
    for member, body in ((bob, None), (bob, {"destination": shown[0]})):
        answer = (
            app.post(path, headers=member.auth, status=404)
            if body is None
            else app.post_json(path, body, headers=member.auth, status=404)
        )
        assert answer.json == unknown.json
    app.post(path, status=401)
    assert len(receiver.requests) == 3

    # A destination as typed: sent with its own secrets, none of them in the answer.
    typed = receiver.url("/t?token=zzz9")
    answer = app.post_json("/api/v1/destinations/test", {"destination": typed}, headers=bob.auth)
    [result] = answer.json["results"]
    assert result["sent"] and result["destination"] == receiver.url("/t?token=***")
    assert receiver.requests[-1]["path"] == "/t?token=zzz9"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    dead = f"http://u:pa55word@127.0.0.1:{port}/x?token=zzz9"
    failed_test = app.post_json(
        "/api/v1/destinations/test", {"destination": dead}, headers=bob.auth
    ).json
    [result] = failed_test["results"]
    assert result["sent"] is False and "refused" in result["error"].lower()
    for answer_json in (every, one, answer.json, failed_test):
        text = json.dumps(answer_json)
        assert not any(secret in text for secret in (*secrets, "zzz9", "pa55word"))
    for body in ({}, {"destination": ""}, {"destination": "ftp://x/"}, {"other": 1}):
        bad = app.post_json("/api/v1/destinations/test", body, headers=bob.auth, status=422)
        assert bad.json["error"]["field"] in ("destination", "other")
