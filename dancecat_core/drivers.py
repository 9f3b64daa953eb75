"""What a connection driver plugin provides.

A driver opens a ``DriverSession`` on a queried database; a session opens a ``QueryCursor``
whose columns are known before any row is read, so scrubbing can decide what to keep first.
Rows then leave either as Python batches (every driver) or, where the database can do it,
as CSV bytes written by the database itself (``copy_csv``): PostgreSQL's ``COPY ... TO
STDOUT`` streams a million rows in about a second, seven times faster than building Python
rows. Both paths end in the same canonical CSV (``csvcodec``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, ClassVar

import attrs

from dancecat_core.columns import Column
from dancecat_core.local_files import LocalFileRules


@attrs.frozen(repr=False)
class ConnectionParams:
    """Everything a driver needs to connect, password decrypted. Never logged."""

    driver: str
    database: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    read_only: bool = True
    options: dict[str, Any] = attrs.field(factory=dict)
    # Which local files a file-based driver may open; None: none at all.
    files: LocalFileRules | None = attrs.field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"ConnectionParams({self.driver}://{self.host or ''}/{self.database})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a message shown to anyone."""
        return tuple(s for s in (self.password,) if s)


@attrs.frozen
class BoundQuery:
    """A job's text cut at its parameters, and the typed values that go between.

    ``parts`` has one more item than ``values``; ``names`` says which parameter each value
    is (for messages). A driver joins the parts with its own bind markers and hands the
    values to its database client as query parameters, so no value is ever SQL text made
    by DanceCat. Values are ``str``, ``int``, ``decimal.Decimal``, ``bool``,
    ``datetime.date`` and ``datetime.datetime`` (aware ones are instants).
    """

    parts: tuple[str, ...]
    values: tuple[Any, ...] = ()
    names: tuple[str, ...] = ()

    def joined(self, marker: Callable[[int], str], escape: Callable[[str], str] = str) -> str:
        """The text with ``marker(i)`` for value ``i`` and ``escape`` applied to the rest."""
        pieces = [escape(self.parts[0])]
        for index, part in enumerate(self.parts[1:]):
            pieces += [marker(index), escape(part)]
        return "".join(pieces)


def as_bound(query: str | BoundQuery) -> BoundQuery:
    """A plain text as a ``BoundQuery`` without values (what callers without parameters pass)."""
    return query if isinstance(query, BoundQuery) else BoundQuery((query,))


@attrs.frozen
class CatalogueSql:
    """How a driver reads its database's catalogue: two queries, run like a job's.

    They go through ``DriverSession.open_query`` with the connection's own credentials,
    read-only rules and statement timeout, so the catalogue shows what the connection's
    user may see, as the database decides it (``dancecat_core.catalogue`` shapes them).

    ``tables`` returns one row per table or view: schema, name, ``"table"`` or ``"view"``,
    and whether the name may be written without its schema (1 or 0: in the search path,
    the connection's default database). ``columns`` is cut where one table's schema and
    name go (three parts, bound as query parameters) and returns its columns in order:
    name, declared type.
    """

    tables: str
    columns: tuple[str, str, str]

    def columns_of(self, schema: str, table: str) -> BoundQuery:
        return BoundQuery(self.columns, (schema, table), ("schema", "table"))


class QueryCursor(abc.ABC):
    """An executing (or ready to execute) query whose columns are known."""

    columns: list[Column]

    @abc.abstractmethod
    def batches(self, size: int = 5000) -> Iterator[Sequence[Sequence[Any]]]:
        """Yield rows in batches, every column, values as Python objects, until done."""

    def copy_csv(self, keep: Sequence[int], sink: BinaryIO) -> int | None:
        """Write the kept columns' rows as canonical CSV (no header) to ``sink``.

        Return the number of rows, or ``None`` when this driver has no native bulk path
        (the default); the pipeline then formats ``batches()`` itself.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional for drivers with nothing to release
        """Release the cursor; the session stays open."""


class DriverSession(abc.ABC):
    """One open connection to a queried database."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Prove the connection works (``SELECT 1``); raise a ``QueryError`` if not."""

    @abc.abstractmethod
    def open_query(
        self, sql: str | BoundQuery, *, timeout: float, limit: int | None = None
    ) -> QueryCursor:
        """Start ``sql`` with a server-side timeout; ``limit`` caps rows for previews.

        A ``BoundQuery`` carries parameter values: the driver binds them as its database
        client's query parameters, each at its marker, never as text it formats itself.

        The one door every preview, run and test goes through: before sending anything,
        a driver applies ``dancecat_core.statements`` (one statement per job; only a query
        on a read-only connection), proven by its database's own parser or protocol.
        """

    @abc.abstractmethod
    def cancel(self) -> None:
        """Cancel the running query. Called from another thread; must be thread-safe."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection without waiting for unread rows."""

    def __enter__(self) -> DriverSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Driver(abc.ABC):
    """A kind of database DanceCat can query; registered by ``dancecat_register_drivers``."""

    # Also names the lexicon its SQL is scanned with for ``{{ name }}`` placeholders
    # (``placeholders.LEXICONS``; standard SQL for a name not there).
    name: ClassVar[str]
    label: ClassVar[str]
    default_port: ClassVar[int | None] = None
    needs_host: ClassVar[bool] = True
    # How the job form's schema browser reads this database; None: it has no browser.
    catalogue: ClassVar[CatalogueSql | None] = None

    def check_database(  # noqa: B027 - optional: drivers of servers have no file to check
        self, database: str, *, read_only: bool, files: LocalFileRules
    ) -> None:
        """Refuse, with ``ValidationError``, a ``database`` this driver would never open.

        Called when a connection is saved or tested; ``connect`` must check again, because
        what a name points at can change after it was saved.
        """

    @abc.abstractmethod
    def connect(self, params: ConnectionParams, *, timeout: float) -> DriverSession:
        """Open a session within ``timeout`` seconds, read-only if ``params.read_only``.

        Raise ``ConnectionFailed`` with the database's reason when it cannot.
        """
