"""SQLite driver: the smallest complete example of a DanceCat driver.

``ConnectionParams.database`` is the absolute path of the database file, or a ``file:``
URI naming one. ``sqlite_file`` decides which file that is exactly as SQLite would, and the
driver hands SQLite only a URI it builds itself from the checked path, never the text a
user typed.

SQLite declares no column types in a result (a column may hold an integer in one row and
text in the next), so every column's ``type`` is ``None`` and the pipeline infers it from
the values. There is no native CSV path: rows leave through ``batches()`` and the pipeline
formats them.

What a table column was declared as is only visible through the sqlite3 module's
``PARSE_DECLTYPES``: each value of a column declared BOOLEAN/BOOL, DATE, TIME, TIMESTAMP or
DATETIME is handed, as bytes, to the converter registered under that word
(``DECLARED_TYPES``), which makes it a Python bool, date, time or datetime when its text has
that shape (``0``/``1``; ISO 8601), so such columns are typed like other databases' and
written in the same canonical text. A value of any other shape stays text, as it was
stored; a value computed in the query (no declared type) is inferred from its value alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import functools
import os
import re
import sqlite3
import string
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dancecat_core.columns import Column
from dancecat_core.drivers import (
    BoundQuery,
    CatalogueSql,
    ConnectionParams,
    Driver,
    DriverSession,
    QueryCursor,
    as_bound,
)
from dancecat_core.errors import (
    ConnectionFailed,
    QueryError,
    QueryTimeout,
    ReadOnlyViolation,
    ValidationError,
)
from dancecat_core.hookspecs import hookimpl
from dancecat_core.local_files import LocalFileRules
from dancecat_core.statements import checked_text, empty, not_a_query, several

if TYPE_CHECKING:
    from dancecat_core.provenance import Traced

# How many SQLite VM instructions run between two looks at the deadline: often enough to
# stop within milliseconds, rarely enough to cost nothing measurable.
_PROGRESS_STEPS = 10_000
_HEX = frozenset("0123456789abcdefABCDEF")
URI_RULE = "the only file: URI option allowed is mode=ro (mode=rw on a read-write connection)"


def _parse_uri(uri: str) -> tuple[str, list[tuple[str, str]]]:
    """The path and options of a ``file:`` URI, decoded as ``sqlite3ParseUri`` does.

    ``file://`` must be followed by an empty authority or ``localhost``; ``%HH`` is decoded
    anywhere (so ``%3F`` is a ``?`` inside the name, not the query); a raw ``?`` starts the
    options, ``&`` separates them, and a raw ``#`` ends everything. ``%00`` (which SQLite
    reads as "ignore the rest of this part") is refused rather than imitated.
    """
    rest = uri[len("file:") :]
    if rest.startswith("//"):
        end = rest.find("/", 2)
        authority = rest[2:] if end < 0 else rest[2:end]
        if authority not in ("", "localhost"):
            raise ValidationError(
                "database: a file: URI may only name this machine (file:///path)", "database"
            )
        rest = "" if end < 0 else rest[end:]
    path = bytearray()
    options: list[tuple[bytearray, bytearray]] = []
    state = 0  # 0: the path, 1: an option's name, 2: its value
    i = 0
    while i < len(rest) and rest[i] != "#":
        char, i = rest[i], i + 1
        target = path if state == 0 else options[-1][state - 1]
        if char == "%" and rest[i : i + 1] in _HEX and rest[i + 1 : i + 2] in _HEX:
            octet, i = int(rest[i : i + 2], 16), i + 2
            if octet == 0:
                raise ValidationError("database: %00 is not allowed in a file: URI", "database")
            target.append(octet)
        elif (state == 0 and char == "?") or (state == 2 and char == "&"):
            options.append((bytearray(), bytearray()))
            state = 1
        elif state == 1 and char in "&=":
            if not target:  # an option without a name: SQLite skips it up to the next "&"
                while i < len(rest) and rest[i] != "#" and rest[i - 1] != "&":
                    i += 1
            elif char == "&":  # a name without a value
                options.append((bytearray(), bytearray()))
            else:
                state = 2
        else:
            target += char.encode("utf-8")
    try:
        return path.decode("utf-8"), [
            (name.decode("utf-8"), value.decode("utf-8")) for name, value in options if name
        ]
    except UnicodeDecodeError:
        raise ValidationError("database: the file: URI is not valid UTF-8", "database") from None


def sqlite_file(
    database: str, *, read_only: bool, files: LocalFileRules, exists: bool = True
) -> tuple[Path, os.stat_result | None]:
    """The file SQLite would open for ``database``, and its status, if DanceCat may open it.

    The one place that decides, used when a connection is saved and again on every
    connect. A plain path may not hold ``?``, ``#`` or ``%`` (write a ``file:`` URI to
    name such a file), must be absolute (SQLite would resolve a relative one against
    whichever process opens it), and ends, after ``..`` and symbolic links, in a file of
    ``SQLITE_ALLOWED_DIRS`` that is none of DanceCat's own (``LocalFileRules.check``;
    ``exists=False`` when saving, where the file may come later).
    A URI's options could widen access (``vfs``, ``immutable``, ``nolock``, ``mode=rwc``)
    and are refused, except the ``mode`` that matches the connection.
    """
    if database.startswith("file:"):
        path, options = _parse_uri(database)
        wanted = "ro" if read_only else "rw"
        for name, value in options:
            if name != "mode" or value != wanted:
                raise ValidationError(f"database: {name}={value} refused; {URI_RULE}", "database")
    elif any(char in database for char in "?#%"):
        raise ValidationError(
            "database: a plain path may not contain ?, # or % (percent-encode them in a file: URI)",
            "database",
        )
    else:
        path = database
    if not path.startswith("/"):
        raise ValidationError(
            "database must be an absolute path (/...) or a file:/// URI", "database"
        )
    return files.check(path, exists=exists)


# What compiling a plain query asks the authorizer for; anything else is not a query.
QUERY_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
# Pragmas a query may read as table-valued functions (``SELECT * FROM pragma_table_info('t')``).
READABLE_PRAGMAS = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "database_list", "collation_list", "function_list", "module_list",
    "pragma_list", "compile_options",
}  # fmt: skip
SCHEMA_TABLES = {"sqlite_master", "sqlite_temp_master"}
# The statement a denied action belongs to, when the text's first word does not say it
# (``WITH x AS (...) DELETE ...``).
ACTION_WORDS = {
    sqlite3.SQLITE_INSERT: "INSERT",
    sqlite3.SQLITE_UPDATE: "UPDATE",
    sqlite3.SQLITE_DELETE: "DELETE",
}
# Comments, blanks and semicolons: text with nothing else holds no statement. Only used to
# word the answer; SQLite itself runs nothing for such text.
# A comment's body never holds "*/", so no match can run past the comment's end.
_COMMENT = r"--[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/|\Z)"
_BLANK = re.compile(rf"(?:\s|;|{_COMMENT})*")
_FIRST_WORD = re.compile(rf"(?:\s|{_COMMENT})*(\w*)")
ONE_STATEMENT = "You can only execute one statement at a time."
ATTACH_REFUSED = "ATTACH and VACUUM INTO are not allowed"  # the sqlite3 module's words

_DATE = re.compile(rb"\d{4}-\d{2}-\d{2}")
# A time of day, with an offset or not (SQLite has no time with time zone: text that has
# one is spelled as PostgreSQL's timetz is, ``+HH:MM[:SS]``).
_TIME = re.compile(rb"\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[+-]\d{2}(?::\d{2}(?::\d{2})?)?)?")
_DATETIME = re.compile(rb"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?")


def _declared(pattern: re.Pattern[bytes], parse: Callable[[str], Any]) -> Callable[[bytes], Any]:
    """A converter: the value parsed when its whole text has the type's shape, else text."""

    def convert(raw: bytes) -> Any:
        text = raw.decode("utf-8", errors="replace")
        if pattern.fullmatch(raw):
            with contextlib.suppress(ValueError):  # 2024-02-30: the shape, not a date
                return parse(text)
        return text

    return convert


_BOOLEANS = {b"0": False, b"1": True}

# Converters by declared type (the first word of the declaration, any case). Registering
# them also replaces the sqlite3 module's own "date" and "timestamp" converters, which raise
# on text of any other shape; no other part of DanceCat uses PARSE_DECLTYPES.
DECLARED_TYPES: dict[str, Callable[[bytes], Any]] = {
    "BOOLEAN": lambda raw: _BOOLEANS.get(raw, raw.decode("utf-8", errors="replace")),
    "DATE": _declared(_DATE, dt.date.fromisoformat),
    "TIME": _declared(_TIME, dt.time.fromisoformat),
    "TIMESTAMP": _declared(_DATETIME, dt.datetime.fromisoformat),
}
DECLARED_TYPES["BOOL"] = DECLARED_TYPES["BOOLEAN"]
DECLARED_TYPES["DATETIME"] = DECLARED_TYPES["TIMESTAMP"]
for _name, _converter in DECLARED_TYPES.items():
    sqlite3.register_converter(_name, _converter)


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
            with self._session.errors():
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


class _Kept:
    """An open sqlite3 connection, and the texts it proved to be queries (``_require_query``),
    which outlive one session when the connection is kept for the next (``_Idle``)."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection
        self.queries: set[str] = set()


# Read-only connections kept open between sessions: opening one (connect, reading the
# schema, PRAGMA query_only, proving the text a query with EXPLAIN, closing) was a fifth
# of a trivial scheduled run's own CPU in a consumer.
IDLE_PER_FILE = 8
IDLE_FILES = 16


class _Idle:
    """Read-only connections not in use, by the name they opened (URI and busy timeout)
    and the file that name held then (device and inode): a file replaced under the same
    name is another file, and its old connections are closed, not handed out. Every
    connect still checks the name first (``sqlite_file``): only its answer picks one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[tuple[str, float], tuple[tuple[int, int], list[_Kept]]] = {}

    def take(self, name: tuple[str, float], file: tuple[int, int]) -> _Kept | None:
        stale: list[_Kept] = []
        kept = None
        with self._lock:
            entry = self._by_name.get(name)
            if entry is not None and entry[0] != file:
                stale = self._by_name.pop(name)[1]
            elif entry is not None and entry[1]:
                kept = entry[1].pop()
        for old in stale:
            old.connection.close()
        return kept

    def give_back(self, name: tuple[str, float], file: tuple[int, int], kept: _Kept) -> None:
        dropped: list[_Kept] = []
        with self._lock:
            entry = self._by_name.get(name)
            if entry is None:
                entry = self._by_name[name] = (file, [])
                while len(self._by_name) > IDLE_FILES:
                    dropped += self._by_name.pop(next(iter(self._by_name)))[1]
            if entry[0] == file and len(entry[1]) < IDLE_PER_FILE:
                entry[1].append(kept)
            else:
                dropped.append(kept)
        for old in dropped:
            old.connection.close()


class SqliteSession(DriverSession):
    def __init__(
        self,
        kept: _Kept,
        read_only: bool,
        give_back: Callable[[_Kept], None] | None = None,
    ):
        """A session on ``kept``'s connection; at ``close`` a connection that may serve
        another session goes to ``give_back`` (read-only ones only), others are closed."""
        self._kept = kept
        self._connection = connection = kept.connection
        self._give_back = give_back
        self._read_only = read_only
        # cancel() and close() exclude each other: no cancel reaches a connection that
        # was handed on to the next session.
        self._lock = threading.Lock()
        self._closed = False
        self._busy = False  # a statement started and not reset yet
        self._failed = False  # SQLite reported an error: the connection is not reused
        self._deadline = float("inf")
        self._timeout = 0.0
        self._cancelled = threading.Event()
        self._refused = ""  # what the authorizer refused last, for the error message
        self._first_action: int | None = None  # the compiling statement's first request
        self._queries = kept.queries  # texts SQLite compiled as queries on this connection
        connection.set_authorizer(self._authorize)

    def _authorize(self, action: int, arg1: str | None, *_: object) -> int:
        """Refuse what the opened file alone does not stop; on a read-only connection, allow
        what a query needs and nothing else.

        ATTACH (and ``VACUUM INTO``, which attaches) would open or create another file,
        past the checks ``sqlite_file`` made on this one, on any connection.

        On a read-only one, SQLite's compiler asks for every statement kind, table read and
        function; a SELECT statement's first request is SQLITE_SELECT (``sqlite3Select``
        asks before anything else, and every other statement asks for its own kind first).
        Within a SELECT, two more are what plain queries need: the schema entry SQLite
        compiles (never runs) when a table-valued function (``json_each``) is first used on
        the connection, and the table-valued pragmas listed, which SQLite only offers for
        pragmas without side effects. Besides ``mode=ro`` and ``query_only``, this stops
        ``PRAGMA query_only``.
        """
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            self._refused = ATTACH_REFUSED
            return sqlite3.SQLITE_DENY
        if not self._read_only:
            return sqlite3.SQLITE_OK
        if self._first_action is None:
            self._first_action = action
        in_select = self._first_action == sqlite3.SQLITE_SELECT
        if action in QUERY_ACTIONS or (
            in_select
            and (
                (action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READABLE_PRAGMAS)
                or (action == sqlite3.SQLITE_UPDATE and arg1 in SCHEMA_TABLES)
            )
        ):
            return sqlite3.SQLITE_OK
        self._refused = self._refused or ACTION_WORDS.get(action, "")
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        """Called every few thousand VM steps; a non-zero answer aborts the statement."""
        return int(self._cancelled.is_set() or time.monotonic() > self._deadline)

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn sqlite3 errors into DanceCat errors, and stop once the query is cancelled."""
        if self._cancelled.is_set():
            raise QueryError("the query was cancelled")
        try:
            yield
        except sqlite3.Error as exc:
            self._failed = True
            raise self._error(exc) from None

    def ping(self) -> None:
        with self.errors():
            self._connection.execute("SELECT 1").fetchall()

    def open_query(
        self, sql: str | BoundQuery, *, timeout: float, limit: int | None = None
    ) -> QueryCursor:
        bound = as_bound(sql)
        # ``?`` is SQLite's own binding: a value is never part of the compiled text.
        sql = checked_text(bound.joined(lambda index: "?")).strip(string.whitespace + ";")
        values = tuple(sqlite_value(value) for value in bound.values)
        if _BLANK.fullmatch(sql):
            raise empty()
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._busy = True
        self._connection.set_progress_handler(self._progress, _PROGRESS_STEPS)
        with self.errors():
            if self._read_only:
                self._require_query(sql, values)
            # The tracer (sqlglot) loads with the first query, not with the plugin.
            from dancecat_core.provenance import trace
            from dancecat_plugins.sqlite_provenance import SqliteCatalog

            traced = trace(SqliteCatalog(self._connection), sql)
            # execute() runs the statement up to its first row; the sqlite3 module refuses
            # text holding more than one statement before running any of it.
            cursor = self._connection.execute(sql, values)
        return SqliteCursor(self, cursor, limit, traced)

    def _require_query(self, sql: str, values: Sequence[Any] = ()) -> None:
        """Compile ``sql`` without running it (EXPLAIN) and refuse it unless it is a query.

        The authorizer refuses every action a query does not need while SQLite compiles.
        VACUUM and REINDEX ask it for nothing at all, so a query must also have asked for
        SQLITE_SELECT first.
        """
        if sql not in self._queries:  # the sqlite3 module reuses a compiled text unasked
            self._first_action = None
            self._refused = ""
            try:
                self._connection.execute(f"EXPLAIN {sql}", values).close()
            except sqlite3.DatabaseError as exc:
                if getattr(exc, "sqlite_errorname", "") != "SQLITE_AUTH":
                    raise
                raise not_a_query(self._command(sql)) from None
            if self._first_action != sqlite3.SQLITE_SELECT:
                raise not_a_query(self._command(sql))
            self._queries.add(sql)
        self._first_action = sqlite3.SQLITE_SELECT  # what runs next, compiled or reused

    def _command(self, sql: str) -> str:
        """What a refused statement is, in words: its first, or what its WITH leads to."""
        match = _FIRST_WORD.match(sql)
        word = match.group(1).upper() if match and match.group(1) else "this statement"
        return f"WITH ... {self._refused}" if word == "WITH" and self._refused else word

    def query_done(self) -> None:
        self._connection.set_progress_handler(None, 0)
        self._deadline = float("inf")
        self._busy = False

    def cancel(self) -> None:
        # The flag stops the statement at its next progress check even when interrupt()
        # lands between two fetches; interrupt() is the one call SQLite allows from any thread.
        with self._lock:
            if self._closed:
                return  # its connection may be another session's now
            self._cancelled.set()
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed: nothing runs
                self._connection.interrupt()

    def close(self) -> None:
        """Close, or hand the connection on when it is as a new one would be: read-only,
        no statement left running, never cancelled, no error seen, no transaction open."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            reuse = (
                self._give_back is not None
                and not (self._busy or self._failed or self._cancelled.is_set())
                and not self._connection.in_transaction
            )
        if reuse:
            assert self._give_back is not None
            self._give_back(self._kept)
        else:
            self._connection.close()

    def _error(self, exc: sqlite3.Error) -> QueryError:
        """The DanceCat error for a SQLite error, with SQLite's own message."""
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_INTERRUPT" or str(exc) == "interrupted":
            if self._cancelled.is_set():
                return QueryError("the query was cancelled")
            return QueryTimeout(f"query exceeded its {self._timeout:g} s timeout")
        if isinstance(exc, sqlite3.ProgrammingError) and str(exc) == ONE_STATEMENT:
            return several()
        if self._read_only and name in ("SQLITE_READONLY", "SQLITE_AUTH"):
            reason = ATTACH_REFUSED if self._refused == ATTACH_REFUSED else exc
            return ReadOnlyViolation(f"this connection is read-only: {reason}")
        if name == "SQLITE_AUTH" and self._refused:
            return QueryError(self._refused)
        return QueryError(str(exc))


def sqlite_value(value: Any) -> Any:
    """A parameter value as SQLite stores it: dates and times as the ISO text its date
    functions read (an instant as UTC), a decimal as an integer when whole, else a float."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        whole = value == value.to_integral_value() and abs(value) < 2**63
        return int(value) if whole else float(value)
    return value


# One schema, ``main``; its own ``sqlite_`` tables left out. ``pragma_table_info`` takes the
# table, then the schema: the columns' parts bind them in the contract's order.
CATALOGUE = CatalogueSql(
    tables="""
        SELECT 'main', name, type, 1 FROM sqlite_master
        WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite!_%' ESCAPE '!'
        ORDER BY name
    """,
    columns=(
        "SELECT p.name, p.type FROM (SELECT ",
        " AS s, ",
        " AS t) AS a, pragma_table_info(a.t, a.s) AS p ORDER BY p.cid",
    ),
)


class SqliteDriver(Driver):
    """A SQLite database file on the worker's disk."""

    name = "sqlite"
    label = "SQLite"
    needs_host = False
    catalogue = CATALOGUE

    def __init__(self) -> None:
        self._idle = _Idle()

    def check_database(self, database: str, *, read_only: bool, files: LocalFileRules) -> None:
        sqlite_file(database, read_only=read_only, files=files, exists=False)

    def connect(self, params: ConnectionParams, *, timeout: float) -> DriverSession:
        if params.files is None:
            raise ConnectionFailed("SQLite opens files only under rules from SQLITE_ALLOWED_DIRS")
        try:
            path, info = sqlite_file(
                params.database, read_only=params.read_only, files=params.files
            )
        except ValidationError as exc:
            raise ConnectionFailed(f"cannot open {params.database}: {exc}") from None
        # mode=ro is enforced by the operating system's open(): no SQL can undo it. mode=rw
        # (not rwc) so a vanished file fails instead of becoming an empty database. The
        # path is real (no link, no "..") and quoted whole, so SQLite reads it verbatim;
        # no other user can change its folders, so SQLite's own walk finds the same file.
        mode = "ro" if params.read_only else "rw"
        uri = f"file:{urllib.parse.quote(str(path), safe='/')}?mode={mode}"
        give_back = None
        if params.read_only and info is not None:
            name, file = (uri, float(timeout)), (info.st_dev, info.st_ino)
            give_back = functools.partial(self._idle.give_back, name, file)
            kept = self._idle.take(name, file)
            if kept is not None:
                return SqliteSession(kept, True, give_back)
        try:
            # timeout: how long to wait for another writer's lock. check_same_thread=False
            # lets cancel() run from the watchdog thread; DanceCat never shares a session.
            connection = sqlite3.connect(
                uri,
                uri=True,
                timeout=timeout,
                isolation_level=None,
                check_same_thread=False,
                detect_types=sqlite3.PARSE_DECLTYPES,
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
        return SqliteSession(_Kept(connection), params.read_only, give_back)


@hookimpl
def dancecat_register_drivers() -> list[type[Driver]]:
    return [SqliteDriver]
