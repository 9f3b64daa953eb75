"""PostgreSQL driver: rows stream through a server-side cursor, or COPY writes the CSV.

The user's text reaches the server only as the one statement PostgreSQL's own parser found
in it (``postgresql_statements``): two statements, or on a read-only connection anything but
a query, are refused before a byte is sent. A query is then wrapped: ``SELECT * FROM (<sql>)
AS q LIMIT 0`` to learn the columns, then ``DECLARE ... CURSOR FOR SELECT * FROM (<sql>) AS
q`` for Python rows or ``COPY (SELECT ... FROM (<sql>) AS q(...)) TO STDOUT`` for CSV, each
inside the ``BEGIN READ ONLY`` transaction psycopg2 opens on read-only connections. The
session is pinned to the settings that make COPY's text the canonical form (``csvcodec``):
UTC, ISO dates, shortest exact floats, hex bytea; the few types whose COPY text differs
(booleans ``t``/``f``, timestamps with a space and ``+00``, ``real`` in its own float4
spelling, ``timetz`` offsets of whole hours as ``+02``) are selected through the expression
that writes the canonical text (``CANONICAL_TEXT``), and the row path reads them with
typecasters (or ``csvcodec``'s float text) that give the same text.

psycopg2 is imported inside the methods that use it, at first use, not when the plugin is
loaded: every console command loads every plugin, and most never connect to PostgreSQL.
"""

from __future__ import annotations

import contextlib
import decimal
import functools
import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs

from dancecat_core.columns import Column, ColumnType
from dancecat_core.drivers import (
    BoundQuery,
    CatalogueSql,
    ConnectionParams,
    Driver,
    DriverSession,
    QueryCursor,
    as_bound,
)
from dancecat_core.error_text import HIDDEN_SECRET
from dancecat_core.errors import ConnectionFailed, QueryError, QueryTimeout, ReadOnlyViolation
from dancecat_core.hookspecs import hookimpl
from dancecat_core.statements import single
from dancecat_plugins.postgresql_statements import parse

if TYPE_CHECKING:
    import psycopg2.extensions

# Types DanceCat reads back as something other than text, by type OID (pg_type.oid).
TYPES_BY_OID: dict[int, ColumnType] = {
    16: ColumnType.BOOLEAN,
    17: ColumnType.BYTES,  # bytea
    20: ColumnType.INTEGER,  # int8
    21: ColumnType.INTEGER,  # int2
    23: ColumnType.INTEGER,  # int4
    26: ColumnType.INTEGER,  # oid
    114: ColumnType.JSON,
    3802: ColumnType.JSON,  # jsonb
    700: ColumnType.FLOAT,  # float4
    701: ColumnType.FLOAT,  # float8
    1700: ColumnType.DECIMAL,  # numeric
    1082: ColumnType.DATE,
    1083: ColumnType.TIME,
    1266: ColumnType.TIME,  # timetz
    1114: ColumnType.DATETIME,  # timestamp
    1184: ColumnType.DATETIMETZ,  # timestamptz, in UTC because the session says so
}

# COPY's column expression for the types whose own text is not the canonical one ("{}" is
# the column): boolean's text cast is ``true``/``false``. A timestamp's ISO text (the
# session's DateStyle, which dates rely on too) gets its ``T``; fraction zeros stay
# trimmed, ``infinity`` and the `` BC`` suffix stay (the last ``replace`` undoes the ``T``
# given to the space before ``BC``): ~0.16 s of the server's time per million values,
# where ``to_json(x)#>>'{}'`` (same text) cost ~0.4 s, and the server's COPY is what a run
# waits for. A timestamptz keeps ``to_json``: it writes the offset as ``+HH:MM`` even when
# the query itself set another zone (``set_config('TimeZone', ...)``). A ``real``'s text
# has float4's shortest digits in float4's spelling (``1.234567e+06``: positional only
# below 1e6); read as a float8 they are spelled as every float is (``1234567``). A
# ``timetz`` offset of whole hours (``+02``) gets its minutes; one with minutes or seconds
# is written in full already. Every other type's COPY text is canonical already.
CANONICAL_TEXT: dict[int, str] = {
    16: "{}::text",
    700: "{}::text::float8",
    1114: "replace(replace({}::text, ' ', 'T'), 'TBC', ' BC')",
    1184: "to_json({})#>>'{{}}'",
    1266: r"regexp_replace({}::text, '([+-]\d\d)$', '\1:00')",
}

# The settings under which COPY's output is the canonical CSV, and psycopg2's values agree.
SESSION_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",  # shortest text that reads back as the same float
    "bytea_output": "hex",
}

# Set before every statement, after any user code could have changed them: the server then
# reads the statement's strings exactly as the parser that checked it did.
LEXING_SETTINGS = {"standard_conforming_strings": "on", "backslash_quote": "safe_encoding"}
ARM_STATEMENT = "SELECT set_config('statement_timeout', %s, true)" + "".join(
    f", set_config('{name}', '{value}', true)" for name, value in LEXING_SETTINGS.items()
)
# TCP keepalives: a server host that vanishes mid-query is noticed within about a minute.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def _as_text(value: str | None, cursor: Any) -> str | None:
    """A psycopg2 typecaster that keeps the database's own text (what COPY writes too)."""
    return value


_HOURS_ONLY_OFFSET = re.compile(r"([+-]\d\d)( BC)?$")


def _as_timestamp_text(value: str | None, cursor: Any) -> str | None:
    """A timestamp's text as COPY writes it through ``CANONICAL_TEXT``: ``T`` for the first
    space, an offset of whole hours as ``+HH:00``; ``infinity`` and `` BC`` kept."""
    if value is None:
        return None
    return _HOURS_ONLY_OFFSET.sub(r"\1:00\2", value.replace(" ", "T", 1))


def _as_timetz_text(value: str | None, cursor: Any) -> str | None:
    """A ``timetz``'s text as COPY writes it through ``CANONICAL_TEXT``: an offset of whole
    hours as ``+HH:00`` (psycopg2's own caster drops an offset's seconds)."""
    return None if value is None else _HOURS_ONLY_OFFSET.sub(r"\1:00\2", value)


@functools.cache
def _casters() -> tuple[Any, ...]:
    """bytea as ``bytes`` rather than psycopg2's ``memoryview``; dates and timestamps keep
    the database's text on the row path too, made canonical as COPY makes it: Python's
    types hold neither ``infinity`` nor dates before year 1. Built at the first connection
    (psycopg2 at first use)."""
    import psycopg2.extensions  # at first use: start-up time (see the module docstring)

    binary, new_type = psycopg2.BINARY, psycopg2.extensions.new_type

    def as_bytes(value: str | None, cursor: Any) -> bytes | None:
        raw = binary(value, cursor)
        return None if raw is None else bytes(raw)

    return (
        new_type(binary.values, "DANCECAT_BYTEA", as_bytes),
        new_type((1082,), "DANCECAT_DATE", _as_text),
        new_type((1114, 1184), "DANCECAT_TIMESTAMP", _as_timestamp_text),
        new_type((1266,), "DANCECAT_TIMETZ", _as_timetz_text),
    )


def one_line(message: str, secrets: Sequence[str] = ()) -> str:
    """libpq's multi-line message as one line, with any secret blanked out."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    for secret in secrets:
        text = text.replace(secret, HIDDEN_SECRET)
    return text


@attrs.frozen
class Pyformat:
    """The statement in psycopg2's ``%s`` form and the values psycopg2 quotes into it.

    psycopg2 binds on the client: ``execute(text, values)`` quotes each value with libpq's
    escaping for this connection and the value's type (``'...'::date``, `` -5``). COPY
    cannot take parameters, so its text is made by the same quoting (``mogrify``); either
    way DanceCat formats no value itself. Without values the text is sent untouched.
    """

    text: str
    values: tuple[Any, ...] | None

    def wrap(self, before: str, after: str) -> str:
        """The statement between a wrapper's two halves, ``%`` escaped when bound."""
        if self.values is not None:
            before, after = before.replace("%", "%%"), after.replace("%", "%%")
        return f"{before}\n{self.text}\n{after}"


def _typed_marker(value: Any) -> str:
    """``%s`` with the type psycopg2's literal lacks: a quoted string is of type
    ``unknown`` and a number's type depends on its size; dates, times and booleans carry
    theirs (``'...'::date``, ``true``)."""
    if isinstance(value, bool):
        return "%s"
    for kind, name in ((str, "text"), (int, "bigint"), (decimal.Decimal, "numeric")):
        if isinstance(value, kind):
            return f"CAST(%s AS {name})"
    return "%s"


def bind_markers(sql: str, bound: BoundQuery) -> Pyformat:
    """``sql`` (the parsed statement, with ``$n`` markers) in psycopg2's form.

    The ``$n`` tokens PostgreSQL's own lexer finds must be exactly ``$1`` .. ``$N`` in
    order: a marker the scan placed where PostgreSQL reads a string or a comment, or a
    ``$n`` the user wrote, is refused rather than guessed at.
    """
    if not bound.values:
        return Pyformat(sql, None)
    for name, value in zip(bound.names, bound.values, strict=False):
        if isinstance(value, str) and "\x00" in value:
            raise QueryError(f"parameter {name}: PostgreSQL text cannot hold a NUL (U+0000)")
    from pglast import parser  # at first use: start-up time (see the module docstring)

    params = [token for token in parser.scan(sql) if token.name == "PARAM"]
    if [sql[t.start : t.end + 1] for t in params] != [
        f"${i + 1}" for i in range(len(bound.values))
    ]:
        raise QueryError(
            "the query's parameters could not be placed: write each as {{ name }} outside "
            "strings and comments, and no $1-style parameters"
        )
    pieces, position = [], 0
    for token, value in zip(params, bound.values, strict=True):
        pieces += [sql[position : token.start].replace("%", "%%"), _typed_marker(value)]
        position = token.end + 1
    pieces.append(sql[position:].replace("%", "%%"))
    return Pyformat("".join(pieces), tuple(bound.values))


# Relation kinds whose columns hold their own values: plain and partitioned tables.
PLAIN_TABLES = frozenset({"r", "p"})


def _traced(
    connection: psycopg2.extensions.connection, sql: str, width: int
) -> list[tuple[frozenset[str], bool]]:
    """Each column's (derived-from columns, traced) as the tracer reads the query."""
    # The tracer (sqlglot, ~50 ms to import) loads with the first query that needs it, not
    # with the plugin: a command that runs none (``dancecat export``) does not pay for it.
    from dancecat_core.provenance import trace
    from dancecat_plugins.postgresql_provenance import PostgresCatalog

    return [
        (origin.columns, origin.traced)
        for origin in trace(PostgresCatalog(connection), sql).align(width)
    ]


class PostgresCursor(QueryCursor):
    """Columns are described up front; rows are only computed by batches() or copy_csv()."""

    def __init__(
        self,
        session: PostgresSession,
        query: Pyformat,
        columns: tuple[list[Column], list[int]],
        limit: int | None,
        statement: psycopg2.extensions.cursor | None = None,
    ):
        self._session = session
        self._query = query
        self._limit = "" if limit is None else f" LIMIT {int(limit)}"
        self._statement = statement  # a read-write statement already run (see open_query)
        self._named: psycopg2.extensions.cursor | None = None
        self.columns, self._oids = columns

    def batches(self, size: int = 5000) -> Iterator[Sequence[Sequence[Any]]]:
        import psycopg2.extensions  # here, not at the top: start-up time (see the module docstring)

        session = self._session
        if self._statement is not None:
            if self._statement.description is None:
                return  # the statement returned no rows (INSERT without RETURNING, DDL)
            source = self._statement
        else:
            # A named cursor is a server-side DECLARE: each fetchmany() is one FETCH of
            # ``size`` rows, so only one batch is ever in this process's memory.
            source = self._named = session.connection.cursor(name="dancecat_rows")
            # Text and JSON arrive as the database's own text, byte for byte what COPY writes.
            as_text = (ColumnType.TEXT, ColumnType.JSON)
            for oid in {
                o for o, c in zip(self._oids, self.columns, strict=True) if c.type in as_text
            }:
                caster = psycopg2.extensions.new_type((oid,), f"DANCECAT_TEXT_{oid}", _as_text)
                psycopg2.extensions.register_type(caster, source)
            with session.errors():
                session.arm_timeout()
                source.execute(
                    self._query.wrap("SELECT * FROM (", f") AS q{self._limit}"),
                    self._query.values,
                )
        while True:
            with session.errors():
                if self._named is not None:
                    session.arm_timeout()
                rows = source.fetchmany(size)
            if not rows:
                return
            yield rows

    def copy_csv(self, keep: Sequence[int], sink: BinaryIO) -> int | None:
        if self._statement is not None:
            return None  # a read-write statement that already ran: rows come from batches()
        # Naming the columns c0..cN makes duplicate names (``SELECT a.id, b.id``) selectable.
        names = ", ".join(f"c{i}" for i in range(len(self.columns)))
        alias = f"q({names})" if self.columns else "q"
        kept = ", ".join(CANONICAL_TEXT.get(self._oids[i], "{}").format(f"c{i}") for i in keep)
        session = self._session
        with session.errors(), session.connection.cursor() as cursor:
            copy = self._query.wrap(
                f"COPY (SELECT {kept} FROM (",
                f") AS {alias}{self._limit}) TO STDOUT WITH (FORMAT csv)",
            )
            if self._query.values is not None:
                # COPY takes no parameters: psycopg2 quotes the values into its text.
                copy = cursor.mogrify(copy, self._query.values).decode("utf-8")
            session.arm_timeout()
            cursor.copy_expert(copy, sink)
            return cursor.rowcount

    def close(self) -> None:
        """End the query's transaction: commit a read-write one, discard a read-only one."""
        import psycopg2  # here, not at the top: start-up time (see the module docstring)

        session = self._session
        if self._named is not None:
            with contextlib.suppress(psycopg2.Error):
                self._named.close()  # CLOSE on the server; unread rows are never sent
        if self._statement is not None:
            self._statement.close()
        session.end_transaction()


class PostgresSession(DriverSession):
    def __init__(self, connection: psycopg2.extensions.connection, read_only: bool):
        self.connection = connection
        self.read_only = read_only
        self._timeout = 0.0
        self._deadline = math.inf
        self._cancelled = threading.Event()
        # Where the user's statement starts in the text being sent (0-based), while the
        # server's error positions can be told in the user's own text; else None.
        self._statement_at: int | None = None

    def ping(self) -> None:
        with self.errors(), self.connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        self.connection.rollback()

    def end_transaction(self) -> None:
        """Commit a read-write query's work; a read-only or cancelled one has none to keep."""
        import psycopg2  # here, not at the top: start-up time (see the module docstring)

        if self.connection.closed:
            return
        if self.read_only or self._cancelled.is_set():
            with contextlib.suppress(psycopg2.Error):
                self.connection.rollback()
            return
        try:
            self.connection.commit()
        except psycopg2.Error as exc:
            raise self._error(exc) from None

    def arm_timeout(self) -> None:
        """Give the next statement what is left of the query's time, enforced by the server.

        The lexing settings are pinned in the same round trip: the statement before may have
        run user code that changed them (``set_config`` in a function the planner folds).
        """
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise QueryTimeout(f"query exceeded its {self._timeout:g} s timeout")
        with self.connection.cursor() as cursor:
            cursor.execute(ARM_STATEMENT, (str(max(1, int(left * 1000))),))

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn psycopg2 errors into DanceCat errors; a failed transaction is rolled back."""
        import psycopg2  # here, not at the top: start-up time (see the module docstring)

        if self._cancelled.is_set():
            raise QueryError("the query was cancelled")
        try:
            yield
        except psycopg2.Error as exc:
            if not self.connection.closed:
                with contextlib.suppress(psycopg2.Error):
                    self.connection.rollback()
            raise self._error(exc) from None

    def _error(self, exc: psycopg2.Error) -> QueryError:
        import psycopg2.errors  # here, not at the top: start-up time (see the module docstring)

        message = one_line(exc.diag.message_primary or str(exc))
        position = exc.diag.statement_position
        if position and self._statement_at is not None:
            # The same words pglast's syntax errors end with (``postgresql_statements``),
            # so the editor finds the place either way (``dancecat_core.error_position``).
            at = int(position) - self._statement_at
            message = f"{message} (character {at})" if at >= 1 else message
        if isinstance(exc, psycopg2.errors.QueryCanceled):
            if self._cancelled.is_set():
                return QueryError("the query was cancelled")
            return QueryTimeout(f"query exceeded its {self._timeout:g} s timeout")
        if self.read_only and isinstance(exc, psycopg2.errors.ReadOnlySqlTransaction):
            # A query whose function writes: the server's read-only transaction stopped it.
            return ReadOnlyViolation(f"this connection is read-only: {message}")
        return QueryError(message)

    def open_query(
        self, sql: str | BoundQuery, *, timeout: float, limit: int | None = None
    ) -> QueryCursor:
        bound = as_bound(sql)
        # ``$n`` markers: PostgreSQL's own parser sees each value's place as a parameter.
        statement = single(parse(bound.joined(lambda i: f"${i + 1}")), read_only=self.read_only)
        sql = statement.text
        query = bind_markers(sql, bound)
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        try:
            with self.errors(), self.connection.cursor() as cursor:
                # psycopg2 has begun the transaction: BEGIN READ ONLY on read-only ones.
                self.arm_timeout()
                if not statement.wrappable:
                    # Not a query (INSERT, CREATE, ...), on a read-write connection: as is.
                    run = self.connection.cursor()
                    self._statement_at = self._start_in(query, "")
                    run.execute(query.text, query.values)
                    return PostgresCursor(self, query, self._columns(run, sql), limit, run)
                # LIMIT 0 plans the query without running it: the columns, for free.
                before = "SELECT * FROM ("
                self._statement_at = self._start_in(query, before)
                cursor.execute(query.wrap(before, ") AS q LIMIT 0"), query.values)
                return PostgresCursor(self, query, self._columns(cursor, sql), limit)
        finally:
            self._statement_at = None

    @staticmethod
    def _start_in(query: Pyformat, before: str) -> int | None:
        """Where the statement starts in what is sent after ``before``: ``wrap`` puts a
        line break between them. Unknown when psycopg2 quotes values into the text."""
        if query.values is not None:
            return None
        return len(before) + 1 if before else 0

    def _columns(
        self, cursor: psycopg2.extensions.cursor, sql: str
    ) -> tuple[list[Column], list[int]]:
        """Each result column (name, type, source, provenance) and its type OID.

        One catalog query, however many columns: psycopg2 gives the type and source as
        OIDs and attribute numbers, PostgreSQL turns them into names and lists each
        composite type's fields. A value of a table's row type (or an array of them)
        derives from every field of it; the rest of each
        column's provenance is the tracer's (``dancecat_core.provenance``).

        PostgreSQL names a column's source table only for a bare column reference (through
        subqueries and CTEs too), never for an expression, a set operation or a function's
        result. When it names one for every column, and each is a plain or partitioned
        table (a view's or materialised view's columns come from its definition), the
        tracer could only say the same, so it is not asked: a ``SELECT ... FROM table``
        does not pay for sqlglot (~50 ms to import, then the parse). tests/test_provenance.py
        holds both paths to the same answers.
        """
        description = cursor.description or ()
        if not description:
            return [], []
        with self.connection.cursor() as lookup:
            lookup.execute(
                """
                SELECT format_type(t.typ, a.atttypmod), c.relname, a.attname, c.relkind,
                       -- a composite type's fields (a table's row type, an array of it,
                       -- a domain over it) as "table.column": its value carries them all
                       ARRAY(SELECT rc.relname || '.' || ra.attname
                             FROM pg_type AS ty
                             JOIN pg_type AS ct ON ct.oid IN (ty.oid, ty.typelem, ty.typbasetype)
                             JOIN pg_class AS rc ON rc.oid = ct.typrelid
                             JOIN pg_attribute AS ra
                               ON ra.attrelid = rc.oid AND ra.attnum > 0 AND NOT ra.attisdropped
                             WHERE ty.oid = t.typ)
                FROM unnest(%s::oid[], %s::oid[], %s::int2[])
                     WITH ORDINALITY AS t(typ, rel, num, i)
                LEFT JOIN pg_class AS c ON c.oid = t.rel
                LEFT JOIN pg_attribute AS a ON a.attrelid = t.rel AND a.attnum = t.num
                ORDER BY t.i
                """,
                (
                    [d.type_code for d in description],
                    [d.table_oid or 0 for d in description],
                    [d.table_column or 0 for d in description],
                ),
            )
            facts = lookup.fetchall()
        if all(table and column and kind in PLAIN_TABLES for _, table, column, kind, _ in facts):
            origins = [(frozenset({f"{t}.{c}"}), True) for _, t, c, _, _ in facts]
        else:
            origins = _traced(self.connection, sql, len(description))
        columns = [
            Column(
                name=d.name,
                type=TYPES_BY_OID.get(d.type_code, ColumnType.TEXT),
                db_type=type_name,
                source=f"{table}.{column}" if table and column else "",
                derived_from=tuple(sorted(derived.union(carried))),
                traced=traced,
            )
            for d, (type_name, table, column, _, carried), (derived, traced) in zip(
                description, facts, origins, strict=True
            )
        ]
        return columns, [d.type_code for d in description]

    def cancel(self) -> None:
        import psycopg2  # here, not at the top: start-up time (see the module docstring)

        # PQcancel asks the server, over a new socket, to stop what this backend is doing;
        # libpq documents it as safe to call from another thread.
        self._cancelled.set()
        with contextlib.suppress(psycopg2.Error):
            self.connection.cancel()

    def close(self) -> None:
        # Closing the socket ends the backend and its transaction; no row is read.
        self.connection.close()


# What the connection's user may SELECT (a table, or some of its columns), read from
# pg_catalog: information_schema's views say the same through a dozen nested views, which
# cost a catalogue of 10,000 tables seconds and provenance tracing 200 look-ups a read.
# Types are named as PostgreSQL writes them (``character varying(40)``, ``integer[]``).
CATALOGUE = CatalogueSql(
    tables="""
        SELECT n.nspname, c.relname,
               CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END,
               CASE WHEN n.nspname = ANY (current_schemas(false)) THEN 1 ELSE 0 END
        FROM pg_catalog.pg_class AS c
        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_%'
          AND (has_table_privilege(c.oid, 'SELECT') OR has_any_column_privilege(c.oid, 'SELECT'))
        ORDER BY 1, 2
    """,
    columns=(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_catalog.pg_attribute AS a
        JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = """,
        """ AND c.relname = """,
        """
          AND a.attnum > 0 AND NOT a.attisdropped
          AND has_column_privilege(c.oid, a.attnum, 'SELECT')
        ORDER BY a.attnum
        """,
    ),
)


class PostgresDriver(Driver):
    name = "postgresql"
    label = "PostgreSQL"
    default_port = 5432
    catalogue = CATALOGUE

    def connect(self, params: ConnectionParams, *, timeout: float) -> DriverSession:
        import psycopg2.extensions  # here, not at the top: start-up time (see the module docstring)

        try:
            connection = psycopg2.connect(
                host=params.host,
                port=params.port or self.default_port,
                user=params.user,
                password=params.password,
                dbname=params.database,
                # The whole connection, handshake and authentication included; libpq's
                # minimum is 2 s.
                connect_timeout=max(2, math.ceil(timeout)),
                **KEEPALIVES,
                application_name="dancecat",
                client_encoding="UTF8",
            )
        except psycopg2.Error as exc:
            raise ConnectionFailed(one_line(str(exc), params.secrets)) from None
        try:
            connection.autocommit = True  # session settings must outlive the transaction
            with connection.cursor() as cursor:
                for name, value in SESSION_SETTINGS.items():
                    cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
                if params.read_only:
                    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            connection.autocommit = False
            # psycopg2 now opens every transaction with BEGIN READ ONLY.
            connection.set_session(readonly=params.read_only)
            for caster in _casters():
                psycopg2.extensions.register_type(caster, connection)
        except psycopg2.Error as exc:
            connection.close()
            raise ConnectionFailed(one_line(str(exc), params.secrets)) from None
        return PostgresSession(connection, params.read_only)


@hookimpl
def dancecat_register_drivers() -> list[type[Driver]]:
    return [PostgresDriver]
