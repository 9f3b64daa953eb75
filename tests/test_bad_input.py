"""Bad input: property tests (hypothesis) on schedule inputs through the service and the
API, and on every API body and HTML form; then oversized requests, huge queries, long text
cells, binary columns and zero-column results. Never a 500; every refusal names its field
and says why.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core import db
from dancecat_core.errors import ValidationError
from dancecat_core.models import Connection, Job, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.services import jobs as job_service
from dancecat_core.services import probes
from dancecat_core.services import schedules as schedule_service
from dancecat_core.services.jobs import MAX_QUERY_CHARS
from dancecat_core.services.schedules import ScheduleInput

ZONES = sorted(zoneinfo.available_timezones())
HYPOTHESIS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

cron_field = st.one_of(
    st.sampled_from(["*", "*/5", "0", "59", "1-5", "MON-FRI", "L", "?", "60", "-1", "1,2,3"]),
    st.integers(-5, 100).map(str),
    st.text(max_size=6),
)
crons = st.one_of(
    st.lists(cron_field, min_size=0, max_size=7).map(" ".join),
    st.text(max_size=40),
    st.none(),
)
starts = st.one_of(
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M")
    ),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(max_size=30),
    st.none(),
    st.integers(),
)
zones = st.one_of(st.sampled_from(ZONES), st.text(max_size=40), st.none())
kinds = st.one_of(
    st.sampled_from(["once", "hourly", "daily", "weekly", "monthly", "cron"]), st.text(max_size=8)
)
schedule_items = st.fixed_dictionaries(
    {"type": kinds, "start": starts},
    optional={
        "timezone": zones,
        "cron": crons,
        "active": st.one_of(st.booleans(), st.text(max_size=5)),
        "catch_up": st.one_of(st.sampled_from(["once", "skip", "all"]), st.text(max_size=5)),
    },
)


@pytest.fixture
def job_id(runtime, sqlite_chinook) -> int:
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(name="c", driver="sqlite", database=str(sqlite_chinook))
        job = Job(name="j", connection=connection, query="SELECT 1")
        session.add_all([connection, job])
        session.flush()
        return job.id


@HYPOTHESIS
@given(item=schedule_items)
def test_any_schedule_through_the_service_is_saved_or_refused_by_field(runtime, job_id, item):
    data = ScheduleInput(
        type=item["type"],
        start=item["start"],
        timezone=item.get("timezone"),
        cron=item.get("cron"),
        active=item.get("active", True),
        catch_up=item.get("catch_up") or "once",
    )
    with runtime.session_factory() as session:
        try:
            schedule = schedule_service.create(session, None, job_id, data)
        except ValidationError as exc:
            assert exc.field in {"type", "start", "timezone", "cron", "active", "catch_up"}, exc
            assert str(exc).strip(), "a refusal must say why"
        else:
            assert schedule.next_run_at is None or schedule.next_run_at.tzinfo is not None
        finally:
            session.rollback()


@pytest.fixture
def api(runtime, sqlite_chinook):
    app = make_app(runtime)
    member = make_user(runtime, "fuzz@example.com")
    connection = app.post_json(
        "/api/v1/connections",
        {"name": "c", "driver": "sqlite", "database": str(sqlite_chinook)},
        headers=member.auth,
    ).json["connection"]
    return app, member, connection["id"]


def _refusal_is_clear(response, body) -> None:
    assert response.status_int < 500, response.text
    if response.status_int >= 400:
        error = response.json["error"]
        assert error["code"] and error["message"].strip()
        if response.status_int == 422 and isinstance(body, dict):
            assert error.get("field"), error


@HYPOTHESIS
@given(items=st.lists(schedule_items, max_size=3))
def test_any_schedule_through_the_api_is_201_or_a_422_naming_the_field(api, items):
    app, member, connection_id = api
    body = {"name": "j", "connection_id": connection_id, "query": "SELECT 1", "schedules": items}
    response = app.post_json("/api/v1/jobs", body, headers=member.auth, expect_errors=True)
    _refusal_is_clear(response, body)
    if response.status_int == 422:
        assert response.json["error"]["field"].startswith("schedules")
    else:
        assert response.status_int == 201
        app.delete(f"/api/v1/jobs/{response.json['job']['id']}", headers=member.auth)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
CONNECTION_KEYS = ["name", "driver", "host", "port", "database", "user", "password",
                   "read_only", "shared", "options"]  # fmt: skip
JOB_KEYS = ["name", "connection_id", "query", "timeout_seconds", "annotation", "shared",
            "recipients", "schedules"]  # fmt: skip


def _bodies(keys: list[str]):
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), json_values, max_size=6)


@HYPOTHESIS
@given(
    target=st.sampled_from(
        [
            ("POST", "/api/v1/connections", CONNECTION_KEYS),
            ("POST", "/api/v1/connections/test", CONNECTION_KEYS),
            ("PATCH", "/api/v1/connections/{connection}", CONNECTION_KEYS),
            ("PUT", "/api/v1/connections/{connection}", CONNECTION_KEYS),
            ("POST", "/api/v1/jobs", JOB_KEYS),
            ("POST", "/api/v1/preview", JOB_KEYS),
        ]
    ),
    data=st.data(),
)
def test_any_api_body_is_never_a_500_and_refusals_name_the_field(api, target, data):
    app, member, connection_id = api
    method, path, keys = target
    body = data.draw(st.one_of(_bodies(keys), json_values))
    response = app.request(
        path.format(connection=connection_id),
        method=method,
        body=json.dumps(body).encode(),
        headers={**member.auth, "Content-Type": "application/json"},
        expect_errors=True,
    )
    _refusal_is_clear(response, body)


@pytest.fixture
def browser(runtime):
    """One signed-in browser for every example (signing in hashes a password: slow)."""
    app = make_app(runtime)
    member = make_user(runtime, "forms@example.com")
    return app, sign_in(app, member.email)


FORM_TEXT = st.text(max_size=40) | st.sampled_from(["", " ", "0", "-1", "9" * 30, "\u0000"])


@HYPOTHESIS
@given(
    target=st.sampled_from(
        [
            ("/connections/new", ["name", "driver", "host", "port", "database", "user"]),
            ("/connections/test", ["name", "driver", "host", "port", "database", "user"]),
            (
                "/jobs/new",
                [
                    "name",
                    "connection_id",
                    "query",
                    "timeout_seconds",
                    "recipients",
                    "schedule-0-type",
                    "schedule-0-start",
                    "schedule-0-timezone",
                    "schedule-0-cron",
                ],
            ),
            ("/jobs/preview", ["connection_id", "query", "timeout_seconds"]),
            ("/tokens", ["name"]),
        ]
    ),
    data=st.data(),
)
def test_any_form_is_never_a_500(browser, target, data):
    app, csrf = browser
    path, fields = target
    form = {name: data.draw(FORM_TEXT) for name in fields}
    form.update({"csrf_token": csrf, "action": "save"})
    response = app.post(path, form, expect_errors=True)
    assert response.status_int < 500, response.text[:500]
    if response.status_int == 422:
        assert "error" in response.text.lower() or "must" in response.text.lower()


@HYPOTHESIS
@given(
    kind=st.one_of(st.sampled_from(["daily", "cron", "monthly"]), st.text(max_size=6)),
    start=starts.map(str),
    zone=zones.map(lambda z: z or ""),
    cron=crons.map(lambda c: c or ""),
)
def test_next_runs_preview_endpoint_is_never_a_500(browser, kind, start, zone, cron):
    app, _ = browser
    response = app.get(
        "/schedules/next-runs.json",
        {"type": kind, "start": start, "timezone": zone, "cron": cron},
        expect_errors=True,
    )
    assert response.status_int < 500, response.text


# -- sizes and shapes ---------------------------------------------------------------------


def test_huge_query_is_refused_naming_the_field(api):
    app, member, connection_id = api
    body = {"name": "j", "connection_id": connection_id, "query": "x" * (MAX_QUERY_CHARS + 1)}
    # Under the body cap when the cap allows it; otherwise the cap answers first (413).
    response = app.post_json("/api/v1/jobs", body, headers=member.auth, expect_errors=True)
    assert response.status_int in (413, 422)
    error = response.json["error"]
    if response.status_int == 422:
        assert error["field"] == "query" and "characters" in error["message"]
    else:
        assert error["code"] == "body_too_large" and "byte limit" in error["message"]


def test_oversized_form_is_413_with_a_page(runtime):
    app = make_app(runtime)
    member = make_user(runtime, "big@example.com")
    csrf = sign_in(app, member.email)
    cap = runtime.settings.max_body_bytes
    response = app.post("/jobs/new", {"csrf_token": csrf, "query": "x" * cap}, status=413)
    assert "byte limit" in response.text and response.content_type == "text/html"


def _run_sql(runtime, sqlite_chinook, sql: str):
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(name="s", driver="sqlite", database=str(sqlite_chinook))
        job = Job(name="shape", connection=connection, query=sql)
        session.add_all([connection, job])
        session.flush()
        tracker_id = job_service.queue_run(session, None, job.id).id
    outcome = execute_tracker(runtime, tracker_id)
    return tracker_id, outcome


def test_long_text_cells_and_binary_columns_in_every_format(runtime, sqlite_chinook):
    app = make_app(runtime)
    admin = make_user(runtime, "admin@example.com", admin=True)
    sql = (
        "SELECT 1 AS id, printf('%.*c', 2000000, 'a') AS long_text, "
        "x'00ff10' AS small_blob, randomblob(100000) AS big_blob"
    )
    tracker_id, outcome = _run_sql(runtime, sqlite_chinook, sql)
    assert outcome.status == TrackerStatus.SUCCESS, outcome.error
    base = f"/api/v1/trackers/{tracker_id}/result"
    csv_text = app.get(f"{base}.csv", headers=admin.auth).text
    assert csv_text.splitlines()[0] == "id,long_text,small_blob,big_blob"
    assert "a" * 2_000_000 in csv_text
    rows = app.get(f"{base}.json", headers=admin.auth).json
    text = json.dumps(rows)
    assert "a" * 2_000_000 in text
    xlsx = app.get(f"{base}.xlsx", headers=admin.auth)
    assert xlsx.status_int == 200 and xlsx.body[:2] == b"PK"
    # The preview says the same, in the browser form's bounded form.
    with runtime.session_factory() as session:
        preview = probes.preview(runtime, session, None, connection_id=1, query=sql)
    assert preview.header == ["id", "long_text", "small_blob", "big_blob"]


def test_zero_column_result_is_rows_of_nothing_in_every_format(runtime, pg_database):
    """PostgreSQL accepts ``SELECT FROM t``: rows with no columns."""
    import psycopg2

    with (
        psycopg2.connect(
            host=pg_database["host"], user=pg_database["user"], dbname=pg_database["database"]
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
    conn.close()
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(
            name="pg", driver="postgresql", host=pg_database["host"], port=pg_database["port"],
            database=pg_database["database"], user_name=pg_database["user"],
        )  # fmt: skip
        job = Job(name="zero", connection=connection, query="SELECT FROM t")
        session.add_all([connection, job])
        session.flush()
        tracker_id = job_service.queue_run(session, None, job.id).id
    outcome = execute_tracker(runtime, tracker_id)
    # A well-defined answer rather than an error: two rows of no columns.
    assert outcome.status == TrackerStatus.SUCCESS and outcome.row_count == 2, outcome
    app = make_app(runtime)
    admin = make_user(runtime, "zero@example.com", admin=True)
    base = f"/api/v1/trackers/{tracker_id}/result"
    assert app.get(f"{base}.json", headers=admin.auth).json == {"header": [], "rows": [[], []]}
    assert app.get(f"{base}.csv", headers=admin.auth).body == b"\n\n\n"
    assert app.get(f"{base}.xlsx", headers=admin.auth).body[:2] == b"PK"
