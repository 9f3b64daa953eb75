"""The schema browser's catalogue on each queried database: what the connection's user may
see (and only that), columns and their declared types, scrub marks from the scrubber
plugins, the per-connection cache and its refresh, and clean errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from conftest import MY_HOST, PG_HOST, _mariadb, _psql, unique_name

from dancecat_core import catalogue
from dancecat_core.db import session_scope
from dancecat_core.drivers import ConnectionParams
from dancecat_core.errors import ConnectionFailed, NotFound
from dancecat_core.models import Connection
from dancecat_core.services import catalogues

# The same little schema on every database: a table the user may read, one with a
# credential column, one the user may not read, and a view.
TABLES = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(200), password_hash "
    "VARCHAR(200), api_key VARCHAR(60))",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total DECIMAL(10, 2))",
    "CREATE TABLE payroll (id INTEGER PRIMARY KEY, salary INTEGER)",
    "CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100",
]
READABLE = ("customers", "orders", "big_orders")


@pytest.fixture
def pg_params(pg_database: dict) -> Iterator[ConnectionParams]:
    """A login role that may read everything but ``payroll``."""
    role = unique_name("dc_reader")
    _psql(database=pg_database["database"], stdin=";\n".join(TABLES) + ";")
    _psql("-c", f'CREATE ROLE "{role}" LOGIN')
    grants = ", ".join(READABLE)
    _psql("-c", f'GRANT SELECT ON {grants} TO "{role}"', database=pg_database["database"])
    yield ConnectionParams(
        driver="postgresql", database=pg_database["database"], host=PG_HOST, user=role
    )
    _psql("-c", f'DROP OWNED BY "{role}"', database=pg_database["database"])
    _psql("-c", f'DROP ROLE "{role}"')


@pytest.fixture
def mysql_params(mysql_database: dict) -> Iterator[ConnectionParams]:
    """A user that may read everything but ``payroll``."""
    user, name = unique_name("dcr")[:32], mysql_database["database"]
    _mariadb(name, stdin=";\n".join(TABLES) + ";")
    _mariadb("-e", f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'")
    for table in READABLE:
        _mariadb("-e", f"GRANT SELECT ON `{name}`.`{table}` TO '{user}'@'%'")
    yield ConnectionParams(
        driver="mysql", database=name, host=MY_HOST, user=user, password=f"pw-{user}"
    )
    _mariadb("-e", f"DROP USER IF EXISTS '{user}'@'%'")


@pytest.fixture
def sqlite_params(tmp_path, runtime) -> ConnectionParams:
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as db:
        for statement in TABLES:
            db.execute(statement)
    return ConnectionParams(driver="sqlite", database=str(path), files=runtime.file_rules())


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def params(request) -> ConnectionParams:
    return request.getfixturevalue(f"{request.param.replace('postgresql', 'pg')}_params")


def _names(tables: list[catalogue.CatalogueTable]) -> dict[str, str]:
    return {table.name: table.kind for table in tables}


def test_tables_are_what_the_user_may_read(runtime, params):
    tables, left_out = catalogue.read_tables(runtime, params)
    found = _names(tables)
    assert left_out == 0
    expected = {"customers": "table", "orders": "table", "big_orders": "view"}
    if params.driver == "sqlite":  # a file has no users: everything in it is readable
        expected["payroll"] = "table"
    assert found == expected
    # The connection's own schema is searchable: its names work unqualified.
    assert all(table.searchable for table in tables)
    schemas = {table.schema for table in tables}
    assert schemas == {
        {"postgresql": "public", "mysql": params.database}.get(params.driver, "main")
    }


def test_columns_with_types_and_scrub_marks(runtime, params):
    schema = next(t.schema for t in catalogue.read_tables(runtime, params)[0])
    columns = catalogue.read_columns(runtime, params, schema, "customers")
    assert [c.name for c in columns] == ["id", "email", "password_hash", "api_key"]
    types = [c.type.lower() for c in columns]
    assert "int" in types[0] and ("varchar" in types[1] or "character varying" in types[1])
    marked = {c.name: c.scrubbed for c in columns}
    assert marked["id"] is None and marked["email"] is None
    assert "password" in marked["password_hash"]
    assert "api_key" in marked["api_key"]
    view = catalogue.read_columns(runtime, params, schema, "big_orders")
    assert [c.name for c in view] == ["id", "total"]


def test_a_hidden_table_has_no_columns(runtime, params):
    """Where the database hides a table from the user, its columns are hidden too."""
    if params.driver == "sqlite":
        pytest.skip("a SQLite file has no users")
    schema = next(t.schema for t in catalogue.read_tables(runtime, params)[0])
    assert catalogue.read_columns(runtime, params, schema, "payroll") == []


def test_scrub_marks_follow_the_setting(runtime, params):
    """The marks are the scrubber plugin's verdict under the settings of the moment."""
    import attrs

    runtime.settings = attrs.evolve(runtime.settings, scrub_column_patterns=("email",))
    schema = next(t.schema for t in catalogue.read_tables(runtime, params)[0])
    marked = {
        c.name: c.scrubbed for c in catalogue.read_columns(runtime, params, schema, "customers")
    }
    assert marked["email"] and marked["password_hash"] is None


def test_an_unreachable_database_is_a_clean_error(runtime):
    params = ConnectionParams(
        driver="postgresql", database="nope", host="127.0.0.1", port=1, user="x", password="s3cr3t!"
    )
    with pytest.raises(ConnectionFailed) as caught:
        catalogue.read_tables(runtime, params)
    assert str(caught.value).startswith("the catalogue could not be read")
    assert "s3cr3t!" not in str(caught.value)


def _saved(runtime, params: ConnectionParams) -> int:
    with session_scope(runtime.session_factory) as session:
        connection = Connection(
            name=unique_name("c"),
            driver=params.driver,
            host=params.host,
            port=params.port,
            database=params.database,
            user_name=params.user,
            password_encrypted=(
                runtime.secret_box.encrypt(params.password) if params.password else None
            ),
            read_only=True,
        )
        session.add(connection)
        session.flush()
        return connection.id


def _drop_view(params: ConnectionParams) -> None:
    """Drop the view as the database's administrator."""
    statement = "DROP VIEW big_orders"
    if params.driver == "postgresql":
        _psql("-c", statement, database=params.database)
    elif params.driver == "mysql":
        _mariadb(params.database, "-e", statement)
    else:
        with sqlite3.connect(params.database) as db:
            db.execute(statement)


def test_cache_refresh_and_lazy_columns(runtime, params):
    connection_id = _saved(runtime, params)
    with session_scope(runtime.session_factory) as session:
        first = catalogues.get(runtime, session, None, connection_id)
        assert set(_names(first.tables)) >= set(READABLE)
        assert first.columns == {}  # nothing read but the tables
        schema = first.tables[0].schema
        columns = catalogues.columns(runtime, session, None, connection_id, schema, "customers")
        assert columns[2].scrubbed
    _drop_view(params)
    with session_scope(runtime.session_factory) as session:
        cached = catalogues.get(runtime, session, None, connection_id)
        assert "big_orders" in _names(cached.tables)  # the cache, not the database
        assert [c.name for c in cached.columns[(schema, "customers")]][:2] == ["id", "email"]
        assert cached.columns[(schema, "customers")][2].scrubbed  # marked again from cache
        fresh = catalogues.refresh(runtime, session, None, connection_id)
        assert "big_orders" not in _names(fresh.tables)
        assert fresh.columns == {}
        with pytest.raises(NotFound):
            catalogues.columns(runtime, session, None, connection_id, schema, "big_orders")


def test_changing_the_connection_reads_the_catalogue_again(runtime, sqlite_params, tmp_path):
    connection_id = _saved(runtime, sqlite_params)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE elsewhere (x INTEGER)")
    with session_scope(runtime.session_factory) as session:
        assert "customers" in _names(catalogues.get(runtime, session, None, connection_id).tables)
    with session_scope(runtime.session_factory) as session:
        from dancecat_core.models import utcnow

        connection = session.get(Connection, connection_id)
        connection.database, connection.updated_at = str(other), utcnow()
    with session_scope(runtime.session_factory) as session:
        assert _names(catalogues.get(runtime, session, None, connection_id).tables) == {
            "elsewhere": "table"
        }
