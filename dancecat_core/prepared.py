"""Server-side prepared statements for the statements every run sends (PostgreSQL).

A trivial run sends two app-database statements (``lifecycle``: claim and load, finish and
its facts). psycopg2 sends each as text, so PostgreSQL would parse and plan the claim's
five-table join once per run: measured on the bench database, 0.30 ms of backend CPU for
the load and 0.14 ms for the finish's facts, against 0.06 and 0.05 ms when the backend
keeps their plans (``PREPARE`` once per connection, then ``EXECUTE``). With a thousand runs
due at once the app database shares the consumers' cores, so that is start lateness.

``Prepared(statement).execute(conn, params)`` is ``conn.execute(statement, params)`` with
the same rows, the same types both ways (the ``EXECUTE`` is a typed ``text`` construct
built from the statement's own binds and columns, so ``UTCDateTime`` still converts), and
the same answers when the plan is gone: a connection prepares once (kept in the pooled
connection's ``info``, which dies with it), and an ``EXECUTE`` that finds no plan (a
``DEALLOCATE``, ``DISCARD ALL``, a pooler that moved the session) or a plan whose result
type changed (a migration altered a column under a running consumer) prepares again and
runs once more. Only on an autocommit connection: a failed statement inside a
transaction would abort it. Everywhere else the statement runs as it is.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import bindparam, column, text
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import TextClause

# "prepared statement does not exist" and "cached plan must not change result type": both
# mean "prepare again"; "already exists" on PREPARE: this session has it (same name, same text).
_PREPARE_AGAIN = frozenset({"26000", "0A000"})
_ALREADY_PREPARED = "42P05"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_INFO_KEY = "dancecat_prepared"  # the names a pooled connection prepared; None: do not


class Prepared:
    """One Core statement, prepared on each PostgreSQL connection that runs it.

    Its name is a digest of its ``PREPARE`` text: the same name always means the same
    statement, in every process and version, so a server session shared through a pooler
    can never run another statement under it. A pooler that moves a client between server
    sessions between statements (PgBouncer's transaction mode) loses the plan again right
    after preparing it: that connection then runs plain statements for the rest of its life.
    """

    def __init__(self, statement: Executable):
        self.statement = statement
        self._built: tuple[str, str, TextClause, dict[str, Any]] | None = None

    def _build(self, conn: Connection) -> tuple[str, str, TextClause, dict[str, Any]]:
        """Name, ``PREPARE`` text, the typed ``EXECUTE`` and the statement's own values."""
        if self._built is None:
            dialect = conn.dialect
            compiled = self.statement.compile(dialect=dialect)
            order: list[str] = []
            for name in _PLACEHOLDER.findall(compiled.string):
                if name not in order:
                    order.append(name)
            body = _PLACEHOLDER.sub(lambda m: f"${order.index(m.group(1)) + 1}", compiled.string)
            body = body.replace("%%", "%")  # PREPARE is sent without parameters: no escapes
            binds = {name: compiled.binds[name] for name in order}
            types = ", ".join(binds[name].type.compile(dialect=dialect) for name in order)
            definition = f"({types}) AS {body}"
            name = "dc_" + hashlib.sha256(definition.encode()).hexdigest()[:24]
            execute = text(f"EXECUTE {name}({', '.join(':' + n for n in order)})")
            execute = execute.bindparams(
                *(bindparam(name, type_=binds[name].type) for name in order)
            )
            selected = getattr(self.statement, "selected_columns", None)
            if selected is not None:
                execute = execute.columns(*(column(c.key, c.type) for c in selected))
            fixed = {name: b.value for name, b in binds.items() if not b.required}
            self._built = (name, f"PREPARE {name} {definition}", execute, fixed)
        return self._built

    def execute(self, conn: Connection, params: dict[str, Any]) -> CursorResult[Any]:
        dbapi = conn.connection.dbapi_connection
        info = conn.connection.info
        if (
            conn.dialect.name != "postgresql"
            or not getattr(dbapi, "autocommit", False)
            or info.setdefault(_INFO_KEY, set()) is None
        ):
            return conn.execute(self.statement, params)
        name, prepare, execute, fixed = self._build(conn)
        done: set[str] = info[_INFO_KEY]
        values = {**fixed, **params}
        # A lost or stale plan is prepared again once; lost twice, the session moves under
        # us (a pooler): plain statements from then on.
        for _ in range(2):
            if name not in done:
                _prepare(conn, prepare)
                done.add(name)
            try:
                return conn.execute(execute, values)
            except DBAPIError as error:
                if _code(error) not in _PREPARE_AGAIN:
                    raise
            _deallocate(conn, name)
            done.discard(name)
        info[_INFO_KEY] = None
        return conn.execute(self.statement, params)


def _code(error: DBAPIError) -> str | None:
    return getattr(error.orig, "pgcode", None)


def _prepare(conn: Connection, prepare: str) -> None:
    try:
        conn.exec_driver_sql(prepare)
    except DBAPIError as error:
        if _code(error) != _ALREADY_PREPARED:
            raise


def _deallocate(conn: Connection, name: str) -> None:
    """Drop a stale plan; one already gone is what was wanted."""
    try:
        conn.exec_driver_sql(f"DEALLOCATE {name}")
    except DBAPIError as error:
        if _code(error) not in _PREPARE_AGAIN:
            raise
