"""Parameter values bound by each real driver: every type arrives typed, hostile text as data.

Each test goes the way a run goes: ``parameters.bind`` turns the job's text, declarations
and values into a ``BoundQuery``; the driver binds it (SQLite ``?``, PyMySQL's quoting,
psycopg2's quoting on the row path and through ``mogrify`` on the COPY path).
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
from pathlib import Path
from typing import Any

import psycopg2
import pymysql
import pytest

from dancecat_core import parameters
from dancecat_core.csvcodec import read_text_rows
from dancecat_core.drivers import ConnectionParams, DriverSession
from dancecat_core.errors import QueryError, ValidationError
from dancecat_core.local_files import LocalFileRules
from dancecat_core.run_dates import Occasion
from dancecat_plugins.mysql_driver import MysqlDriver
from dancecat_plugins.postgresql_driver import PostgresDriver
from dancecat_plugins.sqlite_driver import SqliteDriver

BERLIN_NOON = dt.datetime(2026, 3, 29, 10, 0, tzinfo=dt.UTC)
OCCASION = Occasion(BERLIN_NOON, "Europe/Berlin")

HOSTILE = [
    "'; DROP TABLE victim; --",
    "$$; DROP TABLE victim; $$",
    "$q$ ) ; DROP TABLE victim; --",
    "\\",
    "\\'; DROP TABLE victim; --",
    "' OR '1'='1",
    '"; DROP TABLE victim; --',
    "`victim`",
    "%s %(x)s %% %",
    "?",
    "$1",
    "*/ DROP TABLE victim; /*",
    "\u2019; DROP TABLE victim; --\u2018 \u201c\u201d \uff07",
    "{{ other }}",
    "line\nbreak\r\ttab",
    "😀 emoji and ß",
]


def declared(*specs: str) -> tuple[parameters.Parameter, ...]:
    return parameters.declare(list(specs))


def open_pg(server: dict) -> DriverSession:
    params = ConnectionParams(
        driver="postgresql",
        host=server["host"],
        port=server["port"],
        user=server["user"],
        database=server["database"],
        read_only=False,
    )
    return PostgresDriver().connect(params, timeout=5)


def open_my(server: dict) -> DriverSession:
    params = ConnectionParams(
        driver="mysql",
        host=server["host"],
        port=server["port"],
        user=server["user"],
        database=server["database"],
        read_only=False,
    )
    return MysqlDriver().connect(params, timeout=5)


def open_lite(path: Path) -> DriverSession:
    files = LocalFileRules(
        allowed_dirs=(path.parent.resolve(),), protected_dirs=(), protected_files=()
    )
    params = ConnectionParams(driver="sqlite", database=str(path), files=files, read_only=False)
    return SqliteDriver().connect(params, timeout=5)


def rows_of(session: DriverSession, sql: str, decl, values: dict, dialect: str) -> list[list[Any]]:
    bound, _ = parameters.bind(sql, decl, values, OCCASION, dialect)
    cursor = session.open_query(bound, timeout=10)
    try:
        return [list(row) for batch in cursor.batches() for row in batch]
    finally:
        cursor.close()


def copy_rows(session: DriverSession, sql: str, decl, values: dict) -> list[list[str | None]]:
    bound, _ = parameters.bind(sql, decl, values, OCCASION, "postgresql")
    cursor = session.open_query(bound, timeout=10)
    sink = io.BytesIO()
    try:
        count = cursor.copy_csv(list(range(len(cursor.columns))), sink)
    finally:
        cursor.close()
    assert count is not None  # the fast path was taken
    return list(read_text_rows(io.BytesIO(sink.getvalue()), skip_header=False))


TYPED = declared("t:text", "i:integer", "n:number", "d:date", "ts:datetime", "b:boolean", "c:EU|US")
TYPED_VALUES = {
    "t": "plain",
    "i": "-9223372036854775808",
    "n": "12345678901234567890.000000001",
    "d": "2026-02-28",
    "ts": "2026-03-29 02:30:00",
    "b": "yes",
    "c": "US",
}


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def pg(pg_database: dict):
    with (
        psycopg2.connect(
            host=pg_database["host"],
            port=pg_database["port"],
            user=pg_database["user"],
            dbname=pg_database["database"],
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("CREATE TABLE victim (id int); INSERT INTO victim VALUES (1)")
    connection.close()
    session = open_pg(pg_database)
    yield session
    session.close()


PG_TYPES = (
    "SELECT pg_typeof({{ t }})::text, pg_typeof({{ i }})::text, pg_typeof({{ n }})::text,"
    " pg_typeof({{ d }})::text, pg_typeof({{ ts }})::text, pg_typeof({{ b }})::text,"
    " pg_typeof({{ due_at }})::text, pg_typeof({{ due_date }})::text"
)


def test_postgresql_binds_every_type_as_that_type(pg) -> None:
    (types,) = rows_of(pg, PG_TYPES, TYPED, TYPED_VALUES, "postgresql")
    assert types == [
        "text", "bigint", "numeric", "date", "timestamp without time zone", "boolean",
        "timestamp with time zone", "date",
    ]  # fmt: skip
    sql = "SELECT {{ t }}, {{ i }}, {{ n }}, {{ d }}, {{ ts }}, {{ b }}, {{ c }}, {{ due_at }}"
    (row,) = rows_of(pg, sql, TYPED, TYPED_VALUES, "postgresql")
    assert row[:7] == [
        "plain", -(2**63), decimal.Decimal("12345678901234567890.000000001"), "2026-02-28",
        "2026-03-29T02:30:00", True, "US",
    ]  # fmt: skip
    assert row[7] == "2026-03-29T10:00:00+00:00"  # the instant, in the session's UTC
    (copied,) = copy_rows(pg, sql, TYPED, TYPED_VALUES)
    assert copied == [
        "plain", str(-(2**63)), "12345678901234567890.000000001", "2026-02-28",
        "2026-03-29T02:30:00", "true", "US", "2026-03-29T10:00:00+00:00",
    ]  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE)
def test_postgresql_hostile_text_arrives_as_data_on_both_paths(pg, value: str) -> None:
    decl = declared("v:text")
    sql = "SELECT {{ v }}::text AS v, '{{ v }}' AS literal, 100 % 7 AS modulo, count(*) FROM victim"
    assert rows_of(pg, sql, decl, {"v": value}, "postgresql") == [[value, "{{ v }}", 2, 1]]
    assert copy_rows(pg, sql, decl, {"v": value}) == [[value, "{{ v }}", "2", "1"]]


def test_postgresql_placeholders_in_strings_and_comments_are_text(pg) -> None:
    sql = (
        "SELECT $$ {{ v }} $$ AS dollar, $tag${{ v }}$tag$ AS tagged, E'\\' {{ v }}' AS e,"
        ' 1 AS "{{ v }}", {{ v }} AS bound -- {{ v }}\n /* {{ v }} /* nested */ {{ v }} */'
    )
    bound, _ = parameters.bind(sql, declared("v:text"), {"v": "x"}, OCCASION, "postgresql")
    assert len(bound.values) == 1
    cursor = pg.open_query(bound, timeout=10)
    assert [c.name for c in cursor.columns] == ["dollar", "tagged", "e", "{{ v }}", "bound"]
    assert list(next(cursor.batches())[0]) == [" {{ v }} ", "{{ v }}", "' {{ v }}", 1, "x"]
    cursor.close()


def test_postgresql_refuses_nul_and_user_dollar_parameters(pg) -> None:
    decl = declared("v:text")
    with pytest.raises(QueryError, match="parameter v: PostgreSQL text cannot hold a NUL"):
        rows_of(pg, "SELECT {{ v }}", decl, {"v": "a\x00b"}, "postgresql")
    with pytest.raises(QueryError, match="could not be placed"):
        rows_of(pg, "SELECT {{ v }}, $1", decl, {"v": "a"}, "postgresql")


# --- MariaDB -----------------------------------------------------------------------------


@pytest.fixture
def my(mysql_database: dict):
    connection = pymysql.connect(
        host=mysql_database["host"],
        port=mysql_database["port"],
        user=mysql_database["user"],
        database=mysql_database["database"],
        autocommit=True,
    )
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE victim (id int)")
        cursor.execute("INSERT INTO victim VALUES (1)")
    connection.close()
    session = open_my(mysql_database)
    yield session
    session.close()


def test_mariadb_binds_every_type(my) -> None:
    sql = (
        "SELECT {{ t }}, {{ i }}, {{ n }}, {{ d }}, {{ ts }}, {{ b }}, {{ c }}, {{ due_at }},"
        " {{ due_date }} + INTERVAL 1 DAY"
    )
    (row,) = rows_of(my, sql, TYPED, TYPED_VALUES, "mysql")
    assert row == [
        "plain", -(2**63), decimal.Decimal("12345678901234567890.000000001"),
        dt.date(2026, 2, 28), dt.datetime(2026, 3, 29, 2, 30), 1, "US",
        dt.datetime(2026, 3, 29, 10, 0), dt.date(2026, 3, 30),
    ]  # fmt: skip


@pytest.mark.parametrize("value", [*HOSTILE, "a\x00b"])
def test_mariadb_hostile_text_arrives_as_data(my, value: str) -> None:
    sql = (
        "SELECT CAST({{ v }} AS CHAR) AS v, '{{ v }}' AS lit, \"{{ v }}\" AS dq, 100 % 7,"
        " (SELECT count(*) FROM victim) # {{ v }}\n -- {{ v }}\n /* {{ v }} */"
    )
    assert rows_of(my, sql, declared("v:text"), {"v": value}, "mysql") == [
        [value, "{{ v }}", "{{ v }}", 2, 1]
    ]


# --- SQLite ------------------------------------------------------------------------------


@pytest.fixture
def lite(tmp_path: Path):
    import sqlite3

    path = tmp_path / "bind.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE victim (id int)")
        connection.execute("INSERT INTO victim VALUES (1)")
    connection.close()
    session = open_lite(path)
    yield session
    session.close()


def test_sqlite_binds_every_type(lite) -> None:
    sql = (
        "SELECT {{ t }}, typeof({{ i }}), {{ i }}, {{ n }}, {{ d }}, {{ ts }}, {{ b }}, {{ c }},"
        " {{ due_at }}, date({{ due_date }}, '+1 day')"
    )
    values = {**TYPED_VALUES, "n": "2.5"}
    (row,) = rows_of(lite, sql, TYPED, values, "sqlite")
    assert row == [
        "plain", "integer", -(2**63), 2.5, "2026-02-28", "2026-03-29 02:30:00", 1, "US",
        "2026-03-29 10:00:00", "2026-03-30",
    ]  # fmt: skip


@pytest.mark.parametrize("value", [*HOSTILE, "a\x00b"])
def test_sqlite_hostile_text_arrives_as_data(lite, value: str) -> None:
    sql = (
        "SELECT {{ v }} AS v, '{{ v }}' AS lit, \"{{ v }}\" AS dq, 100 % 7,"
        " (SELECT count(*) FROM victim) -- {{ v }}\n /* {{ v }} */"
    )
    rows = rows_of(lite, sql, declared("v:text"), {"v": value}, "sqlite")
    assert rows == [[value, "{{ v }}", "{{ v }}", 2, 1]]


# --- before any database -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        ("n:integer", "12abc", "parameter n: '12abc' is not a whole number"),
        ("n:integer", "9223372036854775808", "parameter n: .*outside the 64-bit range"),
        ("n:integer", "1.5", "parameter n: '1.5' is not a whole number"),
        ("x:number", "1e999", "parameter x: .*beyond 1e300"),
        ("x:number", "NaN", "parameter x: 'NaN' is not a number"),
        ("d:date", "2026-02-30", "parameter d: '2026-02-30' is not a date"),
        ("d:date", "'; DROP TABLE victim; --", "parameter d: .* is not a date"),
        ("b:boolean", "maybe", "parameter b: 'maybe' is not true or false"),
        ("c:EU|US", "eu", "parameter c: 'eu' is not one of EU, US"),
        ("t:text", "\ud800", "parameter t: .*not valid Unicode"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_parameter(spec: str, value: str, message: str):
    name = spec.split(":")[0]
    with pytest.raises(ValidationError, match=message) as caught:
        parameters.bind(
            f"SELECT {{{{ {name} }}}}", declared(spec), {name: value}, OCCASION, "postgresql"
        )
    assert "\n" not in str(caught.value)
