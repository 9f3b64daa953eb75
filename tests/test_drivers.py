"""The three built-in drivers against the real databases (see conftest for the services).

Each driver is used directly, as the run pipeline uses it: connect, open_query, columns,
then rows through batches() or copy_csv(), read back through the canonical CSV codec.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import re
import sqlite3
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg2
import pymysql
import pytest
from private_services import PrivatePostgres

from dancecat_core.columns import Column, ColumnType
from dancecat_core.csvcodec import RowFormatter, header_line, read_typed_rows
from dancecat_core.drivers import ConnectionParams, DriverSession, QueryCursor
from dancecat_core.errors import ConnectionFailed, QueryError, QueryTimeout, ReadOnlyViolation
from dancecat_core.local_files import LocalFileRules
from dancecat_plugins import mysql_driver, mysql_fast_csv, postgresql_driver, sqlite_driver
from dancecat_plugins.mysql_driver import MysqlDriver
from dancecat_plugins.postgresql_driver import PostgresDriver
from dancecat_plugins.sqlite_driver import SqliteDriver

UTC = dt.UTC
CONNECT_TIMEOUT = 5


# --- helpers -----------------------------------------------------------------------------


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def pg_params(server: dict, **changes: Any) -> ConnectionParams:
    facts = {"host": server["host"], "port": server["port"], "user": server["user"]}
    facts["database"] = server.get("database", "postgres")
    return ConnectionParams(driver="postgresql", **(facts | changes))


def my_params(server: dict, **changes: Any) -> ConnectionParams:
    facts = {"host": server["host"], "port": server["port"], "user": server["user"]}
    facts["database"] = server.get("database", "mysql")
    return ConnectionParams(driver="mysql", **(facts | changes))


def sqlite_params(path: Path, **changes: Any) -> ConnectionParams:
    """Params for a SQLite file, allowed to open files in the file's own folder."""
    files = LocalFileRules(
        allowed_dirs=(path.parent.resolve(),), protected_dirs=(), protected_files=()
    )
    return ConnectionParams(driver="sqlite", **({"database": str(path), "files": files} | changes))


def pg_execute(server: dict, *statements: str) -> None:
    """Set up test data over a plain psycopg2 connection (not the driver under test)."""
    with (
        psycopg2.connect(
            host=server["host"], port=server["port"], user=server["user"], dbname=server["database"]
        ) as connection,
        connection.cursor() as cursor,
    ):
        for statement in statements:
            cursor.execute(statement)
    connection.close()


def pg_scalar(server: dict, sql: str) -> Any:
    connection = psycopg2.connect(
        host=server["host"], port=server["port"], user=server["user"], dbname=server["database"]
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    finally:
        connection.close()


def my_connect(server: dict, database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(
        host=server["host"],
        port=server["port"],
        user=server["user"],
        database=database if database is not None else server.get("database"),
        charset="utf8mb4",
        autocommit=True,
    )


def my_execute(server: dict, *statements: str, database: str | None = None) -> None:
    connection = my_connect(server, database)
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def my_scalar(server: dict, sql: str) -> Any:
    connection = my_connect(server)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    finally:
        connection.close()


def read_all(cursor: QueryCursor, size: int = 1000) -> list[list[Any]]:
    return [list(row) for batch in cursor.batches(size) for row in batch]


def through_batches(cursor: QueryCursor) -> tuple[list[Column], list[list[Any]]]:
    """What the pipeline does without a native CSV path: format, then read the CSV back."""
    formatter = RowFormatter(cursor.columns)
    raw = io.BytesIO()
    raw.write(header_line([c.name for c in cursor.columns]))
    for batch in cursor.batches(2):
        raw.write(formatter.lines(batch).encode())
    columns = formatter.resolved_columns()
    raw.seek(0)
    return columns, list(read_typed_rows(raw, columns))


def through_copy(cursor: QueryCursor) -> tuple[int | None, bytes, list[list[Any]]]:
    raw = io.BytesIO()
    keep = list(range(len(cursor.columns)))
    count = cursor.copy_csv(keep, raw)
    data = raw.getvalue()
    csv = io.BytesIO(header_line([c.name for c in cursor.columns]) + data)
    return count, data, list(read_typed_rows(csv, cursor.columns))


def run(session: DriverSession, sql: str, timeout: float = 30, **kw: Any) -> list[list[Any]]:
    cursor = session.open_query(sql, timeout=timeout, **kw)
    try:
        return read_all(cursor)
    finally:
        cursor.close()


class CountingSink:
    """A sink that keeps nothing, so memory measurements see only the driver."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        self.lines += data.count(b"\n")
        return len(data)


def _rss_peak_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))


def memory_growth(work: Callable[[], Any]) -> tuple[int, int]:
    """(Python allocation peak, resident set peak growth) in bytes while ``work`` runs."""
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set size
    before = _rss_peak_kib()
    tracemalloc.start()
    try:
        work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, (_rss_peak_kib() - before) * 1024


def assert_fast_error(
    kind: type[Exception], action: Callable[[], Any], within: float, match: str | None = None
) -> Exception:
    started = time.monotonic()
    with pytest.raises(kind, match=match) as caught:
        action()
    assert time.monotonic() - started < within
    return caught.value


# --- sessions ----------------------------------------------------------------------------


@pytest.fixture
def pg(pg_chinook: dict) -> Iterator[DriverSession]:
    with PostgresDriver().connect(pg_params(pg_chinook), timeout=CONNECT_TIMEOUT) as session:
        yield session


@pytest.fixture
def my(mysql_chinook: dict) -> Iterator[DriverSession]:
    with MysqlDriver().connect(my_params(mysql_chinook), timeout=CONNECT_TIMEOUT) as session:
        yield session


@pytest.fixture
def lite(sqlite_chinook: Path) -> Iterator[DriverSession]:
    with SqliteDriver().connect(sqlite_params(sqlite_chinook), timeout=CONNECT_TIMEOUT) as session:
        yield session


def test_each_module_registers_its_driver() -> None:
    assert sqlite_driver.dancecat_register_drivers() == [SqliteDriver]
    assert postgresql_driver.dancecat_register_drivers() == [PostgresDriver]
    assert mysql_driver.dancecat_register_drivers() == [MysqlDriver]
    assert {SqliteDriver.name, PostgresDriver.name, MysqlDriver.name} == {
        "sqlite",
        "postgresql",
        "mysql",
    }


# --- Chinook -----------------------------------------------------------------------------

TRACK_TYPES = [
    ColumnType.INTEGER,
    ColumnType.TEXT,
    ColumnType.INTEGER,
    ColumnType.INTEGER,
    ColumnType.INTEGER,
    ColumnType.TEXT,
    ColumnType.INTEGER,
    ColumnType.INTEGER,
    ColumnType.DECIMAL,
]


def test_postgres_chinook_tracks(pg: DriverSession) -> None:
    cursor = pg.open_query("SELECT * FROM track ORDER BY track_id;", timeout=30)
    assert [c.name for c in cursor.columns][:3] == ["track_id", "name", "album_id"]
    assert [c.type for c in cursor.columns] == TRACK_TYPES
    assert cursor.columns[8].db_type == "numeric(10,2)"
    assert cursor.columns[1].source == "track.name"
    rows = read_all(cursor)
    cursor.close()
    assert len(rows) == 3503
    assert rows[0][:2] == [1, "For Those About To Rock (We Salute You)"]
    assert rows[0][8] == decimal.Decimal("0.99")

    cursor = pg.open_query("SELECT * FROM track ORDER BY track_id", timeout=30)
    count, _, typed = through_copy(cursor)
    cursor.close()
    assert count == 3503
    assert typed == rows


def test_mysql_chinook_tracks(my: DriverSession) -> None:
    cursor = my.open_query("SELECT * FROM Track ORDER BY TrackId ;\n", timeout=30)
    assert [c.name for c in cursor.columns][:3] == ["TrackId", "Name", "AlbumId"]
    assert [c.type for c in cursor.columns] == TRACK_TYPES
    assert cursor.columns[1].source == "Track.Name"
    rows = read_all(cursor)
    cursor.close()
    assert len(rows) == 3503
    assert rows[0][:2] == [1, "For Those About To Rock (We Salute You)"]
    assert rows[0][8] == decimal.Decimal("0.99")


def test_sqlite_chinook_tracks(lite: DriverSession) -> None:
    cursor = lite.open_query("SELECT * FROM Track ORDER BY TrackId;", timeout=30)
    assert [c.name for c in cursor.columns][:3] == ["TrackId", "Name", "AlbumId"]
    assert all(c.type is None for c in cursor.columns)  # SQLite: inferred from the values
    columns, rows = through_batches(cursor)
    cursor.close()
    assert len(rows) == 3503
    assert rows[0][:2] == [1, "For Those About To Rock (We Salute You)"]
    assert columns[0].type == ColumnType.INTEGER
    assert columns[8].type == ColumnType.FLOAT  # SQLite stores NUMERIC(10,2) as REAL


@pytest.mark.parametrize("session_name", ["pg", "my", "lite"])
def test_zero_rows_still_have_columns(session_name: str, request: pytest.FixtureRequest) -> None:
    session = request.getfixturevalue(session_name)
    table = "track" if session_name == "pg" else "Track"
    cursor = session.open_query(f"SELECT * FROM {table} WHERE 1 = 0", timeout=10)
    assert len(cursor.columns) == 9
    assert read_all(cursor) == []
    cursor.close()
    cursor = session.open_query(f"SELECT * FROM {table} WHERE 1 = 0", timeout=10)
    sink = io.BytesIO()
    count = cursor.copy_csv(list(range(9)), sink)
    cursor.close()
    assert count in (0, None)
    assert sink.getvalue() == b""


@pytest.mark.parametrize("session_name", ["pg", "my", "lite"])
def test_limit_stops_early_and_the_session_stays_usable(
    session_name: str, request: pytest.FixtureRequest
) -> None:
    session = request.getfixturevalue(session_name)
    table = "track" if session_name == "pg" else "Track"
    cursor = session.open_query(f"SELECT * FROM {table}", timeout=10, limit=7)
    assert len(read_all(cursor, size=5)) == 7
    cursor.close()
    session.ping()
    if session_name == "pg":
        cursor = session.open_query("SELECT * FROM track", timeout=10, limit=7)
        assert cursor.copy_csv([0], CountingSink()) == 7
        cursor.close()


@pytest.mark.parametrize("session_name", ["pg", "my", "lite"])
def test_bad_sql_is_a_query_error_with_the_database_message(
    session_name: str, request: pytest.FixtureRequest
) -> None:
    session = request.getfixturevalue(session_name)
    with pytest.raises(QueryError) as caught:
        session.open_query("SELEC 1", timeout=10)
    if session_name == "my":
        # MariaDB's read-only rule is the lexer's: text not starting with a query word is
        # refused before the server could call it a syntax error, and named.
        assert str(caught.value).endswith("may run, not SELEC")
    else:
        assert not isinstance(caught.value, ReadOnlyViolation)
        assert "syntax" in str(caught.value)
    with pytest.raises(QueryError, match=r"no_such_table|no such table"):
        run(session, "SELECT * FROM no_such_table")
    session.ping()  # an error leaves the session usable


def test_postgres_trailing_semicolons_and_comments(pg: DriverSession) -> None:
    assert run(pg, "SELECT 1 AS x -- the answer") == [[1]]
    assert run(pg, "SELECT 2 AS x ;; \n ") == [[2]]
    assert run(pg, "SELECT 3 AS x, 4 AS x") == [[3, 4]]  # duplicate names are fine
    cursor = pg.open_query("SELECT 3 AS x, 4 AS x", timeout=5)
    sink = io.BytesIO()
    assert cursor.copy_csv([1], sink) == 1
    cursor.close()
    assert sink.getvalue() == b"4\n"


def test_postgres_copy_writes_the_canonical_dialect(pg: DriverSession) -> None:
    cursor = pg.open_query(
        "SELECT 1 AS a, '' AS b, NULL::text AS c, 'x,\"y\"' AS d, true AS e, "
        "E'two\\nlines' AS f, '\\x00ff'::bytea AS g, 0.1::float8 AS h, "
        "'2024-01-02 03:04:05.5+02'::timestamptz AS i",
        timeout=5,
    )
    sink = io.BytesIO()
    assert cursor.copy_csv(range(9), sink) == 1  # type: ignore[arg-type]
    cursor.close()
    assert sink.getvalue() == (
        b'1,"",,"x,""y""",true,"two\nlines",\\x00ff,0.1,2024-01-02T01:04:05.5+00:00\n'
    )


# --- every type, both paths ----------------------------------------------------------------

TEXT_VALUE = 'héllo, "wörld"\nsecond line; 日本語 ✓'


@pytest.fixture
def pg_types(pg_database: dict) -> dict:
    pg_execute(
        pg_database,
        """
        CREATE TABLE every_type (
            i int, b bigint, n numeric(20,6), f float8, r real, ok boolean, d date, t time,
            ts timestamp, tz timestamptz, raw bytea, j json, jb jsonb, txt text, iv interval
        )
        """,
        """
        INSERT INTO every_type VALUES
        (-42, 9007199254740993, 12345.678901, 0.1, 1.5, true, '2024-02-29', '23:59:58.123456',
         '2024-02-29 23:59:58.5', '2024-03-01 01:02:03.25+02', '\\x00ff2c22', '{"a": [1, "é"]}',
         '{"b": null}', $t$héllo, "wörld"
second line; 日本語 ✓$t$, '1 day 02:00:00'),
        (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (0, 0, 0, 'Infinity', 0, false, '1970-01-01', '00:00', '1970-01-01', '1970-01-01 00:00Z',
         '', '[]', '{}', '', '0')
        """,
    )
    return pg_database


PG_EXPECTED = [
    [
        -42,
        9007199254740993,
        decimal.Decimal("12345.678901"),
        0.1,
        1.5,
        True,
        dt.date(2024, 2, 29),
        dt.time(23, 59, 58, 123456),
        dt.datetime(2024, 2, 29, 23, 59, 58, 500000),
        dt.datetime(2024, 2, 29, 23, 2, 3, 250000, tzinfo=UTC),
        b'\x00\xff,"',
        {"a": [1, "é"]},
        {"b": None},
        TEXT_VALUE,
        "1 day 02:00:00",
    ],
    [None] * 15,
    [
        0,
        0,
        decimal.Decimal("0.000000"),
        float("inf"),
        0.0,
        False,
        dt.date(1970, 1, 1),
        dt.time(0, 0),
        dt.datetime(1970, 1, 1),
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        b"",
        [],
        {},
        "",
        "00:00:00",
    ],
]


def test_postgres_every_type_round_trips(pg_types: dict) -> None:
    sql = "SELECT * FROM every_type ORDER BY i DESC NULLS FIRST"
    expected = [PG_EXPECTED[1], PG_EXPECTED[2], PG_EXPECTED[0]]
    with PostgresDriver().connect(pg_params(pg_types), timeout=CONNECT_TIMEOUT) as session:
        cursor = session.open_query(sql, timeout=10)
        assert [c.type for c in cursor.columns] == [
            ColumnType.INTEGER,
            ColumnType.INTEGER,
            ColumnType.DECIMAL,
            ColumnType.FLOAT,
            ColumnType.FLOAT,
            ColumnType.BOOLEAN,
            ColumnType.DATE,
            ColumnType.TIME,
            ColumnType.DATETIME,
            ColumnType.DATETIMETZ,
            ColumnType.BYTES,
            ColumnType.JSON,
            ColumnType.JSON,
            ColumnType.TEXT,
            ColumnType.TEXT,
        ]
        columns, via_batches = through_batches(cursor)
        cursor.close()
        assert columns == cursor.columns
        assert via_batches == expected

        cursor = session.open_query(sql, timeout=10)
        count, data, via_copy = through_copy(cursor)
        cursor.close()
        assert count == 3
        assert via_copy == expected
        assert b',"",' in data and b",," in data  # '' and NULL stay apart


@pytest.fixture
def mysql_types(mysql_database: dict) -> dict:
    my_execute(
        mysql_database,
        """
        CREATE TABLE every_type (
            i int, b bigint, n decimal(20,6), f double, r float, ok tinyint(1), d date,
            t time(6), ts datetime(6), stamp timestamp(6) NULL, raw blob, vb varbinary(10),
            j json, txt text, e enum('x', 'y')
        ) CHARACTER SET utf8mb4
        """,
    )
    connection = my_connect(mysql_database)
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
        cursor.executemany(
            "INSERT INTO every_type VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [
                (
                    -42,
                    9007199254740993,
                    decimal.Decimal("12345.678901"),
                    0.1,
                    1.5,
                    True,
                    dt.date(2024, 2, 29),
                    dt.time(23, 59, 58, 123456),
                    dt.datetime(2024, 2, 29, 23, 59, 58, 500000),
                    dt.datetime(2024, 3, 1, 1, 2, 3, 250000),
                    b'\x00\xff,"',
                    b"\x01\n",
                    '{"a": [1, "é"]}',
                    TEXT_VALUE,
                    "y",
                ),
                (None,) * 15,
                (
                    0,
                    0,
                    0,
                    0,
                    0,
                    False,
                    dt.date(1970, 1, 2),
                    dt.time(0),
                    dt.datetime(1970, 1, 2),
                    dt.datetime(1970, 1, 2),
                    b"",
                    b"",
                    "[]",
                    "",
                    "x",
                ),
            ],
        )
    connection.close()
    return mysql_database


MYSQL_EXPECTED = [
    [None] * 15,
    [
        0,
        0,
        decimal.Decimal("0.000000"),
        0.0,
        0.0,
        False,
        dt.date(1970, 1, 2),
        dt.time(0),
        dt.datetime(1970, 1, 2),
        dt.datetime(1970, 1, 2, tzinfo=UTC),
        b"",
        b"",
        "[]",
        "",
        "x",
    ],
    [
        -42,
        9007199254740993,
        decimal.Decimal("12345.678901"),
        0.1,
        1.5,
        True,  # MySQL has no boolean type: BOOLEAN is tinyint(1), read as one
        dt.date(2024, 2, 29),
        dt.time(23, 59, 58, 123456),
        dt.datetime(2024, 2, 29, 23, 59, 58, 500000),
        dt.datetime(2024, 3, 1, 1, 2, 3, 250000, tzinfo=UTC),  # TIMESTAMP: an instant
        b'\x00\xff,"',
        b"\x01\n",
        '{"a": [1, "é"]}',  # MariaDB's JSON is LONGTEXT: text
        TEXT_VALUE,
        "y",
    ],
]


def test_mysql_every_type_round_trips(mysql_types: dict) -> None:
    sql = "SELECT * FROM every_type ORDER BY i IS NOT NULL, i DESC"
    with MysqlDriver().connect(my_params(mysql_types), timeout=CONNECT_TIMEOUT) as session:
        cursor = session.open_query(sql, timeout=10)
        assert [c.type for c in cursor.columns] == [
            ColumnType.INTEGER,
            ColumnType.INTEGER,
            ColumnType.DECIMAL,
            ColumnType.FLOAT,
            ColumnType.FLOAT,
            ColumnType.BOOLEAN,
            ColumnType.DATE,
            ColumnType.TIME,
            ColumnType.DATETIME,
            ColumnType.DATETIMETZ,
            ColumnType.BYTES,
            ColumnType.BYTES,
            ColumnType.TEXT,
            ColumnType.TEXT,
            ColumnType.TEXT,
        ]
        _, via_batches = through_batches(cursor)
        cursor.close()
        assert via_batches == MYSQL_EXPECTED

        cursor = session.open_query(sql, timeout=10)
        count, _, via_copy = through_copy(cursor)
        cursor.close()
        if count is not None:  # the native CSV path, when the driver has one
            assert count == 3
            assert via_copy == MYSQL_EXPECTED


def test_mysql_time_outside_a_day_stays_text(mysql_database: dict) -> None:
    with MysqlDriver().connect(my_params(mysql_database), timeout=CONNECT_TIMEOUT) as session:
        assert run(session, "SELECT CAST('-01:00:00' AS TIME), CAST('25:00:00' AS TIME)") == [
            ["-01:00:00", "25:00:00"]
        ]


def test_sqlite_every_type_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "types.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (i INTEGER, f REAL, txt TEXT, raw BLOB)")
        connection.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [(-42, 0.1, TEXT_VALUE, b'\x00\xff,"'), (None, None, None, None), (0, 1e300, "", b"")],
        )
    connection.close()
    with SqliteDriver().connect(sqlite_params(path), timeout=CONNECT_TIMEOUT) as session:
        cursor = session.open_query("SELECT * FROM t ORDER BY rowid", timeout=10)
        columns, rows = through_batches(cursor)
        cursor.close()
    assert [c.type for c in columns] == [
        ColumnType.INTEGER,
        ColumnType.FLOAT,
        ColumnType.TEXT,
        ColumnType.BYTES,
    ]
    assert rows == [
        [-42, 0.1, TEXT_VALUE, b'\x00\xff,"'],
        [None, None, None, None],
        [0, 1e300, "", b""],
    ]


# --- timeouts and cancelling ---------------------------------------------------------------

SLOW = {
    "pg": "SELECT pg_sleep(5)",
    "my": "SELECT SLEEP(5)",
    "lite": "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT max(i) FROM r",
}


@pytest.mark.parametrize("session_name", ["pg", "my", "lite"])
def test_timeout_is_enforced(session_name: str, request: pytest.FixtureRequest) -> None:
    session = request.getfixturevalue(session_name)
    error = assert_fast_error(QueryTimeout, lambda: run(session, SLOW[session_name], 1), 3)
    assert str(error) == "query exceeded its 1 s timeout"
    session.ping()


@pytest.mark.parametrize("session_name", ["pg", "my", "lite"])
def test_cancel_from_another_thread(session_name: str, request: pytest.FixtureRequest) -> None:
    session = request.getfixturevalue(session_name)
    cursors: list[QueryCursor] = []

    def slow_query() -> None:
        cursors.append(session.open_query(SLOW[session_name], timeout=30))
        read_all(cursors[0])

    timer = threading.Timer(0.5, session.cancel)
    timer.start()
    try:
        error = assert_fast_error(QueryError, slow_query, 3)
    finally:
        timer.cancel()
    assert not isinstance(error, QueryTimeout)
    assert "cancelled" in str(error)
    for cursor in cursors:
        cursor.close()  # quietly: the pipeline closes the cursor whatever happened


def test_postgres_copy_is_cancelled_too(pg: DriverSession) -> None:
    cursor = pg.open_query("SELECT pg_sleep(10)", timeout=30)
    threading.Timer(0.5, pg.cancel).start()
    assert_fast_error(QueryError, lambda: cursor.copy_csv([0], CountingSink()), 3, "cancelled")
    cursor.close()


def test_postgres_copy_times_out(pg: DriverSession) -> None:
    cursor = pg.open_query("SELECT pg_sleep(5)", timeout=1)
    assert_fast_error(QueryTimeout, lambda: cursor.copy_csv([0], CountingSink()), 3)


# --- read-only connections -----------------------------------------------------------------


def test_postgres_read_only_refuses_writes(pg_database: dict) -> None:
    pg_execute(
        pg_database,
        "CREATE TABLE kept (id int)",
        "INSERT INTO kept VALUES (1), (2)",
        "CREATE SEQUENCE counter",
    )
    writes = [
        "DELETE FROM kept",
        "DROP TABLE kept",
        "INSERT INTO kept VALUES (3)",
        "UPDATE kept SET id = 5",
        "SELECT * INTO copied FROM kept",
        "TRUNCATE kept",
        "WITH gone AS (DELETE FROM kept RETURNING *) SELECT * FROM gone",
        "SELECT nextval('counter')",  # a function that writes
        "SET TRANSACTION READ WRITE",
    ]
    with PostgresDriver().connect(pg_params(pg_database), timeout=CONNECT_TIMEOUT) as session:
        for sql in writes:
            with pytest.raises(ReadOnlyViolation, match=r"^this connection is read-only: "):
                run(session, sql)
            with pytest.raises(ReadOnlyViolation):  # the COPY path too
                cursor = session.open_query(sql, timeout=5)
                try:
                    cursor.copy_csv([0], CountingSink())
                finally:
                    cursor.close()
        # Two statements in one text never reach the server.
        with pytest.raises(QueryError, match=r"^one statement per job"):
            run(session, "SELECT 1; COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        with pytest.raises(QueryError):
            run(session, "COMMIT; DELETE FROM kept")
        assert run(session, "SELECT current_setting('transaction_read_only')") == [["on"]]
    assert pg_scalar(pg_database, "SELECT count(*) FROM kept") == 2
    assert pg_scalar(pg_database, "SELECT to_regclass('copied') IS NULL") is True
    assert pg_scalar(pg_database, "SELECT last_value FROM counter") == 1  # never advanced


def test_postgres_read_write_connection_commits(pg_database: dict) -> None:
    pg_execute(pg_database, "CREATE TABLE notes (id int)")
    params = pg_params(pg_database, read_only=False)
    with PostgresDriver().connect(params, timeout=CONNECT_TIMEOUT) as session:
        assert run(session, "INSERT INTO notes VALUES (1), (2)") == []
        assert run(session, "INSERT INTO notes VALUES (3) RETURNING id") == [[3]]
        assert run(session, "SELECT count(*) AS n FROM notes") == [[3]]
    assert pg_scalar(pg_database, "SELECT count(*) FROM notes") == 3


def test_mysql_read_only_refuses_writes(mysql_database: dict, tmp_path: Path) -> None:
    my_execute(
        mysql_database,
        "CREATE TABLE kept (id int)",
        "INSERT INTO kept VALUES (1), (2)",
        "CREATE FUNCTION sneaky() RETURNS int MODIFIES SQL DATA "
        "BEGIN INSERT INTO kept VALUES (99); RETURN 1; END",
    )
    outfile = tmp_path / "leak.csv"
    writes = [
        "DELETE FROM kept",
        "DROP TABLE kept",
        "INSERT INTO kept VALUES (3)",
        "UPDATE kept SET id = 5",
        "  /* hello */ TRUNCATE kept",
        f"SELECT * FROM kept INTO OUTFILE '{outfile}'",
        "/*!40000 DELETE FROM kept */",
        "SET GLOBAL max_connections = 1",
        "SELECT sneaky()",  # a function that writes: refused by the server itself
        "WITH x AS (SELECT 1) SELECT sneaky() FROM x",
    ]
    with MysqlDriver().connect(my_params(mysql_database), timeout=CONNECT_TIMEOUT) as session:
        for sql in writes:
            with pytest.raises(ReadOnlyViolation, match=r"^this connection is read-only: "):
                run(session, sql)
        with pytest.raises(QueryError, match=r"^one statement per job"):
            run(session, "SELECT 1; DELETE FROM kept")
        assert run(session, "SELECT @@session.tx_read_only") == [[1]]
    assert my_scalar(mysql_database, "SELECT count(*) FROM kept") == 2
    assert not outfile.exists()


def test_mysql_read_write_connection_commits(mysql_database: dict) -> None:
    my_execute(mysql_database, "CREATE TABLE notes (id int)")
    params = my_params(mysql_database, read_only=False)
    with MysqlDriver().connect(params, timeout=CONNECT_TIMEOUT) as session:
        assert run(session, "INSERT INTO notes VALUES (1), (2)") == []
        assert run(session, "SELECT count(*) AS n FROM notes") == [[2]]
    assert my_scalar(mysql_database, "SELECT count(*) FROM notes") == 2


def test_sqlite_read_only_refuses_writes(sqlite_chinook: Path, tmp_path: Path) -> None:
    attached = tmp_path / "new.sqlite"
    vacuumed = tmp_path / "vacuumed.sqlite"
    writes = [
        "DELETE FROM Genre",
        "DROP TABLE Genre",
        "INSERT INTO Genre VALUES (99, 'x')",
        "UPDATE Genre SET Name = 'x'",
        "CREATE TABLE copied AS SELECT * FROM Genre",
        f"ATTACH '{attached}' AS other",
        f"VACUUM INTO '{vacuumed}'",
        "PRAGMA query_only = OFF",
    ]
    params = sqlite_params(sqlite_chinook)
    with SqliteDriver().connect(params, timeout=CONNECT_TIMEOUT) as session:
        for sql in writes:
            with pytest.raises(ReadOnlyViolation, match=r"^this connection is read-only: "):
                run(session, sql)
        with pytest.raises(QueryError):
            run(session, "SELECT 1; DELETE FROM Genre")
        assert run(session, "SELECT count(*) FROM Genre") == [[25]]
    assert not attached.exists()
    assert not vacuumed.exists()


def test_sqlite_read_write_connection_writes(sqlite_chinook: Path) -> None:
    params = sqlite_params(sqlite_chinook, read_only=False)
    with SqliteDriver().connect(params, timeout=CONNECT_TIMEOUT) as session:
        assert run(session, "DELETE FROM PlaylistTrack") == []
    with sqlite3.connect(sqlite_chinook) as check:
        assert check.execute("SELECT count(*) FROM PlaylistTrack").fetchone() == (0,)
    check.close()


# --- connecting ----------------------------------------------------------------------------


@pytest.mark.parametrize("driver", [PostgresDriver, MysqlDriver])
def test_unreachable_port_fails_within_the_connect_timeout(driver: type) -> None:
    params = ConnectionParams(
        driver=driver.name, database="x", host="127.0.0.1", port=1, user="u", password="s3cr3t!"
    )
    error = assert_fast_error(ConnectionFailed, lambda: driver().connect(params, timeout=2), 3)
    assert "s3cr3t!" not in str(error)
    assert "\n" not in str(error)


def test_postgres_unknown_role_and_database(pg_server: dict) -> None:
    password = "pw-" + unique_name("x")
    params = pg_params(pg_server, user=unique_name("nobody"), password=password)
    error = assert_fast_error(
        ConnectionFailed, lambda: PostgresDriver().connect(params, timeout=2), 3
    )
    assert "does not exist" in str(error)
    assert password not in str(error) and "\n" not in str(error)
    params = pg_params(pg_server, database=unique_name("nodb"))
    with pytest.raises(ConnectionFailed, match="does not exist"):
        PostgresDriver().connect(params, timeout=2)


def test_postgres_wrong_password() -> None:
    """On a private cluster that checks passwords (the shared one trusts loopback logins)."""
    cluster = PrivatePostgres(host_auth="scram-sha-256")
    try:
        role, password = unique_name("dc_role"), "right-" + unique_name("pw")
        cluster.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        wrong = "wrong-" + unique_name("pw")
        params = ConnectionParams(
            driver="postgresql",
            host="127.0.0.1",
            port=cluster.port,
            database="dancecat",
            user=role,
            password=wrong,
        )
        error = assert_fast_error(
            ConnectionFailed, lambda: PostgresDriver().connect(params, timeout=2), 3
        )
        assert "password authentication failed" in str(error)
        assert wrong not in str(error)
        right = attrs.evolve(params, password=password)
        with PostgresDriver().connect(right, timeout=2) as session:
            session.ping()
    finally:
        cluster.close()


def test_mysql_wrong_password_and_unknown_database(mysql_database: dict) -> None:
    user, password = unique_name("dc_user")[:32], "right-" + unique_name("pw")
    my_execute(mysql_database, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
    try:
        wrong = "wrong-" + unique_name("pw")
        params = my_params(mysql_database, user=user, password=wrong)
        error = assert_fast_error(
            ConnectionFailed, lambda: MysqlDriver().connect(params, timeout=2), 3
        )
        assert "Access denied" in str(error)
        assert wrong not in str(error) and password not in str(error)
        params = my_params(mysql_database, database=unique_name("nodb"))
        with pytest.raises(ConnectionFailed, match="Unknown database"):
            MysqlDriver().connect(params, timeout=2)
    finally:
        my_execute(mysql_database, f"DROP USER '{user}'@'%'")


def test_sqlite_missing_file_or_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed, match="no such file"):
        SqliteDriver().connect(sqlite_params(tmp_path / "missing.sqlite"), timeout=2)
    assert not (tmp_path / "missing.sqlite").exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database " * 100)
    with pytest.raises(ConnectionFailed, match="not a database"):
        SqliteDriver().connect(sqlite_params(junk), timeout=2)


# --- where a column comes from -------------------------------------------------------------


def test_postgres_reports_the_source_column(pg_database: dict) -> None:
    pg_execute(pg_database, "CREATE TABLE users_table (id int, password text)")
    with PostgresDriver().connect(pg_params(pg_database), timeout=CONNECT_TIMEOUT) as session:
        cursor = session.open_query(
            "SELECT u.password AS p, id + 1 AS n FROM users_table u", timeout=5
        )
        assert cursor.columns[0].name == "p"
        assert cursor.columns[0].source == "users_table.password"
        assert cursor.columns[1].source == ""
        cursor.close()


def test_mysql_reports_the_source_column(mysql_database: dict) -> None:
    my_execute(mysql_database, "CREATE TABLE users_table (id int, password varchar(50))")
    with MysqlDriver().connect(my_params(mysql_database), timeout=CONNECT_TIMEOUT) as session:
        cursor = session.open_query(
            "SELECT u.password AS p, id + 1 AS n FROM users_table u", timeout=5
        )
        assert cursor.columns[0].name == "p"
        assert cursor.columns[0].source == "users_table.password"
        assert cursor.columns[1].source == ""
        cursor.close()


# --- streaming: memory stays flat ----------------------------------------------------------

ROWS = 200_000
# Each row is ~150 bytes of text: all of them in memory at once would be 30 MB of bytes
# and far more as Python objects.
PG_BIG = f"SELECT i, md5(i::text) AS h, repeat('x', 100) AS pad FROM generate_series(1, {ROWS}) i"
MY_BIG = f"SELECT seq, MD5(seq) AS h, REPEAT('x', 100) AS pad FROM seq_1_to_{ROWS}"
LITE_BIG = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 200000) "
    "SELECT i, hex(randomblob(16)) AS h, printf('%.100c', 'x') AS pad FROM r"
)
PYTHON_PEAK = 12 << 20
RSS_GROWTH = 24 << 20


def stream_batches(session: DriverSession, sql: str) -> None:
    cursor = session.open_query(sql, timeout=120)
    formatter = RowFormatter(cursor.columns)
    sink = CountingSink()
    count = 0
    for batch in cursor.batches(5000):
        sink.write(formatter.lines(batch).encode())
        count += len(batch)
    cursor.close()
    assert count == ROWS == sink.lines


@pytest.mark.parametrize(
    ("session_name", "sql"), [("pg", PG_BIG), ("my", MY_BIG), ("lite", LITE_BIG)]
)
def test_batches_stream_in_flat_memory(
    session_name: str, sql: str, request: pytest.FixtureRequest
) -> None:
    session = request.getfixturevalue(session_name)
    python_peak, rss_growth = memory_growth(lambda: stream_batches(session, sql))
    assert python_peak < PYTHON_PEAK
    assert rss_growth < RSS_GROWTH


def test_postgres_copy_streams_in_flat_memory(pg: DriverSession) -> None:
    def copy() -> None:
        cursor = pg.open_query(PG_BIG, timeout=120)
        sink = CountingSink()
        assert cursor.copy_csv([0, 1, 2], sink) == ROWS
        cursor.close()
        assert sink.lines == ROWS and sink.bytes > 100 * ROWS

    python_peak, rss_growth = memory_growth(copy)
    assert python_peak < PYTHON_PEAK
    assert rss_growth < RSS_GROWTH


def test_mysql_close_does_not_read_the_rest(my: DriverSession) -> None:
    cursor = my.open_query("SELECT seq FROM seq_1_to_50000000", timeout=60)
    assert len(next(iter(cursor.batches(100)))) == 100
    started = time.monotonic()
    cursor.close()
    my.close()
    assert time.monotonic() - started < 2


def test_postgres_close_does_not_read_the_rest(pg: DriverSession) -> None:
    cursor = pg.open_query("SELECT generate_series(1, 50000000) AS i", timeout=60)
    assert len(next(iter(cursor.batches(100)))) == 100
    started = time.monotonic()
    cursor.close()
    pg.close()
    assert time.monotonic() - started < 2


def test_json_columns_keep_the_database_text(pg: DriverSession) -> None:
    # JSON stays the database's text on both paths, so the CSV bytes agree exactly.
    rows = run(pg, """SELECT '{"b": 1,  "a": [1]}'::json AS j""")
    assert rows == [['{"b": 1,  "a": [1]}']]
    assert json.loads(rows[0][0]) == {"a": [1], "b": 1}


# --- MySQL: copy_csv, the native CSV path, against batches() + RowFormatter -----------------

TRICKY_TEXT = [
    "plain",
    "a,b",
    'say "hi"',
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\n",
    '"',
    ",",
    " spaced ",
    "café ü",
    "emoji 😀 🐈",
    "日本語",
    "x" * 250,  # the longest value with a one-byte length
    "y" * 251,  # the shortest with a 0xFC length
    "é" * 300,  # 600 bytes
    "",
    None,
]


@pytest.fixture
def mysql_copy_types(mysql_database: dict) -> dict:
    """Every MySQL type, one row per tricky text, a long one, NULLs and empty values."""
    my_execute(
        mysql_database,
        """
        CREATE TABLE copy_types (
            id int PRIMARY KEY, b bigint, n decimal(30,10), f double, r float, ok tinyint(1),
            bo bool, d date, t time(6), ts datetime(6), stamp timestamp(6) NULL, y year,
            raw blob, vb varbinary(20), bt bit(12), j json, txt text, vc varchar(400),
            e enum('x', 'y,z', ''), s set('a', 'b'), lt longtext, u tinyint unsigned,
            nb bigint unsigned
        ) CHARACTER SET utf8mb4
        """,
    )
    rows = []
    for i, text in enumerate(TRICKY_TEXT):
        empty = text is None
        rows.append(
            (
                i,
                None if empty else -(2**63) + i,
                None if empty else decimal.Decimal(f"-12345678901234567890.{i:010d}"),
                None if empty else (i + 0.1) * 1e300 if i % 2 else -(i or 1) / 3,
                None if empty else 1.25 * i,
                None if empty else i % 2,
                None if empty else bool(i % 3),
                None if empty else dt.date(1000 + i * 50, 1 + i % 12, 1 + i),
                None if empty else dt.time(i % 24, 59, 58, 123456 * (i % 2)),
                None if empty else dt.datetime(2024, 2, 29, 23, 59, i, 500000 * (i % 2)),
                None if empty else dt.datetime(2024, 3, 1, 1, 2, i, 250000),
                None if empty else 1901 + i,
                None if empty else bytes(range(256))[i * 7 : i * 7 + 30] + b',"\n\xfe\xff',
                None if empty else b"" if i == 3 else bytes([i, 0, 255, 44, 10]),
                None if empty else i * 37,
                None if empty else json.dumps({"k": text, "n": [i, "é"]}, ensure_ascii=False),
                text,
                text,
                None if empty else ["x", "y,z", ""][i % 3],
                None if empty else ["", "a", "a,b"][i % 3],
                None if empty else (text or "") * 120,  # past 65535 bytes: a 0xFD length
                None if empty else 255 - i,
                None if empty else 2**64 - 1 - i,
            )
        )
    connection = my_connect(mysql_database)
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
        cursor.executemany(f"INSERT INTO copy_types VALUES ({', '.join(['%s'] * 23)})", rows)
    connection.close()
    return mysql_database


def batches_kept(
    cursor: QueryCursor, keep: list[int], typed: bool = True
) -> tuple[bytes, list[list[Any]]]:
    """The pipeline's path without copy_csv: kept columns through RowFormatter."""
    kept = [cursor.columns[i] for i in keep]
    formatter = RowFormatter(kept)
    data = b"".join(
        formatter.lines([[row[i] for i in keep] for row in batch]).encode()
        for batch in cursor.batches(3)
    )
    csv = io.BytesIO(header_line([c.name for c in kept]) + data)
    return data, list(read_typed_rows(csv, kept)) if typed else []


def copy_kept(
    cursor: QueryCursor, keep: list[int], typed: bool = True
) -> tuple[int | None, bytes, list[list[Any]]]:
    kept = [cursor.columns[i] for i in keep]
    raw = io.BytesIO()
    count = cursor.copy_csv(keep, raw)
    csv = io.BytesIO(header_line([c.name for c in kept]) + raw.getvalue())
    return count, raw.getvalue(), list(read_typed_rows(csv, kept)) if typed else []


def both_paths(
    session: DriverSession, sql: str, keep: list[int] | None = None, typed: bool = True
) -> tuple[tuple[int | None, bytes, list], tuple[bytes, list]]:
    """(copy_csv's count, CSV and rows read back), (the same from batches()); rows are only
    read back when ``typed`` (Python's csv module refuses fields over 128 KiB)."""
    cursor = session.open_query(sql, timeout=30)
    keep = list(range(len(cursor.columns))) if keep is None else keep
    via_batches = batches_kept(cursor, keep, typed)
    cursor.close()
    cursor = session.open_query(sql, timeout=30)
    via_copy = copy_kept(cursor, keep, typed)
    assert not cursor.unread  # read to the end-of-rows packet
    cursor.close()
    return via_copy, via_batches


COPY_SQL = "SELECT * FROM copy_types ORDER BY id"
TEXT_ONLY = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 15, 16, 17, 18, 19, 20, 21, 22]  # no bytes


@pytest.mark.parametrize(
    "keep",
    [
        None,  # every column: binary ones take the per-field path
        TEXT_ONLY,  # no binary column: the in-place marking path
        [16],  # one text column
        [1, 16, 20],  # the first column dropped, long values kept
        [0, 16, 17],  # the last columns dropped
        [12, 13, 14],  # binary only
        [],
    ],
)
def test_mysql_copy_equals_batches_value_for_value(
    mysql_copy_types: dict, keep: list[int] | None
) -> None:
    params = my_params(mysql_copy_types)
    with MysqlDriver().connect(params, timeout=CONNECT_TIMEOUT) as session:
        (count, data, via_copy), (_, via_batches) = both_paths(session, COPY_SQL, keep)
        assert count == len(TRICKY_TEXT) == len(via_copy)
        assert via_copy == via_batches
        session.ping()  # the connection is in step after the copy
    if keep is not None and 16 in keep:
        texts = [row[keep.index(16)] for row in via_copy]
        assert texts == TRICKY_TEXT  # the text column comes back exactly, '' apart from NULL
        assert b',"",' in data or data.startswith(b'"",') or b'\n"",' in data or b'""\n' in data


def test_mysql_copy_types_and_text_bytes(mysql_copy_types: dict) -> None:
    with MysqlDriver().connect(my_params(mysql_copy_types), timeout=CONNECT_TIMEOUT) as session:
        cursor = session.open_query(COPY_SQL, timeout=30)
        kinds = [c.type for c in cursor.columns]
        assert kinds[12:15] == [ColumnType.BYTES] * 3  # blob, varbinary, bit
        assert kinds[15:17] == [ColumnType.TEXT] * 2  # MariaDB's JSON is LONGTEXT
        cursor.copy_csv([], CountingSink())
        cursor.close()
        # Text is byte for byte what RowFormatter writes.
        (_, data, _), (batch_data, _) = both_paths(session, "SELECT txt, lt FROM copy_types")
        assert data == batch_data
        # So are binary values: \x and hex.
        (_, data, rows), (batch_data, _) = both_paths(session, "SELECT id, raw, bt FROM copy_types")
        assert data == batch_data
        assert rows[0][1] == bytes(range(30)) + b',"\n\xfe\xff'


def test_mysql_copy_zero_dates_stay_text(mysql_database: dict) -> None:
    my_execute(
        mysql_database,
        "SET SESSION sql_mode = ''",
        "CREATE TABLE zero (d date, ts datetime, t time)",
        "INSERT INTO zero VALUES ('0000-00-00', '0000-00-00 00:00:00', '-838:59:59')",
        "INSERT INTO zero VALUES ('2024-00-10', '2024-01-01 00:00:00', '838:59:59')",
    )
    with MysqlDriver().connect(my_params(mysql_database), timeout=CONNECT_TIMEOUT) as session:
        (_, data, via_copy), (batch_data, via_batches) = both_paths(session, "SELECT * FROM zero")
    assert (
        data
        == batch_data
        == (
            b"0000-00-00,0000-00-00T00:00:00,-838:59:59\n2024-00-10,2024-01-01T00:00:00,838:59:59\n"
        )
    )
    assert via_copy == via_batches


def test_mysql_copy_zero_rows_and_limits(my: DriverSession) -> None:
    cursor = my.open_query("SELECT * FROM Track WHERE 1 = 0", timeout=10)
    sink = io.BytesIO()
    assert cursor.copy_csv(list(range(len(cursor.columns))), sink) == 0
    assert sink.getvalue() == b""
    cursor.close()
    # A preview's row cap (sql_select_limit) holds on this path too.
    cursor = my.open_query("SELECT TrackId FROM Track ORDER BY TrackId", timeout=10, limit=5)
    sink = io.BytesIO()
    assert cursor.copy_csv([0], sink) == 5
    assert sink.getvalue() == b"1\n2\n3\n4\n5\n"
    cursor.close()
    assert run(my, "SELECT count(*) FROM Track") == [[3503]]


def test_mysql_copy_chinook_matches_batches(my: DriverSession) -> None:
    sql = "SELECT * FROM Track t JOIN Album a USING (AlbumId) ORDER BY TrackId"
    (count, _, via_copy), (_, via_batches) = both_paths(my, sql)
    assert count == 3503
    assert via_copy == via_batches


def test_mysql_copy_reordered_keep_falls_back(my: DriverSession) -> None:
    cursor = my.open_query("SELECT TrackId, Name FROM Track", timeout=10)
    assert cursor.copy_csv([1, 0], io.BytesIO()) is None  # the pipeline formats batches()
    assert len(read_all(cursor)) == 3503
    cursor.close()


def test_mysql_copy_rows_over_16_mib(mysql_database: dict) -> None:
    # Two 9 MB values: an 18 MB row arrives as two packets (16 MiB - 1 bytes, then the rest).
    sql = "SELECT seq, REPEAT('a', 9000000) AS a, REPEAT('é,', 2200000) AS b FROM seq_1_to_3"
    with MysqlDriver().connect(my_params(mysql_database), timeout=CONNECT_TIMEOUT) as session:
        for keep in ([0, 1, 2], [1, 2], [0, 2], [0]):
            (count, data, _), (batch_data, _) = both_paths(session, sql, keep, typed=False)
            assert count == 3
            assert data == batch_data
        session.ping()
    assert data == b"1\n2\n3\n"


def test_mysql_copy_more_results_after_a_call(mysql_database: dict) -> None:
    # CALL sends the SELECT's rows, then an OK packet: bytes read past the result's end go
    # back to PyMySQL, which reads the OK packet when the cursor closes.
    my_execute(mysql_database, "CREATE PROCEDURE two() BEGIN SELECT 1 AS a, 'x' AS b; END")
    params = my_params(mysql_database, read_only=False)
    with MysqlDriver().connect(params, timeout=CONNECT_TIMEOUT) as session:
        for _ in range(3):
            assert run(session, "CALL two()") == [[1, "x"]]
            cursor = session.open_query("CALL two()", timeout=10)
            sink = io.BytesIO()
            assert cursor.copy_csv([0, 1], sink) == 1
            assert sink.getvalue() == b"1,x\n"
            cursor.close()
            assert run(session, "SELECT 42") == [[42]]


def test_mysql_copy_times_out_mid_stream(my: DriverSession) -> None:
    # Rows flow first; the server then stops the statement at its timeout.
    sql = "SELECT seq, IF(seq = 20000, SLEEP(5), 0) AS s FROM seq_1_to_40000"
    cursor = my.open_query(sql, timeout=1)
    sink = CountingSink()
    error = assert_fast_error(QueryTimeout, lambda: cursor.copy_csv([0, 1], sink), 4)
    assert str(error) == "query exceeded its 1 s timeout"
    assert 0 < sink.lines < 40000  # some rows arrived before the error did
    cursor.close()
    my.ping()  # the connection is usable again
    assert run(my, "SELECT 1") == [[1]]


def test_mysql_copy_is_cancelled_mid_stream(my: DriverSession) -> None:
    sql = "SELECT seq, IF(seq = 20000, SLEEP(10), 0) AS s FROM seq_1_to_40000"
    cursor = my.open_query(sql, timeout=30)
    timer = threading.Timer(0.5, my.cancel)
    timer.start()
    try:
        error = assert_fast_error(QueryError, lambda: cursor.copy_csv([0], CountingSink()), 4)
    finally:
        timer.cancel()
    assert not isinstance(error, QueryTimeout)
    assert "cancelled" in str(error)
    cursor.close()


def test_mysql_copy_streams_in_flat_memory(my: DriverSession) -> None:
    def copy(keep: list[int]) -> None:
        cursor = my.open_query(MY_BIG, timeout=120)
        sink = CountingSink()
        assert cursor.copy_csv(keep, sink) == ROWS
        cursor.close()
        assert sink.lines == ROWS

    for keep in ([0, 1, 2], [0, 2]):
        python_peak, rss_growth = memory_growth(lambda keep=keep: copy(keep))
        assert python_peak < PYTHON_PEAK
        assert rss_growth < RSS_GROWTH


def test_mysql_copy_bytes_as_csv_exactly(my: DriverSession) -> None:
    # The 200,000-row stream, byte for byte what RowFormatter makes of the same rows.
    sql = MY_BIG.replace("seq_1_to_200000", "seq_1_to_20000") + " ORDER BY seq"
    (count, data, _), (batch_data, _) = both_paths(my, sql)
    assert count == 20000
    assert data == batch_data


def _packets(payloads: list[bytes]) -> bytes:
    return b"".join(
        len(p).to_bytes(3, "little") + bytes([seq]) + p for seq, p in enumerate(payloads, 1)
    )


def _lenenc(value: bytes | None) -> bytes:
    if value is None:
        return b"\xfb"
    if len(value) < 251:
        return bytes([len(value)]) + value
    return b"\xfc" + len(value).to_bytes(2, "little") + value


class _FakeResult:
    unbuffered_active = True
    connection = rows = None

    def _check_packet_is_eof(self, packet: Any) -> bool:
        return True


def test_mysql_copy_invalid_utf8_is_replaced_not_misread() -> None:
    # Bytes that valid UTF-8 never holds would pass for the copier's own markers (0xFA-0xFF):
    # the block is redone field by field, the bad bytes become U+FFFD as csvcodec does.
    rows = [
        [b"1", b"ok, fine"],
        [b"2", b"bad \xfe\xff\xfd, byte"],
        [b"3", b"cut \xc3"],
        [b"4", None],
        [b"5", b""],
    ]
    payloads = [b"".join(_lenenc(v) for v in row) for row in rows] + [b"\xfe\x00\x00\x02\x00"]
    stream = io.BufferedReader(io.BytesIO(_packets(payloads) + b"next"))
    connection = type("Conn", (), {})()
    connection.__dict__.update(
        _result=_FakeResult(),
        _next_seq_id=1,
        _current_timeout=None,
        _read_timeout=None,
        _rfile=stream,
        encoding="utf8",
    )
    for kinds, expect in [
        (
            [mysql_fast_csv.RAW, mysql_fast_csv.TEXT],
            '1,"ok, fine"\n2,"bad \ufffd\ufffd\ufffd, byte"\n3,cut \ufffd\n4,\n5,""\n',
        ),
        ([mysql_fast_csv.SKIP, mysql_fast_csv.HEX], "\\x6f6b2c2066696e65\n"),
    ]:
        sink = io.BytesIO()
        count = mysql_fast_csv._RowCopier(connection, kinds, sink).copy()
        if kinds[1] == mysql_fast_csv.TEXT:
            assert count == 5
            assert sink.getvalue().decode() == expect
            assert connection._next_seq_id == 7
            assert connection._rfile.read() == b"next"  # bytes past the end are given back
            stream = io.BufferedReader(io.BytesIO(_packets(payloads[:1] + payloads[-1:])))
            connection.__dict__.update(_rfile=stream, _next_seq_id=1, _result=_FakeResult())
        else:
            assert count == 1
            assert sink.getvalue().decode() == expect
