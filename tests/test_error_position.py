"""The line and column of a database's error, as the editor marks it: PostgreSQL's error
position (from the server, or pglast's for a syntax error), MariaDB's "at line N", SQLite's
token when it occurs once; in the editor's own text (its CRLFs and leading blank lines)."""

from __future__ import annotations

import pytest

from dancecat_core.drivers import ConnectionParams
from dancecat_core.error_position import Position, error_position, in_editor
from dancecat_core.errors import QueryError
from dancecat_core.runner import preview_query

QUERY = "SELECT 1,\n  nosuch\nFROM {table}"
SYNTAX = "SELECT 1\nFROM {table}\nWHEREE 2 = 3"


def _message(runtime, params: ConnectionParams, sql: str) -> str:
    with pytest.raises(QueryError) as caught:
        preview_query(runtime, params, sql)
    return str(caught.value)


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def target(request, tmp_path, runtime) -> tuple[ConnectionParams, str]:
    if request.param == "postgresql":
        facts = request.getfixturevalue("pg_server")
        params = ConnectionParams(
            driver="postgresql", database="postgres", host=facts["host"], user=facts["user"]
        )
        return params, "pg_class"
    if request.param == "mysql":
        facts = request.getfixturevalue("mysql_server")
        params = ConnectionParams(
            driver="mysql", database="mysql", host=facts["host"], user=facts["user"]
        )
        return params, "user"
    path = request.getfixturevalue("sqlite_chinook")
    return ConnectionParams(
        driver="sqlite", database=str(path), files=runtime.file_rules()
    ), "Album"


def test_an_unknown_column_is_placed(runtime, target):
    params, table = target
    sql = QUERY.format(table=table)
    found = error_position(_message(runtime, params, sql), sql)
    if params.driver == "postgresql":
        assert found == Position(line=2, column=3)  # the server's error position
    else:  # MariaDB and SQLite name the column, not where it is
        assert found is None


def test_a_syntax_error_is_placed(runtime, target):
    params, table = target
    sql = SYNTAX.format(table=table)
    message = _message(runtime, params, sql)
    found = error_position(message, sql)
    # At "2" on each: pglast reads WHEREE as an alias, MariaDB says near '2 = 3' at line 3,
    # SQLite near "2".
    assert found == Position(line=3, column=8), message


def test_positions_in_the_editor_text():
    sent = "SELECT nosuch\nFROM t"
    typed = "\r\n\r\n  SELECT nosuch\r\nFROM t  "
    assert in_editor("x (character 8)", typed, sent) == Position(line=3, column=10)
    assert in_editor("near 't' at line 2", typed, sent) == Position(line=4, column=6)
    assert in_editor("no position here", typed, sent) is None
    # Hidden by clean_error: the line alone is known.
    assert error_position("near '[value]' at line 2", sent) == Position(line=2, column=1)
    # A token found twice places nothing.
    assert error_position('near "t": syntax error', "SELECT t FROM t") is None
    assert error_position("x (character 99)", sent) is None
