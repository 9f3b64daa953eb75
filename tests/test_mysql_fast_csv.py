"""The MySQL raw-packet CSV path (``dancecat_plugins.mysql_fast_csv``) and its fallback.

The fast path reads PyMySQL's private connection state; it is checked at import, and when
it is off the plain row path (``batches()`` and ``RowFormatter``) writes the result. Both
must store the same bytes, on a real MariaDB table of awkward values.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import pymysql.connections
import pymysql.protocol
import pytest
from test_canonical_csv import add_job
from test_drivers import my_execute, my_params
from test_pipeline import download, run

from dancecat_core.models import TrackerStatus
from dancecat_plugins import mysql_fast_csv
from dancecat_plugins.mysql_driver import MysqlDriver

AWKWARD = [
    "(1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(2, 'say \"hi\", then, go', 'two\\nlines\\r\\nand a CR', 'Grüße, 東京 🐈', -12.3400,"
    " 0.1, '2024-02-29', '2024-02-29 23:59:58.250', '1970-01-01 00:00:01.5', X'00ff0a2c22')",
    "(3, '', ',', '\"', 0.0000, 1e15, '0001-01-01', '1000-01-01 00:00:00', NULL, X'')",
    "(4, 'plain', 'x', 'ü', 99999999.9999, 0.00001, '9999-12-31', '9999-12-31 23:59:59.999999',"
    " '2038-01-19 03:14:07.999', X'e282ac')",
    "(5, 'tab\\there', 'back\\\\slash', 'x\\0y', 7, -2.5e-300, NULL, NULL, NULL, NULL)",
]
CREATE = """CREATE TABLE awkward (id int, a varchar(40), b text, c varchar(40),
    amount decimal(12,4), ratio double, day date, stamp datetime(6), zoned timestamp(3) NULL,
    raw varbinary(10)) CHARACTER SET utf8mb4"""
# Without the binary and TIMESTAMP columns the result takes the marking path; with them the
# per-field path: both are compared with the row path.
MARKED = "SELECT id, a, b, c, amount, ratio, day, stamp FROM awkward ORDER BY id"
EVERY_COLUMN = "SELECT * FROM awkward ORDER BY id"


@pytest.fixture
def awkward(mysql_database: dict) -> dict:
    my_execute(
        mysql_database,
        "SET time_zone = '+00:00'",
        CREATE,
        "INSERT INTO awkward VALUES " + ", ".join(AWKWARD),
    )
    return mysql_database


def fast_copy_count(server: dict, sql: str) -> int | None:
    """What the driver's copy_csv answers for ``sql``: rows, or None for "use batches()"."""
    with MysqlDriver().connect(my_params(server), timeout=10) as session:
        cursor = session.open_query(sql, timeout=10)
        count = cursor.copy_csv(list(range(len(cursor.columns))), io.BytesIO())
        cursor.close()
    return count


@pytest.mark.parametrize("sql", [MARKED, EVERY_COLUMN], ids=["marked", "per-field"])
def test_forced_fallback_stores_the_same_bytes(runtime, awkward, monkeypatch, sql):
    job = add_job(runtime, "mysql", awkward, sql)
    assert fast_copy_count(awkward, sql) == 5  # the fast path is on and used
    fast = run(runtime, job)
    assert fast.status == TrackerStatus.SUCCESS, fast.error

    monkeypatch.setattr(mysql_fast_csv, "disabled", "switched off by the test")
    assert fast_copy_count(awkward, sql) is None  # the pipeline formats batches() instead
    rows = run(runtime, job)
    assert rows.status == TrackerStatus.SUCCESS, rows.error

    stored = download(runtime, fast, "csv")
    assert stored == download(runtime, rows, "csv")
    text = stored.decode()
    assert text.startswith("id,a,b,c,amount,ratio,day,stamp")
    assert (
        '\n2,"say ""hi"", then, go","two\nlines\r\nand a CR","Grüße, 東京 🐈",-12.3400,0.1,' in text
    )
    assert '\n3,"",",","""",0.0000,1e+15,0001-01-01,1000-01-01T00:00:00' in text
    assert "\n4,plain,x,ü,99999999.9999,1e-05,9999-12-31,9999-12-31T23:59:59.999999" in text
    if sql == EVERY_COLUMN:
        assert "2024-02-29T23:59:58.25,1970-01-01T00:00:01.5+00:00,\\x00ff0a2c22\n" in text
        assert text.endswith("\n5,tab\there,back\\slash,x\x00y,7.0000,-2.5e-300,,,,\n")


def test_installed_pymysql_passes_the_import_check():
    assert mysql_fast_csv.check_internals() is None
    assert mysql_fast_csv.disabled is None


def _changed_reader(self, packet_type=None, extra=None):  # another PyMySQL's signature
    raise AssertionError("never called")


def _reader_without_sequence(self, packet_type=pymysql.protocol.MysqlPacket):
    return self._rfile, self._sock  # no _next_seq_id, no _result, no timeouts


@pytest.mark.parametrize(
    ("cls", "name", "replacement", "reason"),
    [
        (pymysql.connections.Connection, "_force_close", None, "has no Connection._force_close"),
        (
            pymysql.connections.MySQLResult,
            "_check_packet_is_eof",
            lambda self: None,
            "changed MySQLResult._check_packet_is_eof",
        ),
        (
            pymysql.connections.Connection,
            "_read_packet",
            _reader_without_sequence,
            "packet reader no longer uses _read_timeout, _current_timeout, _next_seq_id, "
            "_result, encoding",
        ),
        (pymysql.protocol.MysqlPacket, "raise_for_error", 42, "has no MysqlPacket.raise_for_error"),
    ],
)
def test_a_missing_or_changed_internal_disables_the_fast_path(
    monkeypatch, cls, name, replacement, reason
):
    """Another PyMySQL, as far as the check can tell: the reason names what moved."""
    if replacement is None:
        monkeypatch.delattr(cls, name)
    else:
        monkeypatch.setattr(cls, name, replacement)
    found = mysql_fast_csv.check_internals()
    assert found is not None and reason in found
    assert found.startswith(f"PyMySQL {pymysql.__version__}")


def test_the_reason_is_logged_once(awkward, monkeypatch, caplog):
    monkeypatch.setattr(mysql_fast_csv, "disabled", "PyMySQL 9 changed Connection._read_packet")
    monkeypatch.setattr(mysql_fast_csv, "_said", set())
    with caplog.at_level(logging.WARNING, logger=mysql_fast_csv.__name__):
        assert fast_copy_count(awkward, MARKED) is None
        assert fast_copy_count(awkward, MARKED) is None
    said = [r.getMessage() for r in caplog.records if r.name == mysql_fast_csv.__name__]
    assert said == [
        "MySQL fast CSV path off (PyMySQL 9 changed Connection._read_packet):"
        " rows go through the row path"
    ]


@pytest.mark.parametrize(("value", "off"), [("off", True), ("0", True), ("on", False)])
def test_the_environment_switch(value, off):
    """``DANCECAT_MYSQL_FAST_CSV=off`` (the bench's row-path case) is read at import."""
    env = {**os.environ, mysql_fast_csv.SWITCH: value}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dancecat_plugins import mysql_fast_csv as m; print(m.disabled)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == (f"DANCECAT_MYSQL_FAST_CSV={value}" if off else "None")
