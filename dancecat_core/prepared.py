"""Server-side prepared statements for the statements every run sends (PostgreSQL).

A trivial run sends four app-database statements (``lifecycle``: load and claim, finish
and its facts). psycopg2 sends each as text, so PostgreSQL parses and plans the claim's
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

import itertools
import re
from typing import Any

from sqlalchemy import bindparam, column, text
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import TextClause

# psycopg2's "prepared statement does not exist" and "cached plan must not change result
# type": both mean "prepare again".
_PREPARE_AGAIN = frozenset({"26000", "0A000"})
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_names = itertools.count(1)


class Prepared:
    """One Core statement, prepared on each PostgreSQL connection that runs it."""

    def __init__(self, statement: Executable):
        self.statement = statement
        self.name = f"dc_{next(_names)}"
        self._built: tuple[str, TextClause, dict[str, Any]] | None = None

    def _build(self, conn: Connection) -> tuple[str, TextClause, dict[str, Any]]:
        """``PREPARE`` text, the typed ``EXECUTE`` and the statement's own bound values."""
        if self._built is None:
            dialect = conn.dialect
            compiled = self.statement.compile(dialect=dialect)
            order: list[str] = []
            for name in _PLACEHOLDER.findall(compiled.string):
                if name not in order:
                    order.append(name)
            body = _PLACEHOLDER.sub(lambda m: f"${order.index(m.group(1)) + 1}", compiled.string)
            binds = {name: compiled.binds[name] for name in order}
            types = ", ".join(binds[name].type.compile(dialect=dialect) for name in order)
            execute = text(f"EXECUTE {self.name}({', '.join(':' + n for n in order)})")
            execute = execute.bindparams(
                *(bindparam(name, type_=binds[name].type) for name in order)
            )
            selected = getattr(self.statement, "selected_columns", None)
            if selected is not None:
                execute = execute.columns(*(column(c.key, c.type) for c in selected))
            fixed = {name: b.value for name, b in binds.items() if not b.required}
            self._built = (f"PREPARE {self.name} ({types}) AS {body}", execute, fixed)
        return self._built

    def execute(self, conn: Connection, params: dict[str, Any]) -> CursorResult[Any]:
        dbapi = conn.connection.dbapi_connection
        if conn.dialect.name != "postgresql" or not getattr(dbapi, "autocommit", False):
            return conn.execute(self.statement, params)
        prepare, execute, fixed = self._build(conn)
        done: set[str] = conn.connection.info.setdefault("dancecat_prepared", set())
        values = {**fixed, **params}
        if self.name not in done:
            conn.exec_driver_sql(prepare)
            done.add(self.name)
        try:
            return conn.execute(execute, values)
        except DBAPIError as error:
            if getattr(error.orig, "pgcode", None) not in _PREPARE_AGAIN:
                raise
        kept = conn.exec_driver_sql(
            "SELECT 1 FROM pg_prepared_statements WHERE name = %(name)s", {"name": self.name}
        )
        if kept.first() is not None:
            conn.exec_driver_sql(f"DEALLOCATE {self.name}")
        conn.exec_driver_sql(prepare)
        return conn.execute(execute, values)
