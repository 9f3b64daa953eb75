"""Screens people get through: what the job page, the run rows, the chart and the schedule
form say in the cases that used to confuse (mail off, a failed email, a fired once
schedule, a UTC schedule, a cron schedule without its expression)."""

from __future__ import annotations

import datetime as dt

import pytest
from test_web_helpers import make_app

from dancecat_core import notify
from dancecat_core.db import session_scope
from dancecat_core.models import Notification, Schedule
from dancecat_core.runner import execute_tracker
from dancecat_core.scheduler import check_due

MAIL_OFF = "email is not configured"


@pytest.fixture
def app(runtime):
    return make_app(runtime)


def _job(app, alice, sqlite_chinook, name: str = "artists", **extra) -> dict:
    connection = app.post_json(
        "/api/v1/connections",
        # Names are unique per owner: one connection per job made here.
        {"name": f"chinook for {name}", "driver": "sqlite", "database": str(sqlite_chinook)},
        headers=alice.auth,
    ).json["connection"]
    body = {
        "name": name,
        "connection_id": connection["id"],
        "query": "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId LIMIT 5",
        **extra,
    }
    return app.post_json("/api/v1/jobs", body, headers=alice.auth).json["job"]


def test_mail_off_is_said_on_the_job_page_and_form_when_there_are_recipients(
    app, alice, csrf, runtime, sqlite_chinook
):
    assert runtime.settings.smtp_host is None
    quiet = _job(app, alice, sqlite_chinook)
    assert MAIL_OFF not in app.get(f"/jobs/{quiet['id']}").text
    mailed = _job(app, alice, sqlite_chinook, "mailed artists", recipients=["boss@example.com"])
    page = app.get(f"/jobs/{mailed['id']}").html
    notice = page.select_one(".mail-off")
    assert notice is not None and MAIL_OFF in notice.text and "SMTP_HOST" in notice.text
    form = app.get(f"/jobs/{mailed['id']}/edit").html
    assert MAIL_OFF in form.select_one("#recipients .mail-off").text


def test_a_failed_notification_shows_its_reason_as_text_on_the_run_row(
    app, alice, csrf, runtime, sqlite_chinook
):
    job = _job(app, alice, sqlite_chinook, recipients=["boss@example.com"])
    run = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    execute_tracker(runtime, run["id"])
    notify.create_notifications(runtime, run["id"])
    with session_scope(runtime.session_factory) as session:
        reasons = [n.last_error for n in session.query(Notification).all()]
    assert reasons and MAIL_OFF in reasons[0]
    for path in ("/jobs", f"/jobs/{job['id']}"):
        row = app.get(path).html.select_one(f"#tracker-{run['id']}")
        reason = row.select_one(".note-reason")
        assert reason is not None and reason.text.strip() == reasons[0], path
        assert "boss@example.com: failed" in row.text


def test_a_fired_once_schedule_says_it_is_done(app, alice, csrf, runtime, sqlite_chinook):
    job = _job(
        app,
        alice,
        sqlite_chinook,
        schedules=[{"type": "once", "start": "2030-01-01 08:00", "timezone": "UTC"}],
    )
    check_due(runtime, now=dt.datetime(2030, 1, 1, 8, 1, tzinfo=dt.UTC))
    with session_scope(runtime.session_factory) as session:
        fired = session.query(Schedule).one()
        assert fired.next_run_at is None and fired.last_run_at is not None
    item = app.get(f"/jobs/{job['id']}").html.select_one(".schedule-list li")
    text = " ".join(item.text.split())
    assert "done" in text and "it will not run again" in text
    assert "next run" not in text and " - " not in text


def test_a_utc_schedule_prints_its_next_run_once(app, alice, csrf, sqlite_chinook):
    job = _job(
        app,
        alice,
        sqlite_chinook,
        schedules=[
            {"type": "daily", "start": "2030-01-01 08:00", "timezone": "UTC"},
            {"type": "daily", "start": "2030-01-01 08:00", "timezone": "Europe/Paris"},
        ],
    )
    items = app.get(f"/jobs/{job['id']}").html.select(".schedule-list li")
    utc, paris = (" ".join(item.text.split()) for item in items)
    assert utc.count("2030-01-01 08:00 UTC") == 2  # "from ... UTC" and the next run, once
    assert "next run 2030-01-01 08:00 UTC" in utc and "·" not in utc.split("next run")[1]
    assert "next run 2030-01-01 08:00 CET · 2030-01-01 07:00 UTC" in paris
    form = app.get(f"/jobs/{job['id']}/edit").html
    first = form.select("[data-role=next] li")[0].text
    assert first.count("UTC") == 1


def test_next_runs_say_why_there_are_none(app, csrf):
    def why(**params) -> str:
        answer = app.get("/schedules/next-runs.json", params).json
        assert answer["runs"] == []
        return answer["error"]

    base = {"type": "cron", "start": "2030-01-01T00:00", "timezone": "UTC"}
    assert why(**base, cron="") == (
        "No next runs shown: Cron expression is required for a cron schedule"
    )
    assert why(**base, cron="61 * * * *").startswith("No next runs shown: Cron expression: ")
    assert why(**{**base, "start": ""}, cron="* * * * *") == (
        "No next runs shown: fill in Start on."
    )
    assert why(type="daily", start="2030-01-01T00:00", timezone="Mars/Base").startswith(
        "No next runs shown: Time zone: "
    )


def test_run_history_chart_has_axes_and_values_on_hover(app, alice, csrf, runtime, sqlite_chinook):
    job = _job(app, alice, sqlite_chinook)
    runs = []
    for _ in range(2):
        run = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
        execute_tracker(runtime, run["id"])
        runs.append(run["id"])
    svg = app.get(f"/jobs/{job['id']}").html.select_one("figure.chart svg")
    titles = [text.text for text in svg.select("text.axis-title")]
    assert titles == ["Duration (ms)", "Rows", "Runs, oldest to newest"]
    assert [t.text for t in svg.select("text.tick-rows")] == ["0", "2", "3", "5"]
    assert svg.select("text.tick-ms")[0].text == "0"
    labels = [f"run {runs[0]}", f"run {runs[1]}"]
    assert labels == [t.text for t in svg.select("text.chart-label") if t.text.startswith("run ")]
    bars = svg.select("rect.bar")
    assert [bar.title.text.split(":")[0] for bar in bars] == [f"Run {i}" for i in runs]
    assert all(" ms, 5 rows, Success" in bar.title.text for bar in bars)
    assert [dot.title.text for dot in svg.select("circle.rows-dot")] == [
        f"Run {i}: 5 rows" for i in runs
    ]
