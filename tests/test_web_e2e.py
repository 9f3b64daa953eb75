"""End to end through a real ``dancecat serve`` process over real HTTP.

Sign in with the browser form, take an API token from the console, connect to the local
PostgreSQL Chinook, save a job, preview it, run it on the embedded worker, poll the run to
Success, and check the JSON, CSV and XLSX downloads (API and browser routes) against what
psycopg2 returns for the same query.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import re
import time

import openpyxl
import psycopg2
import pytest
import requests
from test_web_helpers import PASSWORD, dancecat, serve

QUERY = (
    "SELECT invoice_id, customer_id, invoice_date, billing_city, billing_state, total "
    "FROM invoice ORDER BY invoice_id"
)


@pytest.fixture
def live(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    dancecat(home, "init")
    dancecat(home, "add-allowed-user", "e2e@example.com")
    yield from serve(home)


def expected_rows(pg_chinook: dict) -> tuple[list[str], list[tuple]]:
    with (
        psycopg2.connect(
            host=pg_chinook["host"],
            port=pg_chinook["port"],
            user=pg_chinook["user"],
            dbname=pg_chinook["database"],
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(QUERY)
        header = [column.name for column in cursor.description]
        return header, cursor.fetchall()


def browser_sign_in(live, email: str) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{live.url}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = browser.post(
        f"{live.url}/login",
        data={
            "email": email,
            "password": PASSWORD,
            "confirm": PASSWORD,
            "csrf_token": token,
            "next": "/",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    return browser


def test_serve_end_to_end_against_postgresql_chinook(live, pg_chinook):
    header, rows = expected_rows(pg_chinook)
    assert len(rows) == 412
    browser = browser_sign_in(live, "e2e@example.com")
    token = dancecat(live.home, "token", "create", "e2e@example.com").strip()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"

    connection = api.post(
        live.api("/connections"),
        json={
            "name": "chinook",
            "driver": "postgresql",
            "host": pg_chinook["host"],
            "port": pg_chinook["port"],
            "user": pg_chinook["user"],
            "database": pg_chinook["database"],
        },
        timeout=10,
    )
    assert connection.status_code == 201, connection.text
    connection_id = connection.json()["connection"]["id"]
    check = api.post(live.api(f"/connections/{connection_id}/test"), timeout=30).json()
    assert check["ok"] is True, check

    job = api.post(
        live.api("/jobs"),
        json={"name": "invoices", "connection_id": connection_id, "query": QUERY},
        timeout=10,
    )
    assert job.status_code == 201, job.text
    job_id = job.json()["job"]["id"]

    preview = api.post(live.api(f"/jobs/{job_id}/preview"), timeout=30)
    assert preview.status_code == 200, preview.text
    preview = preview.json()
    assert preview["header"] == header and preview["truncated"] is True
    assert len(preview["rows"]) == 100
    assert preview["rows"][0][:2] == [rows[0][0], rows[0][1]]

    queued = api.post(live.api(f"/jobs/{job_id}/runs"), timeout=10)
    assert queued.status_code == 202, queued.text
    tracker_id = queued.json()["tracker"]["id"]
    deadline = time.monotonic() + 60
    while True:
        tracker = api.get(live.api(f"/trackers/{tracker_id}"), timeout=10).json()["tracker"]
        if tracker["status"] not in ("Queued", "Running"):
            break
        assert time.monotonic() < deadline, f"run still {tracker['status']} after 60 s"
        time.sleep(0.2)
    assert tracker["status"] == "Success", tracker
    assert tracker["row_count"] == 412

    # JSON: decimals keep every digit; timestamps are ISO 8601.
    as_json = api.get(live.api(f"/trackers/{tracker_id}/result.json"), timeout=30)
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_json.headers["Content-Disposition"] == (
        f"attachment; filename=Result_tid_{tracker_id}.json"
    )
    assert int(as_json.headers["Content-Length"]) == len(as_json.content)
    document = json.loads(as_json.content, parse_float=decimal.Decimal)
    assert document["header"] == header
    assert [tuple(row) for row in document["rows"]] == [
        (i, c, d.isoformat(), city, state, total) for i, c, d, city, state, total in rows
    ]

    # CSV: the canonical text (NULL is an empty field).
    as_csv = api.get(live.api(f"/jobs/{job_id}/latest/result.csv"), timeout=30)
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert as_csv.headers["Content-Disposition"].endswith(f"Result_tid_{tracker_id}.csv")
    lines = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8"))))
    assert lines[0] == header
    assert lines[1:] == [
        [str(i), str(c), d.isoformat(), city or "", state or "", str(total)]
        for i, c, d, city, state, total in rows
    ]

    # XLSX: real numbers and dates.
    as_xlsx = api.get(live.api(f"/trackers/{tracker_id}/result.xlsx"), timeout=30)
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == header
    for got, want in zip(values[1:], rows, strict=True):
        assert got[:2] == want[:2]
        assert got[2] == want[2] and isinstance(got[2], dt.datetime)
        assert (got[3], got[4]) == (want[3], want[4])
        assert decimal.Decimal(str(got[5])) == want[5]

    # The path-style result routes answer the same bytes to the signed-in session.
    raw = browser.get(f"{live.url}/job/result/{tracker_id}/raw", timeout=30)
    assert raw.content == as_json.content
    latest = browser.get(f"{live.url}/job/latest-result/{job_id}/csv", timeout=30)
    assert latest.content == as_csv.content
    xlsx = browser.get(f"{live.url}/job/latest-result/{job_id}/xlsx", timeout=30)
    assert xlsx.content == as_xlsx.content

    # Security headers on real responses.
    assert "frame-ancestors 'none'" in raw.headers["Content-Security-Policy"]
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
