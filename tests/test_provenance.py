"""Credentials reached through aliases, views, expressions and whole rows never leave.

Each attack is a query a user with read access to ``users`` might try to get the plaintext
``users.user_password`` out under an innocent name. It runs for real on PostgreSQL, MariaDB
and SQLite, through the API preview and through the runner into CSV, JSON and XLSX, and the
secret must appear in none of them. The secret has no credential shape, and as a JSON key
``user_password`` is not one the value masks know, so only removing the column keeps it
out. A second table of queries wraps a shaped secret (a bcrypt hash in
an innocently named column) in something the tracer cannot see into; its values must be
masked and the result's note must say the column could not be traced.
"""

from __future__ import annotations

import io
import sqlite3
import uuid
from collections.abc import Iterator

import openpyxl
import pytest
from conftest import _mariadb, _psql, unique_name
from test_web_helpers import make_app, make_user, sign_in

from dancecat_core import migrations
from dancecat_core.drivers import ConnectionParams
from dancecat_core.models import TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import build_runtime
from dancecat_core.settings import load_settings

SECRET = f"hunter2-{uuid.uuid4().hex[:12]}"
HASH = "$2b$12$" + "R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
UNTRACED = "could not trace"

# One schema, spelled per database: users with a plaintext password, a view that renames
# it, and memo.note holding a bcrypt hash under an innocent name.
PG_SCHEMA = f"""
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE TABLE users (id int, name text, user_password text);
INSERT INTO users VALUES (1, 'ann', '{SECRET}'), (2, 'bob', '{SECRET}');
CREATE TABLE memo (id int, note text);
INSERT INTO memo VALUES (1, '{HASH}');
CREATE VIEW people AS SELECT id, name, user_password AS login_note FROM users;
CREATE VIEW people2 (who, what) AS SELECT name, login_note FROM people;
CREATE MATERIALIZED VIEW frozen AS SELECT id, user_password AS x FROM users;
CREATE FUNCTION get_users() RETURNS SETOF users LANGUAGE sql AS 'SELECT * FROM users';
CREATE FUNCTION pw(i int) RETURNS text LANGUAGE sql
    AS 'SELECT user_password FROM users WHERE id = i';
CREATE FUNCTION "Pw"(i int) RETURNS text LANGUAGE sql
    AS 'SELECT user_password FROM users WHERE id = i';
CREATE FUNCTION pw_outer(i int) RETURNS text LANGUAGE sql AS 'SELECT pw(i)';
CREATE FUNCTION public.upper(i int) RETURNS text LANGUAGE sql
    AS 'SELECT user_password FROM users WHERE id = i';
CREATE FUNCTION memo_note() RETURNS text LANGUAGE sql AS 'SELECT note FROM memo LIMIT 1';
CREATE FUNCTION one_user() RETURNS SETOF users LANGUAGE plpgsql AS $$
BEGIN RETURN QUERY EXECUTE 'SELECT * FROM us' || 'ers'; END $$;
CREATE FUNCTION hidden() RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN EXECUTE 'SELECT note FROM ' || 'me' || 'mo LIMIT 1' INTO r; RETURN r; END $$;
"""

MY_SCHEMA = f"""
CREATE TABLE users (id INT, name TEXT, user_password TEXT);
INSERT INTO users VALUES (1, 'ann', '{SECRET}'), (2, 'bob', '{SECRET}');
CREATE TABLE memo (id INT, note TEXT);
INSERT INTO memo VALUES (1, '{HASH}');
CREATE VIEW people AS SELECT id, name, user_password AS login_note FROM users;
CREATE VIEW people2 (who, what) AS SELECT name, login_note FROM people;
CREATE FUNCTION pw(i INT) RETURNS TEXT READS SQL DATA
    RETURN (SELECT user_password FROM users WHERE id = i);
CREATE FUNCTION memo_note() RETURNS TEXT READS SQL DATA
    RETURN (SELECT note FROM memo LIMIT 1);
"""

SQLITE_SCHEMA = f"""
CREATE TABLE users (id INTEGER, name TEXT, user_password TEXT);
INSERT INTO users VALUES (1, 'ann', '{SECRET}'), (2, 'bob', '{SECRET}');
CREATE TABLE memo (id INTEGER, note TEXT);
INSERT INTO memo VALUES (1, '{HASH}');
CREATE VIEW people AS SELECT id, name, user_password AS login_note FROM users;
CREATE VIEW people2 (who, what) AS SELECT name, login_note FROM people;
"""

# Attacks every database must stop (standard SQL, or close enough for all three).
COMMON = [
    "SELECT * FROM (SELECT user_password AS x FROM users) d",
    "SELECT d.x FROM (SELECT id, user_password AS x FROM users) AS d WHERE d.id = 1",
    "WITH c AS (SELECT user_password AS x FROM users) SELECT x FROM c",
    "WITH c (x) AS (SELECT user_password FROM users) SELECT c.x AS y FROM c",
    "WITH a AS (SELECT user_password AS p FROM users), b AS (SELECT p AS q FROM a) SELECT q FROM b",
    "WITH RECURSIVE r (n, x) AS (SELECT 1, user_password FROM users WHERE id = 1"
    " UNION ALL SELECT n + 1, x FROM r WHERE n < 2) SELECT x FROM r",
    "WITH RECURSIVE r (n, x) AS (SELECT 1, CAST('start' AS CHAR(100)) UNION ALL SELECT n + 1,"
    " CAST((SELECT user_password FROM users WHERE id = 1) AS CHAR(100)) FROM r WHERE n < 2)"
    " SELECT x FROM r",
    "SELECT 'innocent' AS x UNION ALL SELECT user_password FROM users",
    "SELECT name AS x FROM users UNION SELECT user_password FROM users",
    "SELECT x FROM (SELECT 'a' AS x UNION ALL SELECT user_password FROM users) u",
    "SELECT user_password AS x FROM users INTERSECT SELECT user_password FROM users",
    "SELECT login_note FROM people",
    "SELECT * FROM people",
    "SELECT what FROM people2",
    "SELECT coalesce(user_password, '') AS c FROM users",
    "SELECT upper(user_password) AS x FROM users",
    "SELECT lower(user_password) AS x FROM users",
    "SELECT CASE WHEN id > 0 THEN user_password END AS x FROM users",
    "SELECT (SELECT user_password FROM users WHERE id = 1) AS x",
    "SELECT name, (SELECT u2.user_password FROM users u2 WHERE u2.id = u.id) AS x FROM users u",
    "SELECT substr(user_password, 1, 100) AS x FROM users",
    "SELECT max(user_password) AS x FROM users",
    "SELECT x FROM (SELECT * FROM (SELECT user_password AS x FROM users) a) b",
]

PG_ONLY = [
    "SELECT u FROM users u",
    "SELECT users FROM users",
    "SELECT u::text FROM users u",
    "SELECT CAST(u AS text) AS t FROM users u",
    "SELECT row_to_json(u) AS j FROM users u",
    "SELECT to_jsonb(u) AS j FROM users u",
    "SELECT json_agg(u) AS j FROM users u",
    "SELECT jsonb_agg(x.*) AS j FROM users x",
    "SELECT array_agg(u) AS a FROM users u",
    "SELECT hstore(u) AS h FROM users u",
    "SELECT concat(u.*) AS c FROM users u",
    "SELECT format('%s', u) AS f FROM users u",
    "SELECT ROW(u.*) AS r FROM users u",
    "SELECT ROW(user_password) AS r FROM users",
    "SELECT t FROM (SELECT * FROM users) t",
    "SELECT u FROM public.users u",
    "SELECT string_agg(user_password, ',') AS s FROM users",
    "SELECT user_password || '' AS x FROM users",
    "SELECT json_build_object('k', user_password) AS j FROM users",
    "SELECT first_value(user_password) OVER () AS x FROM users",
    "SELECT g FROM get_users() g",
    "SELECT user_password AS x FROM get_users()",
    "SELECT x FROM frozen",
    "SELECT x FROM unnest(ARRAY(SELECT user_password FROM users)) AS x",
    "SELECT pw(1) AS x",
    "SELECT pw_outer(1) AS x",
    'SELECT "Pw"(1) AS x',
    "SELECT public.upper(1) AS x",
    # Its body hides the table; its type, users, does not (the catalog's composite fields).
    "SELECT one_user() AS x",
    "SELECT ARRAY(SELECT one_user()) AS x",
    "SELECT set_config('my.v', user_password, false) AS a, current_setting('my.v') AS b FROM users",
    "SELECT current_setting('my.v', true) AS x FROM users"
    " WHERE set_config('my.v', user_password, false) IS NOT NULL",
    # Text the parser does not read: everything in reach counts.
    "SELECT xmlserialize(content user_password::xml AS text) AS x FROM users",
    "SELECT name, public.upper(id) AS x FROM users",
]

# PostgreSQL itself names the source column through these (and through COMMON's derived
# tables and CTEs), or the column keeps its own name, so they passed before the tracer too:
# guards, not new attacks.
PG_GUARDS = [
    "SELECT (u).user_password AS x FROM users u",
    "SELECT l.p FROM users u, LATERAL (SELECT u.user_password AS p) l",
    "WITH c AS MATERIALIZED (SELECT user_password AS x FROM users) SELECT x FROM c",
    'SELECT "x" FROM (SELECT "user_password" AS "x" FROM "users") AS "d"',
    "TABLE users",
    "SELECT X FROM (SELECT USER_PASSWORD AS X FROM USERS) D",
    # A * the trace cannot line up (USING merges a column): everything in reach counts.
    "SELECT * FROM users JOIN memo USING (id)",
]

# Caught by the column's own name before the tracer too (MariaDB 10.11 has no TABLE).
MY_GUARDS = ["SELECT * FROM users", "SELECT u.* FROM users u"]

MY_ONLY = [
    "SELECT CONCAT(user_password) AS x FROM users",
    "SELECT CONCAT_WS('-', name, user_password) AS x FROM users",
    "SELECT JSON_OBJECT('x', user_password) AS j FROM users",
    "SELECT JSON_ARRAYAGG(user_password) AS j FROM users",
    "SELECT GROUP_CONCAT(user_password) AS g FROM users",
    "SELECT GROUP_CONCAT(user_password SEPARATOR ';') AS g FROM users",
    "SELECT IF(id > 0, user_password, '') AS x FROM users",
    "SELECT pw(1) AS x",
    "SELECT `x` FROM (SELECT `user_password` AS `x` FROM `users`) AS `d`",
    "SELECT x FROM (SELECT user_password AS x FROM users) d LIMIT 1",
    "SELECT @v := user_password AS a, @v AS x FROM users",
    "SELECT CONCAT(@v := user_password, '') AS a, CONCAT(@v) AS x FROM users",
]

SQLITE_ONLY = [
    "SELECT user_password AS p FROM users",
    "SELECT user_password || '' AS x FROM users",
    "SELECT json_object('p', user_password) AS j FROM users",
    "SELECT group_concat(user_password) AS g FROM users",
    "SELECT value FROM json_each((SELECT json_group_array(user_password) FROM users))",
    "SELECT printf('%s', user_password) AS x FROM users",
]

ATTACKS = [
    *(("postgresql", sql) for sql in [*COMMON, *PG_ONLY, *PG_GUARDS]),
    *(("mysql", sql) for sql in [*COMMON, *MY_ONLY, *MY_GUARDS]),
    *(("sqlite", sql) for sql in [*COMMON, *SQLITE_ONLY]),
]

# The shaped secret behind something the tracer cannot see into: kept, masked, noted.
UNTRACEABLE = [
    ("postgresql", "SELECT hidden() AS x"),
    ("postgresql", "SELECT xmlserialize(content note::xml AS text) AS x FROM memo"),
    ("mysql", "SELECT memo_note() AS x"),
    ("postgresql", "SELECT memo_note() AS x"),
]


@pytest.fixture(scope="module")
def databases(request, tmp_path_factory) -> Iterator[dict[str, dict]]:
    """The schema on each database: PostgreSQL, MariaDB and SQLite, once for the module."""
    pg = request.getfixturevalue("pg_server")
    my = request.getfixturevalue("mysql_server")
    pg_name, my_name = unique_name("dc_prov"), unique_name("dc_prov")
    _psql("-c", f'CREATE DATABASE "{pg_name}"')
    _psql(database=pg_name, stdin=PG_SCHEMA)
    _mariadb("-e", f"CREATE DATABASE `{my_name}` CHARACTER SET utf8mb4")
    _mariadb(my_name, stdin=MY_SCHEMA)
    path = tmp_path_factory.mktemp("prov") / "users.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(SQLITE_SCHEMA)
    connection.close()
    yield {
        "postgresql": {**pg, "database": pg_name},
        "mysql": {**my, "database": my_name},
        "sqlite": {"database": str(path)},
    }
    _psql("-c", f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    _mariadb("-e", f"DROP DATABASE IF EXISTS `{my_name}`")


@pytest.fixture(scope="module")
def world(databases, tmp_path_factory):
    """A DanceCat with one user and a connection to each database."""
    home = tmp_path_factory.mktemp("home")
    # The attacked SQLite file lives in the run's temporary folder.
    allowed = str(tmp_path_factory.getbasetemp())
    runtime = build_runtime(
        load_settings(environ={"DANCECAT_HOME": str(home), "DANCECAT_SQLITE_ALLOWED_DIRS": allowed})
    )
    migrations.upgrade(runtime.engine)
    alice = make_user(runtime, "alice@example.com")
    app = make_app(runtime)
    connections = {}
    for kind, facts in databases.items():
        body = {"name": kind, "driver": kind, "read_only": True, **facts}
        connections[kind] = app.post_json("/api/v1/connections", body, headers=alice.auth).json[
            "connection"
        ]["id"]
    browser = make_app(runtime)
    csrf = sign_in(browser, "alice@example.com")
    yield runtime, app, alice, connections, (browser, csrf)
    runtime.engine.dispose()


def _xlsx_text(body: bytes) -> str:
    book = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    text = repr([list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets])
    book.close()
    return text


def outputs(world, kind: str, sql: str) -> dict[str, str]:
    """Every way a result leaves: the API and page previews, a real run's CSV, JSON, XLSX."""
    runtime, app, alice, connections, (browser, csrf) = world
    form = {"csrf_token": csrf, "connection_id": str(connections[kind]), "query": sql}
    found = {
        "page preview": browser.post("/jobs/preview", form).text,
        "preview": app.post_json(
            "/api/v1/preview", {"connection_id": connections[kind], "query": sql},
            headers=alice.auth,
        ).text,
    }  # fmt: skip
    job = app.post_json(
        "/api/v1/jobs",
        {"name": f"j{uuid.uuid4().hex[:8]}", "connection_id": connections[kind], "query": sql},
        headers=alice.auth,
    ).json["job"]
    tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
    outcome = execute_tracker(runtime, tracker["id"])
    assert outcome.status == TrackerStatus.SUCCESS, outcome
    for fmt in ("csv", "json", "xlsx"):
        body = app.get(f"/api/v1/trackers/{tracker['id']}/result.{fmt}", headers=alice.auth).body
        found[fmt] = _xlsx_text(body) if fmt == "xlsx" else body.decode()
    return found


@pytest.mark.parametrize(("kind", "sql"), ATTACKS)
def test_credential_reached_indirectly_leaks_nowhere(world, kind, sql):
    for label, text in outputs(world, kind, sql).items():
        assert SECRET.lower() not in text.lower(), f"the user_password leaked through {label}"


@pytest.mark.parametrize(("kind", "sql"), UNTRACEABLE)
def test_untraceable_column_is_masked_and_the_note_says_so(world, kind, sql):
    found = outputs(world, kind, sql)
    for label, text in found.items():
        assert HASH not in text, f"the hash leaked through {label}"
        if label != "json":  # JSON is the rows alone
            assert "[masked]" in text, label
    assert UNTRACED in found["preview"]
    assert UNTRACED in found["page preview"]
    assert UNTRACED in found["xlsx"]  # the notes sheet


# Everyday reports on a database without credentials keep every column, with no note.
CHINOOK = {
    "postgresql": [
        "SELECT * FROM album",
        "SELECT a.name, count(*) AS albums FROM artist a JOIN album al"
        " ON al.artist_id = a.artist_id GROUP BY a.name ORDER BY albums DESC LIMIT 5",
        "WITH top AS (SELECT customer_id, sum(total) AS spent FROM invoice GROUP BY customer_id)"
        " SELECT c.first_name || ' ' || c.last_name AS customer, t.spent"
        " FROM top t JOIN customer c USING (customer_id)",
        "SELECT name FROM artist UNION ALL SELECT title FROM album",
        "SELECT t.name, rank() OVER (PARTITION BY t.genre_id ORDER BY t.milliseconds DESC)"
        " FROM track t",
        "SELECT e.*, m.last_name AS manager FROM employee e"
        " LEFT JOIN employee m ON m.employee_id = e.reports_to",
        "SELECT to_char(invoice_date, 'YYYY-MM') AS month, round(sum(total), 2)"
        " FROM invoice GROUP BY 1",
        "SELECT g.name, (SELECT count(*) FROM track t WHERE t.genre_id = g.genre_id) AS tracks"
        " FROM genre g",
        "SELECT * FROM (SELECT billing_country, count(*) AS n FROM invoice GROUP BY 1) s"
        " WHERE n > 10",
        "SELECT row_to_json(a) AS j, a FROM artist a LIMIT 3",
        "SELECT n FROM generate_series(1, 3) AS g(n)",
        "SELECT coalesce(company, 'none') AS company FROM customer",
    ],
    "mysql": [
        "SELECT * FROM Album",
        "SELECT a.Name, COUNT(*) AS albums FROM Artist a JOIN Album al"
        " ON al.ArtistId = a.ArtistId GROUP BY a.Name ORDER BY albums DESC LIMIT 5",
        "WITH top AS (SELECT CustomerId, SUM(Total) AS spent FROM Invoice GROUP BY CustomerId)"
        " SELECT CONCAT(c.FirstName, ' ', c.LastName) AS customer, t.spent"
        " FROM top t JOIN Customer c USING (CustomerId)",
        "SELECT Name FROM Artist UNION ALL SELECT Title FROM Album",
        "SELECT t.Name, RANK() OVER (PARTITION BY t.GenreId ORDER BY t.Milliseconds DESC) AS r"
        " FROM Track t",
        "SELECT e.*, m.LastName AS manager FROM Employee e"
        " LEFT JOIN Employee m ON m.EmployeeId = e.ReportsTo",
        "SELECT DATE_FORMAT(InvoiceDate, '%Y-%m') AS month, ROUND(SUM(Total), 2) AS total"
        " FROM Invoice GROUP BY 1",
        "SELECT g.Name, (SELECT COUNT(*) FROM Track t WHERE t.GenreId = g.GenreId) AS tracks"
        " FROM Genre g",
        "SELECT * FROM (SELECT BillingCountry, COUNT(*) AS n FROM Invoice GROUP BY 1) s"
        " WHERE n > 10",
        "SELECT JSON_OBJECT('name', Name) AS j FROM Artist LIMIT 3",
        "SELECT IFNULL(Company, 'none') AS company FROM Customer",
    ],
    "sqlite": [
        "SELECT * FROM Album",
        "SELECT a.Name, count(*) AS albums FROM Artist a JOIN Album al"
        " ON al.ArtistId = a.ArtistId GROUP BY a.Name ORDER BY albums DESC LIMIT 5",
        "WITH top AS (SELECT CustomerId, sum(Total) AS spent FROM Invoice GROUP BY CustomerId)"
        " SELECT c.FirstName || ' ' || c.LastName AS customer, t.spent"
        " FROM top t JOIN Customer c USING (CustomerId)",
        "SELECT Name FROM Artist UNION ALL SELECT Title FROM Album",
        "SELECT t.Name, rank() OVER (PARTITION BY t.GenreId ORDER BY t.Milliseconds DESC) AS r"
        " FROM Track t",
        "SELECT e.*, m.LastName AS manager FROM Employee e"
        " LEFT JOIN Employee m ON m.EmployeeId = e.ReportsTo",
        "SELECT strftime('%Y-%m', InvoiceDate) AS month, round(sum(Total), 2) AS total"
        " FROM Invoice GROUP BY 1",
        "SELECT g.Name, (SELECT count(*) FROM Track t WHERE t.GenreId = g.GenreId) AS tracks"
        " FROM Genre g",
        "SELECT * FROM (SELECT BillingCountry, count(*) AS n FROM Invoice GROUP BY 1) s"
        " WHERE n > 10",
        "SELECT value FROM json_each('[1, 2]')",
        "SELECT ifnull(Company, 'none') AS company FROM Customer",
    ],
}


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_chinook_reports_keep_every_column_and_need_no_note(kind, request, runtime):
    if kind == "sqlite":
        facts = {"database": str(request.getfixturevalue("sqlite_chinook"))}
    else:
        facts = request.getfixturevalue("pg_chinook" if kind == "postgresql" else "mysql_chinook")
    params = ConnectionParams(
        driver=kind, database=facts["database"], host=facts.get("host"),
        port=facts.get("port"), user=facts.get("user"), password=None, read_only=True,
        files=runtime.file_rules(),
    )  # fmt: skip
    driver = runtime.driver(kind)
    for sql in CHINOOK[kind]:
        with driver.connect(params, timeout=10) as session:
            cursor = session.open_query(sql, timeout=30, limit=5)
            try:
                plan = runtime.scrub_plan(cursor.columns)
                assert cursor.columns, sql
                assert plan.removed == (), (sql, plan.describe())
                assert plan.untraced == [], (sql, plan.untraced)
                if sql == CHINOOK[kind][0]:  # SELECT * FROM album: traced, not guessed
                    assert all(len(c.derived_from) == 1 for c in cursor.columns), cursor.columns
            finally:
                cursor.close()


# PostgreSQL's shortcut: when the server names a plain table column as the source of every
# result column, the tracer is not asked (``postgresql_driver._columns``). It must give
# what the tracer gives, and never stand in for it where a column comes from elsewhere.

DIRECT = [
    "SELECT * FROM users",
    "SELECT user_password AS innocent, id FROM users",
    "SELECT x.a FROM (SELECT user_password AS a FROM users) AS x",
    "WITH c AS (SELECT user_password FROM users) SELECT user_password AS note FROM c",
    "SELECT u.name, m.note FROM users AS u JOIN memo AS m ON m.id = u.id",
    "SELECT DISTINCT user_password FROM users ORDER BY 1",
]
TRACED = [
    "SELECT * FROM people",  # a view: its columns come from its definition
    "SELECT * FROM frozen",  # a materialised view
    "SELECT name FROM users UNION SELECT user_password FROM users",
    "SELECT id, upper(user_password) FROM users",
    "SELECT * FROM get_users()",
    "SELECT u FROM users AS u",
]


@pytest.mark.parametrize("sql", DIRECT + TRACED)
def test_postgres_columns_match_the_tracer_with_or_without_the_shortcut(
    databases, monkeypatch, sql
):
    from dancecat_plugins import postgresql_driver
    from dancecat_plugins.postgresql_driver import PostgresDriver

    params = ConnectionParams(driver="postgresql", read_only=True, **databases["postgresql"])
    asked = []
    traced = postgresql_driver._traced
    monkeypatch.setattr(
        postgresql_driver, "_traced", lambda *args: asked.append(sql) or traced(*args)
    )
    with PostgresDriver().connect(params, timeout=10) as session:
        cursor = session.open_query(sql, timeout=10)
        columns = cursor.columns
        tracer = traced(session.connection, sql, len(columns))
        cursor.close()
    assert bool(asked) == (sql in TRACED)
    for column, (derived, was_traced) in zip(columns, tracer, strict=True):
        if not column.source:
            continue  # a column of a row type also carries its fields: compared elsewhere
        assert set(column.derived_from) >= set(derived) and column.traced == was_traced, column
    if sql in DIRECT:
        assert [set(c.derived_from) for c in columns] == [set(d) for d, _ in tracer]
