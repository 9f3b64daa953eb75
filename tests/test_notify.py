"""Email through a real SMTP server (aiosmtpd) started by the test, with a real consumer."""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import openpyxl
import pytest
from aiosmtpd.controller import Controller
from python_calamine import CalamineWorkbook

from dancecat_core import db, migrations, tasks
from dancecat_core.errors import ValidationError
from dancecat_core.models import (
    Connection,
    Job,
    JobRecipient,
    Notification,
    NotificationStatus,
    Tracker,
    TrackerStatus,
)
from dancecat_core.runtime import build_runtime
from dancecat_core.services import jobs as job_service
from dancecat_core.services import trackers as tracker_service
from dancecat_core.settings import load_settings

RECIPIENTS = ["ana@example.com", "bo@example.org"]
ARTISTS_SQL = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 20"


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mailer:
    def __init__(self, port: int):
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def setup(tmp_path, sqlite_chinook) -> Iterator[Callable[..., tuple]]:
    """Build (runtime, mailer) with a running embedded consumer; tear both down after."""
    made: list[tuple] = []

    def make(*, smtp_up: bool = True, **env: object):
        mailer = Mailer(free_port())
        environ = {
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
            "DANCECAT_HUEY_NAME": f"dc-test-{uuid.uuid4().hex[:10]}",
            "DANCECAT_SMTP_HOST": "127.0.0.1",
            "DANCECAT_SMTP_PORT": str(mailer.port),
            "DANCECAT_MAIL_SENDER": "reports@dancecat.example",
            "DANCECAT_NOTIFY_RETRY_DELAY": "1",
            "DANCECAT_NOTIFY_RETRIES": "6",
            "DANCECAT_BASE_URL": "https://dancecat.example",
            **{f"DANCECAT_{k}": str(v) for k, v in env.items()},
        }
        runtime = build_runtime(load_settings(environ=environ))
        migrations.upgrade(runtime.engine)
        tasks.configure(runtime=runtime)
        if smtp_up:
            mailer.start()
        stop = tasks.start_embedded_consumer(workers=2)
        made.append((runtime, mailer, stop))
        return runtime, mailer

    yield make
    for runtime, mailer, stop in made:
        stop()
        mailer.stop()
        tasks.huey.storage.flush_queue()
        tasks.configure(None)
        runtime.engine.dispose()


def add_job(runtime, chinook: Path, sql: str = ARTISTS_SQL) -> int:
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(name="chinook", driver="sqlite", database=str(chinook))
        job = Job(name="Top artists", connection=connection, query=sql)
        job.recipients = [JobRecipient(destination=r) for r in RECIPIENTS]
        session.add_all([connection, job])
        session.flush()
        return job.id


def run(runtime, job_id: int) -> int:
    with db.session_scope(runtime.session_factory) as session:
        tracker_id = job_service.queue_run(session, None, job_id).id
    tasks.enqueue_run(tracker_id)
    return tracker_id


def wait(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def notifications(runtime, tracker_id: int) -> list[Notification]:
    with runtime.session_factory() as session:
        return list(session.get(Tracker, tracker_id).notifications)


def all_sent(runtime, tracker_id: int) -> bool:
    rows = notifications(runtime, tracker_id)
    return len(rows) == len(RECIPIENTS) and all(n.status == "sent" for n in rows)


def result_digest(runtime, tracker_id: int) -> str:
    with runtime.session_factory() as session:
        tracker = session.get(Tracker, tracker_id)
        download = tracker_service.export(runtime, tracker, "csv")
        return hashlib.sha256(b"".join(download.chunks)).hexdigest()


def test_success_mails_each_recipient_with_xlsx_equal_to_result(setup, sqlite_chinook):
    runtime, mailer = setup()
    tracker_id = run(runtime, add_job(runtime, sqlite_chinook))
    wait("both messages", lambda: all_sent(runtime, tracker_id))
    assert sorted(rcpt for rcpt, _ in mailer.inbox.messages) == [[r] for r in sorted(RECIPIENTS)]
    with sqlite3.connect(sqlite_chinook) as source:
        expected = [["ArtistId", "Name"]] + [
            [str(v) for v in row] for row in source.execute(ARTISTS_SQL)
        ]
    for rcpt, message in mailer.inbox.messages:
        assert message["To"] == rcpt[0]
        assert message["From"] == "reports@dancecat.example"
        assert message["Subject"] == f"DanceCat: Top artists — run {tracker_id} succeeded"
        body = message.get_body(("plain",)).get_content()
        assert f"Run: {tracker_id}" in body and "Rows: 20" in body
        [part] = list(message.iter_attachments())
        assert part.get_filename() == f"Result_tid_{tracker_id}.xlsx"
        book = openpyxl.load_workbook(io.BytesIO(part.get_content()), read_only=True)
        sheet = book.worksheets[0]
        got = [[str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        book.close()
        assert got == expected
    rows = notifications(runtime, tracker_id)
    assert {(n.notifier, n.recipient, n.attempts) for n in rows} == {
        ("email", r, 1) for r in RECIPIENTS
    }


def test_a_recipient_names_the_attachment_format(setup, sqlite_chinook):
    """``ana@example.com?format=ods``: Ana gets an ODS, Bo the default XLSX; the format is
    any registered exporter's, checked when the destination is saved."""
    runtime, mailer = setup()
    mail = runtime.notifiers["email"]
    assert mail.parse("mailto:ana@example.com?format=ODS").shown == "ana@example.com?format=ods"
    assert mail.parse("ana@example.com?format=xlsx").shown == "ana@example.com"  # the default
    for bad, why in (
        ("ana@example.com?format=pdf", "format 'pdf' is not one of csv, json, ods, xlsx"),
        ("ana@example.com?to=eve@example.com", "an email address takes only ?format=FORMAT"),
        ("ana@example.com?format=ods&format=csv", "an email address takes only ?format=FORMAT"),
    ):
        with pytest.raises(ValidationError, match=re.escape(why)):
            mail.parse(bad)
    job_id = add_job(runtime, sqlite_chinook)
    with db.session_scope(runtime.session_factory) as session:
        for recipient in session.get(Job, job_id).recipients:
            if recipient.destination == "ana@example.com":
                recipient.destination = "ana@example.com?format=ods"
    tracker_id = run(runtime, job_id)
    wait("both messages", lambda: all_sent(runtime, tracker_id))
    with sqlite3.connect(sqlite_chinook) as source:
        expected = [["ArtistId", "Name"]] + [list(row) for row in source.execute(ARTISTS_SQL)]
    got = {rcpt[0]: message for rcpt, message in mailer.inbox.messages}
    assert sorted(got) == ["ana@example.com", "bo@example.org"]
    [part] = list(got["ana@example.com"].iter_attachments())
    assert part.get_filename() == f"Result_tid_{tracker_id}.ods"
    assert part.get_content_type() == "application/vnd.oasis.opendocument.spreadsheet"
    book = CalamineWorkbook.from_filelike(io.BytesIO(part.get_content()))
    rows = book.get_sheet_by_index(0).to_python()
    assert [[int(v) if isinstance(v, float) else v for v in row] for row in rows] == expected
    body = got["ana@example.com"].get_body(("plain",)).get_content()
    assert f"https://dancecat.example/runs/{tracker_id}/result.ods" in body
    [part] = list(got["bo@example.org"].iter_attachments())
    assert part.get_filename() == f"Result_tid_{tracker_id}.xlsx"


def test_too_big_for_attachment_sends_link_and_reason(setup, sqlite_chinook):
    runtime, mailer = setup(MAIL_ATTACHMENT_MAX_BYTES=2000)
    job_id = add_job(runtime, sqlite_chinook, "SELECT * FROM Track ORDER BY TrackId")
    tracker_id = run(runtime, job_id)
    wait("both messages", lambda: all_sent(runtime, tracker_id))
    for _, message in mailer.inbox.messages:
        assert list(message.iter_attachments()) == []
        body = message.get_body(("plain",)).get_content()
        assert "not attached" in body and "MAIL_ATTACHMENT_MAX_BYTES" in body
        assert f"https://dancecat.example/runs/{tracker_id}/result.xlsx" in body
        assert "Rows: 3503" in body  # the whole result; nothing cut to fit


def test_failed_run_mails_the_scrubbed_error(setup, sqlite_chinook):
    runtime, mailer = setup()
    tracker_id = run(runtime, add_job(runtime, sqlite_chinook, "SELECT * FROM NoSuchTable"))
    wait("both messages", lambda: all_sent(runtime, tracker_id))
    with runtime.session_factory() as session:
        tracker_error = session.get(Tracker, tracker_id).error
    assert tracker_error and "NoSuchTable" in tracker_error
    for _, message in mailer.inbox.messages:
        assert message["Subject"].endswith(f"run {tracker_id} failed")
        assert f"Error: {tracker_error}" in message.get_body(("plain",)).get_content()


def test_smtp_down_then_up_delivers_exactly_once_and_run_untouched(setup, sqlite_chinook):
    runtime, mailer = setup(smtp_up=False)
    tracker_id = run(runtime, add_job(runtime, sqlite_chinook))
    wait(
        "two failed attempts each",
        lambda: (
            (rows := notifications(runtime, tracker_id))
            and len(rows) == 2
            and all(n.attempts >= 2 and n.status == "pending" for n in rows)
        ),
    )
    rows = notifications(runtime, tracker_id)
    assert all("Connection refused" in (n.last_error or "") for n in rows), rows[0].last_error
    with runtime.session_factory() as session:
        assert session.get(Tracker, tracker_id).status == TrackerStatus.SUCCESS
    before = result_digest(runtime, tracker_id)
    mailer.start()
    wait("delivery after SMTP came back", lambda: all_sent(runtime, tracker_id), timeout=40)
    time.sleep(1.5)  # any stray duplicate retry would land by now
    assert sorted(rcpt[0] for rcpt, _ in mailer.inbox.messages) == sorted(RECIPIENTS)
    with runtime.session_factory() as session:
        assert session.get(Tracker, tracker_id).status == TrackerStatus.SUCCESS
    assert result_digest(runtime, tracker_id) == before
    rows = notifications(runtime, tracker_id)
    assert all(n.status == NotificationStatus.SENT and n.last_error is None for n in rows)


def test_notification_bookkeeping_is_skipped_only_when_no_notifier_picks_anyone():
    """``run_job`` skips ``after_run`` when the recipients read with the final status give
    no notifier anyone to tell; a notifier that picks its own recipients still gets asked."""
    import types

    from dancecat_core import notify
    from dancecat_core.notifiers import Notifier

    class Plain(Notifier):
        name = "plain"
        schemes = ("mailto",)

        def deliver(self, notice, attachment):
            raise AssertionError("not called here")

    class Channel(Plain):
        name = "chat"

        def recipients_for(self, emails):
            return ["#reports"]

    settings = load_settings(environ={})
    only_mail = types.SimpleNamespace(notifiers={"email": Plain(settings)})
    assert notify.wanted(only_mail, ()) is False
    assert notify.wanted(only_mail, ("a@example.com",)) is True
    assert notify.wanted(only_mail, None) is True  # not known: let after_run look
    with_channel = types.SimpleNamespace(
        notifiers={"email": Plain(settings), "chat": Channel(settings)}
    )
    assert notify.wanted(with_channel, ()) is True
