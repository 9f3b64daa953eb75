"""One statement per job, and on a read-only connection that statement is a query.

Every driver applies this rule in ``DriverSession.open_query``, the one door the job form's
preview, a run, the console and the API all go through, before any byte of the user's text
reaches the database. Each driver proves it with its database's own machinery: PostgreSQL
with its own parser (libpg_query, through pglast), SQLite with its compiler and authorizer,
MySQL/MariaDB with the protocol itself (multi-statements off) and a lexer that names what
the statement is. This module holds what they share: the text checks, the ``Statement`` a
driver's parser returns, and the one wording of each refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import attrs

from dancecat_core.errors import QueryError, ReadOnlyViolation

# What a read-only connection runs, in every driver's words.
QUERY_FORMS = "SELECT, VALUES, TABLE or WITH ... SELECT"
EMPTY = "the query is empty"
SEVERAL = "one statement per job: the text holds more than one statement"


@attrs.frozen
class Statement:
    """One statement of the user's text, as the database's parser sees it."""

    text: str  # exactly what the driver sends: the statement, without its ``;``
    command: str  # what it is, for a refusal ("DELETE", "SELECT ... INTO")
    is_query: bool  # reads and nothing else: allowed on a read-only connection


def checked_text(sql: str) -> str:
    """``sql`` when every database can read it as the parser did, else a ``QueryError``.

    A NUL ends the text early for a C parser but not for Python, and a lone surrogate (JSON
    allows ``"\\ud800"``) has no UTF-8 form: either would make the parser and the database
    see different text, so both are refused before anything parses it.
    """
    if "\x00" in sql:
        raise QueryError("the query contains a NUL character (U+0000)")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError(
            f"the query is not valid text: {exc.reason} at character {exc.start + 1}"
        ) from None
    return sql


def empty() -> QueryError:
    return QueryError(EMPTY)


def several() -> QueryError:
    return QueryError(SEVERAL)


def not_a_query(command: str) -> ReadOnlyViolation:
    return ReadOnlyViolation(
        f"this connection is read-only: only a query ({QUERY_FORMS}) may run, not {command}"
    )


AnyStatement = TypeVar("AnyStatement", bound=Statement)


def single(statements: Sequence[AnyStatement], *, read_only: bool) -> AnyStatement:
    """The one statement to send, or the refusal every driver gives in the same words."""
    if not statements:
        raise empty()
    if len(statements) > 1:
        raise several()
    statement = statements[0]
    if read_only and not statement.is_query:
        raise not_a_query(statement.command)
    return statement
