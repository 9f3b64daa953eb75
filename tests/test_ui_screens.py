"""The HTML screens through WebTest: sign-in gate, CSRF, every screen's GET and POST, the
validation message for each bad field, and that a refused form saves nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core.db import session_scope
from dancecat_core.models import Connection, Job, Schedule, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker

ARTISTS = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId"


@pytest.fixture
def connection_id(app, csrf, sqlite_chinook) -> int:
    app.post(
        "/connections/new",
        {
            "csrf_token": csrf,
            "name": "chinook",
            "driver": "sqlite",
            "read_only": "on",
            "database": str(sqlite_chinook),
        },
        status=303,
    )
    return 1


def job_form(csrf: str, connection: int | str, **changes) -> list[tuple[str, str]]:
    fields = {
        "csrf_token": csrf,
        "name": "artists",
        "annotation": "",
        "connection_id": str(connection),
        "query": ARTISTS,
        "timeout_seconds": "",
        "action": "save",
    }
    fields.update(changes)
    return list(fields.items())


@pytest.fixture
def job_id(app, csrf, connection_id) -> int:
    response = app.post("/jobs/new", job_form(csrf, connection_id), status=303)
    return int(response.location.rsplit("/", 1)[1])


def count(runtime, model) -> int:
    with session_scope(runtime.session_factory) as session:
        return session.scalar(select(func.count()).select_from(model))


SCREENS = [
    "/jobs",
    "/jobs/new",
    "/jobs/1",
    "/jobs/1/edit",
    "/jobs/1/delete",
    "/connections",
    "/connections/new",
    "/connections/1/edit",
    "/connections/1/delete",
    "/tokens",
    "/runs/status.json?ids=1",
    "/runs/1/result.csv",
    "/jobs/1/latest.xlsx",
    "/schedules/next-runs.json?type=daily&start=2030-01-01T10:00&timezone=UTC",
]


@pytest.mark.parametrize("path", SCREENS)
def test_every_screen_needs_a_sign_in(app, path):
    response = app.get(path, status=302)
    assert "/login?next=" in response.location


POSTS = [
    "/jobs/new",
    "/jobs/1/edit",
    "/jobs/1/delete",
    "/jobs/1/run",
    "/jobs/preview",
    "/connections/new",
    "/connections/1/edit",
    "/connections/1/delete",
    "/connections/test",
    "/tokens",
    "/tokens/1/revoke",
]


@pytest.mark.parametrize("path", POSTS)
def test_every_post_needs_the_csrf_token(app, csrf, job_id, path):
    response = app.post(path, {"name": "x"}, status=403)
    assert "CSRF" in response.text
    assert count(app.app.registry["dancecat.runtime"], Job) == 1


@pytest.mark.parametrize(
    "path", ["/jobs", "/jobs/new", "/connections", "/connections/new", "/tokens"]
)
def test_screens_render_for_a_signed_in_user(app, csrf, path):
    response = app.get(path, status=200)
    assert "alice@example.com" in response.text
    assert "Log out" in response.text
    # Every visible input has a label (the keyboard-and-screen-reader rule).
    for field in response.html.select("input:not([type=hidden]), select, textarea"):
        if field.get("tabindex") == "-1" or field.find_parent("template"):
            continue
        assert field.get("id"), field
        labelled = response.html.select(f'label[for="{field["id"]}"]') or field.find_parent("label")
        assert labelled, field


def test_sign_in_page_signs_up_an_allowed_email(app, runtime):
    from dancecat_core.services import accounts

    with session_scope(runtime.session_factory) as session:
        accounts.allow_email(session, "new@example.com")
    page = app.get("/login")
    assert "Sign in or sign up" in page.text
    form = page.form
    form["email"] = "new@example.com"
    form["password"] = form["confirm"] = "a brand new password"
    form.submit(status=303)
    assert "new@example.com" in app.get("/jobs").text


def test_sign_in_refused_shows_why(app, alice):
    form = app.get("/login").form
    form["email"] = alice.email
    form["password"] = "wrong password!!"
    response = form.submit(status=400)
    assert "wrong email or password" in response.text


# -- connections --------------------------------------------------------------------------


def test_connection_create_list_edit_keeps_password(app, csrf, runtime, sqlite_chinook):
    app.post(
        "/connections/new",
        {
            "csrf_token": csrf,
            "name": "pg",
            "driver": "postgresql",
            "host": "db.example.com",
            "database": "sales",
            "user": "reporter",
            "password": "s3cret-pass",
        },
        status=303,
    )
    listing = app.get("/connections")
    assert "db.example.com" in listing.text and "alice@example.com" in listing.text
    edit = app.get("/connections/1/edit")
    assert "s3cret-pass" not in edit.text
    assert edit.html.select_one("#password")["value"] == ""
    form = edit.forms["connection-form"]
    form["name"] = "pg renamed"
    form.submit("action", value="save", status=303)
    with session_scope(runtime.session_factory) as session:
        stored = session.get(Connection, 1)
        assert stored.name == "pg renamed"
        assert runtime.secret_box.decrypt(stored.password_encrypted) == "s3cret-pass"


def test_connection_empty_name_is_refused_and_nothing_saved(app, csrf, runtime, sqlite_chinook):
    response = app.post(
        "/connections/new",
        {"csrf_token": csrf, "name": "", "driver": "sqlite", "database": str(sqlite_chinook)},
        status=422,
    )
    assert "Name is required" in response.text
    assert response.html.select_one("#name")["aria-invalid"] == "true"
    assert count(runtime, Connection) == 0


def test_test_connection_without_saving(app, csrf, runtime, sqlite_chinook, tmp_path):
    ok = app.post(
        "/connections/test",
        {
            "csrf_token": csrf,
            "name": "c",
            "driver": "sqlite",
            "read_only": "on",
            "database": str(sqlite_chinook),
        },
    ).json
    assert ok["ok"] is True and ok["error"] is None
    bad = app.post(
        "/connections/test",
        {
            "csrf_token": csrf,
            "name": "c",
            "driver": "postgresql",
            "host": "127.0.0.1",
            "port": "1",
            "database": "nope",
            "password": "hunter2-secret",
        },
    ).json
    assert bad["ok"] is False and bad["error"]
    assert "hunter2-secret" not in bad["error"]
    # The form's own button, without script, answers in the page.
    page = app.post(
        "/connections/new",
        {
            "csrf_token": csrf,
            "name": "c",
            "driver": "sqlite",
            "read_only": "on",
            "database": str(sqlite_chinook),
            "action": "test",
        },
    )
    assert "Connected in" in page.text
    assert count(runtime, Connection) == 0


def test_deleting_a_used_connection_warns_then_jobs_show_it(app, csrf, runtime, job_id, queued):
    confirm = app.get("/connections/1/delete")
    assert "1 job uses this connection" in confirm.text
    assert "artists" in confirm.text
    confirm.forms[1].submit(status=303)
    jobs_page = app.get("/jobs")
    assert "connection deleted" in jobs_page.text
    assert f"/jobs/{job_id}/run" not in jobs_page.text
    page = app.get(f"/jobs/{job_id}")
    assert "connection deleted" in page.text
    refused = app.post(f"/jobs/{job_id}/run", {"csrf_token": csrf}, status=303)
    assert "connection was deleted" in app.get(refused.location).text
    # The page's script gets the common JSON error shape, like every other JSON answer.
    scripted = app.post(
        f"/jobs/{job_id}/run",
        {"csrf_token": csrf},
        headers={"Accept": "application/json"},
        status=409,
    )
    assert scripted.json == {
        "error": {
            "code": "conflict",
            "message": "the job's connection was deleted; choose another connection first",
        }
    }
    assert queued == []
    assert app.get(f"/jobs/{job_id}/edit").status_int == 200


# -- the job form ------------------------------------------------------------------------


def test_job_saved_with_schedule_and_recipient(app, csrf, runtime, connection_id):
    fields = job_form(
        csrf,
        connection_id,
        annotation="Weekly **artists** <script>alert(1)</script> [x](javascript:alert(1))",
        timeout_seconds="30",
        **{
            "schedule-0-id": "",
            "schedule-0-type": "cron",
            "schedule-0-start": "2030-01-01T08:00",
            "schedule-0-timezone": "Europe/Paris",
            "schedule-0-cron": "30 9 * * 1-5",
            "schedule-0-active": "on",
        },
    )
    fields = [*fields, ("recipients", "boss@example.com"), ("recipients", "")]
    response = app.post("/jobs/new", fields, status=303)
    page = app.get(response.location)
    assert "<strong>artists</strong>" in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert 'href="javascript:' not in page.text
    assert "boss@example.com" in page.text
    assert "2030-01-01 09:30 CET" in page.text and "2030-01-01 08:30 UTC" in page.text
    # Editing shows the same values back, and saving them unchanged keeps one schedule.
    edit = app.get("/jobs/1/edit")
    assert edit.html.select_one("#schedule-0-cron")["value"] == "30 9 * * 1-5"
    edit.forms["job-form"].submit("action", value="save", status=303)
    assert count(runtime, Schedule) == 1


BAD_FIELDS = [
    ({"name": ""}, "Name is required"),
    ({"connection_id": "999"}, "no such connection"),
    ({"timeout_seconds": "soon"}, "Timeout (seconds) must be a whole number"),
    ({"recipients": "not-an-email"}, "is not a valid email address"),
    (
        {
            "schedule-0-type": "cron",
            "schedule-0-start": "2030-01-01T08:00",
            "schedule-0-timezone": "UTC",
            "schedule-0-cron": "every monday",
        },
        "five fields",
    ),
    (
        {
            "schedule-0-type": "once",
            "schedule-0-start": "2001-01-01T08:00",
            "schedule-0-timezone": "UTC",
        },
        "is in the past",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD_FIELDS)
def test_each_bad_field_is_named_and_nothing_saved(
    app, csrf, runtime, connection_id, changes, message
):
    response = app.post("/jobs/new", job_form(csrf, connection_id, **changes), status=422)
    assert message in response.text
    assert "Nothing was saved" in response.text
    assert response.html.select(".field-error")
    # What was typed is still there.
    assert response.html.select_one("#query").text.strip() == ARTISTS
    assert count(runtime, Job) == 0
    assert count(runtime, Schedule) == 0


def test_a_refused_edit_changes_nothing(app, csrf, runtime, job_id):
    fields = job_form(
        csrf,
        1,
        name="renamed",
        **{
            "schedule-0-type": "once",
            "schedule-0-start": "2001-01-01T08:00",
            "schedule-0-timezone": "UTC",
        },
    )
    app.post(f"/jobs/{job_id}/edit", fields, status=422)
    with session_scope(runtime.session_factory) as session:
        assert session.get(Job, job_id).name == "artists"


def test_schedule_and_recipient_buttons_work_without_script(app, csrf, runtime, connection_id):
    added = app.post("/jobs/new", job_form(csrf, connection_id, action="add-schedule"))
    assert added.html.select_one("#schedule-0-type")
    fields = job_form(
        csrf,
        connection_id,
        action="remove-schedule-0",
        **{"schedule-0-type": "daily", "schedule-0-start": "", "schedule-0-timezone": "UTC"},
    )
    removed = app.post("/jobs/new", fields)
    assert not removed.html.select_one("#schedule-0-type")
    with_recipient = app.post("/jobs/new", job_form(csrf, connection_id, action="add-recipient"))
    assert with_recipient.html.select("input[name=recipients]")
    assert count(runtime, Job) == 0


def test_next_runs_as_you_edit(app, csrf):
    answer = app.get(
        "/schedules/next-runs.json",
        {"type": "daily", "start": "2030-03-30T02:30", "timezone": "Europe/Paris"},
    ).json
    assert answer["error"] is None
    assert [run["local"] for run in answer["runs"]] == [
        "2030-03-30 02:30 CET",
        "2030-03-31 03:00 CEST",
        "2030-04-01 02:30 CEST",
    ]
    bad = app.get(
        "/schedules/next-runs.json",
        {"type": "cron", "start": "2030-01-01T00:00", "timezone": "UTC", "cron": "61 * * * *"},
    ).json
    assert bad["runs"] == [] and "cron" in bad["error"]


def test_preview_shows_rows_and_saves_nothing(app, csrf, runtime, connection_id):
    page = app.post("/jobs/new", job_form(csrf, connection_id, action="preview"))
    assert (
        "result" in page.html.select_one("#preview-title").text and "nothing was saved" in page.text
    )
    assert len(page.html.select("#preview tbody tr")) == 100
    assert "AC/DC" in page.text
    fragment = app.post(
        "/jobs/preview",
        job_form(csrf, connection_id, query="SELECT 1 AS n, 'x' AS password"),
    )
    assert "Removed for safety" in fragment.text and "<code>password</code>" in fragment.text
    failed = app.post("/jobs/preview", job_form(csrf, connection_id, query="SELECT * FROM nope"))
    assert "The query failed" in failed.text and "nope" in failed.text
    assert count(runtime, Job) == 0


# -- runs --------------------------------------------------------------------------------


def test_run_queues_and_the_status_endpoint_follows_it(app, csrf, runtime, job_id, queued):
    answer = app.post(
        f"/jobs/{job_id}/run",
        {"csrf_token": csrf},
        headers={"Accept": "application/json"},
        status=202,
    ).json
    assert queued == [answer["tracker"]]
    assert 'data-finished="false"' in answer["html"] and "Queued" in answer["html"]
    execute_tracker(runtime, answer["tracker"])
    status = app.get(f"/runs/status.json?ids={answer['tracker']},999").json["trackers"]
    assert [(s["status"], s["finished"]) for s in status] == [("Success", True)]
    assert "result.csv" in status[0]["html"]
    # Without script: a redirect to the list with a flash.
    app.post(f"/jobs/{job_id}/run", {"csrf_token": csrf}, status=303)
    listing = app.get("/jobs")
    assert "queued" in listing.text
    assert f"/jobs/{job_id}/latest.csv" in listing.text
    assert app.get(f"/runs/{answer['tracker']}/result.csv").text.startswith("ArtistId,Name")


def test_runs_filter_and_page(app, csrf, runtime, job_id, queued):
    for _ in range(27):
        app.post(f"/jobs/{job_id}/run", {"csrf_token": csrf}, status=303)
    execute_tracker(runtime, queued[0])
    first = app.get("/jobs")
    assert len(first.html.select("#trackers tr")) == 25
    older = app.get(first.html.find("a", string="Older runs →")["href"])
    assert len(older.html.select("#trackers tr")) == 2
    success = app.get("/jobs", {"status": "Success", "job": str(job_id)})
    assert [row["data-tracker"] for row in success.html.select("#trackers tr")] == [str(queued[0])]


def test_expired_result_page_says_when_and_offers_a_run(app, csrf, runtime, job_id, queued):
    app.post(f"/jobs/{job_id}/run", {"csrf_token": csrf}, status=303)
    execute_tracker(runtime, queued[0])
    past = dt.datetime(2020, 5, 1, 12, 0, tzinfo=dt.UTC)
    with session_scope(runtime.session_factory) as session:
        session.execute(update(Tracker).values(result_expires_at=past))
    page = app.get(f"/runs/{queued[0]}/result.csv", status=410)
    assert "This result has expired" in page.text and "2020-05-01" in page.text
    page.forms[1].submit(status=303)
    assert len(queued) == 2
    unfinished = app.get(f"/runs/{queued[1]}/result.csv", status=409)
    assert TrackerStatus.QUEUED.value in unfinished.text


# -- the job page, tokens, errors ----------------------------------------------------------


def test_job_page_shows_history_chart(app, csrf, runtime, job_id, queued):
    for _ in range(2):
        app.post(f"/jobs/{job_id}/run", {"csrf_token": csrf}, status=303)
        execute_tracker(runtime, queued[-1])
    page = app.get(f"/jobs/{job_id}")
    assert len(page.html.select("figure.chart rect.bar")) == 2
    assert "Run history" in page.text and ARTISTS.split()[0] in page.text


def test_delete_job(app, csrf, runtime, job_id):
    app.get(f"/jobs/{job_id}/delete").forms[1].submit(status=303)
    listing = app.get("/jobs")
    assert "deleted" in listing.text and not listing.html.select(".jobs-table")
    app.get(f"/jobs/{job_id}", status=404)


def test_tokens_shown_once_listed_and_revoked(app, csrf, runtime):
    created = app.post("/tokens", {"csrf_token": csrf, "name": "dashboard"})
    clear = created.html.select_one("#new-token")["value"]
    assert len(clear) > 20
    listing = app.get("/tokens")
    assert "dashboard" in listing.text and clear not in listing.text
    app.get("/api/v1/me", headers={"Authorization": f"Bearer {clear}"}, status=200)
    listing.forms[2].submit(status=303)
    assert "revoked" in app.get("/tokens").text
    app.get("/api/v1/me", headers={"Authorization": f"Bearer {clear}"}, status=401)
    too_long = app.post("/tokens", {"csrf_token": csrf, "name": "n" * 200}, status=422)
    assert "at most 100 characters" in too_long.text


def test_other_users_objects_are_404(app, csrf, runtime, job_id):
    bob = make_user(runtime, "bob@example.com")
    other = make_app(runtime)
    bob_csrf = sign_in(other, bob.email)
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/edit", "/connections/1/edit"):
        other.get(path, status=404)
    other.post(f"/jobs/{job_id}/run", {"csrf_token": bob_csrf}, status=404)
    assert "artists" not in other.get("/jobs").text


def test_error_pages_never_show_a_traceback(app, csrf, monkeypatch):
    missing = app.get("/no/such/page", status=404)
    assert "Not found" in missing.text and "Traceback" not in missing.text

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("dancecat_web.ui.jobs.jobs_screen.jobs_page", explode)
    broken = app.get("/jobs", status=500)
    assert "Something went wrong" in broken.text
    assert "secret internals" not in broken.text and "Traceback" not in broken.text
