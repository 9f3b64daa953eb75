"""Read-only SQLite connections are kept open between sessions (``sqlite_driver._Idle``):
what they read must be what a fresh connection would read, and nothing one session did
(a cancel, an error) may reach the next."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from dancecat_core.drivers import ConnectionParams
from dancecat_core.errors import QueryError
from dancecat_core.local_files import LocalFileRules
from dancecat_plugins.sqlite_driver import SqliteDriver


def _database(path: Path, value: str) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES (?)", (value,))
    conn.close()
    return path


def _params(path: Path, read_only: bool = True) -> ConnectionParams:
    files = LocalFileRules(
        allowed_dirs=(path.parent.resolve(),), protected_dirs=(), protected_files=()
    )
    return ConnectionParams(driver="sqlite", database=str(path), read_only=read_only, files=files)


def _read(driver: SqliteDriver, params: ConnectionParams) -> tuple[str, sqlite3.Connection]:
    with driver.connect(params, timeout=5) as session:
        cursor = session.open_query("SELECT v FROM t", timeout=5)
        (value,) = [row[0] for batch in cursor.batches() for row in batch]
        cursor.close()
        return value, session._connection


def _is_closed(connection: sqlite3.Connection) -> bool:
    try:
        connection.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


def test_a_read_only_connection_serves_the_next_session(tmp_path):
    driver, params = SqliteDriver(), _params(_database(tmp_path / "a.db", "one"))
    first, kept = _read(driver, params)
    second, again = _read(driver, params)
    assert (first, second) == ("one", "one")
    assert again is kept


def test_it_reads_what_the_file_holds_now(tmp_path):
    path = _database(tmp_path / "a.db", "one")
    driver, params = SqliteDriver(), _params(path)
    _, kept = _read(driver, params)
    with sqlite3.connect(path) as writer:  # changed in place: the same file
        writer.execute("UPDATE t SET v = 'two'")
    writer.close()
    value, again = _read(driver, params)
    assert (value, again) == ("two", kept)


def test_a_file_replaced_under_its_name_is_another_file(tmp_path):
    path = _database(tmp_path / "a.db", "one")
    driver, params = SqliteDriver(), _params(path)
    _, kept = _read(driver, params)
    os.replace(_database(tmp_path / "new.db", "replaced"), path)
    value, fresh = _read(driver, params)
    assert value == "replaced"
    assert fresh is not kept and _is_closed(kept)


def test_another_stored_file_or_mode_is_another_connection(tmp_path):
    driver = SqliteDriver()
    a = _params(_database(tmp_path / "a.db", "a"))
    b = _params(_database(tmp_path / "b.db", "b"))
    (va, ca), (vb, cb) = _read(driver, a), _read(driver, b)
    assert (va, vb) == ("a", "b") and ca is not cb
    writable = _params(tmp_path / "a.db", read_only=False)
    value, rw = _read(driver, writable)
    assert value == "a" and rw is not ca
    assert _is_closed(rw), "read-write connections are not kept"


def test_a_cancelled_or_failed_session_is_not_reused(tmp_path):
    driver, params = SqliteDriver(), _params(_database(tmp_path / "a.db", "one"))
    with driver.connect(params, timeout=5) as session:
        cursor = session.open_query("SELECT v FROM t", timeout=5)
        cursor.close()
        session.cancel()
        cancelled = session._connection
    assert _is_closed(cancelled)
    with driver.connect(params, timeout=5) as session:
        with pytest.raises(QueryError):
            session.open_query("SELECT nope FROM t", timeout=5)
        failed = session._connection
    assert _is_closed(failed)
    with driver.connect(params, timeout=5) as session:
        session.open_query("SELECT v FROM t", timeout=5)  # never reset: still running
        busy = session._connection
    assert _is_closed(busy)


def test_a_late_cancel_does_not_reach_the_next_session(tmp_path):
    driver, params = SqliteDriver(), _params(_database(tmp_path / "a.db", "one"))
    with driver.connect(params, timeout=5) as old:
        old.open_query("SELECT v FROM t", timeout=5).close()
    with driver.connect(params, timeout=5) as session:
        assert session._connection is old._connection
        cursor = session.open_query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000) "
            "SELECT i FROM n",
            timeout=5,
        )
        # The old run's watchdog fires while this session's statement is under way.
        late = threading.Thread(target=old.cancel)
        late.start()
        late.join()
        assert sum(len(batch) for batch in cursor.batches()) == 50000
        cursor.close()
