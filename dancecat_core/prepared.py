"""Server-side prepared statements for the hottest statements: every run's, the Jobs screen's
(PostgreSQL).

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

Once a connection holds the plan, the ``EXECUTE`` goes straight to psycopg2's cursor with
the statement's own type conversions (``_Direct``): SQLAlchemy's per-execution work around
it (execution context, compiled-cache look-up, result metadata) was about a
third of the consumer's CPU for the app database, 0.1-0.3 ms a trivial run. Not while
anything listens to SQLAlchemy's statements (``before_cursor_execute``), so what counts or
traces them sees every one; and any error goes through SQLAlchemy again, which prepares
anew or raises it wrapped, a lost connection invalidated.
"""

from __future__ import annotations

import collections
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
from sqlalchemy import ARRAY, Boolean, ColumnElement, any_, bindparam, column, text
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.visitors import InternalTraversal

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
        self._built: tuple[str, str, TextClause, dict[str, Any], _Direct] | None = None

    def _build(self, conn: Connection) -> tuple[str, str, TextClause, dict[str, Any], _Direct]:
        """Name, ``PREPARE`` text, the typed ``EXECUTE``, the statement's own values and
        the ``EXECUTE`` sent straight to the driver."""
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
            # Without parameters PostgreSQL takes neither "()" after the name nor "()" after
            # EXECUTE.
            definition = f"({types}) AS {body}" if order else f"AS {body}"
            name = "dc_" + hashlib.sha256(definition.encode()).hexdigest()[:24]
            execute = text(f"EXECUTE {name}{_arguments(':' + n for n in order)}")
            execute = execute.bindparams(
                *(bindparam(name, type_=binds[name].type) for name in order)
            )
            selected = getattr(self.statement, "selected_columns", None)
            if selected is not None:
                execute = execute.columns(*(column(c.key, c.type) for c in selected))
            fixed = {name: b.value for name, b in binds.items() if not b.required}
            direct = _Direct.of(name, order, binds, selected, dialect)
            self._built = (name, f"PREPARE {name} {definition}", execute, fixed, direct)
        return self._built

    def execute(self, conn: Connection, params: dict[str, Any]) -> CursorResult[Any] | _Answer:
        """The statement's rows (iterated, ``all``, ``first``, ``one``) and ``rowcount``. A
        plan this connection holds runs straight on the driver's cursor unless something listens to
        SQLAlchemy's statements (``before_cursor_execute``: tests counting round trips,
        tracing); any error there goes through SQLAlchemy once more, which prepares again
        or raises it wrapped (a lost connection invalidated, as ``with_app_db`` expects)."""
        done = _prepares_on(conn)
        if done is None:
            return conn.execute(self.statement, params)
        dbapi = conn.connection.dbapi_connection
        info = conn.connection.info
        name, prepare, execute, fixed, direct = self._build(conn)
        values = {**fixed, **params}
        if name in done and not conn.dispatch.before_cursor_execute:
            try:
                return direct.run(dbapi, values)
            except conn.dialect.loaded_dbapi.Error:
                pass
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

    def make_ready(self, conn: Connection) -> None:
        """Build the statement and prepare it on ``conn`` now, as ``execute`` would on its
        first call: a consumer does this at start-up, not when the first of a thousand due
        runs arrives. Where ``execute`` would not prepare, nothing."""
        done = _prepares_on(conn)
        if done is None:
            return
        name, prepare, *_ = self._build(conn)
        if name not in done:
            _prepare(conn, prepare)
            done.add(name)


def _prepares_on(conn: Connection) -> set[str] | None:
    """The names ``conn`` has prepared, or None where statements run as they are (not
    PostgreSQL, not autocommit, or a pooler took the plans: see ``Prepared``)."""
    if conn.dialect.name != "postgresql" or not getattr(
        conn.connection.dbapi_connection, "autocommit", False
    ):
        return None
    done: set[str] | None = conn.connection.info.setdefault(_INFO_KEY, set())
    return done


def _arguments(placeholders: Iterator[str]) -> str:
    """An ``EXECUTE``'s argument list: ``(a, b)``, or nothing for no parameters."""
    listed = ", ".join(placeholders)
    return f"({listed})" if listed else ""


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


@attrs.frozen
class _Answer:
    """What ``Prepared.execute`` answers from a direct ``EXECUTE``: the rows, typed as
    SQLAlchemy would read them, and the row count."""

    rows: list[Any]
    rowcount: int

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def all(self) -> list[Any]:
        return self.rows

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        if not self.rows:
            raise NoResultFound("no row where one was expected")
        if len(self.rows) > 1:
            raise MultipleResultsFound(f"{len(self.rows)} rows where one was expected")
        return self.rows[0]


@attrs.frozen
class _Direct:
    """``EXECUTE name(...)`` on the driver's cursor, each value converted by its bind's
    type on the way in and each column by its type on the way out (``UTCDateTime``: aware
    UTC), rows as named tuples."""

    sql: str
    order: tuple[str, ...]
    convert_in: tuple[Callable[[Any], Any] | None, ...]
    row: Any  # a named tuple class, or None for a statement without columns
    # (position, conversion) of the columns whose type converts what the driver gives:
    # only those are touched (on the Jobs screen, 4 of a run's 18 columns).
    convert_out: tuple[tuple[int, Callable[[Any], Any]], ...]

    @classmethod
    def of(
        cls, name: str, order: list[str], binds: dict[str, Any], selected: Any, dialect: Any
    ) -> _Direct:
        columns = list(selected) if selected is not None else []
        row = collections.namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
        processors = (c.type.result_processor(dialect, None) for c in columns)
        return cls(
            sql=f"EXECUTE {name}{_arguments('%s' for _ in order)}",
            order=tuple(order),
            convert_in=tuple(binds[n].type.bind_processor(dialect) for n in order),
            row=row if columns else None,
            convert_out=tuple((i, p) for i, p in enumerate(processors) if p is not None),
        )

    def run(self, dbapi: Any, values: dict[str, Any]) -> _Answer:
        args = [
            value if convert is None else convert(value)
            for value, convert in zip((values[n] for n in self.order), self.convert_in, strict=True)
        ]
        with dbapi.cursor() as cursor:
            cursor.execute(self.sql, args)
            raw: Sequence[Any] = cursor.fetchall() if cursor.description else ()
            rowcount = cursor.rowcount
        if self.row is None or not raw:
            return _Answer([], rowcount)
        make = self.row._make
        if not self.convert_out:
            return _Answer(list(map(make, raw)), rowcount)
        rows = []
        for fetched in raw:
            row = list(fetched)
            for at, convert in self.convert_out:
                row[at] = convert(row[at])
            rows.append(make(row))
        return _Answer(rows, rowcount)


class OneOf(ColumnElement[bool]):
    """``column IN (:name)`` for a list of values bound at each execution, in a statement
    that can be prepared: on PostgreSQL ``column = ANY(:name)`` (one array parameter, so
    one plan whatever the list's length), elsewhere SQLAlchemy's expanding ``IN``."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition as it is, not "(...) = 1" where booleans are 0/1
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[Any], name: str):
        self.column = column
        self.name = name


@compiles(OneOf)
def _one_of(element: OneOf, compiler: Any, **kw: Any) -> str:
    values = bindparam(element.name, expanding=True, type_=element.column.type)
    return compiler.process(element.column.in_(values), **kw)  # type: ignore[no-any-return]


@compiles(OneOf, "postgresql")
def _one_of_an_array(element: OneOf, compiler: Any, **kw: Any) -> str:
    values = bindparam(element.name, type_=ARRAY(element.column.type))
    return compiler.process(element.column == any_(values), **kw)  # type: ignore[no-any-return]
