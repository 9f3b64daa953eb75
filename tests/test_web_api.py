"""The JSON API through WebTest: every route's happy path, who may see what, CSRF, and
bad input answered with 4xx (never 500)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import openpyxl
import pytest
from sqlalchemy import update
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core.db import session_scope
from dancecat_core.models import Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker


@pytest.fixture
def bob(runtime):
    return make_user(runtime, "bob@example.com")


@pytest.fixture
def admin(runtime):
    return make_user(runtime, "root@example.com", admin=True)


ARTISTS = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId"


@pytest.fixture
def job(app, alice, connection):
    body = {"name": "artists", "connection_id": connection["id"], "query": ARTISTS}
    return app.post_json("/api/v1/jobs", body, headers=alice.auth).json["job"]


@pytest.fixture
def finished_run(app, alice, job, runtime, queued):
    """A Success run of ``job``, executed the way the worker would."""
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    assert queued == [tracker["id"]]
    assert execute_tracker(runtime, tracker["id"]).status == TrackerStatus.SUCCESS
    return tracker


# -- every route wants a signed-in user ------------------------------------------------

PROTECTED = [
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/connections"),
    ("POST", "/api/v1/connections"),
    ("POST", "/api/v1/connections/test"),
    ("GET", "/api/v1/connections/1"),
    ("PUT", "/api/v1/connections/1"),
    ("PATCH", "/api/v1/connections/1"),
    ("DELETE", "/api/v1/connections/1"),
    ("POST", "/api/v1/connections/1/test"),
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs"),
    ("POST", "/api/v1/preview"),
    ("GET", "/api/v1/jobs/1"),
    ("PUT", "/api/v1/jobs/1"),
    ("PATCH", "/api/v1/jobs/1"),
    ("DELETE", "/api/v1/jobs/1"),
    ("POST", "/api/v1/jobs/1/preview"),
    ("POST", "/api/v1/jobs/1/runs"),
    ("GET", "/api/v1/jobs/1/runs"),
    ("GET", "/api/v1/jobs/1/latest/result.json"),
    ("GET", "/api/v1/jobs/1/latest/result.csv"),
    ("GET", "/api/v1/jobs/1/latest/result.xlsx"),
    ("GET", "/api/v1/trackers/1"),
    ("GET", "/api/v1/trackers/1/result.json"),
    ("GET", "/api/v1/trackers/1/result.csv"),
    ("GET", "/api/v1/trackers/1/result.xlsx"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_api_routes_answer_401_json_without_credentials(app, method, path):
    response = app.request(path, method=method, status=401)
    assert response.json["error"]["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_a_wrong_or_revoked_token_is_401(app, alice, runtime, method, path):
    app.request(path, method=method, headers={"Authorization": "Bearer nope"}, status=401)


def test_revoked_token_stops_working(app, alice, runtime):
    from dancecat_core.models import User
    from dancecat_core.services import accounts

    app.get("/api/v1/me", headers=alice.auth, status=200)
    with session_scope(runtime.session_factory) as session:
        user = session.get(User, alice.id)
        (token,) = accounts.list_tokens(session, user)
        assert token.last_used_at is not None
        accounts.revoke_token(session, user, token.id)
    app.get("/api/v1/me", headers=alice.auth, status=401)


@pytest.mark.parametrize(
    "path", ["/job/result/1/raw", "/job/latest-result/1/csv", "/job/latest-result/1/raw", "/"]
)
def test_browser_routes_redirect_to_sign_in(app, path):
    response = app.get(path, status=302)
    assert response.headers["Location"].startswith("http://localhost/login?next=")


def test_openapi_needs_no_sign_in(app):
    document = app.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")


# -- connections -----------------------------------------------------------------------


def test_connection_crud_never_returns_the_password(app, alice, sqlite_chinook):
    body = {
        "name": "pg",
        "driver": "postgresql",
        "host": "db.example.com",
        "port": 5433,
        "database": "sales",
        "user": "reporter",
        "password": "s3cret-Pa55",
        "read_only": True,
        "options": {},
    }
    created = app.post_json("/api/v1/connections", body, headers=alice.auth, status=201)
    connection = created.json["connection"]
    assert created.headers["Location"].endswith(f"/api/v1/connections/{connection['id']}")
    assert "password" not in connection and connection["has_password"] is True
    assert "s3cret" not in created.text
    url = f"/api/v1/connections/{connection['id']}"
    assert app.get(url, headers=alice.auth).json["connection"]["port"] == 5433
    listed = app.get("/api/v1/connections", headers=alice.auth).json["connections"]
    assert [c["id"] for c in listed] == [connection["id"]]

    patched = app.patch_json(url, {"name": "pg2"}, headers=alice.auth).json
    assert patched["connection"]["name"] == "pg2"
    assert patched["connection"]["has_password"] is True  # kept
    # A new port needs the password again (test_connection_password.py says why).
    app.patch_json(url, {"port": None}, headers=alice.auth, status=422)
    again = {"port": None, "password": "s3cret-Pa55"}
    patched = app.patch_json(url, again, headers=alice.auth).json
    assert patched["connection"]["port"] == 5432  # the driver's default
    assert patched["connection"]["has_password"] is True

    replaced = app.put_json(
        url,
        {"name": "lite", "driver": "sqlite", "database": str(sqlite_chinook)},
        headers=alice.auth,
    ).json["connection"]
    assert (replaced["driver"], replaced["host"], replaced["shared"]) == ("sqlite", None, False)
    assert replaced["has_password"] is False  # a file has nowhere to send it: dropped

    assert app.delete(url, headers=alice.auth, status=204).body == b""
    app.get(url, headers=alice.auth, status=404)


def test_connection_test_routes(app, alice, connection, sqlite_chinook, tmp_path):
    answer = app.post(f"/api/v1/connections/{connection['id']}/test", headers=alice.auth).json
    assert answer["ok"] is True and answer["error"] is None
    assert isinstance(answer["elapsed_ms"], int)
    missing = {"name": "x", "driver": "sqlite", "database": str(tmp_path / "none.sqlite")}
    answer = app.post_json("/api/v1/connections/test", missing, headers=alice.auth).json
    assert answer["ok"] is False and answer["error"]


def test_connection_validation_names_the_field(app, alice):
    body = {"name": "x", "driver": "nosuch", "database": "d"}
    error = app.post_json("/api/v1/connections", body, headers=alice.auth, status=422).json
    assert error["error"]["field"] == "driver"
    body = {"name": "x", "driver": "postgresql", "host": "h", "database": "d", "port": 70000}
    error = app.post_json("/api/v1/connections", body, headers=alice.auth, status=422).json
    assert error["error"]["field"] == "port"


# -- sharing and 404s ------------------------------------------------------------------


def test_other_users_objects_are_404(app, alice, bob, job, finished_run):
    connection_url = f"/api/v1/connections/{job['connection_id']}"
    job_url = f"/api/v1/jobs/{job['id']}"
    tracker_url = f"/api/v1/trackers/{finished_run['id']}"
    body = {"name": "x", "driver": "sqlite", "database": "x"}
    job_body = {"name": "x", "connection_id": job["connection_id"], "query": "select 1"}
    for method, url, payload in [
        ("GET", connection_url, None),
        ("PUT", connection_url, body),
        ("PATCH", connection_url, {"name": "y"}),
        ("DELETE", connection_url, None),
        ("POST", connection_url + "/test", None),
        ("GET", job_url, None),
        ("PUT", job_url, job_body),
        ("PATCH", job_url, {"name": "y"}),
        ("DELETE", job_url, None),
        ("POST", job_url + "/preview", None),
        ("POST", job_url + "/runs", None),
        ("GET", job_url + "/runs", None),
        ("GET", job_url + "/latest/result.json", None),
        ("GET", tracker_url, None),
        ("GET", tracker_url + "/result.csv", None),
    ]:
        kwargs = {"headers": bob.auth, "status": 404}
        if payload is not None:
            kwargs["params"] = json.dumps(payload)
            kwargs["content_type"] = "application/json"
        response = getattr(app, method.lower())(url, **kwargs)
        assert response.json["error"]["code"] == "not_found", (method, url)
    assert app.get("/api/v1/jobs", headers=bob.auth).json["jobs"] == []
    assert app.get("/api/v1/connections", headers=bob.auth).json["connections"] == []
    # Bob cannot use Alice's private connection in a job of his own either.
    app.post_json("/api/v1/jobs", job_body, headers=bob.auth, status=422)
    for path in (f"/job/result/{finished_run['id']}/raw", f"/job/latest-result/{job['id']}/csv"):
        assert app.get(path, headers=bob.auth, status=404).content_type == "text/html"


def test_shared_jobs_are_visible_and_runnable_but_not_changeable(app, alice, bob, job, queued):
    job_url = f"/api/v1/jobs/{job['id']}"
    app.patch_json(job_url, {"shared": True}, headers=alice.auth)
    assert [j["id"] for j in app.get("/api/v1/jobs", headers=bob.auth).json["jobs"]] == [job["id"]]
    app.get(job_url, headers=bob.auth, status=200)
    app.post(job_url + "/preview", headers=bob.auth, status=200)
    app.post(job_url + "/runs", headers=bob.auth, status=202)
    app.patch_json(job_url, {"name": "mine now"}, headers=bob.auth, status=404)
    app.delete(job_url, headers=bob.auth, status=404)


def test_admins_see_everything(app, alice, admin, job):
    assert [j["id"] for j in app.get("/api/v1/jobs", headers=admin.auth).json["jobs"]] == [
        job["id"]
    ]
    app.patch_json(f"/api/v1/jobs/{job['id']}", {"name": "admin"}, headers=admin.auth)


# -- jobs, previews, runs --------------------------------------------------------------


def test_job_crud_with_recipients_and_schedules(app, alice, connection):
    body = {
        "name": "weekly",
        "connection_id": connection["id"],
        "query": ARTISTS,
        "annotation": "**bold**",
        "timeout_seconds": 30,
        "recipients": ["Boss@Example.com"],
        "schedules": [
            {"type": "daily", "start": "2030-01-01 08:00", "timezone": "Europe/Paris"},
            {"type": "cron", "start": "2030-01-01 00:00", "cron": "*/15 * * * *"},
        ],
    }
    created = app.post_json("/api/v1/jobs", body, headers=alice.auth, status=201).json["job"]
    assert created["recipients"] == ["boss@example.com"]
    assert [s["type"] for s in created["schedules"]] == ["daily", "cron"]
    daily = created["schedules"][0]
    assert daily["start"] == "2030-01-01 08:00" and daily["timezone"] == "Europe/Paris"
    assert daily["next_run_at"] == "2030-01-01T07:00:00+00:00"
    url = f"/api/v1/jobs/{created['id']}"

    # PATCH without schedules keeps them; with schedules, the list is the new truth.
    patched = app.patch_json(url, {"annotation": "x"}, headers=alice.auth).json["job"]
    assert len(patched["schedules"]) == 2
    keep = {**daily, "active": False}
    for key in ("next_run_at", "last_run_at"):
        keep.pop(key)
    patched = app.patch_json(url, {"schedules": [keep]}, headers=alice.auth).json["job"]
    assert [(s["id"], s["active"], s["next_run_at"]) for s in patched["schedules"]] == [
        (daily["id"], False, None)
    ]
    # An item with an id keeps the fields it leaves out (docs/API.md says so).
    only = {"schedules": [{"id": daily["id"], "active": True}]}
    patched = app.patch_json(url, only, headers=alice.auth).json["job"]["schedules"]
    assert [{key: s[key] for key in daily} for s in patched] == [daily]
    bad = {"schedules": [{"type": "hourly", "start": "soon"}]}
    error = app.patch_json(url, bad, headers=alice.auth, status=422).json["error"]
    assert error["field"] == "schedules[0].start"
    # A new item (no id) still needs its type and start.
    error = app.patch_json(
        url, {"schedules": [{"cron": "* * * * *"}]}, headers=alice.auth, status=422
    )
    assert error.json["error"]["field"] == "schedules[0].type"
    # PUT replaces everything, schedules included.
    put = {"name": "plain", "connection_id": connection["id"], "query": "select 1"}
    replaced = app.put_json(url, put, headers=alice.auth).json["job"]
    assert (replaced["schedules"], replaced["recipients"], replaced["annotation"]) == ([], [], "")
    app.get(url, headers=alice.auth)
    app.delete(url, headers=alice.auth, status=204)
    app.get(url, headers=alice.auth, status=404)


def test_preview_saved_and_unsaved(app, alice, job, connection, runtime):
    preview = app.post(f"/api/v1/jobs/{job['id']}/preview", headers=alice.auth).json
    assert preview["header"] == ["ArtistId", "Name"]
    assert preview["rows"][0] == [1, "AC/DC"]
    assert len(preview["rows"]) == runtime.settings.query_test_limit
    assert preview["truncated"] is True and preview["scrubbed"] == []
    body = {
        "connection_id": connection["id"],
        "query": "SELECT 1 AS n, 'x' AS password",
    }
    preview = app.post_json("/api/v1/preview", body, headers=alice.auth).json
    assert preview["header"] == ["n"]
    assert preview["scrubbed"][0]["column"] == "password"
    body["query"] = "SELECT * FROM nowhere"
    error = app.post_json("/api/v1/preview", body, headers=alice.auth, status=422).json["error"]
    assert error["code"] == "query_failed"


def test_run_is_enqueued_only_after_commit(runtime, alice, job, sqlite_chinook):
    """The enqueue hook must find the tracker committed, from another session."""
    seen: list[str] = []

    def enqueue(tracker_id: int) -> None:
        with session_scope(runtime.session_factory) as session:
            seen.append(session.get(Tracker, tracker_id).status)

    app = make_app(runtime)
    app.app.registry["dancecat.enqueue_run"] = enqueue
    response = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth, status=202)
    assert response.json["tracker"]["status"] == "Queued"
    assert response.headers["Location"].endswith(
        f"/api/v1/trackers/{response.json['tracker']['id']}"
    )
    assert seen == ["Queued"]


def test_runs_list_is_newest_first_and_paged(app, alice, job, queued):
    for _ in range(3):
        app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth, status=202)
    url = f"/api/v1/jobs/{job['id']}/runs"
    page = app.get(url, {"limit": 2}, headers=alice.auth).json
    assert [r["id"] for r in page["runs"]] == queued[::-1][:2]
    rest = app.get(page["next"], headers=alice.auth).json
    assert [r["id"] for r in rest["runs"]] == queued[:1] and rest["next"] is None
    queued_only = app.get(url, {"status": "Queued"}, headers=alice.auth).json["runs"]
    assert len(queued_only) == 3
    assert app.get(url, {"status": "Success"}, headers=alice.auth).json["runs"] == []
    for params in ({"status": "done"}, {"limit": "0"}, {"limit": "x"}, {"cursor": "-1"}):
        app.get(url, params, headers=alice.auth, status=422)


def test_tracker_and_results_in_three_formats(app, alice, job, finished_run):
    tracker = app.get(f"/api/v1/trackers/{finished_run['id']}", headers=alice.auth).json["tracker"]
    assert tracker["status"] == "Success" and tracker["row_count"] == 275
    base = f"/api/v1/trackers/{tracker['id']}/result"
    as_json = app.get(base + ".json", headers=alice.auth)
    assert as_json.content_type == "application/json"
    disposition = f"attachment; filename=Result_tid_{tracker['id']}.json"
    assert as_json.headers["Content-Disposition"] == disposition
    assert int(as_json.headers["Content-Length"]) == len(as_json.body)
    document = as_json.json
    assert document["header"] == ["ArtistId", "Name"] and document["rows"][0] == [1, "AC/DC"]
    assert len(document["rows"]) == 275

    as_csv = app.get(base + ".csv", headers=alice.auth)
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == ["ArtistId", "Name"] and rows[1] == ["1", "AC/DC"] and len(rows) == 276

    as_xlsx = app.get(base + ".xlsx", headers=alice.auth)
    assert as_xlsx.headers["Content-Disposition"].endswith(".xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.body), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == ("ArtistId", "Name") and values[1] == (1, "AC/DC")

    latest = app.get(f"/api/v1/jobs/{job['id']}/latest/result.json", headers=alice.auth)
    assert latest.body == as_json.body
    app.get(base + ".parquet", headers=alice.auth, status=404)


def test_browser_result_routes_with_the_session(app, alice, job, finished_run):
    sign_in(app, alice.email)
    raw = app.get(f"/job/result/{finished_run['id']}/raw")
    assert raw.json["rows"][0] == [1, "AC/DC"]
    for fmt, kind in (
        ("csv", "text/csv"),
        ("xlsx", "application/vnd"),
        ("raw", "application/json"),
    ):
        response = app.get(f"/job/latest-result/{job['id']}/{fmt}")
        assert response.headers["Content-Type"].startswith(kind)
    app.get(f"/job/latest-result/{job['id']}/pdf", status=404)


def test_unfinished_run_is_409_with_its_status(app, alice, job):
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    error = app.get(
        f"/api/v1/trackers/{tracker['id']}/result.csv", headers=alice.auth, status=409
    ).json["error"]
    assert error["status"] == "Queued" and error["code"] == "conflict"
    error = app.get(
        f"/api/v1/jobs/{job['id']}/latest/result.csv", headers=alice.auth, status=404
    ).json["error"]
    assert "no successful run" in error["message"]


def test_expired_result_is_410(app, alice, job, finished_run, runtime):
    with session_scope(runtime.session_factory) as session:
        session.execute(
            update(Tracker)
            .where(Tracker.id == finished_run["id"])
            .values(result_expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    for url in (
        f"/api/v1/trackers/{finished_run['id']}/result.json",
        f"/api/v1/jobs/{job['id']}/latest/result.csv",
    ):
        error = app.get(url, headers=alice.auth, status=410).json["error"]
        assert error["code"] == "result_expired"
    app.get(f"/job/result/{finished_run['id']}/raw", headers=alice.auth, status=410)


def test_run_of_a_job_whose_connection_was_deleted_is_409(app, alice, job):
    app.delete(f"/api/v1/connections/{job['connection_id']}", headers=alice.auth, status=204)
    assert app.get(f"/api/v1/jobs/{job['id']}", headers=alice.auth).json["job"][
        "connection_deleted"
    ]
    app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth, status=409)
    app.post(f"/api/v1/jobs/{job['id']}/preview", headers=alice.auth, status=409)


# -- CSRF ------------------------------------------------------------------------------


def test_cookie_sessions_need_csrf_tokens_bearer_requests_do_not(app, alice, sqlite_chinook):
    token = sign_in(app, alice.email)
    body = {"name": "c", "driver": "sqlite", "database": str(sqlite_chinook)}
    error = app.post_json("/api/v1/connections", body, status=403).json["error"]
    assert error["code"] == "csrf"
    app.post_json("/api/v1/connections", body, headers={"X-CSRF-Token": "wrong"}, status=403)
    created = app.post_json("/api/v1/connections", body, headers={"X-CSRF-Token": token})
    url = f"/api/v1/connections/{created.json['connection']['id']}"
    app.patch_json(url, {"name": "d"}, status=403)
    app.delete(url, status=403)
    app.get(url, status=200)  # safe methods need no token
    app.delete(url, headers={"X-CSRF-Token": token}, status=204)


def test_bearer_requests_are_exempt_from_csrf(app, alice, sqlite_chinook):
    body = {"name": "c", "driver": "sqlite", "database": str(sqlite_chinook)}
    app.post_json("/api/v1/connections", body, headers=alice.auth, status=201)


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"", 400, "malformed_body"),
        (b"{", 400, "malformed_body"),
        (b"\xff\xfe", 400, "malformed_body"),
        (b'{"name": NaN}', 400, "malformed_body"),
        (b"[" * 100 + b"]" * 100, 400, "malformed_body"),
        (b"[]", 422, "invalid"),
        (b'"text"', 422, "invalid"),
        (b'{"name": "x", "driver": "sqlite", "database": "d", "extra": 1}', 422, "invalid"),
        (b'{"name": 1, "driver": "sqlite", "database": "d"}', 422, "invalid"),
        (b'{"name": "x", "driver": "sqlite"}', 422, "invalid"),
        (b'{"name": "x", "driver": "sqlite", "database": "d", "port": "5432"}', 422, "invalid"),
        (b'{"name": "x", "driver": "sqlite", "database": "d", "port": true}', 422, "invalid"),
        (b'{"name": "x", "driver": "sqlite", "database": "d", "port": 1.5}', 422, "invalid"),
        (b'{"name": "x", "driver": "sqlite", "database": "d", "options": []}', 422, "invalid"),
        (b'{"name": "a\\u0000b", "driver": "sqlite", "database": "d"}', 422, "invalid"),
        (b'{"name": "\\ud800", "driver": "sqlite", "database": "d"}', 422, "invalid"),
        (
            b'{"name": "x", "driver": "sqlite", "database": "d", "password": "\\udfff"}',
            422,
            "invalid",
        ),
    ],
)
def test_bad_connection_bodies_are_4xx(app, alice, raw, status, code):
    response = app.post(
        "/api/v1/connections",
        raw,
        headers={**alice.auth, "Content-Type": "application/json"},
        status=status,
    )
    assert response.json["error"]["code"] == code


@pytest.mark.parametrize(
    "body",
    [
        {"name": "j", "connection_id": "1", "query": "select 1"},
        {"name": "j", "connection_id": 1, "query": "select 1", "recipients": "a@b.c"},
        {"name": "j", "connection_id": 1, "query": "select 1", "recipients": [1]},
        {"name": "j", "connection_id": 1, "query": "select 1", "recipients": ["not-an-email"]},
        {"name": "j", "connection_id": 1, "query": "select 1", "schedules": [{}]},
        {"name": "j", "connection_id": 1, "query": "select 1", "schedules": [None]},
        {"name": "j", "connection_id": 10**30, "query": "select 1"},
        {"name": "j", "connection_id": 1, "query": "select 1", "timeout_seconds": -1},
        {
            "name": "j",
            "connection_id": 1,
            "query": "select 1",
            "schedules": [{"type": "cron", "start": "2030-01-01 00:00", "cron": "nope"}],
        },
        {
            "name": "j",
            "connection_id": 1,
            "query": "select 1",
            "schedules": [{"type": "daily", "start": "2030-01-01 00:00", "timezone": "Mars/Base"}],
        },
        {
            "name": "j",
            "connection_id": 1,
            "query": "select 1",
            "schedules": [{"id": 99, "type": "daily", "start": "2030-01-01 00:00"}],
        },
    ],
)
def test_bad_job_bodies_are_422(app, alice, connection, body):
    response = app.post_json("/api/v1/jobs", body, headers=alice.auth, status=422)
    assert response.json["error"]["code"] == "invalid"


def test_oversize_bodies_are_413(runtime, alice):
    app = make_app(runtime)
    cap = runtime.settings.max_body_bytes
    body = json.dumps({"name": "x" * cap, "driver": "sqlite", "database": "d"})
    response = app.post(
        "/api/v1/connections",
        body,
        headers={**alice.auth, "Content-Type": "application/json"},
        status=413,
    )
    assert response.json["error"]["code"] == "body_too_large"


def test_huge_ids_are_404_and_bad_paths_are_404_or_405(app, alice):
    app.get(f"/api/v1/jobs/{10**30}", headers=alice.auth, status=404)
    app.get(f"/api/v1/trackers/{2**63}/result.csv", headers=alice.auth, status=404)
    app.get("/api/v1/jobs/abc", headers=alice.auth, status=404)
    app.get("/api/v1/nothing", headers=alice.auth, status=404)
    response = app.put("/api/v1/jobs", headers=alice.auth, status=405)
    assert response.headers["Allow"] == "GET, POST"
    assert response.json["error"]["code"] == "method_not_allowed"


def test_query_strings_that_are_not_utf8_are_400(app, alice, job):
    app.get(f"/api/v1/jobs/{job['id']}/runs?status=%ff", headers=alice.auth, status=400)


def test_a_crash_is_a_logged_generic_500(runtime, alice, caplog, monkeypatch):
    from dancecat_core.services import connections

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(connections, "list_visible", explode)
    app = make_app(runtime)
    response = app.get("/api/v1/connections", headers=alice.auth, status=500)
    assert response.json["error"]["code"] == "internal"
    assert "secret internals" not in response.text
    assert "secret internals" in caplog.text


# -- what the fuzzer found -------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["0" * 300, "a" * 64 + ".example.com", "bad host", "a..b", "ü" * 70]
)
def test_hosts_that_no_resolver_accepts_are_422_not_500(app, alice, host):
    """An over-long DNS label made getaddrinfo raise UnicodeError inside the MySQL driver."""
    body = {"name": "x", "driver": "mysql", "host": host, "database": "d"}
    for url in ("/api/v1/connections", "/api/v1/connections/test"):
        error = app.post_json(url, body, headers=alice.auth, status=422).json["error"]
        assert error["field"] == "host"


@pytest.mark.parametrize(
    "host", ["db.example.com", "127.0.0.1", "::1", "[::1]", "/var/run/postgresql", "bücher.de"]
)
def test_real_hosts_are_accepted(app, alice, host):
    body = {"name": "x", "driver": "postgresql", "host": host, "database": "d"}
    app.post_json("/api/v1/connections", body, headers=alice.auth, status=201)


def test_a_deleted_jobs_runs_and_latest_result_are_404(app, alice, job, finished_run):
    app.delete(f"/api/v1/jobs/{job['id']}", headers=alice.auth, status=204)
    app.get(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth, status=404)
    app.get(f"/api/v1/jobs/{job['id']}/latest/result.csv", headers=alice.auth, status=404)
    # The run itself stays in the history.
    app.get(f"/api/v1/trackers/{finished_run['id']}", headers=alice.auth, status=200)


def test_empty_query_parameters_are_refused(app, alice, job):
    app.get("/api/v1/jobs?limit=", headers=alice.auth, status=422)
    app.get("/api/v1/jobs?cursor=", headers=alice.auth, status=422)
    app.get(f"/api/v1/jobs/{job['id']}/runs?status=", headers=alice.auth, status=422)


def test_job_recipient_rules_and_templates_through_the_api(app, alice, connection):
    body = {
        "name": "stuck orders",
        "connection_id": connection["id"],
        "query": ARTISTS,
        "recipients": ["Ops@Example.com WHEN rows if rows>0", "boss@example.com when changed"],
        "subject_template": "{{ row_count }} stuck",
        "body_rows": 3,
    }
    job = app.post_json("/api/v1/jobs", body, headers=alice.auth, status=201).json["job"]
    assert sorted(job["recipients"]) == [
        "boss@example.com when changed",
        "ops@example.com when rows if rows > 0",
    ]
    assert (job["subject_template"], job["body_rows"], job["alert_after_failures"]) == (
        "{{ row_count }} stuck",
        3,
        1,
    )
    url = f"/api/v1/jobs/{job['id']}"
    for patch, field, says in [
        ({"recipients": ["a@example.com when never"]}, "recipients", "send when must be one of"),
        ({"recipients": ["a@example.com if total >"]}, "recipients", "no value to compare"),
        ({"subject_template": "{{ ''.__class__ }}"}, "subject_template", "not allowed"),
        ({"body_template": "{% include 'x' %}"}, "body_template", "cannot include"),
        ({"body_rows": 1000}, "body_rows", "Rows in the body"),
    ]:
        error = app.patch_json(url, patch, headers=alice.auth, status=422).json["error"]
        assert error["field"] == field and says in error["message"], error
