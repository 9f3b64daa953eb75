"""How many times a trivial run talks to the app database, counted: the number is what a
run costs when a thousand are due at once (bench, start lateness), so a change that adds a
round trip fails here instead of in the bench.

The run is what a consumer does with one queue message (``tasks.run_job``: claim, run,
finish, follow-up) on a PostgreSQL app database, as in the bench.
"""

from __future__ import annotations

import collections

import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import event

from dancecat_core import db, lifecycle, tasks
from dancecat_core.models import Connection, Job, Tracker, TrackerStatus
from dancecat_core.runner import execute_tracker

# claim: an UPDATE of the tracker inside a WITH whose SELECT reads the job, connection,
# schedule and recipient conditions; finish: an UPDATE inside a WITH whose SELECT reads the
# recipients, followers and open alerts. Each statement commits on its own
# (``lifecycle._app_db``). (Was 8 SELECT, 2 UPDATE, 3 COMMIT and 3 ROLLBACK: the chains
# and the alerts looked for themselves; then BEGIN and COMMIT around the claim and the
# finish, which psycopg2 sends as round trips of their own; then a SELECT and an UPDATE
# for each of claim and finish.)
# Both run from plans the connection prepared on its first run (``prepared.py``): no
# PREPARE, no parse and plan, in a warm consumer.
EXPECTED = {"WITH": 2, "(prepared)": 2}
# What each prepared statement's name stands for, as the PREPAREs seen said.
PREPARED: dict[str, str] = {}


@pytest.fixture
def consumer(pg_runtime):
    """``pg_runtime`` as a consumer's: the queue's tasks run on it."""
    tasks.configure(runtime=pg_runtime)
    yield pg_runtime
    tasks.configure(None)


def _count(runtime, fn) -> tuple[collections.Counter, list[str]]:
    seen: collections.Counter = collections.Counter()
    statements: list[str] = []

    def statement(conn, cursor, text, parameters, context, executemany):
        words = text.split()
        kind = words[0].upper()
        if kind == "PREPARE":  # PREPARE dc_N (types) AS SELECT ...: remember what dc_N is
            PREPARED[words[1]] = words[words.index("AS") + 1].upper()
        elif kind == "EXECUTE":  # counted as what it runs, and as prepared
            kind = PREPARED[words[1].split("(", 1)[0]]
            seen["(prepared)"] += 1
        seen[kind] += 1
        statements.append(" ".join(words)[:120])

    # What psycopg2 sends besides the statements: BEGIN before a transaction's first
    # statement (its own round trip), COMMIT, and ROLLBACK only inside a transaction;
    # none of them on an autocommit connection.
    def begin(conn):
        if not conn.connection.dbapi_connection.autocommit:
            seen["BEGIN"] += 1

    def commit(conn):
        if not conn.connection.dbapi_connection.autocommit:
            seen["COMMIT"] += 1

    def rollback(conn):
        dbapi = conn.connection.dbapi_connection
        if not dbapi.autocommit and dbapi.info.transaction_status != TRANSACTION_STATUS_IDLE:
            seen["ROLLBACK"] += 1

    hooks = {
        "before_cursor_execute": statement,
        "begin": begin,
        "commit": commit,
        "rollback": rollback,
    }
    # Changing a connection's isolation level, and resetting it when the connection goes
    # back to the pool, is a round trip too (SET default_transaction_isolation).
    dialect = runtime.engine.dialect

    def counted(name: str):
        original = getattr(dialect, name)

        def call(*args, **kwargs):
            seen["SET"] += 1
            return original(*args, **kwargs)

        return call

    for name, hook in hooks.items():
        event.listen(runtime.engine, name, hook)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in ("set_isolation_level", "reset_isolation_level"):
                patch.setattr(dialect, name, counted(name))
            fn()
    finally:
        for name, hook in hooks.items():
            event.remove(runtime.engine, name, hook)
    return seen, statements


def _queued(runtime, chinook, query: str = "SELECT 1") -> int:
    with db.session_scope(runtime.session_factory) as session:
        connection = Connection(name="c", driver="sqlite", database=str(chinook))
        job = Job(name="trivial", connection=connection, query=query)
        tracker = Tracker(job=job)
        session.add_all([connection, job, tracker])
        session.flush()
        return tracker.id


def test_a_trivial_run_costs_two_app_database_round_trips(consumer, sqlite_chinook):
    runtime = consumer
    _count(runtime, lambda: None)  # the pool holds a live connection, as in a busy consumer
    first = _queued(runtime, sqlite_chinook)
    # The first run on this connection prepares its two statements.
    warm, _ = _count(
        runtime,
        lambda: tasks.follow_up(runtime, execute_tracker(runtime, first, wait_for_due=True)),
    )
    assert warm["PREPARE"] == 2, warm
    tracker_id = _queued(runtime, sqlite_chinook)
    outcome: list = []
    seen, statements = _count(
        runtime,
        lambda: outcome.append(
            tasks.follow_up(runtime, execute_tracker(runtime, tracker_id, wait_for_due=True))
        ),
    )
    assert outcome == [TrackerStatus.SUCCESS.value]
    assert dict(seen) == EXPECTED, "\n".join(statements)
    trips = sum(count for kind, count in seen.items() if kind != "(prepared)")
    print(f"\none trivial run: {trips} app-database round trips {dict(seen)}")


def test_a_consumer_prepares_the_run_statements_before_its_first_run(consumer, sqlite_chinook):
    """``lifecycle.make_ready`` (a consumer's start-up) builds and prepares the claim and
    both finishes: the first run then sends no PREPARE, only its two statements. Fails if
    what it prepares drifts from what a run sends (another column written on success)."""
    runtime = consumer
    ready, _ = _count(runtime, lambda: lifecycle.make_ready(runtime))
    assert ready == {"PREPARE": 3}
    tracker_id = _queued(runtime, sqlite_chinook)
    seen, statements = _count(
        runtime,
        lambda: tasks.follow_up(runtime, execute_tracker(runtime, tracker_id, wait_for_due=True)),
    )
    assert dict(seen) == EXPECTED, "\n".join(statements)
    failing = _queued(runtime, sqlite_chinook, "SELECT * FROM no_such_table")
    seen, statements = _count(
        runtime,
        lambda: tasks.follow_up(runtime, execute_tracker(runtime, failing, wait_for_due=True)),
    )
    assert seen["PREPARE"] == 0, "\n".join(statements)
    with runtime.session_factory() as session:
        assert session.get(Tracker, failing).status == TrackerStatus.FAILED
