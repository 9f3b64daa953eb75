"""SQLite driver: the smallest complete example of a DanceCat driver.

``ConnectionParams.database`` is the path of the database file. SQLite declares no column
types in a result (a column may hold an integer in one row and text in the next), so every
column's ``type`` is ``None`` and the pipeline infers it from the values. There is no native
CSV path: rows leave through ``batches()`` and the pipeline formats them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from dancecat_core.columns import Column
from dancecat_core.drivers import ConnectionParams, Driver, DriverSession, QueryCursor
from dancecat_core.errors import ConnectionFailed, QueryError, QueryTimeout, ReadOnlyViolation
from dancecat_core.hookspecs import hookimpl
from dancecat_core.provenance import Traced, trace
from dancecat_plugins.sqlite_provenance import SqliteCatalog

# How many SQLite VM instructions run between two looks at the deadline: often enough to
# stop within milliseconds, rarely enough to cost nothing measurable.
_PROGRESS_STEPS = 10_000


class SqliteCursor(QueryCursor):
    """A running statement; SQLite computes each row when it is fetched, so nothing piles up."""

    def __init__(
        self, session: SqliteSession, cursor: sqlite3.Cursor, limit: int | None, traced: Traced
    ):
        self._session = session
        self._cursor = cursor
        self._left = limit
        names = [d[0] for d in cursor.description or ()]
        # SQLite names no source column: all provenance is the tracer's.
        self.columns = [
            Column(name=name, derived_from=tuple(sorted(origin.columns)), traced=origin.traced)
            for name, origin in zip(names, traced.align(len(names)), strict=True)
        ]

    def batches(self, size: int = 5000) -> Iterator[Sequence[Sequence[Any]]]:
        if not self.columns:
            return  # a statement without a result (a write on a read-write connection)
        while self._left is None or self._left > 0:
            want = size if self._left is None else min(size, self._left)
            with self._session.translate_errors():
                batch = self._cursor.fetchmany(want)
            if not batch:
                return
            if self._left is not None:
                self._left -= len(batch)
            yield batch

    def close(self) -> None:
        # Resets the statement: SQLite computes no further rows, there is nothing to drain.
        self._cursor.close()
        self._session.query_done()


class SqliteSession(DriverSession):
    def __init__(self, connection: sqlite3.Connection, read_only: bool):
        self._connection = connection
        self._read_only = read_only
        self._deadline = float("inf")
        self._timeout = 0.0
        self._cancelled = threading.Event()
        self._refused = ""  # what the authorizer refused last, for the error message
        if read_only:
            connection.set_authorizer(self._authorize)

    def _authorize(self, action: int, arg1: str | None, *_: object) -> int:
        """Refuse what a read-only *file* still allows.

        ``mode=ro`` and ``query_only`` stop every change to this database, but ATTACH (and
        ``VACUUM INTO``, which attaches) would create a new file, and ``query_only`` could
        be switched off by the query itself.
        """
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            self._refused = "ATTACH and VACUUM INTO are not allowed"
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() == "query_only":
            self._refused = "PRAGMA query_only cannot be changed"
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _progress(self) -> int:
        """Called every few thousand VM steps; a non-zero answer aborts the statement."""
        return int(self._cancelled.is_set() or time.monotonic() > self._deadline)

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Turn sqlite3 errors into DanceCat errors, and stop once the query is cancelled."""
        if self._cancelled.is_set():
            raise QueryError("the query was cancelled")
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def ping(self) -> None:
        with self.translate_errors():
            self._connection.execute("SELECT 1").fetchall()

    def open_query(self, sql: str, *, timeout: float, limit: int | None = None) -> QueryCursor:
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._connection.set_progress_handler(self._progress, _PROGRESS_STEPS)
        with self.translate_errors():
            traced = trace(SqliteCatalog(self._connection), sql)
            # execute() runs the statement up to its first row; the sqlite3 module refuses
            # text holding more than one statement.
            cursor = self._connection.execute(sql)
        return SqliteCursor(self, cursor, limit, traced)

    def query_done(self) -> None:
        self._connection.set_progress_handler(None, 0)
        self._deadline = float("inf")

    def cancel(self) -> None:
        # The flag stops the statement at its next progress check even when interrupt()
        # lands between two fetches; interrupt() is the one call SQLite allows from any thread.
        self._cancelled.set()
        with contextlib.suppress(sqlite3.ProgrammingError):  # already closed: nothing runs
            self._connection.interrupt()

    def close(self) -> None:
        self._connection.close()

    def _error(self, exc: sqlite3.Error) -> QueryError:
        """The DanceCat error for a SQLite error, with SQLite's own message."""
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_INTERRUPT" or str(exc) == "interrupted":
            if self._cancelled.is_set():
                return QueryError("the query was cancelled")
            return QueryTimeout(f"query exceeded its {self._timeout:g} s timeout")
        if self._read_only and name in ("SQLITE_READONLY", "SQLITE_AUTH"):
            reason = self._refused if name == "SQLITE_AUTH" and self._refused else str(exc)
            return ReadOnlyViolation(f"this connection is read-only: {reason}")
        return QueryError(str(exc))


class SqliteDriver(Driver):
    """A SQLite database file on the worker's disk."""

    name = "sqlite"
    label = "SQLite"
    needs_host = False

    def connect(self, params: ConnectionParams, *, timeout: float) -> DriverSession:
        # mode=ro is enforced by the operating system's open(): no SQL can undo it. mode=rw
        # (not rwc) so a mistyped path fails instead of creating an empty database.
        mode = "ro" if params.read_only else "rw"
        uri = f"file:{urllib.parse.quote(params.database)}?mode={mode}"
        try:
            # timeout: how long to wait for another writer's lock. check_same_thread=False
            # lets cancel() run from the watchdog thread; DanceCat never shares a session.
            connection = sqlite3.connect(
                uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ConnectionFailed(f"cannot open {params.database}: {exc}") from None
        try:
            # Reading the schema proves the file is a SQLite database at all.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
            if params.read_only:
                connection.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            connection.close()
            raise ConnectionFailed(f"cannot open {params.database}: {exc}") from None
        return SqliteSession(connection, params.read_only)


@hookimpl
def dancecat_register_drivers() -> list[type[Driver]]:
    return [SqliteDriver]
