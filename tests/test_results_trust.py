"""Results a user can trust on screen: "Latest result" is the newest result still valid,
an expired result reads as expired the moment it expires (not after the sweep), the raw
JSON shows in the browser, refusals answer people with a page and programs with JSON,
browser line endings are normalised, and XLSX columns fit their content."""

from __future__ import annotations

import datetime as dt
import io
import re

import openpyxl
import pytest
from sqlalchemy import select, update
from test_web_helpers import sign_in

from dancecat_core.columns import Column, ColumnType
from dancecat_core.db import session_scope
from dancecat_core.models import Job, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_plugins.sheets import MAX_WIDTH
from dancecat_plugins.xlsx_writer import write_xlsx

ARTISTS = "SELECT ArtistId, Name FROM Artist ORDER BY ArtistId"
RUN_DOWNLOAD = "/runs/{id}/result.{format}"
PAGE = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def job(app, alice, sqlite_chinook):
    body = {"name": "chinook", "driver": "sqlite", "database": str(sqlite_chinook)}
    connection = app.post_json("/api/v1/connections", body, headers=alice.auth).json
    body = {"name": "artists", "connection_id": connection["connection"]["id"], "query": ARTISTS}
    return app.post_json("/api/v1/jobs", body, headers=alice.auth).json["job"]


def run(app, runtime, alice, job, queued) -> int:
    """One Success run of ``job``, executed as the worker would; its tracker id."""
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    assert queued[-1] == tracker["id"]
    assert execute_tracker(runtime, tracker["id"]).status == TrackerStatus.SUCCESS
    return tracker["id"]


def expire(runtime, tracker_id: int) -> dt.datetime:
    """Move a run's expiry into the past without the sweep: its status still says Success."""
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    with session_scope(runtime.session_factory) as session:
        session.execute(
            update(Tracker).where(Tracker.id == tracker_id).values(result_expires_at=when)
        )
    with session_scope(runtime.session_factory) as session:
        assert session.get(Tracker, tracker_id).status == TrackerStatus.SUCCESS.value
    return when


def latest_cell(page_text: str, job_id: int) -> str:
    found = re.search(
        rf'<span class="latest-result" data-latest-job="{job_id}">(.*?)</span>\s*'
        r"(?=</td>|</p>)",
        page_text,
        re.S,
    )
    assert found, "no latest-result cell for the job"
    return found.group(1)


def test_latest_result_falls_back_to_the_newest_valid_one(app, runtime, alice, job, queued):
    older = run(app, runtime, alice, job, queued)
    newer = run(app, runtime, alice, job, queued)
    expire(runtime, newer)

    # Every "latest" route serves the older, still valid result, not a 410 for the newer.
    older_csv = app.get(f"/api/v1/trackers/{older}/result.csv", headers=alice.auth).body
    assert app.get(f"/api/v1/jobs/{job['id']}/latest/result.csv", headers=alice.auth).body == (
        older_csv
    )
    sign_in(app, alice.email)
    assert app.get(f"/job/latest-result/{job['id']}/csv").body == older_csv
    assert app.get(f"/jobs/{job['id']}/latest.csv").body == older_csv

    # The screens say which run it is, and the expired run reads as expired already.
    for url in ("/jobs", f"/jobs/{job['id']}"):
        page = app.get(url).text
        cell = latest_cell(page, job["id"])
        assert f"run {older}," in cell and "none yet" not in cell
        row = re.search(rf'<tr id="tracker-{newer}".*?</tr>', page, re.S).group(0)
        assert "Result Expired" in row and "/latest" not in row and ".csv" not in row
    api = app.get(f"/api/v1/trackers/{newer}", headers=alice.auth).json["tracker"]
    assert api["status"] == "Result Expired"


def test_when_every_result_expired_it_says_so_and_when(app, runtime, alice, job, queued):
    only = run(app, runtime, alice, job, queued)
    when = expire(runtime, only)
    said = f"expired on {when:%-d %b %Y at %H:%M} UTC"

    error = app.get(
        f"/api/v1/jobs/{job['id']}/latest/result.csv", headers=alice.auth, status=410
    ).json["error"]
    assert error["code"] == "result_expired" and said in error["message"]
    # Token clients of the path-style result routes get JSON too, never an HTML page.
    for url in (f"/job/latest-result/{job['id']}/raw", f"/job/result/{only}/raw"):
        answer = app.get(url, headers=alice.auth, status=410)
        assert answer.content_type == "application/json"
        assert said in answer.json["error"]["message"]

    sign_in(app, alice.email)
    for url in (
        f"/job/latest-result/{job['id']}/csv",
        f"/job/result/{only}/raw",
        f"/jobs/{job['id']}/latest.xlsx",
        RUN_DOWNLOAD.format(id=only, format="csv"),
    ):
        page = app.get(url, headers=PAGE, status=410)
        assert page.content_type == "text/html" and "This result has expired" in page.text
    # A script using the session but asking for JSON gets JSON.
    answer = app.get(f"/job/result/{only}/raw", headers={"Accept": "application/json"}, status=410)
    assert answer.json["error"]["code"] == "result_expired"

    cell = latest_cell(app.get("/jobs").text, job["id"])
    assert "last result expired" in cell and "none yet" not in cell


def test_a_job_that_never_succeeded_says_none_yet(app, runtime, alice, job):
    sign_in(app, alice.email)
    assert "none yet" in latest_cell(app.get("/jobs").text, job["id"])
    app.get(f"/api/v1/jobs/{job['id']}/latest/result.csv", headers=alice.auth, status=404)


def test_raw_json_is_shown_inline_downloads_stay_attachments(app, runtime, alice, job, queued):
    tracker_id = run(app, runtime, alice, job, queued)
    sign_in(app, alice.email)
    for url in (f"/job/result/{tracker_id}/raw", f"/job/latest-result/{job['id']}/raw"):
        raw = app.get(url, headers=PAGE)
        assert raw.content_type == "application/json"
        assert raw.headers["Content-Disposition"].startswith("inline;")
        assert raw.json["rows"][0] == [1, "AC/DC"]
    for url in (f"/job/result/{tracker_id}/csv", f"/job/latest-result/{job['id']}/xlsx"):
        assert app.get(url).headers["Content-Disposition"].startswith("attachment;")


def test_unfinished_raw_result_answers_a_page_or_json(app, runtime, alice, job, queued):
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    answer = app.get(f"/job/result/{tracker['id']}/raw", headers=alice.auth, status=409)
    assert answer.json["error"]["status"] == "Queued"
    sign_in(app, alice.email)
    page = app.get(f"/job/result/{tracker['id']}/raw", headers=PAGE, status=409)
    assert page.content_type == "text/html" and "Not ready" in page.text


def test_the_poller_refreshes_latest_result_when_a_run_finishes(app, runtime, alice, job, queued):
    sign_in(app, alice.email)
    assert "none yet" in latest_cell(app.get("/jobs").text, job["id"])
    tracker_id = run(app, runtime, alice, job, queued)
    answer = app.get("/runs/status.json", {"ids": str(tracker_id)}).json
    [tracker] = answer["trackers"]
    assert tracker["finished"] and tracker["status"] == "Success"
    [latest] = answer["latest"]
    assert latest["job_id"] == job["id"]
    assert f'data-latest-job="{job["id"]}"' in latest["html"]
    assert (
        f"run {tracker_id}," in latest["html"] and f"/jobs/{job['id']}/latest.csv" in latest["html"]
    )


def test_browser_line_endings_are_normalised(app, runtime, alice, job):
    body = {"query": "SELECT 1 AS a,\r\n       2 AS b\r\nFROM Artist\rLIMIT 1"}
    app.patch_json(f"/api/v1/jobs/{job['id']}", body, headers=alice.auth)
    with session_scope(runtime.session_factory) as session:
        query = session.scalars(select(Job.query).where(Job.id == job["id"])).one()
    assert "\r" not in query and query == "SELECT 1 AS a,\n       2 AS b\nFROM Artist\nLIMIT 1"


def test_xlsx_columns_fit_their_content():
    columns = [
        Column(name="id", type=ColumnType.INTEGER),
        Column(name="a rather long column title", type=ColumnType.TEXT),
        Column(name="comment", type=ColumnType.TEXT),
        Column(name="when", type=ColumnType.DATETIME),
    ]
    rows = [
        ["1", "x", "short", "2026-12-03 14:08:00"],
        ["22", "y", "w" * 40, None],
        ["3", "z", "line one\n" + "v" * 300, "2026-12-03 14:08:00"],
    ]
    sink = io.BytesIO()
    write_xlsx(sink, columns, rows)
    sheet = openpyxl.load_workbook(io.BytesIO(sink.getvalue())).active
    widths = [sheet.column_dimensions[letter].width for letter in "ABCD"]
    assert widths[0] < 10  # a short number column stays narrow
    assert widths[1] >= len("a rather long column title")  # the header fits
    assert widths[2] == MAX_WIDTH  # the longest line (300 chars) is capped
    assert widths[3] >= 19  # a datetime shows whole, never "#####"
