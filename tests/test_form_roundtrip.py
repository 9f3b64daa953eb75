"""One definition of each input: what the API stores survives its HTML form unchanged.

Objects are created through the API with every field set to a non-default value, their
edit forms are loaded and submitted as rendered (WebTest fills nothing in), and the API
must then answer exactly what it answered before: no field dropped (``shared``,
``catch_up``, ``options``), no claimed run withdrawn. Refused forms show every refusal at
once, next to its field, by its label.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core.db import session_scope
from dancecat_core.inputs.connection import ConnectionInput
from dancecat_core.inputs.job import JobInput
from dancecat_core.inputs.schedule import ScheduleInput
from dancecat_core.inputs.token import TokenInput
from dancecat_core.models import Connection, Job, Schedule, Tracker, utcnow

INTERNAL_NAMES = re.compile(
    r"\b(timeout_seconds|connection_id|catch_up|read_only|schedules\[\d+\]|recipients)\b"
)


@pytest.fixture
def app(runtime):
    return make_app(runtime)


@pytest.fixture
def alice(runtime):
    # An admin: the connection under test is a read-write SQLite one, which only admins save.
    return make_user(runtime, "alice@example.com", admin=True)


@pytest.fixture
def csrf(app, alice) -> str:
    return sign_in(app, alice.email)


@pytest.fixture
def connection(app, alice, csrf, sqlite_chinook) -> dict:
    body = {
        "name": "chinook copy",
        "driver": "sqlite",
        "host": "db.example.com",
        "port": 5555,
        "database": str(sqlite_chinook),
        "user": "reader",
        "password": " pass with spaces ",
        "read_only": False,
        "shared": True,
        "options": {"journal_mode": "wal", "pages": [1, 2], "nested": {"on": True}},
    }
    return app.post_json("/api/v1/connections", body, headers=alice.auth).json["connection"]


@pytest.fixture
def job(app, alice, connection) -> dict:
    body = {
        "name": "weekly artists",
        "annotation": "For the **label** meeting.",
        "connection_id": connection["id"],
        "query": "SELECT ArtistId, Name\nFROM Artist\nORDER BY ArtistId",
        "timeout_seconds": 77,
        "recipients": ["boss@example.com when rows if \"Name\" = 'AC/DC'", "team@example.com"],
        "shared": True,
        "subject_template": "{{ job_name }} — {{ due_date }}",
        "body_template": "Hello,\n\n{{ row_count }} rows.\n",
        "filename_template": "artists-{{ run_id }}",
        "body_rows": 7,
        "alert_after_failures": 4,
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
                "active": True,
                "catch_up": "skip",
            },
            {"type": "once", "start": "2032-12-31 10:00", "timezone": "UTC", "catch_up": "skip"},
        ],
    }
    return app.post_json("/api/v1/jobs", body, headers=alice.auth).json["job"]


def _without_times(document: dict) -> dict:
    return {key: value for key, value in document.items() if key != "updated_at"}


def test_connection_survives_its_edit_form_unchanged(app, alice, runtime, connection):
    url = f"/api/v1/connections/{connection['id']}"
    before = app.get(url, headers=alice.auth).json["connection"]
    form = app.get(f"/connections/{connection['id']}/edit").forms["connection-form"]
    form.submit("action", value="save", status=303)
    after = app.get(url, headers=alice.auth).json["connection"]
    assert _without_times(after) == _without_times(before)
    assert after["options"] == connection["options"] and after["shared"] is True
    with session_scope(runtime.session_factory) as session:
        stored = session.get(Connection, connection["id"])
        assert runtime.secret_box.decrypt(stored.password_encrypted) == " pass with spaces "


def test_job_and_schedules_survive_the_edit_form_and_claimed_runs_stay(app, alice, runtime, job):
    url = f"/api/v1/jobs/{job['id']}"
    before = app.get(url, headers=alice.auth).json["job"]
    daily = before["schedules"][1]["id"]
    with session_scope(runtime.session_factory) as session:
        claimed = Tracker(
            job_id=job["id"], schedule_id=daily, due_at=utcnow() + dt.timedelta(hours=2)
        )
        session.add(claimed)
        session.flush()
        claimed_id = claimed.id
    form = app.get(f"/jobs/{job['id']}/edit").forms["job-form"]
    form.submit("action", value="save", status=303)
    after = app.get(url, headers=alice.auth).json["job"]
    assert _without_times(after) == _without_times(before)
    assert [s["catch_up"] for s in after["schedules"]] == ["skip", "skip", "skip"]
    assert after["shared"] is True and after["timeout_seconds"] == 77
    with session_scope(runtime.session_factory) as session:
        assert session.get(Tracker, claimed_id) is not None, "a claimed run was withdrawn"


def test_a_post_without_some_fields_keeps_them(app, alice, csrf, job):
    """A form that does not show a field (or an older page) never resets it."""
    url = f"/api/v1/jobs/{job['id']}"
    before = app.get(url, headers=alice.auth).json["job"]
    app.post(
        f"/jobs/{job['id']}/edit",
        {"csrf_token": csrf, "name": "renamed", "action": "save"},
        status=303,
    )
    after = app.get(url, headers=alice.auth).json["job"]
    assert after["name"] == "renamed"
    assert _without_times({**after, "name": before["name"]}) == _without_times(before)


def test_every_declared_field_is_on_its_form(app, csrf, job, connection):
    """The forms are drawn from the declarations, so none can lose a field."""
    job_page = app.get(f"/jobs/{job['id']}/edit").html
    for field in JobInput.fields():
        assert job_page.select(f'[name="{field.name}"]'), field.name
    for index in range(len(job["schedules"])):
        for field in ScheduleInput.fields():
            assert job_page.select(f'[name="schedule-{index}-{field.name}"]'), field.name
    connection_page = app.get(f"/connections/{connection['id']}/edit").html
    for field in ConnectionInput.fields():
        assert connection_page.select(f'[name="{field.name}"]'), field.name
    tokens_page = app.get("/tokens").html
    for field in TokenInput.fields():
        label = tokens_page.select_one(f'label[for="{field.name}"]')
        assert label is not None and label.text.strip() == field.label


def test_a_refused_job_form_shows_every_error_by_label_next_to_its_field(
    app, csrf, runtime, connection
):
    fields = [
        ("csrf_token", csrf),
        ("name", ""),
        ("connection_id", str(connection["id"])),
        ("query", "SELECT 1"),
        ("timeout_seconds", "soon"),
        ("recipients", "not-an-address"),
        ("schedules-shown", "1"),
        ("schedule-0-id", ""),
        ("schedule-0-type", "cron"),
        ("schedule-0-start", "2030-01-01T08:00"),
        ("schedule-0-timezone", "Mars/Olympus"),
        ("schedule-0-cron", "every monday"),
        ("schedule-0-catch_up", "never"),
        ("schedule-1-id", ""),
        ("schedule-1-type", "once"),
        ("schedule-1-start", "2001-01-01T08:00"),
        ("schedule-1-timezone", "UTC"),
        ("action", "save"),
    ]
    page = app.post("/jobs/new", fields, status=422)
    expected = {
        "name": "Name is required",
        "timeout_seconds": "Timeout (seconds) must be a whole number",
        "recipients": "Send result to: 'not-an-address' is not a valid email address",
        "schedule-0-timezone": "Time zone: 'Mars/Olympus' is not an IANA time zone",
        "schedule-0-catch_up": "After downtime must be one of once, skip",
        "schedule-1-start": "Start on: 2001-01-01 08:00 UTC is in the past",
    }
    for input_id, message in expected.items():
        error = page.html.select_one(f"#{input_id}-error")
        assert error is not None, (input_id, page.html.select(".field-error"))
        assert error.text.strip().startswith(message), error.text
        # Next to its field: in the same .field box as the input it describes.
        box = error.find_parent(class_="field") or error.find_parent("fieldset")
        assert box.select_one(f"#{input_id}") is not None or input_id == "recipients"
    # The cron rule's refusal, by the cron field's label.
    cron_error = page.html.select_one("#schedule-0-cron-error")
    assert cron_error.text.strip().startswith("Cron expression: 'every monday' must have five")
    # The summary at the top lists them all, each linking to its input.
    links = {a["href"] for a in page.html.select(".error-box a")}
    assert {f"#{input_id}" for input_id in expected} <= links
    visible = page.html.get_text(" ")
    assert not INTERNAL_NAMES.search(visible), INTERNAL_NAMES.search(visible)
    with session_scope(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
        assert session.scalar(select(func.count()).select_from(Schedule)) == 0


def test_a_refused_connection_form_shows_every_error_at_once(app, csrf):
    page = app.post(
        "/connections/new",
        {
            "csrf_token": csrf,
            "name": "",
            "driver": "postgresql",
            "host": "bad host!",
            "port": "99999",
            "database": "",
            "options": "[1, 2]",
            "action": "save",
        },
        status=422,
    )
    expected = {
        "name": "Name is required",
        "host": "Host must be a host name",
        "port": "Port must be between 1 and 65535",
        "database": "Database is required",
        "options": "Options (JSON) must be a JSON object",
    }
    for input_id, message in expected.items():
        error = page.html.select_one(f"#{input_id}-error")
        assert error is not None and error.text.strip().startswith(message), input_id
        assert page.html.select_one(f"#{input_id}")["aria-invalid"] == "true"
    assert not INTERNAL_NAMES.search(page.html.get_text(" "))


def test_the_api_answers_every_refused_field_too(app, alice):
    body = {"name": " ", "driver": "nosuch", "database": "d", "port": 0}
    error = app.post_json("/api/v1/connections", body, headers=alice.auth, status=422).json["error"]
    assert error["field"] == "name"
    assert {item["field"] for item in error["errors"]} == {"name", "driver", "port"}
    assert "Driver must be one of" in error["message"]


def test_options_holding_lone_surrogates_are_refused_before_they_are_stored(
    app, alice, sqlite_chinook
):
    """JSON can escape a lone surrogate (``"\\ud800"``); stored, it broke every later
    use of the connection (a preview answered 500)."""
    body = {
        "name": "c",
        "driver": "sqlite",
        "database": str(sqlite_chinook),
        "options": {"fine": {"\udb21\udcf1": ["\ud800"]}},
    }
    error = app.post_json("/api/v1/connections", body, headers=alice.auth, status=422).json
    assert error["error"]["field"] == "options"
    assert app.get("/api/v1/connections", headers=alice.auth).json["connections"] == []


def test_a_mysql_password_beyond_latin_1_fails_the_preview_clearly(app, alice):
    """PyMySQL cannot send such a password: one line saying so, not a 500."""
    body = {
        "name": "m",
        "driver": "mysql",
        "host": "127.0.0.1",
        "database": "d",
        "password": "p\U000d84f1ss",
    }
    connection = app.post_json("/api/v1/connections", body, headers=alice.auth).json
    preview = {"connection_id": connection["connection"]["id"], "query": "SELECT 1"}
    error = app.post_json("/api/v1/preview", preview, headers=alice.auth, status=422).json
    assert error["error"]["code"] == "connection_failed"
    assert "Latin-1" in error["error"]["message"] and "\U000d84f1" not in error["error"]["message"]
