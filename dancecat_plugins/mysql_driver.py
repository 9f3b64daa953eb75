"""MySQL / MariaDB driver, on PyMySQL's unbuffered ``SSCursor``.

The MySQL protocol has no cursor to FETCH from: once a query runs, the server sends every
row and the client either reads them or hangs up. So rows are read as they come (never
buffered whole), previews cap the rows on the server (``sql_select_limit``), and a session
with rows left unread is closed rather than drained. Cancelling needs a second connection
(``KILL QUERY``) because the first one is busy receiving rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql
import pymysql.converters
import pymysql.cursors
from pymysql.constants import ER, FIELD_TYPE

from dancecat_core.columns import Column, ColumnType
from dancecat_core.drivers import ConnectionParams, Driver, DriverSession, QueryCursor
from dancecat_core.errors import ConnectionFailed, QueryError, QueryTimeout, ReadOnlyViolation
from dancecat_core.hookspecs import hookimpl

BINARY_CHARSET = 63  # charsetnr of binary strings: BLOB, BINARY, VARBINARY, BIT
# Server error codes.
TIMED_OUT = {ER.STATEMENT_TIMEOUT, ER.QUERY_TIMEOUT}  # MariaDB 1969, MySQL 3024
READ_ONLY_REFUSED = 1792  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION

TYPES: dict[int, ColumnType] = {
    FIELD_TYPE.TINY: ColumnType.INTEGER,  # TINYINT(1) too: MySQL has no real boolean
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
    FIELD_TYPE.TIMESTAMP: ColumnType.DATETIME,  # shown in the session time zone: UTC
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


CONVERSIONS = {**pymysql.converters.conversions, FIELD_TYPE.TIME: _time_or_text}

# What a read-only connection sends: queries only. The read-only transaction stops every
# data change; this also stops the statements it does not (SET GLOBAL, KILL, FLUSH, ...).
# Text starting with a word that begins no statement goes to the server, for its own
# syntax error. Plain comments may come first; an executable one (/*! ... */) may not.
_FIRST_WORD = re.compile(
    r"(?:\s|\(|--[^\n]*|\#[^\n]*|/\*(?![!M]).*?\*/)*(/\*|\w*)", re.IGNORECASE | re.DOTALL
)
QUERY_COMMANDS = {"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "DESC", "DESCRIBE", "EXPLAIN"}
_OTHER_WORDS = """ALTER ANALYZE BACKUP BEGIN BINLOG CACHE CALL CHANGE CHECK CHECKSUM COMMIT CREATE
    DEALLOCATE DELETE DO DROP EXECUTE FLUSH GET GRANT HANDLER INSERT INSTALL KILL LOAD LOCK
    OPTIMIZE PREPARE PURGE RELEASE RENAME REPAIR REPLACE RESET RESIGNAL REVOKE ROLLBACK
    SAVEPOINT SET SHUTDOWN SIGNAL START STOP TRUNCATE UNINSTALL UNLOCK UPDATE USE XA /*"""
OTHER_COMMANDS = set(_OTHER_WORDS.split())
# SELECT ... INTO OUTFILE writes a file on the server, and no transaction mode prevents it.
# Both words anywhere (even in a string) is refused: rare in a report, impossible to hide.
_INTO = re.compile(r"\bINTO\b", re.IGNORECASE)
_FILE = re.compile(r"\b(?:OUTFILE|DUMPFILE)\b", re.IGNORECASE)


def clean_sql(sql: str) -> str:
    """The query without trailing whitespace and semicolons."""
    sql = sql.rstrip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    return sql


def refusal(sql: str) -> str | None:
    """Why a read-only connection will not send ``sql``, or None when it may."""
    match = _FIRST_WORD.match(sql)
    command = match.group(1).upper() if match else ""
    if command in OTHER_COMMANDS:
        shown = "an executable comment" if command == "/*" else command
        return f"only queries ({', '.join(sorted(QUERY_COMMANDS))}) may run, not {shown}"
    if _INTO.search(sql) and _FILE.search(sql):
        return "SELECT ... INTO OUTFILE/DUMPFILE would write a file on the server"
    return None


def describe(field: Any) -> Column:
    """A result column from PyMySQL's field packet (``org_table``/``org_name`` = source)."""
    binary = field.charsetnr == BINARY_CHARSET
    if field.type_code in STRING_TYPES:
        kind = ColumnType.BYTES if binary else ColumnType.TEXT
        name = STRING_TYPES[field.type_code]
        if binary:
            name = name.replace("text", "blob").replace("char", "binary")
    else:
        kind = TYPES.get(field.type_code, ColumnType.TEXT)
        name = TYPE_NAMES.get(field.type_code, str(field.type_code))
    source = f"{field.org_table}.{field.org_name}" if field.org_table and field.org_name else ""
    return Column(name=field.name, type=kind, db_type=name, source=source)


class MysqlCursor(QueryCursor):
    def __init__(self, session: MysqlSession, cursor: pymysql.cursors.SSCursor, limit: int | None):
        self._session = session
        self._cursor = cursor
        self._left = limit
        # The field packets arrived with execute(); PyMySQL keeps org_table/org_name (the
        # column a value comes from) only on the result's fields, not in .description.
        fields = cursor._result.fields if cursor.description else []
        self.columns = [describe(field) for field in fields]

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
    def __init__(self, connection: pymysql.Connection, read_only: bool, options: dict[str, Any]):
        self.connection = connection
        self.read_only = read_only
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

    def open_query(self, sql: str, *, timeout: float, limit: int | None = None) -> QueryCursor:
        sql = clean_sql(sql)
        self._timeout = timeout
        self._failed = False
        if self.read_only and (reason := refusal(sql)):
            raise ReadOnlyViolation(f"this connection is read-only: {reason}")
        with self.errors():
            with self.connection.cursor() as setup:
                self._set_limits(setup, timeout, limit)
                setup.execute(
                    "START TRANSACTION READ ONLY" if self.read_only else "START TRANSACTION"
                )
            # Unbuffered: execute() returns once the column descriptions have arrived;
            # rows are read off the socket as batches() asks for them.
            cursor = self.connection.cursor(pymysql.cursors.SSCursor)
            cursor.execute(sql)  # no arguments: PyMySQL leaves the text alone (no % escapes)
        return MysqlCursor(self, cursor, limit)

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


class MysqlDriver(Driver):
    name = "mysql"
    label = "MySQL / MariaDB"
    default_port = 3306

    def connect(self, params: ConnectionParams, *, timeout: float) -> DriverSession:
        options: dict[str, Any] = {
            "host": params.host,
            "port": params.port or self.default_port,
            "user": params.user,
            "password": params.password or "",
            "database": params.database,
            "charset": "utf8mb4",
            "connect_timeout": max(1, timeout),
            "conv": CONVERSIONS,
            # client_flag without CLIENT.MULTI_STATEMENTS: "SELECT 1; DROP ..." is refused
            # by the server as a syntax error.
            "client_flag": 0,
            "autocommit": False,
        }
        try:
            connection = pymysql.connect(**options)
        except pymysql.MySQLError as exc:
            message = str(exc.args[1] if len(exc.args) > 1 else exc)
            for secret in params.secrets:
                message = message.replace(secret, "***")
            raise ConnectionFailed(" ".join(message.split())) from None
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")
                if params.read_only:
                    # For the session, not just the next transaction: a statement that
                    # commits implicitly (DDL) starts another transaction, read-only too.
                    cursor.execute("SET SESSION TRANSACTION READ ONLY")
        except pymysql.MySQLError as exc:
            connection.close()
            raise ConnectionFailed(str(exc.args[-1])) from None
        return MysqlSession(connection, params.read_only, options)


@hookimpl
def dancecat_register_drivers() -> list[type[Driver]]:
    return [MysqlDriver]
