"""Error texts carry no value of the data: cast errors, XPATH errors, DETAIL lines.

A database quotes the value that broke a statement (``invalid input syntax for type
integer: "$2y$10$..."``), which would bypass column removal and value masking. Every
error text goes through ``clean_error``; these tests make real databases fail on secret
values and look for the secret in every place an error text reaches: the tracker, the API,
the job page, the preview (API and form), the connection test, the mail, the log and the
console.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import uuid

import psycopg2
import pymysql
import pytest
from test_notify import Mailer, free_port
from test_web_helpers import dancecat, make_app, make_user, sign_in

from dancecat_core import migrations, notify
from dancecat_core.drivers import ConnectionParams
from dancecat_core.error_text import PLACEHOLDER, clean_error
from dancecat_core.errors import QueryError
from dancecat_core.models import Tracker, TrackerStatus
from dancecat_core.runner import check_connection, execute_tracker, preview_query
from dancecat_core.runtime import build_runtime
from dancecat_core.settings import load_settings
from dancecat_plugins.credential_scrubber import VALUE_PATTERNS

PLAIN = f"hunter2-{uuid.uuid4().hex[:10]}"
BCRYPT = "$2y$10$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"


# -- the cleaning function on the messages databases write --------------------------------


@pytest.mark.parametrize(
    ("message", "sql", "kept"),
    [
        (f'invalid input syntax for type integer: "{PLAIN}"', "SELECT pw::int FROM u", []),
        (f'invalid input syntax for type uuid: "{PLAIN}"', "SELECT pw::uuid FROM u", []),
        (f'malformed array literal: "{{{PLAIN}}}"', "SELECT ('{' || pw || '}')::int[]", []),
        (f'relation "{PLAIN}" does not exist', "SELECT pw::regclass FROM u", []),
        (f"XPATH syntax error: '\\{PLAIN}'", "SELECT ExtractValue(1, concat(0x5c, pw))", []),
        (f"XPATH syntax error: '\\{PLAIN},{PLAIN},hunt...'", "SELECT 1", []),
        (f"Duplicate entry '{PLAIN}1' for key 'group_key'", "SELECT count(*) GROUP BY x", []),
        (f"JSON path error near '{PLAIN}'", "SELECT json_extract('{}', pw) FROM u", []),
        (f"Key (email)=({PLAIN}) already exists.", "INSERT INTO t SELECT pw FROM u", ["email"]),
        (f"Failing row contains (1, {PLAIN}, null).", "INSERT INTO t SELECT 1, pw", []),
        (f'Token "{PLAIN}" is invalid. JSON data, line 1: {PLAIN}', "SELECT pw::json", []),
        # a value holding quotes cannot show through them
        (f'invalid input syntax for type integer: "a" {PLAIN} "b"', "SELECT pw::int", []),
        (f'invalid input syntax for type integer: "{BCRYPT}"', "SELECT pw::int FROM u", []),
        # what the user wrote stays: identifiers, literals, the statement near an error
        ('column "pasword" does not exist', "SELECT pasword FROM users", ['"pasword"']),
        ("Unknown column 'nme' in 'field list'", "SELECT nme FROM t", ["'nme'", "'field list'"]),
        ("Table 'db1.nope' doesn't exist", "SELECT * FROM nope", ["'db1.nope'"]),
        ('invalid input syntax for type integer: "abc"', "SELECT 'abc'::int", ['"abc"']),
        (
            "You have an error in your SQL syntax; check the manual near 'FORM t' at line 1",
            "SELECT 1 FORM t",
            ["'FORM t'"],
        ),
    ],
)
def test_database_messages_lose_values_and_keep_what_the_user_wrote(message, sql, kept):
    cleaned = clean_error(message, sql=sql, names=["db1"], patterns=VALUE_PATTERNS)
    assert PLAIN not in cleaned and BCRYPT not in cleaned and "N9qo8uLOick" not in cleaned
    for text in kept:
        assert text in cleaned
    assert clean_error(cleaned, sql=sql, names=["db1"], patterns=VALUE_PATTERNS) == cleaned


def test_texts_that_are_not_database_messages_keep_their_quotes_but_lose_credentials():
    text = f"SMTPAuthenticationError: 'user' rejected password={PLAIN} for smtp://u:{PLAIN}@h"
    cleaned = clean_error(text, secrets=["rejected"], patterns=VALUE_PATTERNS)
    assert PLAIN not in cleaned and "rejected" not in cleaned and "'user'" in cleaned


# -- real databases failing on secret values ----------------------------------------------


def _pg_users(facts: dict) -> None:
    conn = psycopg2.connect(
        host=facts["host"], port=facts["port"], user=facts["user"], dbname=facts["database"]
    )
    with conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE users (id int, email text, password text, hash text)")
        cursor.execute("INSERT INTO users VALUES (1, 'ann@example.com', %s, %s)", (PLAIN, BCRYPT))
    conn.close()


def _my_users(facts: dict) -> None:
    conn = pymysql.connect(
        host=facts["host"], port=facts["port"], user=facts["user"], database=facts["database"],
        autocommit=True,
    )  # fmt: skip
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE users (id int, email text, password text, hash text)")
        cursor.execute("INSERT INTO users VALUES (1, 'ann@example.com', %s, %s)", (PLAIN, BCRYPT))
    conn.close()


def _params(kind: str, facts: dict) -> ConnectionParams:
    return ConnectionParams(
        driver=kind, database=facts["database"], host=facts["host"], port=facts["port"],
        user=facts["user"], read_only=True,
    )  # fmt: skip


PG_ATTACKS = [
    "SELECT password::int FROM users",
    "SELECT hash::int FROM users",
    "SELECT (password || '')::int AS n FROM users",
    "SELECT password::uuid FROM users",
    "SELECT password::date FROM users",
    "SELECT password::numeric FROM users",
    "SELECT password::inet FROM users",
    "SELECT ('{' || password || '}')::int[] FROM users",
    "SELECT password::regclass FROM users",
    "SELECT current_setting(password) FROM users",
    "SELECT 1 / (password::int) FROM users",
    "SELECT to_number(hash, '999')::int, hash::bigint FROM users",
]
MY_ATTACKS = [
    "SELECT ExtractValue(1, concat(0x5c, (SELECT password FROM users LIMIT 1)))",
    "SELECT UpdateXML(1, concat(0x5c, (SELECT hash FROM users LIMIT 1)), 1)",
    "SELECT extractvalue(rand(), concat(0x7e, (SELECT password FROM users LIMIT 1), 0x7e))",
    "SELECT ExtractValue(1, concat(0x5c, (SELECT group_concat(password, hash) FROM users)))",
]


@pytest.mark.parametrize("sql", PG_ATTACKS)
def test_postgresql_cast_errors_hide_the_value(runtime, pg_database, sql):
    _pg_users(pg_database)
    with pytest.raises(QueryError) as failed:
        preview_query(runtime, _params("postgresql", pg_database), sql)
    text = str(failed.value)
    assert PLAIN not in text and "N9qo8uLOick" not in text, text
    assert PLACEHOLDER in text, text


@pytest.mark.parametrize("sql", MY_ATTACKS)
def test_mariadb_xpath_errors_hide_the_value(runtime, mysql_database, sql):
    _my_users(mysql_database)
    with pytest.raises(QueryError) as failed:
        preview_query(runtime, _params("mysql", mysql_database), sql)
    text = str(failed.value)
    assert PLAIN not in text and "N9qo8uLOick" not in text, text
    assert text.startswith("XPATH syntax error: '[value]'"), text


def test_sqlite_json_path_error_hides_the_value(runtime, tmp_path):
    path = tmp_path / "users.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id int, password text)")
    conn.execute("INSERT INTO users VALUES (1, ?)", (PLAIN,))
    conn.commit()
    conn.close()
    params = ConnectionParams(driver="sqlite", database=str(path), files=runtime.file_rules())
    with pytest.raises(QueryError) as failed:
        preview_query(runtime, params, "SELECT json_extract('{}', password) FROM users")
    assert PLAIN not in str(failed.value) and PLACEHOLDER in str(failed.value)


def test_connection_test_error_keeps_the_names_the_user_typed(runtime, pg_server):
    """Connection errors quote the user's own database and user names; those stay."""
    missing = f"nodb_{uuid.uuid4().hex[:8]}"
    ok, error, _ = check_connection(runtime, ConnectionParams(
        driver="postgresql", database=missing, host=pg_server["host"], port=pg_server["port"],
        user=pg_server["user"],
    ))  # fmt: skip
    assert not ok and error and f'"{missing}"' in error, error


# -- every place an error text reaches ----------------------------------------------------


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_failed_run_error_is_clean_everywhere(kind, request, tmp_path, caplog):
    facts = request.getfixturevalue("pg_database" if kind == "postgresql" else "mysql_database")
    (_pg_users if kind == "postgresql" else _my_users)(facts)
    # The cast is in WHERE: a result column derived from password would be removed before
    # the statement runs (provenance), but a condition is still evaluated, and its error
    # echoes the value.
    sql = (
        "SELECT 1 AS n FROM users WHERE (password || '')::int > 0"
        if kind == "postgresql"
        else MY_ATTACKS[0]
    )
    mailer = Mailer(free_port())
    mailer.start()
    home = tmp_path / "home"
    environ = {
        "DANCECAT_HOME": str(home),
        "DANCECAT_SMTP_HOST": "127.0.0.1",
        "DANCECAT_SMTP_PORT": str(mailer.port),
    }
    runtime = build_runtime(load_settings(environ=environ))
    migrations.upgrade(runtime.engine)
    outputs: dict[str, str] = {}
    try:
        alice = make_user(runtime, "alice@example.com")
        app = make_app(runtime)
        connection = app.post_json(
            "/api/v1/connections",
            {"name": kind, "driver": kind, "host": facts["host"], "port": facts["port"],
             "database": facts["database"], "user": facts["user"]},
            headers=alice.auth,
        ).json["connection"]  # fmt: skip
        job = app.post_json(
            "/api/v1/jobs",
            {"name": "leaky", "connection_id": connection["id"], "query": sql,
             "recipients": ["boss@example.com"]},
            headers=alice.auth,
        ).json["job"]  # fmt: skip
        outputs["api preview"] = app.post(
            f"/api/v1/jobs/{job['id']}/preview", headers=alice.auth, expect_errors=True
        ).text
        outputs["api unsaved preview"] = app.post_json(
            "/api/v1/preview", {"connection_id": connection["id"], "query": sql},
            headers=alice.auth, expect_errors=True,
        ).text  # fmt: skip
        tracker = app.post(f"/api/v1/jobs/{job['id']}/runs", headers=alice.auth).json["tracker"]
        with caplog.at_level(logging.INFO):
            outcome = execute_tracker(runtime, tracker["id"])
            assert outcome.status == TrackerStatus.FAILED
            for notification_id in notify.create_notifications(runtime, tracker["id"]):
                notify.deliver(runtime, notification_id)
        outputs["log"] = caplog.text
        with runtime.session_factory() as session:
            outputs["tracker"] = session.get(Tracker, tracker["id"]).error
        outputs["api tracker"] = app.get(
            f"/api/v1/trackers/{tracker['id']}", headers=alice.auth
        ).text
        [(_, message)] = mailer.inbox.messages
        outputs["email"] = message.get_body(("plain",)).get_content()
        csrf = sign_in(app, "alice@example.com")
        outputs["job page"] = app.get(f"/jobs/{job['id']}").text
        outputs["form preview"] = app.post(
            "/jobs/preview",
            {"connection_id": str(connection["id"]), "query": sql, "csrf_token": csrf},
            headers={"X-CSRF-Token": csrf}, expect_errors=True,
        ).text  # fmt: skip
    finally:
        mailer.stop()
        runtime.engine.dispose()
    console = subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", "job", "run", "leaky"],
        env={**os.environ, "DANCECAT_HOME": str(home)},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert console.returncode == 1, console.stderr
    outputs["console"] = console.stdout + console.stderr
    for label, text in outputs.items():
        assert PLAIN not in text, f"the secret leaked through the {label}: {text[-400:]}"
    assert PLACEHOLDER in outputs["tracker"] and PLACEHOLDER in outputs["console"]
    assert "[value]" in outputs["email"] and outputs["tracker"] in outputs["email"]


CONSOLE_SECRET = "Zq9ConsolePw"
# Mistakes that put a URL with its password into the console's error line: a URL pasted
# into a setting (the settings fail to load), a URL given where a connection's name goes.
CONSOLE_MISTAKES = [
    ({"DANCECAT_CONNECT_TIMEOUT": f"smtps://mailer:{CONSOLE_SECRET}@mail.example.com:465"}, ()),
    ({}, ("connection", "test", f"postgresql://app:{CONSOLE_SECRET}@db.internal/app")),
]


@pytest.mark.parametrize(("env", "words"), CONSOLE_MISTAKES)
def test_the_console_error_line_masks_credentials(tmp_path, env, words):
    dancecat(tmp_path, "init")
    done = subprocess.run(
        [sys.executable, "-m", "dancecat_core.console", *(words or ("connection", "list"))],
        env={**os.environ, "DANCECAT_HOME": str(tmp_path), **env},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert CONSOLE_SECRET not in done.stderr + done.stdout
    assert "[masked]" in done.stderr, done.stderr
