"""300,000 JSON login events through a real run to CSV, JSON and XLSX: no password left.

The block-boundary leak showed at this size: with the value masker's blocks of 1 MiB, a
few of 300,000 events had their ``"password": "`` prefix end one block and the value start
the next. Each event below carries a secret in one of the shapes login logs hold, all
starting with a marker that must not appear in any output.
"""

from __future__ import annotations

import io
import zipfile

import psycopg2
import pymysql
import pytest
from test_pipeline import add_job, connection_input, download, run

from dancecat_core.models import TrackerStatus
from dancecat_core.resultstore import ResultMeta

ROWS = 300_000
MARK = b"Zq9"

# One event per row; ``s`` is the row's secret (marker + 32 hex digits).
SHAPES = [
    ("login", "password", "'\"password\": \"' || s || '\"'"),
    ("login", "userPassword", "'\"userPassword\": \"' || s || '\"'"),
    ("login", "url", "'\"dsn\": \"postgresql://u' || i || ':' || s || '@db/app\"'"),
    ("token", "accessToken", "'\"accessToken\": \"' || s || '\"'"),
    ("login", "conn", "'\"conn\": \"host=db password=' || s || ' dbname=app\"'"),
    ("login", "client_secret", "'\"client_secret\":\"' || s || '\"'"),
]


def _events_sql(concat: str) -> str:
    """The event text for row ``i`` with secret ``s``, in the server's concatenation."""
    cases = " ".join(
        f"WHEN {k} THEN {concat.format(body=body)}" for k, (_, _, body) in enumerate(SHAPES)
    )
    return f"CASE i % {len(SHAPES)} {cases} END"


def _load_postgresql(facts: dict) -> None:
    events = _events_sql('\'{{"event": "login", "user": "u\' || i || \'", \' || {body} || \'}}\'')
    conn = psycopg2.connect(
        host=facts["host"], port=facts["port"], user=facts["user"], dbname=facts["database"]
    )
    with conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE events (id int, at timestamp, payload jsonb)")
        cursor.execute(
            "INSERT INTO events SELECT i, timestamp '2024-01-01' + i * interval '1 second', "
            f"({events})::jsonb FROM (SELECT i, 'Zq9' || md5(i::text) AS s "
            f"FROM generate_series(1, {ROWS}) AS i) AS g"
        )
    conn.close()


def _load_mysql(facts: dict) -> None:
    body = _events_sql('concat(\'{{"event": "login", "user": "u\', i, \'", \', {body}, \'}}\')')
    body = body.replace(" || ", ", ")
    conn = pymysql.connect(
        host=facts["host"], port=facts["port"], user=facts["user"], database=facts["database"],
        autocommit=True,
    )  # fmt: skip
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE events (id int, at datetime, payload json)")
        cursor.execute(
            "INSERT INTO events SELECT i, '2024-01-01' + INTERVAL i SECOND, "
            f"{body} FROM (SELECT seq AS i, concat('Zq9', md5(seq)) AS s "
            f"FROM seq_1_to_{ROWS}) AS g"
        )
    conn.close()


def _xlsx_bytes(body: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(body)) as book:
        return b"".join(book.read(name) for name in book.namelist())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_no_password_of_300000_login_events_leaves_in_any_format(runtime, kind, request):
    facts = request.getfixturevalue("pg_database" if kind == "postgresql" else "mysql_database")
    (_load_postgresql if kind == "postgresql" else _load_mysql)(facts)
    job_id = add_job(
        runtime, connection_input(kind, facts), "SELECT id, at, payload FROM events ORDER BY id"
    )
    tracker = run(runtime, job_id)
    assert tracker.status == TrackerStatus.SUCCESS, tracker.error
    assert tracker.row_count == ROWS
    masked = ResultMeta.from_dict(tracker.result_meta).masked
    assert sum(masked.values()) == ROWS, masked
    outputs = {fmt: download(runtime, tracker, fmt) for fmt in ("csv", "json")}
    outputs["xlsx"] = _xlsx_bytes(download(runtime, tracker, "xlsx"))
    for fmt, body in outputs.items():
        assert body.count(MARK) == 0, f"{body.count(MARK)} secrets in clear in the {fmt}"
        assert body.count(b"[masked]") == ROWS, fmt
    csv_lines = outputs["csv"].count(b"\n")
    assert csv_lines >= ROWS + 1  # header and every event, none swallowed by a mask
