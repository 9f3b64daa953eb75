"""One CSV whatever the database: the same table on PostgreSQL, MariaDB and SQLite, run
through the real runner, is stored as the same bytes (docs/RESULTS.md, "The canonical form").

Each driver has two ways to write CSV, the database's own fast path (PostgreSQL's COPY,
MySQL's raw row packets) and Python rows through ``RowFormatter``; both give the same bytes
here too, including values only one database can hold (infinity, BC dates, MySQL's zero
date and durations past 24 h, a TINYINT(1) holding 2).
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import openpyxl
import pytest
from test_drivers import my_execute, my_params, pg_execute, pg_params, sqlite_params
from test_pipeline import connection_input, download, run

from dancecat_core.columns import ColumnType
from dancecat_core.csvcodec import RowFormatter
from dancecat_core.drivers import ConnectionParams, Driver
from dancecat_core.models import TrackerStatus
from dancecat_core.services import connections, jobs
from dancecat_core.services.jobs import JobInput
from dancecat_plugins.mysql_driver import MysqlDriver
from dancecat_plugins.postgresql_driver import PostgresDriver
from dancecat_plugins.sqlite_driver import SqliteDriver

# The rows, as literals every database reads the same way. ``zoned`` is an instant in UTC.
ROWS = [
    "(1, 12.5, 0.1, 'plain', true, '2024-02-29', '12:30:00', '2024-02-29 23:59:58',"
    " '2024-02-29 23:59:58')",
    "(2, -0.0001, -2.25, 'say \"hi\", then, go', false, '1999-12-31', '23:59:58.5',"
    " '2024-03-01 00:00:00.25', '2024-03-01 00:00:00.25')",
    "(3, 0, 1.5, 'two\nlines', NULL, '0001-01-01', '00:00:00.000001',"
    " '1999-12-31 23:59:59.999999', '1970-01-01 00:00:01.5')",
    "(4, NULL, NULL, '', true, NULL, NULL, NULL, NULL)",
    "(5, 7, 3, NULL, false, '2000-01-01', '01:02:03.1', '2000-01-01 00:00:00.100',"
    " '2038-01-19 03:14:07.123')",
]
COMMON = "id, amount, ratio, label, flag, day, at, stamp"
SELECT_COMMON = f"SELECT {COMMON} FROM sample ORDER BY id"
SELECT_ZONED = f"SELECT {COMMON}, zoned FROM sample ORDER BY id"

# What every database stores for SELECT_COMMON: the documented forms, written out.
HEADER = "id,amount,ratio,label,flag,day,at,stamp"
RECORDS = [
    "1,12.5000,0.1,plain,true,2024-02-29,12:30:00,2024-02-29T23:59:58",
    '2,-0.0001,-2.25,"say ""hi"", then, go",false,1999-12-31,23:59:58.5,2024-03-01T00:00:00.25',
    '3,0.0000,1.5,"two\nlines",,0001-01-01,00:00:00.000001,1999-12-31T23:59:59.999999',
    '4,,,"",true,,,',
    "5,7.0000,3,,false,2000-01-01,01:02:03.1,2000-01-01T00:00:00.1",
]
ZONED = [
    "2024-02-29T23:59:58+00:00",
    "2024-03-01T00:00:00.25+00:00",
    "1970-01-01T00:00:01.5+00:00",
    "",
    "2038-01-19T03:14:07.123+00:00",
]
EXPECTED_COMMON = "".join(line + "\n" for line in [HEADER, *RECORDS])
EXPECTED_ZONED = f"{HEADER},zoned\n" + "".join(
    f"{line},{zoned}\n" for line, zoned in zip(RECORDS, ZONED, strict=True)
)


@pytest.fixture
def pg_sample(pg_database: dict) -> dict:
    pg_execute(
        pg_database,
        "SET TimeZone = 'UTC'",
        """CREATE TABLE sample (id integer, amount numeric(12,4), ratio double precision,
           label text, flag boolean, day date, at time(6), stamp timestamp(6),
           zoned timestamptz(6))""",
        "INSERT INTO sample VALUES " + ", ".join(ROWS),
    )
    return pg_database


@pytest.fixture
def mysql_sample(mysql_database: dict) -> dict:
    my_execute(
        mysql_database,
        "SET time_zone = '+00:00'",
        """CREATE TABLE sample (id int, amount decimal(12,4), ratio double, label text,
           flag boolean, day date, at time(6), stamp datetime(6), zoned timestamp(6) NULL)
           CHARACTER SET utf8mb4""",
        "INSERT INTO sample VALUES " + ", ".join(ROWS),
    )
    return mysql_database


@pytest.fixture
def sqlite_sample(tmp_path: Path) -> Path:
    """SQLite has no time zones: ``zoned`` is left out (text with an offset is text)."""
    path = tmp_path / "sample.sqlite"
    with sqlite3.connect(path) as db:
        # SQLite has no decimal type: the decimals are text with their scale.
        db.execute(
            "CREATE TABLE sample (id INTEGER, amount TEXT, ratio REAL, label TEXT,"
            " flag BOOLEAN, day DATE, at TIME, stamp TIMESTAMP)"
        )
        # SQLite keeps these as its storage classes: integers 0/1, text dates.
        db.execute(
            "INSERT INTO sample VALUES " + ", ".join(r.rsplit(",", 1)[0] + ")" for r in ROWS)
        )
        db.execute("UPDATE sample SET amount = printf('%.4f', amount) WHERE amount IS NOT NULL")
    db.close()
    return path


def add_job(runtime, kind: str, facts, sql: str) -> int:
    """A saved job on a new connection to ``kind``, both named after the database."""
    with runtime.session_factory() as session:
        connection = connections.create(runtime, session, None, connection_input(kind, facts))
        job = jobs.create(
            runtime, session, None, JobInput(name=kind, connection_id=connection.id, query=sql)
        )
        session.commit()
        return job.id


def stored_csv(runtime, kind: str, facts, sql: str) -> bytes:
    """Run ``sql`` as a saved job through the runner; the stored CSV, as downloaded."""
    tracker = run(runtime, add_job(runtime, kind, facts, sql))
    assert tracker.status == TrackerStatus.SUCCESS, tracker.error
    return download(runtime, tracker, "csv")


def test_same_table_same_csv_on_every_database(runtime, pg_sample, mysql_sample, sqlite_sample):
    pg = stored_csv(runtime, "postgresql", pg_sample, SELECT_COMMON)
    my = stored_csv(runtime, "mysql", mysql_sample, SELECT_COMMON)
    lite = stored_csv(runtime, "sqlite", sqlite_sample, SELECT_COMMON)
    assert pg.decode() == EXPECTED_COMMON
    assert my == pg
    assert lite == pg


def test_timestamps_with_zone_same_on_postgresql_and_mariadb(runtime, pg_sample, mysql_sample):
    """timestamptz and MariaDB's TIMESTAMP are both instants; SQLite has no such type."""
    pg = stored_csv(runtime, "postgresql", pg_sample, SELECT_ZONED)
    my = stored_csv(runtime, "mysql", mysql_sample, SELECT_ZONED)
    assert pg.decode() == EXPECTED_ZONED
    assert my == pg


def test_exports_of_the_canonical_csv_are_typed(runtime, pg_sample):
    tracker = run(runtime, add_job(runtime, "postgresql", pg_sample, SELECT_ZONED))
    document = json.loads(download(runtime, tracker, "json"))
    assert document["rows"][0][4:] == [
        True,
        "2024-02-29",
        "12:30:00",
        "2024-02-29T23:59:58",
        "2024-02-29T23:59:58+00:00",
    ]
    assert document["rows"][2][4] is None and document["rows"][1][4] is False
    book = openpyxl.load_workbook(io.BytesIO(download(runtime, tracker, "xlsx")), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert rows[1][4] is True and rows[2][4] is False
    assert rows[1][5].isoformat() == "2024-02-29T00:00:00"  # a date cell, not text
    assert rows[1][7].isoformat() == "2024-02-29T23:59:58"
    assert rows[1][8].isoformat() == "2024-02-29T23:59:58"  # the "(UTC)" column


# --- the fast path and the row path of each driver ------------------------------------------


def both_paths(driver: Driver, params: ConnectionParams, sql: str) -> tuple[bytes, bytes]:
    """(copy_csv's bytes, RowFormatter's bytes from batches()) for every column of ``sql``."""
    with driver.connect(params, timeout=10) as session:
        cursor = session.open_query(sql, timeout=10)
        fast = io.BytesIO()
        keep = list(range(len(cursor.columns)))
        assert cursor.copy_csv(keep, fast) is not None
        cursor.close()
        cursor = session.open_query(sql, timeout=10)
        formatter = RowFormatter(cursor.columns)
        rows = "".join(formatter.lines(batch) for batch in cursor.batches(2))
        cursor.close()
    return fast.getvalue(), rows.encode()


PG_ODD = """SELECT 'infinity'::timestamptz AS a, '-infinity'::timestamp AS b,
    'infinity'::date AS c, '0044-03-15 12:00:00.25 BC'::timestamptz AS d,
    '0044-03-15 BC'::date AS e, '4713-01-01 00:00:00 BC'::timestamp AS f,
    '10000-01-01 00:00:00.5'::timestamp AS g, NULL::boolean AS h, true AS i
"""


def test_postgres_copy_and_rows_agree(pg_sample):
    for sql in (SELECT_ZONED, PG_ODD):
        fast, rows = both_paths(PostgresDriver(), pg_params(pg_sample), sql)
        assert fast == rows
    assert fast == (
        b"infinity,-infinity,infinity,0044-03-15T12:00:00.25+00:00 BC,0044-03-15 BC,"
        b"4713-01-01T00:00:00 BC,10000-01-01T00:00:00.5,,true\n"
    )
    fast, _ = both_paths(PostgresDriver(), pg_params(pg_sample), SELECT_ZONED)
    assert fast.decode() == EXPECTED_ZONED.split("\n", 1)[1]


@pytest.mark.parametrize(
    ("zone", "shown"),
    [("Asia/Kolkata", "05:30:00+05:30"), ("Etc/GMT-1", "01:00:00+01:00")],
)
def test_postgres_offsets_a_query_sets_agree_on_both_paths(pg_sample, zone, shown):
    """A zone the query sets itself (set_config) is not UTC: both paths still write the
    offset as ``+HH:MM``, whole hours included."""
    sql = (
        f"SELECT set_config('TimeZone', '{zone}', true) AS z,"
        " '2024-01-01 00:00:00+00'::timestamptz AS t"
    )
    fast, rows = both_paths(PostgresDriver(), pg_params(pg_sample), sql)
    assert fast == rows
    assert fast.endswith(f",2024-01-01T{shown}\n".encode())


def test_mysql_raw_packets_and_rows_agree(mysql_sample):
    my_execute(
        mysql_sample,
        "SET sql_mode = ''",  # allows the zero date
        """CREATE TABLE odd (n int, ok tinyint(1), d datetime(3), d0 datetime, t time(6),
           t0 time, s timestamp(3) NULL, label varchar(20))""",
        """INSERT INTO odd VALUES
           (1, 2, '0000-00-00 00:00:00', '0000-00-00 00:00:00', '100:00:00.5', '-838:59:59',
            '2024-01-01 10:00:00', 'a,b'),
           (2, -1, '2024-01-01 10:00:00.120', '2024-01-01 10:00:00', '-00:00:01.000001',
            '12:00:00', NULL, ''),
           (3, 0, '1000-01-01 00:00:00', NULL, '00:00:00', NULL, '1970-01-01 00:00:01.5', NULL)""",
    )
    params = my_params(mysql_sample)
    without_zone = "SELECT n, ok, d, d0, t, t0, label FROM odd ORDER BY n"
    with_zone = "SELECT n, ok, d, d0, t, t0, s, label FROM odd ORDER BY n"
    for sql in (SELECT_COMMON, SELECT_ZONED, without_zone, with_zone):
        fast, rows = both_paths(MysqlDriver(), params, sql)
        assert fast == rows, sql
    # Values MySQL alone holds, spelled as the others would: a TINYINT(1) holding 2 keeps
    # its digits (no boolean is 2); the zero date gets its T; durations keep their hours.
    assert fast == (
        b"1,2,0000-00-00T00:00:00,0000-00-00T00:00:00,100:00:00.5,-838:59:59,"
        b'2024-01-01T10:00:00+00:00,"a,b"\n'
        b'2,-1,2024-01-01T10:00:00.12,2024-01-01T10:00:00,-00:00:01.000001,12:00:00,,""\n'
        b"3,false,1000-01-01T00:00:00,,00:00:00,,1970-01-01T00:00:01.5+00:00,\n"
    )


def test_mysql_boolean_is_tinyint_1_only(mysql_sample):
    """MySQL has no boolean type: BOOLEAN is TINYINT(1); ``TRUE`` and ``a = b`` are BIGINT."""
    with MysqlDriver().connect(my_params(mysql_sample), timeout=10) as session:
        cursor = session.open_query("SELECT flag, TRUE, 1 = 1, id FROM sample", timeout=10)
        kinds = [c.type for c in cursor.columns]
        cursor.close()
    assert kinds == [ColumnType.BOOLEAN, ColumnType.INTEGER, ColumnType.INTEGER, ColumnType.INTEGER]


def test_sqlite_declared_types_only(sqlite_sample):
    """Declared BOOLEAN/DATE/TIME/TIMESTAMP columns are typed; values of another shape in
    them, and computed values, stay what SQLite stored."""
    with sqlite3.connect(sqlite_sample) as db:
        db.execute(
            "INSERT INTO sample (id, flag, day, at, stamp) VALUES"
            " (6, 'yes', 20240101, 'noon', '2024-02-30 00:00:00')"
        )
    db.close()
    with SqliteDriver().connect(sqlite_params(sqlite_sample), timeout=10) as session:
        cursor = session.open_query(
            "SELECT flag, day, at, stamp, flag AS again, 1 = 1 AS computed FROM sample"
            " WHERE id IN (1, 6) ORDER BY id",
            timeout=10,
        )
        formatter = RowFormatter(cursor.columns)
        text = "".join(formatter.lines(batch) for batch in cursor.batches())
        cursor.close()
    assert text == (
        "true,2024-02-29,12:30:00,2024-02-29T23:59:58,true,1\n"
        # No such day, but the shape of a timestamp: spelled with T, as MySQL's zero date.
        "yes,20240101,noon,2024-02-30T00:00:00,yes,1\n"
    )


def test_mysql_connection_still_reads_after_a_fast_copy(mysql_sample):
    """The raw path leaves the protocol in step: the same session runs the next query."""
    with MysqlDriver().connect(my_params(mysql_sample), timeout=10) as session:
        cursor = session.open_query(SELECT_COMMON, timeout=10)
        sink = io.BytesIO()
        assert cursor.copy_csv(list(range(8)), sink) == 5
        cursor.close()
        cursor = session.open_query("SELECT 41 + 1", timeout=10)
        assert [list(r) for b in cursor.batches() for r in b] == [[42]]
        cursor.close()
    assert sink.getvalue().decode() == EXPECTED_COMMON.split("\n", 1)[1]


# --- floats and times with an offset: one spelling on every database and path ---------------

# (double, real) pairs every database holds, as literals each reads the same way: the real
# ones fit MariaDB's FLOAT, which sends six significant digits.
FLOATS = [
    ("0.1", "0.1"),
    ("1e15", "1e15"),  # Python: 1000000000000000.0; MariaDB: 1e15
    ("1e16", "123456"),
    ("0.00001", "0.00001"),  # MariaDB: 0.00001
    ("1.5e-7", "1.5e-7"),
    ("-2.5e-300", "-2.5"),
    ("1e300", "3.4e38"),
    ("123456789012345.6", "0.0001"),
    ("1000000000000000.1", "1e6"),  # exponent 15 with a fraction; real: float4's 1e+06
    ("-1234567890123456", "-1e-5"),
    ("3", "1.5"),
    ("NULL", "NULL"),
]
# PostgreSQL's float8 output, which is the canonical form (docs/RESULTS.md).
FLOAT_CSV = (
    "id,d,r\n"
    "1,0.1,0.1\n"
    "2,1e+15,1e+15\n"
    "3,1e+16,123456\n"
    "4,1e-05,1e-05\n"
    "5,1.5e-07,1.5e-07\n"
    "6,-2.5e-300,-2.5\n"
    "7,1e+300,3.4e+38\n"
    "8,123456789012345.6,0.0001\n"
    "9,1.0000000000000001e+15,1000000\n"
    "10,-1.234567890123456e+15,-1e-05\n"
    "11,3,1.5\n"
    "12,,\n"
)
FLOAT_VALUES = ", ".join(f"({i}, {d}, {r})" for i, (d, r) in enumerate(FLOATS, 1))
SELECT_FLOATS = "SELECT id, d, r FROM floats ORDER BY id"


def test_floats_same_on_every_database(runtime, pg_database, mysql_database, tmp_path):
    """double precision / DOUBLE / REAL and real / FLOAT, stored through the runner."""
    pg_execute(
        pg_database,
        "CREATE TABLE floats (id integer, d double precision, r real)",
        f"INSERT INTO floats VALUES {FLOAT_VALUES}",
    )
    my_execute(
        mysql_database,
        "CREATE TABLE floats (id int, d double, r float)",
        f"INSERT INTO floats VALUES {FLOAT_VALUES}",
    )
    path = tmp_path / "floats.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE floats (id INTEGER, d REAL, r REAL)")
        db.execute(f"INSERT INTO floats VALUES {FLOAT_VALUES}")
    db.close()
    pg = stored_csv(runtime, "postgresql", pg_database, SELECT_FLOATS)
    my = stored_csv(runtime, "mysql", mysql_database, SELECT_FLOATS)
    lite = stored_csv(runtime, "sqlite", path, SELECT_FLOATS)
    assert pg.decode() == FLOAT_CSV
    assert my == pg
    assert lite == pg
    # The fast paths (COPY, MariaDB's row packets) and the row paths agree row by row.
    body = FLOAT_CSV.split("\n", 1)[1].encode()
    for fast, rows in (
        both_paths(PostgresDriver(), pg_params(pg_database), SELECT_FLOATS),
        both_paths(MysqlDriver(), my_params(mysql_database), SELECT_FLOATS),
    ):
        assert fast == rows == body


def test_mysql_floats_that_change_length_between_ordinary_rows(mysql_database):
    """A float the server spells otherwise (``1e15``, ``0.00001``) takes the per-field path
    for its row alone; the rows around it stay on the marking path, in order."""
    my_execute(
        mysql_database,
        "CREATE TABLE mixed (id int, d double, label varchar(20), ok boolean)",
        "INSERT INTO mixed SELECT seq, CASE WHEN seq % 97 = 0 THEN 1e15 * seq"
        " WHEN seq % 89 = 0 THEN 1e-5 / seq ELSE seq / 7e0 END,"
        " CASE WHEN seq % 5 = 0 THEN 'a,b' ELSE '' END, seq % 2 FROM seq_1_to_20000",
    )
    sql = "SELECT id, d, label, ok FROM mixed ORDER BY id"
    fast, rows = both_paths(MysqlDriver(), my_params(mysql_database), sql)
    assert fast == rows
    lines = fast.decode().splitlines()
    assert len(lines) == 20000
    assert lines[96] == '97,9.7e+16,"",true' and lines[88] == '89,1.1235955056179776e-07,"",true'
    assert lines[4] == '5,0.7142857142857143,"a,b",true'


def test_postgres_float_values_only_it_holds(pg_database, tmp_path):
    """Negative zero, infinities and NaN, in double precision and real, on both paths; and
    a real whose float4 text is an exponent (``1.234567e+06``). SQLite keeps infinities
    (no NaN, no negative zero); MariaDB has none of them."""
    sql = (
        "SELECT '-0'::float8 AS a, 'Infinity'::float8 AS b, '-Infinity'::float8 AS c,"
        " 'NaN'::float8 AS d, '-0'::real AS e, 'Infinity'::real AS f, 'NaN'::real AS g,"
        " 1234567::real AS h, 0.1::real AS i"
    )
    fast, rows = both_paths(PostgresDriver(), pg_params(pg_database), sql)
    assert fast == rows == b"-0,Infinity,-Infinity,NaN,-0,Infinity,NaN,1234567,0.1\n"
    path = tmp_path / "inf.sqlite"
    sqlite3.connect(path).close()
    with SqliteDriver().connect(sqlite_params(path), timeout=10) as session:
        cursor = session.open_query("SELECT 9e999 AS b, -9e999 AS c", timeout=10)
        formatter = RowFormatter(cursor.columns)
        assert "".join(formatter.lines(b) for b in cursor.batches()) == "Infinity,-Infinity\n"
        cursor.close()


# timetz values and their canonical text: the offset always as +HH:MM, seconds when it has
# them, the fraction trimmed as elsewhere.
TIMETZ = [
    ("12:00:00+02", "12:00:00+02:00"),
    ("12:30:00.5+05:30", "12:30:00.5+05:30"),
    ("23:59:59-03:30:15", "23:59:59-03:30:15"),
    ("00:00:00+00", "00:00:00+00:00"),
    ("01:02:03.000100-11", "01:02:03.0001-11:00"),
    ("13:14:15.25-00:00:30", "13:14:15.25-00:00:30"),
]


def test_times_with_an_offset_same_on_postgresql_and_sqlite(runtime, pg_database, tmp_path):
    """PostgreSQL's timetz writes a whole-hour offset as ``+02``; the canonical text is
    ``+02:00``, on COPY and the row path, and for a SQLite column declared TIME."""
    values = ", ".join(f"({i}, '{text}')" for i, (text, _) in enumerate(TIMETZ, 1))
    pg_execute(
        pg_database,
        "CREATE TABLE zoned_times (id integer, t timetz(6))",
        f"INSERT INTO zoned_times VALUES {values}, (7, NULL)",
    )
    path = tmp_path / "times.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE zoned_times (id INTEGER, t TIME)")
        db.execute(f"INSERT INTO zoned_times VALUES {values}, (7, NULL)")
    db.close()
    sql = "SELECT id, t FROM zoned_times ORDER BY id"
    expected = "id,t\n" + "".join(f"{i},{text}\n" for i, (_, text) in enumerate(TIMETZ, 1)) + "7,\n"
    pg = stored_csv(runtime, "postgresql", pg_database, sql)
    lite = stored_csv(runtime, "sqlite", path, sql)
    assert pg.decode() == expected
    assert lite == pg
    fast, rows = both_paths(PostgresDriver(), pg_params(pg_database), sql)
    assert fast == rows == expected.split("\n", 1)[1].encode()
