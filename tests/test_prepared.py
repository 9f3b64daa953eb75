"""Server-side prepared statements (``dancecat_core.prepared``) against a real PostgreSQL:
the same rows and types as the plain statement, and the same answers when the plan is
gone or no longer fits."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from dancecat_core import prepared
from dancecat_core.models.meta import UTCDateTime
from dancecat_core.prepared import Prepared

_META = MetaData()
_ITEMS = Table(
    "items",
    _META,
    Column("id", Integer, primary_key=True),
    Column("name", String(20)),
    Column("seen_at", UTCDateTime),
    Column("size", Integer),
)
_READ = Prepared(
    select(_ITEMS.c.id, _ITEMS.c.name.label("label"), _ITEMS.c.seen_at, _ITEMS.c.size)
    .where(_ITEMS.c.id == bindparam("b_id"), _ITEMS.c.name != "hidden")
    .order_by(_ITEMS.c.id)
)
_TOUCH = Prepared(
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("b_id"))
    .values(seen_at=bindparam("b_when", type_=UTCDateTime), size=_ITEMS.c.size + 1)
)
WHEN = dt.datetime(2026, 12, 4, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))


@pytest.fixture
def engine(pg_database):
    engine = create_engine(pg_database["url"])
    _META.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            _ITEMS.insert(),
            [
                {"id": 1, "name": "one", "seen_at": WHEN, "size": 1},
                {"id": 2, "name": "hidden", "seen_at": None, "size": 2},
            ],
        )
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2].split()[0]))
    engine.sent = sent  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def _autocommit(engine):
    conn = engine.connect()
    conn.connection.dbapi_connection.autocommit = True
    return conn


def test_same_rows_and_types_as_the_plain_statement_and_prepared_once(engine):
    with engine.connect() as conn:
        plain = conn.execute(_READ.statement, {"b_id": 1}).all()
        engine.sent.clear()
    with _autocommit(engine) as conn:
        first = _READ.execute(conn, {"b_id": 1}).all()
        again = _READ.execute(conn, {"b_id": 2}).all()  # the statement's own "hidden" holds
        assert engine.sent == ["PREPARE", "EXECUTE", "EXECUTE"]
    assert first == plain
    assert first[0].label == "one" and first[0].seen_at == WHEN  # aware UTC, as UTCDateTime reads
    assert first[0].seen_at.tzinfo == dt.UTC
    assert again == []


_COUNT = Prepared(select(func.count().label("n")).select_from(_ITEMS))


def test_a_statement_without_parameters(engine):
    """``PREPARE name AS …`` and ``EXECUTE name``: PostgreSQL refuses an empty ``()``."""
    with _autocommit(engine) as conn:
        engine.sent.clear()
        assert [_COUNT.execute(conn, {}).one().n for _ in range(2)] == [2, 2]
        assert engine.sent == ["PREPARE", "EXECUTE", "EXECUTE"]


def test_binds_are_converted_by_their_types(engine):
    later = WHEN + dt.timedelta(days=1)
    with _autocommit(engine) as conn:
        assert _TOUCH.execute(conn, {"b_id": 1, "b_when": later}).rowcount == 1
        row = _READ.execute(conn, {"b_id": 1}).one()
    assert row.seen_at == later and row.size == 2
    with engine.connect() as conn:  # stored as naive UTC, as the plain statement stores it
        stored = conn.exec_driver_sql("SELECT seen_at FROM items WHERE id = 1").scalar()
    assert stored == later.astimezone(dt.UTC).replace(tzinfo=None)


@pytest.mark.parametrize("lose", ["DEALLOCATE ALL", "DISCARD ALL"])
@pytest.mark.parametrize("way", ["engine", "quiet"])  # through SQLAlchemy; on the driver
def test_a_plan_the_server_dropped_is_prepared_again(request, way, lose):
    engine = request.getfixturevalue(way)
    with _autocommit(engine) as conn:
        _READ.execute(conn, {"b_id": 1}).all()
        conn.exec_driver_sql(lose)
        assert _READ.execute(conn, {"b_id": 1}).one().label == "one"
        assert _READ.execute(conn, {"b_id": 1}).one().label == "one"
    if way == "quiet":
        assert len(engine.direct) == 2  # the first found no plan, the last ran


def test_a_plan_whose_result_type_changed_is_prepared_again(engine):
    """A migration altering a column under a running consumer: PostgreSQL refuses the old
    plan ("cached plan must not change result type"); the statement prepares again."""
    with _autocommit(engine) as conn:
        _READ.execute(conn, {"b_id": 1}).all()
        with engine.begin() as other:
            other.exec_driver_sql("ALTER TABLE items ALTER COLUMN size TYPE bigint")
        assert _READ.execute(conn, {"b_id": 1}).one().size == 1


def test_inside_a_transaction_or_off_postgresql_the_plain_statement_runs(engine, tmp_path):
    with engine.begin() as conn:  # a failed EXECUTE would abort the transaction
        assert _READ.execute(conn, {"b_id": 1}).one().label == "one"
    assert "PREPARE" not in engine.sent and "EXECUTE" not in engine.sent
    sqlite = create_engine(f"sqlite:///{tmp_path / 'items.sqlite'}")
    _META.create_all(sqlite)
    with sqlite.begin() as conn:
        conn.execute(_ITEMS.insert(), {"id": 1, "name": "one", "seen_at": WHEN, "size": 1})
        assert _READ.execute(conn, {"b_id": 1}).one().seen_at == WHEN


def test_the_name_is_the_statement_so_a_shared_session_never_runs_another(engine):
    """Named by a digest of the PREPARE text: the same statement built anywhere has the
    same name, another statement another one; a session that has it already (a pooler's
    server session another client prepared) is fine."""
    with _autocommit(engine) as conn:
        twin = Prepared(_READ.statement)
        name, prepare, *_ = twin._build(conn)
        assert name == _READ._build(conn)[0] != _TOUCH._build(conn)[0]
        conn.exec_driver_sql(prepare)  # already there when the statement first runs here
        assert twin.execute(conn, {"b_id": 1}).one().label == "one"
        assert _READ.execute(conn, {"b_id": 1}).one().label == "one"


def test_a_pooler_that_moves_the_session_gets_plain_statements(engine):
    """PgBouncer's transaction mode: every statement may reach another server session, so
    the plan is gone right after PREPARE. The answer is still right, and that connection
    stops preparing."""

    def lose_plans(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("PREPARE"):
            cursor.connection.cursor().execute("DEALLOCATE ALL")

    event.listen(engine, "after_cursor_execute", lose_plans)
    with _autocommit(engine) as conn:
        assert _READ.execute(conn, {"b_id": 1}).one().label == "one"
        engine.sent.clear()
        assert _READ.execute(conn, {"b_id": 1}).one().label == "one"
        assert _TOUCH.execute(conn, {"b_id": 1, "b_when": WHEN}).rowcount == 1
    assert engine.sent == ["SELECT", "UPDATE"]


@pytest.fixture
def quiet(pg_database, engine):
    """An engine on the same table that nothing listens to: its prepared statements run
    straight on the driver's cursor. ``quiet.direct`` counts those runs."""
    quiet = create_engine(pg_database["url"])
    runs: list[str] = []
    real = prepared._Direct.run

    def counted(self, dbapi, values):
        runs.append(self.sql.split("(")[0])
        return real(self, dbapi, values)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prepared._Direct, "run", counted)
        quiet.direct = runs  # type: ignore[attr-defined]
        yield quiet
    quiet.dispose()


def test_straight_on_the_driver_the_same_rows_and_types(quiet):
    later = WHEN + dt.timedelta(days=1)
    with quiet.connect() as conn:
        plain = conn.execute(_READ.statement, {"b_id": 1}).all()
    with _autocommit(quiet) as conn:
        assert _READ.execute(conn, {"b_id": 1}).all() == plain  # prepares, through SQLAlchemy
        assert quiet.direct == []
        direct = _READ.execute(conn, {"b_id": 1}).all()
        assert _READ.execute(conn, {"b_id": 2}).all() == []
        assert _TOUCH.execute(conn, {"b_id": 1, "b_when": later}).rowcount == 1  # prepares
        assert _TOUCH.execute(conn, {"b_id": 2, "b_when": later}).rowcount == 1
        assert _TOUCH.execute(conn, {"b_id": 99, "b_when": later}).rowcount == 0
        touched = _READ.execute(conn, {"b_id": 1}).one()
        assert [_COUNT.execute(conn, {}).one().n for _ in range(2)] == [2, 2]  # prepares once
    assert len(quiet.direct) == 6
    assert direct == plain
    row = direct[0]
    assert (row.id, row.label, row.size) == (1, "one", 1)
    assert row.seen_at == WHEN and row.seen_at.tzinfo == dt.UTC
    assert touched.seen_at == later and touched.size == 2
    with quiet.connect() as conn:  # bound through UTCDateTime: stored as naive UTC
        stored = conn.exec_driver_sql("SELECT seen_at FROM items WHERE id = 2").scalar()
    assert stored == later.astimezone(dt.UTC).replace(tzinfo=None)


def test_straight_on_the_driver_a_lost_connection_is_a_disconnect(quiet):
    """What ``with_app_db`` waits out: the error comes wrapped by SQLAlchemy with the
    connection invalidated, not as the driver's own exception."""
    with _autocommit(quiet) as conn:
        _READ.execute(conn, {"b_id": 1}).all()
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with quiet.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(DBAPIError) as lost:
            _READ.execute(conn, {"b_id": 1})
        assert lost.value.connection_invalidated
    with _autocommit(quiet) as conn:  # the pool hands out a live connection again
        assert _READ.execute(conn, {"b_id": 1}).one().label == "one"
