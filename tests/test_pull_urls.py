"""Pull URLs through WebTest: made by a job's owner, read with no session, revoked and
rotated in one step, logged, rate-limited, and closed to every trick an outsider might try."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from sqlalchemy import select, update
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core.db import session_scope
from dancecat_core.models import Connection, PullUse, Tracker, TrackerStatus, User, utcnow
from dancecat_core.runner import execute_tracker
from dancecat_core.services import job_urls

ARTISTS = "SELECT ArtistId, Name, 'x' AS password FROM Artist ORDER BY ArtistId LIMIT 3"


@pytest.fixture
def bob(runtime):
    return make_user(runtime, "bob@example.com")


def _connection(app, member, path, shared=False):
    body = {"name": "chinook", "driver": "sqlite", "database": str(path), "shared": shared}
    return app.post_json("/api/v1/connections", body, headers=member.auth).json["connection"]


def _job(app, member, connection_id, name="artists"):
    body = {"name": name, "connection_id": connection_id, "query": ARTISTS}
    return app.post_json("/api/v1/jobs", body, headers=member.auth).json["job"]


def _run(app, member, runtime, job):
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=member.auth).json["tracker"]
    assert execute_tracker(runtime, tracker["id"]).status == TrackerStatus.SUCCESS
    return tracker["id"]


@pytest.fixture
def job(app, alice, sqlite_chinook):
    return _job(app, alice, _connection(app, alice, sqlite_chinook)["id"])


def _pull_url(app, member, job_id, name="sheet"):
    answer = app.post_json(
        f"/api/v1/jobs/{job_id}/pull-urls", {"name": name}, headers=member.auth, status=201
    ).json["pull_url"]
    return answer


def _path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def test_pull_serves_the_newest_valid_result_scrubbed_with_no_session(app, alice, job, runtime):
    made = _pull_url(app, alice, job["id"])
    assert made["name"] == "sheet" and made["csv"].endswith(".csv") and made["active"]
    csv_path, json_path = _path(made["csv"]), _path(made["json"])
    # No run yet: a clear 404, logged.
    assert "no successful run" in app.get(csv_path, status=404).json["error"]["message"]
    first = _run(app, alice, runtime, job)
    second = _run(app, alice, runtime, job)
    answer = app.get(csv_path)  # no Authorization header, no cookie
    assert answer.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["ArtistId", "Name"]  # the password column is scrubbed, as everywhere
    assert len(rows) == 4
    assert f"Result_tid_{second}" in answer.headers["Content-Disposition"]
    assert answer.headers["Cache-Control"] == "private, no-store"
    document = app.get(json_path).json
    assert document["header"] == ["ArtistId", "Name"] and len(document["rows"]) == 3
    # The newest run's result expires: the previous valid one is served.
    _expire(runtime, second)
    assert f"Result_tid_{first}" in app.get(csv_path).headers["Content-Disposition"]
    _expire(runtime, first)
    error = app.get(csv_path, status=410).json["error"]
    assert error["code"] == "result_expired" and f"run {second}" in error["message"]
    listed = app.get(f"/api/v1/jobs/{job['id']}/pull-urls", headers=alice.auth).json
    assert listed["pull_urls"][0]["last_used_at"] is not None
    assert "csv" not in listed["pull_urls"][0]  # the URL itself is never shown again
    with session_scope(runtime.session_factory) as session:
        uses = session.execute(
            select(PullUse.format, PullUse.status, PullUse.tracker_id).order_by(PullUse.id)
        ).all()
    assert [tuple(u) for u in uses] == [
        ("csv", 404, None),
        ("csv", 200, second),
        ("json", 200, second),
        ("csv", 200, first),
        ("csv", 410, None),
    ]


def _expire(runtime, tracker_id):
    with session_scope(runtime.session_factory) as session:
        session.execute(
            update(Tracker)
            .where(Tracker.id == tracker_id)
            .values(result_expires_at=utcnow() - dt.timedelta(seconds=1))
        )


def test_only_a_hash_is_stored_and_revoke_and_rotate_take_one_call(app, alice, job, runtime):
    made = _pull_url(app, alice, job["id"])
    token = made["csv"].rsplit("/", 1)[1].removesuffix(".csv")
    _run(app, alice, runtime, job)
    with runtime.engine.connect() as connection:
        dump = "\n".join(str(row) for row in connection.exec_driver_sql("SELECT * FROM pull_urls"))
    assert token not in dump and token[4:] not in dump
    rotated = app.post(
        f"/api/v1/pull-urls/{made['id']}/rotate", headers=alice.auth, status=201
    ).json["pull_url"]
    assert rotated["name"] == "sheet" and rotated["id"] != made["id"]
    app.get(_path(made["csv"]), status=404)  # the rotated-away URL is dead at once
    app.get(_path(rotated["csv"]), status=200)
    app.delete(f"/api/v1/pull-urls/{rotated['id']}", headers=alice.auth, status=204)
    app.get(_path(rotated["csv"]), status=404)
    states = {
        u["id"]: u["active"]
        for u in app.get(f"/api/v1/jobs/{job['id']}/pull-urls", headers=alice.auth).json[
            "pull_urls"
        ]
    }
    assert states == {made["id"]: False, rotated["id"]: False}


def test_guessed_and_malformed_tokens_are_plain_404s(app, alice, job, runtime):
    made = _pull_url(app, alice, job["id"])
    _run(app, alice, runtime, job)
    path = _path(made["csv"])
    token = path.removeprefix("/pull/").removesuffix(".csv")
    other = token[:-1] + ("A" if token[-1] != "A" else "B")  # one character off
    for probe in (
        f"/pull/{other}.csv",
        f"/pull/{token[:-1]}.csv",  # too short
        f"/pull/{token}x.csv",  # too long
        f"/pull/{token.replace('dcp_', 'dcg_')}.csv",  # a trigger's shape
        f"/pull/{token}.CSV",  # the format is lower-case only
        f"/pull/{token}.xlsx",
        f"/pull/{token}.csv/",  # trailing slash
        f"/pull/{token}.csv/../",
        f"/pull/{token}.csv/..%2f",
        f"/pull/{token}.csv%00",
        f"/pull/{token.upper()}.csv",
        "/pull/.csv",
    ):
        answer = app.get(probe, status=404, expect_errors=True)
        assert "ArtistId" not in answer.text, probe
    # %2e is decoded by the server before routing: the same resource, nothing else.
    assert app.get(f"/pull/{token}%2ecsv").content_type == "text/csv"
    # Found by the hash, in the database: the service never compares tokens itself.
    with session_scope(runtime.session_factory) as session:
        assert job_urls.pull_url_by_token(session, other) is None
        assert job_urls.pull_url_by_token(session, token) is not None


def test_head_answers_headers_only_and_is_logged(app, alice, job, runtime):
    made = _pull_url(app, alice, job["id"])
    path = _path(made["csv"])
    app.head(path, status=404)
    _run(app, alice, runtime, job)
    answer = app.head(path, status=200)
    assert answer.body == b"" and answer.content_type == "text/csv"
    with session_scope(runtime.session_factory) as session:
        methods = session.scalars(select(PullUse.method).order_by(PullUse.id)).all()
    assert methods == ["HEAD", "HEAD"]


def test_other_users_cannot_make_list_or_revoke_a_jobs_urls(app, alice, bob, runtime, tmp_path):
    shared_job = _job(app, alice, _connection(app, alice, _copy(tmp_path), shared=True)["id"])
    app.patch_json(f"/api/v1/jobs/{shared_job['id']}", {"shared": True}, headers=alice.auth)
    made = _pull_url(app, alice, shared_job["id"])
    # Bob may see and run the shared job, but its URLs are its owner's business.
    app.post(f"/api/v1/jobs/{shared_job['id']}/pull-urls", headers=bob.auth, status=404)
    app.get(f"/api/v1/jobs/{shared_job['id']}/pull-urls", headers=bob.auth, status=404)
    app.delete(f"/api/v1/pull-urls/{made['id']}", headers=bob.auth, status=404)
    app.post(f"/api/v1/pull-urls/{made['id']}/rotate", headers=bob.auth, status=404)
    app.post(f"/api/v1/jobs/{shared_job['id']}/triggers", headers=bob.auth, status=404)
    # No credentials at all: 401, as every API route.
    app.get(f"/api/v1/jobs/{shared_job['id']}/pull-urls", status=401)


def _copy(tmp_path):
    import shutil

    from conftest import CHINOOK_SQLITE

    target = tmp_path / "shared.sqlite"
    shutil.copyfile(CHINOOK_SQLITE, target)
    return target


def test_urls_stop_when_the_connection_is_unshared_or_the_owner_disabled(
    app, alice, bob, runtime, tmp_path
):
    """Bob's job runs on Alice's shared connection; his pull URL acts with his rights."""
    connection = _connection(app, alice, _copy(tmp_path), shared=True)
    bobs = _job(app, bob, connection["id"], name="bobs")
    made = _pull_url(app, bob, bobs["id"])
    _run(app, bob, runtime, bobs)
    path = _path(made["csv"])
    app.get(path, status=200)
    app.patch_json(f"/api/v1/connections/{connection['id']}", {"shared": False}, headers=alice.auth)
    app.get(path, status=404)
    with session_scope(runtime.session_factory) as session:
        session.execute(update(Connection).values(shared=True))
    app.get(path, status=200)
    with session_scope(runtime.session_factory) as session:
        session.execute(update(User).where(User.id == bob.id).values(disabled_at=utcnow()))
    app.get(path, status=404)
    with session_scope(runtime.session_factory) as session:
        session.execute(update(User).where(User.id == bob.id).values(disabled_at=None))
    app.get(path, status=200)
    app.delete(f"/api/v1/jobs/{bobs['id']}", headers=bob.auth, status=204)
    app.get(path, status=404)


def test_rate_limit_per_url_answers_429_with_retry_after(tmp_path, sqlite_chinook):
    from dancecat_core import migrations
    from dancecat_core.runtime import build_runtime
    from dancecat_core.settings import load_settings

    settings = load_settings(
        environ={
            "DANCECAT_HOME": str(tmp_path / "home"),
            "DANCECAT_SQLITE_ALLOWED_DIRS": str(tmp_path),
            "DANCECAT_PULL_URL_RATE_LIMIT": "3",
        }
    )
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.engine)
    app = make_app(runtime)
    alice = make_user(runtime, "alice@example.com")
    job = _job(app, alice, _connection(app, alice, sqlite_chinook)["id"])
    _run(app, alice, runtime, job)
    limited, other = _pull_url(app, alice, job["id"]), _pull_url(app, alice, job["id"], "other")
    for _ in range(3):
        app.get(_path(limited["csv"]), status=200)
    refused = app.get(_path(limited["json"]), status=429)
    assert refused.json["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    app.get(_path(other["csv"]), status=200)  # per URL, not per job
    with session_scope(runtime.session_factory) as session:
        assert session.scalar(select(PullUse.id).where(PullUse.status == 429)) is None
        # A minute later the window starts again.
        session.execute(
            update(job_urls.PullUrl).values(window_started_at=utcnow() - dt.timedelta(minutes=1))
        )
    app.get(_path(limited["csv"]), status=200)
    runtime.engine.dispose()


def test_job_page_lists_creates_rotates_and_revokes(app, alice, job, runtime):
    sign_in(app, alice.email)
    page = app.get(f"/jobs/{job['id']}")
    assert "Pull URLs and triggers" in page.text and "None yet." in page.text
    form = page.forms["new-pull-url"]
    form["pull-name"] = "finance sheet"
    shown = form.submit()
    link = shown.html.select_one("#new-url-1")["value"]
    assert link.startswith("http") and "/pull/dcp_" in link
    assert "finance sheet" in shown.text and "never" in shown.text
    _run(app, alice, runtime, job)
    assert app.get(_path(link)).content_type == "text/csv"
    page = app.get(f"/jobs/{job['id']}")
    assert link not in page.text  # shown once
    rotate = next(f for f in page.forms.values() if "/rotate" in (f.action or ""))
    rotated = rotate.submit()
    new_link = rotated.html.select_one("#new-url-1")["value"]
    assert new_link != link
    app.get(_path(link), status=404)
    revoke = next(
        f for f in app.get(f"/jobs/{job['id']}").forms.values() if "/revoke" in (f.action or "")
    )
    revoke.submit().follow()
    app.get(_path(new_link), status=404)
    trigger_form = app.get(f"/jobs/{job['id']}").forms["new-trigger"]
    trigger_form.set("trigger-signed", True, index=1)
    made = trigger_form.submit()
    assert "/trigger/dcg_" in made.html.select_one("#new-url-1")["value"]
    assert re.fullmatch(r"[0-9a-f]{64}", made.html.select_one("#new-secret")["value"])
