"""One statement per job, and on a read-only connection only a query, on every driver.

Real PostgreSQL, MariaDB and SQLite, through the API (preview and run), the console and the
drivers. Every attack is followed by a look at the server: the row is still there, no table
appeared, no file was written. "Refused before any byte is sent" is checked on the wire: the
driver talks to the real server through a recording TCP relay, and the attack's text never
crosses it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from pymysql.constants import CLIENT
from test_drivers import (
    CountingSink,
    my_execute,
    my_params,
    my_scalar,
    pg_execute,
    pg_params,
    pg_scalar,
    run,
    sqlite_params,
)
from test_web_helpers import make_app, make_user

from dancecat_core.errors import QueryError, ReadOnlyViolation
from dancecat_core.models import TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.statements import EMPTY, SEVERAL
from dancecat_plugins.mysql_driver import MysqlDriver
from dancecat_plugins.mysql_statements import SqlMode, parse, tokens
from dancecat_plugins.postgresql_driver import PostgresDriver
from dancecat_plugins.sqlite_driver import SqliteDriver

TIMEOUT = 10
READ_ONLY = r"^this connection is read-only: only a query \(SELECT, VALUES, TABLE or WITH"


def marker_file() -> str:
    return f"/tmp/dc-attack-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_victim(pg_database: dict) -> dict:
    pg_execute(pg_database, "CREATE TABLE victim (id int)", "INSERT INTO victim VALUES (1)")
    return pg_database


@pytest.fixture
def my_victim(mysql_database: dict) -> dict:
    my_execute(
        mysql_database,
        "CREATE TABLE victim (id int)",
        "INSERT INTO victim VALUES (1)",
        "CREATE PROCEDURE wipe() DELETE FROM victim",
    )
    return mysql_database


def pg_untouched(server: dict, *files: str) -> None:
    assert pg_scalar(server, "SELECT count(*) FROM victim") == 1
    assert pg_scalar(server, "SELECT to_regclass('pwned') IS NULL") is True
    for path in files:
        assert not os.path.exists(path), path


def my_untouched(server: dict, *files: str) -> None:
    assert my_scalar(server, "SELECT count(*) FROM victim") == 1
    for path in files:
        assert not os.path.exists(path), path


# -- the attack from the issue, through the API: preview and run ---------------------------


@pytest.fixture
def api(runtime):
    queued: list[int] = []
    return make_app(runtime, queued), make_user(runtime, "alice@example.com"), queued


def api_connection(app, user, driver: str, server: dict, read_only: bool = True) -> int:
    body = {
        "name": f"{driver}-{uuid.uuid4().hex[:6]}",
        "driver": driver,
        "host": server["host"],
        "port": server["port"],
        "user": server["user"],
        "database": server["database"],
        "read_only": read_only,
    }
    return app.post_json("/api/v1/connections", body, headers=user.auth).json["connection"]["id"]


def api_preview_error(app, user, connection_id: int, sql: str) -> str:
    body = {"connection_id": connection_id, "query": sql}
    answer = app.post_json("/api/v1/preview", body, headers=user.auth, status=422)
    return answer.json["error"]["message"]


def api_run(app, user, runtime, queued, connection_id: int, sql: str):
    body = {"name": f"job-{uuid.uuid4().hex[:6]}", "connection_id": connection_id, "query": sql}
    job = app.post_json("/api/v1/jobs", body, headers=user.auth).json["job"]
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=user.auth).json["tracker"]
    assert queued[-1] == tracker["id"]
    return execute_tracker(runtime, tracker["id"])


def issue_attack(target: str) -> str:
    return (
        "SELECT 1) AS q0; COMMIT; BEGIN READ WRITE; DELETE FROM victim; "
        f"COPY (SELECT 1) TO PROGRAM 'touch {target}'; SELECT * FROM (SELECT 1"
    )


@pytest.mark.parametrize("read_only", [True, False])
def test_closing_the_wrapper_runs_nothing_on_postgres(api, runtime, pg_victim, read_only):
    app, user, queued = api
    connection_id = api_connection(app, user, "postgresql", pg_victim, read_only)
    target = marker_file()
    message = api_preview_error(app, user, connection_id, issue_attack(target))
    assert message == 'syntax error at or near ")" (character 9)'
    outcome = api_run(app, user, runtime, queued, connection_id, issue_attack(target))
    assert outcome.status == TrackerStatus.FAILED
    assert outcome.error == message
    pg_untouched(pg_victim, target)


@pytest.mark.parametrize("driver", ["postgresql", "mysql"])
def test_two_statements_get_one_statement_per_job(api, runtime, pg_victim, my_victim, driver):
    app, user, queued = api
    server = pg_victim if driver == "postgresql" else my_victim
    for read_only in (True, False):
        connection_id = api_connection(app, user, driver, server, read_only)
        for sql in (
            "SELECT 1; DELETE FROM victim",
            "SELECT 1;\n-- then\nDELETE FROM victim;",
            "/* first */ SELECT 1 ; ; DELETE FROM victim -- last",
        ):
            assert api_preview_error(app, user, connection_id, sql) == SEVERAL
            outcome = api_run(app, user, runtime, queued, connection_id, sql)
            assert (outcome.status, outcome.error) == (TrackerStatus.FAILED, SEVERAL)
    (pg_untouched if driver == "postgresql" else my_untouched)(server)


def test_sqlite_two_statements_and_non_queries_through_the_api(api, runtime, sqlite_chinook):
    app, user, queued = api
    body = {"name": "chinook", "driver": "sqlite", "database": str(sqlite_chinook)}
    connection_id = app.post_json("/api/v1/connections", body, headers=user.auth).json[
        "connection"
    ]["id"]
    before = sqlite_chinook.read_bytes()
    assert api_preview_error(app, user, connection_id, "SELECT 1; DELETE FROM Genre") == SEVERAL
    for sql in ("DELETE FROM Genre", "VACUUM", "WITH g AS (SELECT 1) DELETE FROM Genre"):
        message = api_preview_error(app, user, connection_id, sql)
        assert message.startswith("this connection is read-only: only a query"), message
        outcome = api_run(app, user, runtime, queued, connection_id, sql)
        assert outcome.status == TrackerStatus.FAILED and outcome.error == message
    assert sqlite_chinook.read_bytes() == before


# -- sensible answers for blank text, trailing semicolons and comments ---------------------

FINE = [
    "SELECT 1 AS n",
    "SELECT 1 AS n;",
    "SELECT 1 AS n;;",
    "SELECT 1 AS n ; ;\n",
    "SELECT 1 AS n; -- done",
    "-- the answer\nSELECT 1 AS n",
    "/* c */ SELECT 1 AS n /* d */",
    "SELECT 1 AS n -- end",
    "SELECT 1 AS n /* end */;",
]
BLANK = [";", ";;", " ; ; ", "-- nothing", "/* nothing */", "/* a */ ; -- b"]


def test_blank_text_and_trailing_semicolons_on_every_driver(pg_victim, my_victim, sqlite_chinook):
    sessions = [
        PostgresDriver().connect(pg_params(pg_victim), timeout=TIMEOUT),
        MysqlDriver().connect(my_params(my_victim), timeout=TIMEOUT),
        SqliteDriver().connect(sqlite_params(sqlite_chinook), timeout=TIMEOUT),
    ]
    for session in sessions:
        with session:
            for sql in FINE:
                assert run(session, sql) == [[1]], (session, sql)
            for sql in BLANK:
                with pytest.raises(QueryError, match=f"^{EMPTY}$"):
                    run(session, sql)


def test_empty_text_through_the_api(api, pg_victim):
    app, user, _ = api
    connection_id = api_connection(app, user, "postgresql", pg_victim)
    for sql in (";;", "-- only a comment"):
        assert api_preview_error(app, user, connection_id, sql) == EMPTY


# -- PostgreSQL: only a query on a read-only connection, refused before a byte is sent ----


class Relay:
    """A TCP relay to a real server that records every byte the client sends.

    With ``freeze_on``, a connection whose client sends those bytes forwards nothing more to
    the server, sockets open: to the client, a server that stopped answering mid-query.
    """

    def __init__(self, port: int, freeze_on: bytes | None = None):
        self.port_to = port
        self.freeze_on = freeze_on
        self.sent = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.port_to))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    self.sent += data
                    if self.freeze_on and self.freeze_on in data:
                        threading.Event().wait()  # the server never gets it, never answers
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def relay_to() -> Iterator:
    relays: list[Relay] = []

    def make(port: int, freeze_on: bytes | None = None) -> Relay:
        relays.append(Relay(port, freeze_on))
        return relays[-1]

    yield make
    for relay in relays:
        relay.close()


def pg_not_queries(target: str) -> list[str]:
    return [
        "DELETE FROM victim",
        "  /* a comment first */ DELETE FROM victim",
        "WITH d AS (DELETE FROM victim RETURNING *) SELECT * FROM d",
        "WITH a AS (SELECT 1), d AS (UPDATE victim SET id = 2 RETURNING *) SELECT * FROM d",
        "SELECT * FROM (WITH d AS (DELETE FROM victim RETURNING *) SELECT * FROM d) AS s",
        "SELECT * INTO pwned FROM victim",
        "SELECT * FROM victim FOR UPDATE",
        "SELECT * FROM victim FOR KEY SHARE",
        f"COPY victim TO '{target}'",
        f"COPY (SELECT 1) TO PROGRAM 'touch {target}'",
        "EXPLAIN ANALYZE DELETE FROM victim",
        "CREATE TABLE pwned AS SELECT 1",
        "DO $$ BEGIN DELETE FROM victim; END $$",
        "SET default_transaction_read_only = off",
        "COMMIT",
        "BEGIN READ WRITE",
        "CALL nothing()",
        "SHOW search_path",
    ]


def test_postgres_read_only_refuses_non_queries_before_sending_them(pg_victim, relay_to):
    target = marker_file()
    relay = relay_to(pg_victim["port"])
    params = pg_params(pg_victim, port=relay.port)
    with PostgresDriver().connect(params, timeout=TIMEOUT) as session:
        for sql in pg_not_queries(target):
            with pytest.raises(ReadOnlyViolation, match=READ_ONLY):
                run(session, sql)
            with pytest.raises(ReadOnlyViolation, match=READ_ONLY):  # the COPY path too
                session.open_query(sql, timeout=5).copy_csv([0], CountingSink())
        assert run(session, "SELECT count(*) FROM victim") == [[1]]
    for sql in pg_not_queries(target):
        assert sql.encode() not in relay.sent, sql
    assert b"SELECT count(*) FROM victim" in relay.sent  # the relay does see what is sent
    pg_untouched(pg_victim, target)


def test_postgres_refusals_name_the_statement(pg_victim):
    expected = {
        "delete from victim": "not DELETE",
        "WITH d AS (DELETE FROM victim RETURNING *) SELECT * FROM d": "not DELETE inside WITH",
        "SELECT * INTO pwned FROM victim": "not SELECT ... INTO (it creates a table)",
        "SELECT 1 FROM victim FOR UPDATE": "not SELECT ... FOR UPDATE/SHARE (it locks rows)",
        "/* c */ COPY victim TO STDOUT": "not COPY",
    }
    with PostgresDriver().connect(pg_params(pg_victim), timeout=TIMEOUT) as session:
        for sql, ending in expected.items():
            with pytest.raises(ReadOnlyViolation) as caught:
                run(session, sql)
            assert str(caught.value).endswith(ending), caught.value


def test_postgres_queries_of_every_form_still_run(pg_victim):
    queries = {
        "SELECT id FROM victim": [[1]],
        "VALUES (1)": [[1]],
        "TABLE victim": [[1]],
        "WITH v AS (SELECT id FROM victim) SELECT id FROM v": [[1]],
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
        "SELECT count(*) FROM n": [[3]],
        "SELECT 1 UNION SELECT 1": [[1]],
        "(SELECT 1)": [[1]],
    }
    with PostgresDriver().connect(pg_params(pg_victim), timeout=TIMEOUT) as session:
        for sql, rows in queries.items():
            assert run(session, sql) == rows, sql
            cursor = session.open_query(sql, timeout=TIMEOUT)
            try:
                assert cursor.copy_csv([0], CountingSink()) == len(rows)
            finally:
                cursor.close()


# -- PostgreSQL: the parser and the server must read the same text the same way -----------

# Each is one query to both lexers; the value proves the server read the strings and
# comments where the parser did (else the text would hold several statements, or another
# value).
SAME_READING = {
    "SELECT E'a\\'; DELETE FROM victim; --' AS v": "a'; DELETE FROM victim; --",
    "SELECT E'\\\\' AS v -- '; DELETE FROM victim": "\\",
    "SELECT U&'!0041; DELETE FROM victim; --' UESCAPE '!' AS v": "A; DELETE FROM victim; --",
    "SELECT $a$ $$ ; DELETE FROM victim; $$ $a$ AS v": " $$ ; DELETE FROM victim; $$ ",
    "SELECT 'x' /* /* */ ; DELETE FROM victim; */ AS v": "x",
    "SELECT 'x' AS v -- ) AS q; DELETE FROM victim": "x",
    "SELECT 'a\\' AS v -- '; DELETE FROM victim": "a\\",
    "SELECT 'it''s' AS v": "it's",
    'SELECT \'x\' AS "v""; DELETE FROM victim; --"': "x",
}
# Text an older server reads differently than PostgreSQL 18's parser: refused, not sent.
READ_DIFFERENTLY = [
    "SELECT 0x' ) AS q; DELETE FROM victim; --' AS v",  # PG 15: 0 then the bit string x'..'
    "SELECT 1e' ) AS q; DELETE FROM victim; --' AS v",  # PG 15: 1 then E' ) AS ...'
    "SELECT 1 \\",
]


def test_postgres_parser_and_server_agree_on_strings_and_comments(pg_victim):
    with PostgresDriver().connect(pg_params(pg_victim), timeout=TIMEOUT) as session:
        for sql, value in SAME_READING.items():
            assert run(session, sql) == [[value]], sql
        for sql in READ_DIFFERENTLY:
            with pytest.raises(QueryError, match=r"^(syntax error|trailing junk|invalid hex)"):
                run(session, sql)
    pg_untouched(pg_victim)


def backslash_attack(target: str) -> str:
    """One query where backslashes are plain characters, four statements where they escape."""
    return (
        "SELECT 'a\\' || ' ) AS q0; COMMIT; BEGIN READ WRITE; DELETE FROM victim; "
        f"COPY (SELECT 1) TO PROGRAM $$touch {target}$$; SELECT * FROM (SELECT 1 -- ' AS v"
    )


def test_postgres_database_without_standard_strings_cannot_split_a_query(api, runtime, pg_victim):
    """``standard_conforming_strings = off`` as the database's default changes nothing."""
    app, user, queued = api
    pg_execute(
        pg_victim,
        f'ALTER DATABASE "{pg_victim["database"]}" SET standard_conforming_strings = off',
        f'ALTER DATABASE "{pg_victim["database"]}" SET backslash_quote = on',
    )
    target = marker_file()
    connection_id = api_connection(app, user, "postgresql", pg_victim)
    body = {"connection_id": connection_id, "query": backslash_attack(target)}
    preview = app.post_json("/api/v1/preview", body, headers=user.auth).json
    assert preview["rows"] == [["a\\ ) AS q0; COMMIT; BEGIN READ WRITE; DELETE FROM victim; "
        f"COPY (SELECT 1) TO PROGRAM $$touch {target}$$; SELECT * FROM (SELECT 1 -- "]]  # fmt: skip
    outcome = api_run(app, user, runtime, queued, connection_id, backslash_attack(target))
    assert outcome.status == TrackerStatus.SUCCESS, outcome.error
    pg_untouched(pg_victim, target)


def test_postgres_a_folded_function_cannot_change_lexing_between_statements(pg_victim):
    """A function the planner runs while describing turns backslash escapes on for the session;
    the COPY or cursor statement that follows still reads the text as the parser did."""
    pg_execute(
        pg_victim,
        "CREATE FUNCTION escapes_on() RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM set_config('standard_conforming_strings', 'off', false); RETURN 'x'; END $$",
    )
    target = marker_file()
    rows_attack = backslash_attack(target).replace("SELECT 'a", "SELECT escapes_on() AS f, 'a")
    copy_attack = (  # closes COPY's own wrapper, then runs what it likes
        "SELECT escapes_on() AS f, 'a\\' || ' ) AS q0(c0, c1)) TO STDOUT; COMMIT; "
        f"BEGIN READ WRITE; DELETE FROM victim; COPY (SELECT 1) TO PROGRAM $$touch {target}$$; "
        "COPY (SELECT * FROM (SELECT 1, 2 -- ' AS v"
    )
    with PostgresDriver().connect(pg_params(pg_victim), timeout=TIMEOUT) as session:
        cursor = session.open_query(copy_attack, timeout=TIMEOUT)
        try:
            assert cursor.copy_csv([0, 1], CountingSink()) == 1
        finally:
            cursor.close()
        assert len(run(session, rows_attack)) == 1
    pg_untouched(pg_victim, target)


def test_postgres_text_that_is_not_text(pg_victim):
    with PostgresDriver().connect(pg_params(pg_victim), timeout=TIMEOUT) as session:
        with pytest.raises(QueryError, match="NUL character"):
            run(session, "SELECT 1\x00; DELETE FROM victim")
        with pytest.raises(QueryError, match="not valid text"):
            run(session, "SELECT '\ud800'; DELETE FROM victim")
    pg_untouched(pg_victim)


def test_postgres_one_query_cannot_leave_its_read_only_transaction(pg_victim):
    pg_execute(
        pg_victim,
        "CREATE FUNCTION wipe() RETURNS int LANGUAGE plpgsql AS "
        "$$ BEGIN DELETE FROM victim; RETURN 1; END $$",
    )
    inside = [
        "SELECT set_config('transaction_read_only', 'off', false), wipe()",
        "SELECT set_config('default_transaction_read_only', 'off', false), wipe()",
        "SELECT query_to_xml('DELETE FROM victim RETURNING 1', false, false, '')",
        "SELECT wipe()",
    ]
    with PostgresDriver().connect(pg_params(pg_victim), timeout=TIMEOUT) as session:
        for sql in inside:
            with pytest.raises(QueryError):
                run(session, sql)
        # A session setting a query changes stays in this session only; each run opens its own.
        assert run(session, "SELECT set_config('default_transaction_read_only', 'off', false)")
        with pytest.raises(ReadOnlyViolation):
            run(session, "SELECT wipe()")
        assert run(session, "SELECT current_setting('transaction_read_only')") == [["on"]]
    with PostgresDriver().connect(pg_params(pg_victim), timeout=TIMEOUT) as session:
        assert run(session, "SELECT current_setting('default_transaction_read_only')") == [["on"]]
    pg_untouched(pg_victim)


# -- MySQL / MariaDB -------------------------------------------------------------------------


def my_not_queries(target: str) -> list[str]:
    return [
        "DELETE FROM victim",
        "/*!50000 DELETE FROM victim*/",
        "/*!DELETE FROM victim*/",
        "/*M!100000 DELETE FROM victim */",
        "/*!99999 DELETE FROM victim */ SELECT 1",
        "# comment\nDELETE FROM victim",
        "-- comment\nDELETE FROM victim",
        f"SELECT * FROM victim INTO OUTFILE '{target}'",
        f"SELECT 1 INTO DUMPFILE '{target}'",
        f"SELECT 1 /*!INTO OUTFILE '{target}'*/",
        f"(SELECT 1) INTO OUTFILE '{target}'",
        "SELECT 1 INTO @x",
        "SELECT id FROM victim INTO @x",
        "CALL wipe()",
        "DO (SELECT count(*) FROM victim)",
        "HANDLER victim OPEN",
        "SET @a = 1",
        "SET SESSION TRANSACTION READ WRITE",
        f"LOAD DATA INFILE '{target}' INTO TABLE victim",
        "WITH x AS (SELECT 1) DELETE FROM victim",
        "REPLACE INTO victim VALUES (2)",
        "SHOW TABLES",
    ]


def test_mysql_read_only_refuses_non_queries_before_sending_them(my_victim, relay_to):
    target = marker_file()
    relay = relay_to(my_victim["port"])
    with MysqlDriver().connect(my_params(my_victim, port=relay.port), timeout=TIMEOUT) as session:
        for sql in my_not_queries(target):
            with pytest.raises(ReadOnlyViolation, match=READ_ONLY):
                run(session, sql)
        assert run(session, "SELECT count(*) FROM victim") == [[1]]
    for sql in my_not_queries(target):
        assert sql.encode() not in relay.sent, sql
    assert b"SELECT count(*) FROM victim" in relay.sent
    my_untouched(my_victim, target)


def test_mysql_queries_of_every_form_still_run(my_victim):
    queries = {
        "SELECT id FROM victim": [[1]],
        "VALUES (1)": [[1]],
        "WITH v AS (SELECT id FROM victim) SELECT id FROM v": [[1]],
        "WITH v AS (SELECT id FROM victim) (SELECT id FROM v)": [[1]],
        "(SELECT 1) UNION (SELECT 1)": [[1]],
        "SELECT 'into outfile' AS `into`": [["into outfile"]],
        "SELECT 1 /* INTO OUTFILE '/tmp/x' */": [[1]],
        "SELECT 'a;b'": [["a;b"]],
        "SELECT `id` FROM `victim` -- ; DELETE FROM victim": [[1]],
    }
    with MysqlDriver().connect(my_params(my_victim), timeout=TIMEOUT) as session:
        for sql, rows in queries.items():
            assert run(session, sql) == rows, sql


def test_mysql_protocol_refuses_two_statements_without_the_driver(my_victim):
    """The proof of one statement: the connection has no CLIENT.MULTI_STATEMENTS."""
    with MysqlDriver().connect(my_params(my_victim, read_only=False), timeout=TIMEOUT) as session:
        connection = session.connection
        assert not connection.client_flag & CLIENT.MULTI_STATEMENTS
        with connection.cursor() as cursor, pytest.raises(pymysql.err.ProgrammingError) as caught:
            cursor.execute("SELECT 1; DELETE FROM victim")
        assert caught.value.args[0] == 1064  # a syntax error: the server never ran the DELETE
    my_untouched(my_victim)


@pytest.mark.parametrize(
    "sql_mode", ["", "NO_BACKSLASH_ESCAPES", "ANSI_QUOTES", "ANSI_QUOTES,NO_BACKSLASH_ESCAPES"]
)
def test_mysql_lexer_reads_strings_as_the_server_does(my_victim, sql_mode):
    """For each text, the number of result columns the server returns (under this sql_mode)
    is the number of top-level commas the lexer sees plus one: same strings, same ends."""
    texts = [
        "SELECT 'a\\', 'b' -- '",
        'SELECT "a\\", \'b\' -- "',
        "SELECT 'a''b', 'c'",
        'SELECT "a""b", \'c\'',
        "SELECT `a``b` FROM (SELECT 1 AS `a``b`) AS t",
        "SELECT 1 /* ', ' */, 2",
        "SELECT 1 # ', '\n, 2",
        "SELECT 1 -- ', '\n, 2",
        "SELECT 1 --1, 2",
        "SELECT 1 /*!, 2 */",
        "SELECT 1 /*M!, 2 */",
        "SELECT 'x\\\\', 'y'",
    ]
    mode = SqlMode.parse(sql_mode)
    connection = pymysql.connect(
        host=my_victim["host"], port=my_victim["port"], user=my_victim["user"],
        database=my_victim["database"],
    )  # fmt: skip
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = %s", (sql_mode,))
            for text in texts:
                try:
                    cursor.execute(text)
                    columns = len(cursor.description)
                except pymysql.MySQLError:
                    columns = 0  # the server could not read it: the lexer must not matter
                (statement,) = parse(text, mode)
                if columns:
                    assert statement.text == text
                    commas = sum(
                        1
                        for t in statement_tokens(text, mode)
                        if t.kind == "other" and t.text == ","
                    )
                    assert commas + 1 == columns, (text, sql_mode)
    finally:
        connection.close()


def statement_tokens(text: str, mode: SqlMode):
    """The tokens outside brackets."""
    depth = 0
    for token in tokens(text, mode):
        depth += token.text == "(" and token.kind == "other"
        depth -= token.text == ")" and token.kind == "other"
        if depth == 0:
            yield token


def test_mysql_session_reads_its_sql_mode(my_victim):
    with MysqlDriver().connect(my_params(my_victim), timeout=TIMEOUT) as session:
        server_mode = run(session, "SELECT @@SESSION.sql_mode")[0][0]
        assert session._mode == SqlMode.parse(server_mode)


# -- SQLite ----------------------------------------------------------------------------------


def test_sqlite_read_only_compiles_before_running(sqlite_chinook: Path, tmp_path: Path):
    attached = tmp_path / "attached.sqlite"
    refused = {
        "DELETE FROM Genre": "DELETE",
        "VACUUM": "VACUUM",
        "REINDEX": "REINDEX",
        "ANALYZE": "ANALYZE",
        "PRAGMA query_only = OFF": "PRAGMA",
        "PRAGMA table_info(Genre)": "PRAGMA",
        f"ATTACH '{attached}' AS other": "ATTACH",
        "WITH g AS (SELECT 1) DELETE FROM Genre": "WITH ... DELETE",
        "WITH g AS (SELECT 1) INSERT INTO Genre SELECT 99, 'x' FROM g": "WITH ... INSERT",
        "BEGIN": "BEGIN",
        "CREATE TEMP TABLE t AS SELECT 1": "CREATE",
    }
    before = sqlite_chinook.read_bytes()
    with SqliteDriver().connect(sqlite_params(sqlite_chinook), timeout=TIMEOUT) as session:
        for sql, command in refused.items():
            with pytest.raises(ReadOnlyViolation, match=READ_ONLY) as caught:
                run(session, sql)
            assert str(caught.value).endswith(f"not {command}"), caught.value
        with pytest.raises(QueryError, match=f"^{SEVERAL}$"):
            run(session, "SELECT 1; DELETE FROM Genre")
        for _ in range(2):  # the second time the sqlite3 module reuses the compiled text
            assert run(session, "SELECT count(*) FROM Genre") == [[25]]
            assert run(session, "SELECT count(*) FROM pragma_table_info('Genre')") == [[2]]
            assert run(session, "SELECT count(*) FROM json_each('[1, 2]')") == [[2]]
        assert run(session, "VALUES (1)") == [[1]]
    assert sqlite_chinook.read_bytes() == before
    assert not attached.exists()


# -- the console -----------------------------------------------------------------------------


def console(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", *args],
        env={**os.environ, "DANCECAT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_console_job_run_refuses_the_attack(tmp_path: Path, pg_victim, my_victim):
    home = tmp_path / "home"
    assert console(home, "init").returncode == 0
    target = marker_file()
    for name, driver, server in (("pg", "postgresql", pg_victim), ("my", "mysql", my_victim)):
        added = console(
            home, "connection", "add", name, "--driver", driver, "--host", server["host"],
            "--port", str(server["port"]), "--user", server["user"],
            "--database", server["database"],
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        attacks = {
            "attack": issue_attack(target),
            "two": "SELECT 1; DELETE FROM victim",
            "hidden": "/*!50000 DELETE FROM victim*/",
        }
        for job, sql in attacks.items():
            job_name = f"{name}-{job}"
            created = console(home, "job", "add", job_name, "--connection", name, "--sql", sql)
            assert created.returncode == 0, created.stderr
            done = console(home, "job", "run", job_name)
            assert done.returncode == 1
            assert "Failed" in done.stdout
            errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
            assert len(errors) == 1, done.stderr
    pg_untouched(pg_victim, target)
    my_untouched(my_victim, target)
