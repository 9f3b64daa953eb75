"""The MySQL / MariaDB driver's sessions and cursors, on PyMySQL's unbuffered ``SSCursor``.

The MySQL protocol has no cursor to FETCH from: once a query runs, the server sends every
row and the client either reads them or hangs up. So rows are read as they come (never
buffered whole), previews cap the rows on the server (``sql_select_limit``), and a session
with rows left unread is closed rather than drained. Cancelling needs a second connection
(``KILL QUERY``) because the first one is busy receiving rows.

Loaded by ``mysql_driver.MysqlDriver.connect``, at the first connection: PyMySQL and the
raw-packet CSV path cost every console command ~30 ms to import, and most never connect
to MySQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs
import pymysql
import pymysql.converters
import pymysql.cursors
from pymysql.constants import CR, ER, FIELD_TYPE

from dancecat_core.columns import Column, ColumnType
from dancecat_core.csvcodec import UTC_OFFSET, datetime_string
from dancecat_core.drivers import (
    BoundQuery,
    ConnectionParams,
    DriverSession,
    QueryCursor,
    as_bound,
)
from dancecat_core.error_text import HIDDEN_SECRET
from dancecat_core.errors import ConnectionFailed, QueryError, QueryTimeout, ReadOnlyViolation
from dancecat_core.statements import single
from dancecat_plugins import mysql_fast_csv
from dancecat_plugins.mysql_statements import OTHER, SqlMode, parse, tokens

if TYPE_CHECKING:
    from dancecat_core.provenance import Traced

BINARY_CHARSET = 63  # charsetnr of binary strings: BLOB, BINARY, VARBINARY, BIT
# Server error codes.
TIMED_OUT = {ER.STATEMENT_TIMEOUT, ER.QUERY_TIMEOUT}  # MariaDB 1969, MySQL 3024
READ_ONLY_REFUSED = 1792  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
# Seconds a query's socket may stay silent past the query's own timeout before DanceCat
# gives up on the server (the server's own timeout should have answered long before).
READ_GRACE = 5

TYPES: dict[int, ColumnType] = {
    FIELD_TYPE.TINY: ColumnType.INTEGER,  # but TINYINT(1) is a boolean: see describe()
    FIELD_TYPE.SHORT: ColumnType.INTEGER,
    FIELD_TYPE.INT24: ColumnType.INTEGER,
    FIELD_TYPE.LONG: ColumnType.INTEGER,
    FIELD_TYPE.LONGLONG: ColumnType.INTEGER,
    FIELD_TYPE.YEAR: ColumnType.INTEGER,
    FIELD_TYPE.DECIMAL: ColumnType.DECIMAL,
    FIELD_TYPE.NEWDECIMAL: ColumnType.DECIMAL,
    FIELD_TYPE.FLOAT: ColumnType.FLOAT,
    FIELD_TYPE.DOUBLE: ColumnType.FLOAT,
    FIELD_TYPE.DATE: ColumnType.DATE,
    FIELD_TYPE.NEWDATE: ColumnType.DATE,
    FIELD_TYPE.TIME: ColumnType.TIME,
    FIELD_TYPE.DATETIME: ColumnType.DATETIME,
    # An instant, stored in UTC and shown in the session's time zone, which is UTC.
    FIELD_TYPE.TIMESTAMP: ColumnType.DATETIMETZ,
    FIELD_TYPE.JSON: ColumnType.JSON,  # MySQL; MariaDB's JSON is LONGTEXT, so TEXT
    FIELD_TYPE.BIT: ColumnType.BYTES,
    FIELD_TYPE.GEOMETRY: ColumnType.BYTES,
}
# String types are text or bytes depending on their character set.
STRING_TYPES = {
    FIELD_TYPE.VARCHAR: "varchar",
    FIELD_TYPE.VAR_STRING: "varchar",
    FIELD_TYPE.STRING: "char",
    FIELD_TYPE.ENUM: "enum",
    FIELD_TYPE.SET: "set",
    FIELD_TYPE.TINY_BLOB: "tinytext",
    FIELD_TYPE.MEDIUM_BLOB: "mediumtext",
    FIELD_TYPE.LONG_BLOB: "longtext",
    FIELD_TYPE.BLOB: "text",
}
TYPE_NAMES = {value: name.lower() for name, value in vars(FIELD_TYPE).items() if name.isupper()}
TYPE_NAMES |= {
    FIELD_TYPE.TINY: "tinyint",
    FIELD_TYPE.LONG: "int",
    FIELD_TYPE.LONGLONG: "bigint",
    FIELD_TYPE.NEWDECIMAL: "decimal",
    FIELD_TYPE.NEWDATE: "date",
}


def _time_or_text(text: str) -> dt.time | str:
    """TIME is a duration in MySQL (-838:59:59 to 838:59:59); a time of day when it fits.

    PyMySQL would make every TIME a ``timedelta``, whose text ("3:04:05") is no time at all.
    """
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        return text


def _utc_timestamp(text: str) -> dt.datetime | str:
    """A TIMESTAMP, in UTC because the session says so; a zero date stays text, in UTC."""
    value = pymysql.converters.convert_datetime(text)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC)
    return datetime_string(value) + UTC_OFFSET


CONVERSIONS = {
    **pymysql.converters.conversions,
    FIELD_TYPE.TIME: _time_or_text,
    FIELD_TYPE.TIMESTAMP: _utc_timestamp,
}


def describe(field: Any) -> Column:
    """A result column from PyMySQL's field packet (``org_table``/``org_name`` = source)."""
    binary = field.charsetnr == BINARY_CHARSET
    if field.type_code in STRING_TYPES:
        kind = ColumnType.BYTES if binary else ColumnType.TEXT
        name = STRING_TYPES[field.type_code]
        if binary:
            name = name.replace("text", "blob").replace("char", "binary")
    elif field.type_code == FIELD_TYPE.TINY and field.length == 1:
        # MySQL has no boolean type: BOOLEAN is TINYINT(1), the one type people declare
        # for true/false. Expressions (``a = b``, ``TRUE``) are BIGINT and stay integers.
        kind, name = ColumnType.BOOLEAN, "tinyint(1)"
    else:
        kind = TYPES.get(field.type_code, ColumnType.TEXT)
        name = TYPE_NAMES.get(field.type_code, str(field.type_code))
    source = f"{field.org_table}.{field.org_name}" if field.org_table and field.org_name else ""
    return Column(name=field.name, type=kind, db_type=name, source=source)


class MysqlCursor(QueryCursor):
    def __init__(
        self,
        session: MysqlSession,
        cursor: pymysql.cursors.SSCursor,
        limit: int | None,
        traced: Traced,
    ):
        self._session = session
        self._cursor = cursor
        self._left = limit
        # The field packets arrived with execute(); PyMySQL keeps org_table/org_name (the
        # column a value comes from) only on the result's fields, not in .description.
        fields = cursor._result.fields if cursor.description else []
        origins = traced.align(len(fields))
        self.columns = [
            attrs.evolve(
                describe(field),
                derived_from=tuple(sorted(origin.columns)),
                traced=origin.traced,
            )
            for field, origin in zip(fields, origins, strict=True)
        ]
        # MySQL pads a fraction of a second to the column's precision (``decimals``).
        self._fractional = [field.scale != 0 for field in fields]

    def batches(self, size: int = 5000) -> Iterator[Sequence[Sequence[Any]]]:
        if not self.columns:
            return
        while self._left is None or self._left > 0:
            want = size if self._left is None else min(size, self._left)
            with self._session.errors():
                rows = self._cursor.fetchmany(want)
            if not rows:
                return
            if self._left is not None:
                self._left -= len(rows)
                if not self._left:
                    # sql_select_limit made the server stop here: read its end-of-rows
                    # packet, so the connection is free again.
                    with self._session.errors():
                        self._cursor.fetchone()
            yield rows

    def copy_csv(self, keep: Sequence[int], sink: BinaryIO) -> int | None:
        """Write the rest of the result as canonical CSV, from the row packets' own bytes
        (``mysql_fast_csv``); None when that path is off, and rows come from batches().

        Values keep the server's text where it is canonical: numbers as sent, dates and times
        as the server writes them (a zero date stays the text '0000-00-00', as on the
        batches path), binary columns as hex. Text that is not UTF-8 gets U+FFFD, as
        csvcodec gives it.
        """
        if list(keep) != sorted(set(keep)):
            return None  # columns reordered: the pipeline's own path handles that
        if not mysql_fast_csv.usable(self._session.connection):
            return None  # the fast path is off (the reason is logged): the row path works
        if not self.columns or not self.unread:
            return 0
        with self._session.errors():
            rows = mysql_fast_csv.copy_rows(
                self._session.connection, self.columns, keep, self._fractional, sink
            )
        if self._left is not None:
            self._left = max(0, self._left - rows)
        return rows

    @property
    def unread(self) -> bool:
        """Whether the server may still be sending rows nobody read."""
        result = self._cursor._result
        return result is not None and result.unbuffered_active

    def close(self) -> None:
        session = self._session
        if self.unread:
            session.abandon(self._cursor)  # the only way to stop a MySQL result early
            return
        self._cursor.close()
        session.end_transaction()


class MysqlSession(DriverSession):
    def __init__(
        self,
        connection: pymysql.Connection,
        read_only: bool,
        options: dict[str, Any],
        mode: SqlMode,
    ):
        self.connection = connection
        self.read_only = read_only
        self._mode = mode  # how the server reads quotes and backslashes in this session
        self._options = options  # to open the second connection cancel() needs
        self._thread_id = connection.thread_id()
        self._timeout = 0.0
        self._cancelled = threading.Event()
        self._failed = False
        self._timeout_variable = "max_statement_time"  # MariaDB; MySQL: max_execution_time

    def end_transaction(self) -> None:
        """Commit a read-write query's work; a read-only or failed one has none to keep."""
        if not self.connection.open:
            return
        if self.read_only or self._failed or self._cancelled.is_set():
            with contextlib.suppress(pymysql.MySQLError):
                self.connection.rollback()
            return
        try:
            self.connection.commit()
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None

    def ping(self) -> None:
        with self.errors(), self.connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn PyMySQL errors into DanceCat errors; stop once the query is cancelled."""
        if self._cancelled.is_set():
            raise QueryError("the query was cancelled")
        if not self.connection.open:
            raise QueryError("the connection is closed")
        try:
            yield
        except pymysql.MySQLError as exc:
            self._failed = True
            raise self._error(exc) from None

    def _error(self, exc: pymysql.MySQLError) -> QueryError:
        code, message = (*exc.args, 0, "")[:2]
        message = str(message or "the connection to the server was lost")
        if self._cancelled.is_set():
            return QueryError("the query was cancelled")
        if code in TIMED_OUT:
            return QueryTimeout(f"query exceeded its {self._timeout:g} s timeout")
        if code == READ_ONLY_REFUSED:
            return ReadOnlyViolation(f"this connection is read-only: {message}")
        return QueryError(message)

    def _set_limits(self, cursor: pymysql.cursors.Cursor, timeout: float, limit: int | None):
        """Server-side timeout and row cap for the next statement."""
        rows = "DEFAULT" if limit is None else str(int(limit))
        if self._timeout_variable == "max_statement_time":
            try:
                cursor.execute(f"SET max_statement_time = {timeout:f}, sql_select_limit = {rows}")
                return
            except pymysql.MySQLError as exc:
                if exc.args[0] != ER.UNKNOWN_SYSTEM_VARIABLE:
                    raise
                self._timeout_variable = "max_execution_time"  # MySQL, in milliseconds
        millis = max(1, round(timeout * 1000))
        cursor.execute(f"SET max_execution_time = {millis}, sql_select_limit = {rows}")

    def open_query(
        self, sql: str | BoundQuery, *, timeout: float, limit: int | None = None
    ) -> QueryCursor:
        bound = as_bound(sql)
        statement = single(parse(bound.joined(lambda i: "?"), self._mode), read_only=self.read_only)
        text, values = self._bind_markers(statement.text, bound)
        self._timeout = timeout
        self._failed = False
        with self.errors():
            # The catalog is read first: once the query runs, the connection is busy with it.
            # The tracer (sqlglot) loads with the first query, not with the plugin.
            from dancecat_core.provenance import trace
            from dancecat_plugins.mysql_provenance import MysqlCatalog

            traced = trace(MysqlCatalog(self.connection), statement.text)
            with self.connection.cursor() as setup:
                self._set_limits(setup, timeout, limit)
                setup.execute(
                    "START TRANSACTION READ ONLY" if self.read_only else "START TRANSACTION"
                )
            # The server's own timeout answers first; this one covers a server gone silent.
            self.connection._read_timeout = timeout + READ_GRACE
            # Unbuffered: execute() returns once the column descriptions have arrived;
            # rows are read off the socket as batches() asks for them. Without
            # CLIENT.MULTI_STATEMENTS the server refuses a second statement in the text.
            cursor = self.connection.cursor(pymysql.cursors.SSCursor)
            # Without values PyMySQL leaves the text alone; with them it quotes each one
            # with the connection's escaping (which follows NO_BACKSLASH_ESCAPES).
            cursor.execute(text, values)
        return MysqlCursor(self, cursor, limit, traced)

    def _bind_markers(self, sql: str, bound: BoundQuery) -> tuple[str, tuple[Any, ...] | None]:
        """``sql`` (with ``?`` markers) in PyMySQL's ``%s`` form, and the values.

        The ``?`` tokens this session's lexer finds (its ``sql_mode`` decides where strings
        end) must be exactly one per value: a marker the scan placed inside what the server
        reads as a string or comment is refused rather than quoted into it.
        """
        if not bound.values:
            return sql, None
        marks = [t.start for t in tokens(sql, self._mode) if t.kind == OTHER and t.text == "?"]
        if len(marks) != len(bound.values):
            raise QueryError(
                "the query's parameters could not be placed: write each as {{ name }} "
                "outside strings and comments"
            )
        pieces, position = [], 0
        for start, value in zip(marks, bound.values, strict=True):
            pieces += [sql[position:start].replace("%", "%%"), _typed_marker(value)]
            position = start + 1
        pieces.append(sql[position:].replace("%", "%%"))
        return "".join(pieces), tuple(mysql_value(value) for value in bound.values)

    def cancel(self) -> None:
        self._cancelled.set()
        self._kill_query()

    def _kill_query(self) -> None:
        """KILL QUERY from a second connection: the first is busy receiving rows."""
        with contextlib.suppress(pymysql.MySQLError, OSError):
            killer = pymysql.connect(**self._options)
            try:
                with killer.cursor() as cursor:
                    cursor.execute("KILL QUERY %s", (self._thread_id,))
            finally:
                killer.close()

    def abandon(self, cursor: pymysql.cursors.SSCursor) -> None:
        """Stop a result midway: kill the query and hang up, reading nothing more.

        PyMySQL would otherwise read every remaining row to keep the protocol in step
        (``SSCursor.close()``, and the result's ``__del__``); this connection is discarded
        instead, so tell PyMySQL there is nothing left to read.
        """
        self._kill_query()
        if cursor._result is not None:
            cursor._result.unbuffered_active = False
        cursor.connection = None
        self.close()

    def close(self) -> None:
        if self.connection.open:
            self.connection.close()  # COM_QUIT and close the socket; reads nothing


def _typed_marker(value: Any) -> str:
    """``%s``, as a typed literal for dates and times (``DATE '2026-01-31'``): PyMySQL
    quotes them as plain strings."""
    if isinstance(value, dt.datetime):
        return "TIMESTAMP %s"
    if isinstance(value, dt.date):
        return "DATE %s"
    return "%s"


def mysql_value(value: Any) -> Any:
    """A parameter value as PyMySQL quotes it: an instant as UTC wall time (the session's
    ``time_zone`` is UTC; PyMySQL would drop the offset)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def connect(params: ConnectionParams, *, timeout: float, default_port: int) -> MysqlSession:
    """A session on the server ``params`` names (``MysqlDriver.connect``)."""
    options: dict[str, Any] = {
        "host": params.host,
        "port": params.port or default_port,
        "user": params.user,
        "password": params.password or "",
        "database": params.database,
        "charset": "utf8mb4",
        # connect_timeout covers the TCP connect only; the greeting and every later read
        # wait at most read_timeout (a port that accepts and never speaks, Redis's say).
        "connect_timeout": max(1, timeout),
        "read_timeout": max(1, timeout),
        "write_timeout": max(1, timeout),
        "conv": CONVERSIONS,
        # client_flag without CLIENT.MULTI_STATEMENTS: "SELECT 1; DROP ..." is refused
        # by the server as a syntax error.
        "client_flag": 0,
        "autocommit": False,
    }
    try:
        connection = pymysql.connect(**options)
    except UnicodeEncodeError:
        # PyMySQL sends the password as Latin-1 and refuses anything else.
        raise ConnectionFailed(
            "the MySQL client can only send a password of Latin-1 characters"
        ) from None
    except pymysql.MySQLError as exc:
        message = str(exc.args[1] if len(exc.args) > 1 else exc)
        if exc.args[0] == CR.CR_SERVER_LOST:  # no greeting: "Lost ... during query"
            message = (
                f"{options['host']}:{options['port']} sent no MySQL greeting within "
                f"{options['read_timeout']:g} s"
            )
        for secret in params.secrets:
            message = message.replace(secret, HIDDEN_SECRET)
        raise ConnectionFailed(" ".join(message.split())) from None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET time_zone = '+00:00'")
            if params.read_only:
                # For the session, not just the next transaction: a statement that
                # commits implicitly (DDL) starts another transaction, read-only too.
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute("SELECT @@SESSION.sql_mode")
            (sql_mode,) = cursor.fetchone()
    except pymysql.MySQLError as exc:
        connection.close()
        raise ConnectionFailed(str(exc.args[-1])) from None
    return MysqlSession(connection, params.read_only, options, SqlMode.parse(sql_mode))
