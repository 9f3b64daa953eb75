"""Error texts stored before they were cleaned leave masked: the API, the job page.

The rows below are written straight into the app database, as an older DanceCat (or one
without today's patterns) stored them: a run's error and a notification's last error with
credentials in clear. Everything that shows them must mask them as it shows them.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core.db import session_scope
from dancecat_core.error_text import shown_error
from dancecat_core.models import Notification, Tracker, TrackerStatus

SECRET = "Zq9Hunter2Stored"
# What a driver or a mail server might have said, in the shapes people find in logs.
STORED_ERRORS = [
    f"could not connect to postgresql://report:{SECRET}@db.internal:5432/sales",
    f'login failed: {{"user": "report", "password": "{SECRET}"}}',
    f"bad DSN host=db user=report password={SECRET} dbname=sales",
    f"PASSWORD = '{SECRET}'",
]


@pytest.fixture
def alice(runtime):
    return make_user(runtime, "alice@example.com")


@pytest.fixture
def app(runtime):
    return make_app(runtime)


def _failed_run(app, runtime, alice, sqlite_chinook, error: str) -> tuple[int, int]:
    connection = app.post_json(
        "/api/v1/connections",
        {"name": "chinook", "driver": "sqlite", "database": str(sqlite_chinook)},
        headers=alice.auth,
    ).json["connection"]
    job = app.post_json(
        "/api/v1/jobs",
        {"name": "artists", "connection_id": connection["id"], "query": "SELECT 1"},
        headers=alice.auth,
    ).json["job"]
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    with session_scope(runtime.session_factory) as session:
        session.execute(
            update(Tracker)
            .where(Tracker.id == tracker["id"])
            .values(status=TrackerStatus.FAILED.value, error=error)
        )
        session.add(
            Notification(
                tracker_id=tracker["id"],
                notifier="email",
                recipient="ops@example.com",
                status="failed",
                last_error=error,
            )
        )
    return job["id"], tracker["id"]


@pytest.mark.parametrize("error", STORED_ERRORS)
def test_a_stored_raw_error_is_masked_in_the_api_and_the_job_page(
    app, runtime, alice, sqlite_chinook, error
):
    job_id, tracker_id = _failed_run(app, runtime, alice, sqlite_chinook, error)

    one = app.get(f"/api/v1/trackers/{tracker_id}", headers=alice.auth).json["tracker"]
    runs = app.get(f"/api/v1/jobs/{job_id}/runs", headers=alice.auth).json["runs"]
    for shown in (one, *runs):
        assert SECRET not in shown["error"] and "[masked]" in shown["error"], shown
        (note,) = shown["notifications"]
        assert SECRET not in note["last_error"] and "[masked]" in note["last_error"], note
    assert SECRET not in app.get(f"/api/v1/jobs/{job_id}/runs", headers=alice.auth).text

    sign_in(app, alice.email)
    page = app.get(f"/jobs/{job_id}").text
    assert 'class="run-error"' in page and "[masked]" in page
    assert SECRET not in page


def test_a_stored_error_without_secrets_is_shown_as_stored(app, runtime, alice, sqlite_chinook):
    error = 'no such table: "Artists"'
    _, tracker_id = _failed_run(app, runtime, alice, sqlite_chinook, error)
    shown = app.get(f"/api/v1/trackers/{tracker_id}", headers=alice.auth).json["tracker"]
    assert shown["error"] == error
    assert shown["notifications"][0]["last_error"] == error


def test_a_kept_answer_is_never_shown_under_other_patterns(runtime):
    """``shown_error`` keeps what it showed per tuple of patterns: an answer worked out
    without patterns (or with fewer) must not be what a stricter set shows, whichever
    order they are asked in, and a stored text seen twice is masked both times."""
    strict = runtime.value_patterns
    assert isinstance(strict, tuple) and strict
    text = STORED_ERRORS[0]
    for _ in range(2):
        assert SECRET not in shown_error(text, strict)
        assert shown_error(text, ()) == text
        # An equal tuple that is another object, and a list: masked as well.
        assert SECRET not in shown_error(text, tuple(strict))
        assert SECRET not in shown_error(text, list(strict))
    # Longer texts than the kept ones, and every kept text past the limit: still masked.
    long = "x" * 5000 + text
    assert SECRET not in shown_error(long, strict)
    for n in range(5000):
        assert SECRET not in shown_error(f"{n} {text}", strict)
    assert shown_error(None, strict) is None
