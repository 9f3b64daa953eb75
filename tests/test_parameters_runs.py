"""Parameters through the run path: declared on save, given for a run, recorded, shown.

The API (WebTest) and the scheduler's catch-up against a real app database, runs executed
as the worker executes them (``execute_tracker``), results read back from the store.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
import zoneinfo

import pytest
from sqlalchemy import select

from dancecat_core import schedules as math
from dancecat_core import tasks
from dancecat_core.models import Notification, Schedule, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.scheduler import check_due

REPORT = (
    "SELECT {{ region }} AS region, {{ limit_rows }} AS limit_rows, {{ due_date }} AS due_date,"
    " {{ period_start }} AS period_start, '{{ not_a_parameter }}' AS literal"
)
DECLARED = [
    {"name": "region", "type": ["EU", "US"], "default": "EU"},
    {"name": "limit_rows", "type": "integer", "default": 10},
]


@pytest.fixture
def job(app, alice, connection):
    body = {
        "name": "report",
        "connection_id": connection["id"],
        "query": REPORT,
        "parameters": DECLARED,
    }
    return app.post_json("/api/v1/jobs", body, headers=alice.auth).json["job"]


def result_rows(app, alice, tracker_id: int) -> list[dict[str, str]]:
    text = app.get(f"/api/v1/trackers/{tracker_id}/result.csv", headers=alice.auth).text
    return list(csv.DictReader(io.StringIO(text)))


def test_the_api_declares_runs_with_values_and_records_them(app, alice, job, runtime, queued):
    assert job["parameters"] == DECLARED
    body = {"parameters": {"region": "US", "limit_rows": "42"}}
    tracker = app.post_json(f"/api/v1/jobs/{job['id']}/runs", body, headers=alice.auth)
    tracker = tracker.json["tracker"]
    assert tracker["parameters"] == {"region": "US", "limit_rows": 42}
    assert execute_tracker(runtime, tracker["id"]).status == TrackerStatus.SUCCESS
    shown = app.get(f"/api/v1/trackers/{tracker['id']}", headers=alice.auth).json["tracker"]
    today = dt.datetime.now(zoneinfo.ZoneInfo(runtime.settings.timezone)).date()
    assert shown["parameters"]["region"] == "US" and shown["parameters"]["limit_rows"] == 42
    assert shown["parameters"]["due_date"] == today.isoformat()
    (row,) = result_rows(app, alice, tracker["id"])
    assert row["region"] == "US" and row["limit_rows"] == "42"
    assert row["due_date"] == today.isoformat() and row["literal"] == "{{ not_a_parameter }}"
    # No body: the defaults.
    plain = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    execute_tracker(runtime, plain["id"])
    (row,) = result_rows(app, alice, plain["id"])
    assert (row["region"], row["limit_rows"]) == ("EU", "10")


def test_wrong_values_are_refused_before_any_run(app, alice, job, queued):
    for values, says in [
        ({"region": "ASIA"}, "parameter region: 'ASIA' is not one of EU, US"),
        ({"limit_rows": "1; DROP TABLE Artist"}, "parameter limit_rows: "),
        ({"nope": "1"}, "parameter nope is not declared by this job"),
        ({"region": ["EU"]}, "must be text, a number or true/false"),
    ]:
        answer = app.post_json(
            f"/api/v1/jobs/{job['id']}/runs", {"parameters": values}, headers=alice.auth, status=422
        )
        assert says in answer.json["error"]["message"]
    assert queued == []


def test_an_undeclared_placeholder_is_refused_on_save(app, alice, connection):
    body = {"name": "typo", "connection_id": connection["id"], "query": "SELECT {{ regoin }}"}
    answer = app.post_json("/api/v1/jobs", body, headers=alice.auth, status=422)
    assert (
        "{{ regoin }} is neither a declared parameter nor a built-in date"
        in (answer.json["error"]["message"])
    )
    body["parameters"] = [{"name": "x", "type": "datetime", "default": "yesterday"}]
    answer = app.post_json("/api/v1/jobs", body, headers=alice.auth, status=422)
    assert "parameter x: 'yesterday' is not a date and time" in answer.json["error"]["message"]


def test_preview_takes_values(app, alice, job, connection):
    saved = app.post_json(
        f"/api/v1/jobs/{job['id']}/preview", {"parameters": {"region": "US"}}, headers=alice.auth
    ).json
    assert saved["rows"][0][:2] == ["US", 10]
    unsaved = app.post_json(
        "/api/v1/preview",
        {
            "connection_id": connection["id"],
            "query": "SELECT {{ n }} * 2 AS twice",
            "parameters": [{"name": "n", "type": "integer"}],
            "values": {"n": 21},
        },
        headers=alice.auth,
    ).json
    assert unsaved["rows"] == [[42]]


def test_a_caught_up_run_gets_the_values_of_the_occurrence_it_stands_for(app, alice, job, runtime):
    """Weekly at 07:00 Sydney, down for ten days: the catch-up run covers the missed
    week (its due date and period), with the schedule's fixed value, whenever it runs."""
    zone = "Australia/Sydney"
    now = dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(days=24)).astimezone(zoneinfo.ZoneInfo(zone))
    start_text = start.replace(hour=7, minute=0).strftime("%Y-%m-%d %H:%M")
    body = {
        "type": "weekly",
        "start": start_text,
        "timezone": zone,
        "parameters": {"region": "US"},
        "catch_up": "once",
    }
    app.patch_json(f"/api/v1/jobs/{job['id']}", {"schedules": [body]}, headers=alice.auth)
    first_start = math.parse_start(start_text)
    went_down = now - dt.timedelta(days=10)
    missed = list(math.occurrences("weekly", first_start, zone, went_down, now))
    assert missed  # at least one occurrence fell in the downtime
    with runtime.session_factory.begin() as session:
        # As the schedule stood when the server went down: its next run still ahead.
        (schedule,) = session.scalars(select(Schedule).where(Schedule.job_id == job["id"]))
        schedule.next_run_at = missed[0]
    check_due(runtime, now=now, enqueue=lambda *_: None)
    with runtime.session_factory() as session:
        caught_up = session.scalars(
            select(Tracker).where(Tracker.schedule_id == schedule.id, Tracker.due_at == missed[-1])
        ).one()
        tracker_id = caught_up.id
    assert execute_tracker(runtime, tracker_id).status == TrackerStatus.SUCCESS
    (row,) = result_rows(app, alice, tracker_id)
    due_local = missed[-1].astimezone(zoneinfo.ZoneInfo(zone))
    assert row["region"] == "US"
    assert row["due_date"] == due_local.date().isoformat() != now.date().isoformat()
    week_before = (due_local - dt.timedelta(days=7)).astimezone(dt.UTC)
    assert row["period_start"] == week_before.strftime("%Y-%m-%dT%H:%M:%S")
    shown = app.get(f"/api/v1/trackers/{tracker_id}", headers=alice.auth).json["tracker"]
    assert shown["parameters"]["due_date"] == due_local.date().isoformat()


def test_a_schedule_fixing_a_wrong_value_is_refused(app, alice, job):
    body = {"type": "daily", "start": "2030-01-01 07:00", "parameters": {"limit_rows": "ten"}}
    answer = app.patch_json(
        f"/api/v1/jobs/{job['id']}", {"schedules": [body]}, headers=alice.auth, status=422
    )
    assert "parameter limit_rows: 'ten' is not a whole number" in answer.json["error"]["message"]


def test_console_declares_runs_with_values_and_lists_them(tmp_path, sqlite_chinook):
    from test_console import Console

    console = Console(tmp_path / "home", tmp_path)
    console.ok("init")
    name = f"c{uuid.uuid4().hex[:6]}"
    console.ok("connection", "add", name, "--driver", "sqlite", "--database", str(sqlite_chinook))
    console.ok(
        "job", "add", "pj", "--connection", name,
        "--sql", "SELECT Name FROM Artist WHERE ArtistId <= {{ n }} AND {{ flag }} ORDER BY 1",
        "--parameter", "n:integer=2", "--parameter", "flag:boolean=true",
    )  # fmt: skip
    out = console.ok("job", "run", "pj", "--param", "n=3")
    assert out.startswith("run ") and ", 3 rows" in out
    listed = console.ok("runs", "pj")
    assert "n=3, flag=true" in listed
    done = console("job", "run", "pj", "--param", "n=three")
    assert done.returncode != 0
    assert done.stderr.strip() == "error: parameter n: 'three' is not a whole number"
    done = console("job", "edit", "pj", "--sql", "SELECT {{ m }}")
    assert "{{ m }} is neither a declared parameter" in done.stderr
    console.ok("job", "edit", "pj", "--no-parameters", "--sql", "SELECT 1")
    assert tasks  # the queue module stays importable beside the console


def test_the_job_page_asks_for_values_and_a_run_can_be_repeated(app, alice, job, runtime, queued):
    from test_web_helpers import sign_in

    csrf = sign_in(app, alice.email)
    page = app.get(f"/jobs/{job['id']}")
    form = next(f for f in page.forms.values() if "param-region" in f.fields)
    assert form["param-region"].value == "EU" and form["param-limit_rows"].value == "10"
    form["param-region"] = "US"
    form["param-limit_rows"] = "7"
    form.submit(status=303)
    (first,) = queued
    assert execute_tracker(runtime, first).status == TrackerStatus.SUCCESS
    page = app.get(f"/jobs/{job['id']}")
    assert "region=US" in page.text and "limit_rows=7" in page.text
    again = next(f for f in page.forms.values() if "Run again" in f.text)
    again.submit(status=303)
    second = queued[-1]
    assert execute_tracker(runtime, second).status == TrackerStatus.SUCCESS
    first_row, second_row = (result_rows(app, alice, t)[0] for t in (first, second))
    assert first_row == second_row  # the same values, built-in dates included
    refused = app.post(
        f"/jobs/{job['id']}/run", {"csrf_token": csrf, "param-limit_rows": "x"}, status=303
    ).follow()
    assert "parameter limit_rows: &#39;x&#39; is not a whole number" in refused.text


def test_the_mail_says_which_values_the_run_used(runtime, job, app, alice):
    from dancecat_core.notify import _notice
    from dancecat_plugins.email_notifier import EmailNotifier

    body = {"parameters": {"region": "US"}}
    tracker = app.post_json(f"/api/v1/jobs/{job['id']}/runs", body, headers=alice.auth)
    tracker_id = tracker.json["tracker"]["id"]
    execute_tracker(runtime, tracker_id)
    with runtime.session_factory() as session:
        row = Notification(tracker_id=tracker_id, notifier="email", recipient="x@example.com")
        notice = _notice(runtime, session, session.get(Tracker, tracker_id), row)
    assert notice.parameters.startswith("region=US, limit_rows=10, due_date=")
    notifier = EmailNotifier(runtime.settings)
    mail, _ = notifier.prepare(notice, None)
    text = notifier._body(mail, None)
    assert f"Parameters: {notice.parameters}" in text


def test_a_trigger_gives_values_read_by_their_declared_types(app, alice, job, runtime, queued):
    import re

    made = app.post_json(
        f"/api/v1/jobs/{job['id']}/triggers", {"name": "etl"}, headers=alice.auth, status=201
    ).json["trigger"]
    path = re.sub(r"^https?://[^/]+", "", made["url"])
    refused = app.post_json(path, {"parameters": {"limit_rows": "many"}}, status=422)
    assert "parameter limit_rows: 'many' is not a whole number" in refused.json["error"]["message"]
    run = app.post_json(path, {"parameters": {"region": "US", "limit_rows": 3}}, status=202)
    assert execute_tracker(runtime, run.json["run"]).status == TrackerStatus.SUCCESS
    (row,) = result_rows(app, alice, run.json["run"])
    assert (row["region"], row["limit_rows"]) == ("US", "3")
