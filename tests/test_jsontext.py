"""Decimals are exact JSON numbers in every answer: ``jsontext`` on its own, and a preview
and the JSON download of the same PostgreSQL numbers, which must say them the same way."""

from __future__ import annotations

import decimal
import json

import pytest
from test_web_helpers import make_app, make_user

from dancecat_core import jsontext
from dancecat_core.runner import execute_tracker

D = decimal.Decimal


def test_decimals_keep_every_digit_and_nothing_else_is_touched():
    value = {"price": D("9.50"), "big": [D("12345678901234567890.000000000001"), D("-0.0")]}
    text = jsontext.dumps(value)
    assert text == '{"price": 9.50, "big": [12345678901234567890.000000000001, -0.0]}'
    assert json.loads(text, parse_float=D) == value
    assert jsontext.dumps({"nan": D("NaN"), "inf": D("-Infinity")}) == '{"nan": null, "inf": null}'
    assert jsontext.dumps(D("1E+3")) == "1000"
    # Text shaped like a marker stays text: the marker is random per call.
    assert json.loads(jsontext.dumps(["0" * 24 + "0", D("1.5")])) == ["0" * 25, 1.5]
    with pytest.raises(ValueError):
        jsontext.dumps(float("nan"))
    assert jsontext.finite(float("inf")) is None and jsontext.finite(2.5) == 2.5


QUERY = (
    "SELECT 9.50::numeric(6,2) AS price, 0.000000000000000000001::numeric AS tiny,"
    " 12345678901234567890.12345::numeric AS big, 'NaN'::numeric AS nothing,"
    " 1.5::float8 AS ratio"
)


def test_a_preview_and_the_json_download_write_decimals_alike(runtime, pg_database):
    app = make_app(runtime)
    alice = make_user(runtime, "alice@example.com")
    connection = app.post_json(
        "/api/v1/connections",
        {
            "name": "pg",
            "driver": "postgresql",
            "host": pg_database["host"],
            "port": pg_database["port"],
            "user": pg_database["user"],
            "database": pg_database["database"],
        },
        headers=alice.auth,
    ).json["connection"]
    job = app.post_json(
        "/api/v1/jobs",
        {"name": "numbers", "connection_id": connection["id"], "query": QUERY},
        headers=alice.auth,
    ).json["job"]
    preview = app.post(f"/api/v1/jobs/{job['id']}/preview", headers=alice.auth)
    row = json.loads(preview.body, parse_float=D)["rows"][0]
    assert row == [D("9.50"), D("1E-21"), D("12345678901234567890.12345"), None, D("1.5")]
    assert "9.50, 0.000000000000000000001, 12345678901234567890.12345, null" in preview.text
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    execute_tracker(runtime, tracker["id"])
    download = app.get(f"/api/v1/trackers/{tracker['id']}/result.json", headers=alice.auth)
    assert json.loads(download.body, parse_float=D)["rows"][0] == row
