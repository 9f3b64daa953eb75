"""PostgreSQL's own parser (libpg_query, through pglast) splits and classifies the user's text.

The driver sends the exact slice of the user's text that the parser found to be the one
statement, never a re-printed tree. A deparser would send text the user never wrote: a
printer bug or a construct printed in a newer server's syntax would silently change what a
report computes, and error positions would point into text nobody can see. The slice is
safe to send because the two lexers agree on where every string, comment and dollar quote
ends once the settings that change lexing are pinned (``PostgresSession.arm_timeout`` sets
``standard_conforming_strings`` and ``backslash_quote`` before every statement, after any
user code could have changed them), and because the wrappers put the slice on lines of its
own, so a trailing ``-- comment`` cannot swallow their closing bracket. libpg_query is
PostgreSQL 18's grammar and the server may be older: newer numeric literals (``0x1F``,
``1_000``) and their "trailing junk" errors only ever make the parser refuse what an older
server would read differently, never read a boundary the server does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs

from dancecat_core.errors import QueryError
from dancecat_core.statements import Statement, checked_text


@attrs.frozen
class PgStatement(Statement):
    """A statement and whether it can be read through ``SELECT * FROM (<text>) AS q``."""

    wrappable: bool = False


def parse(sql: str) -> list[PgStatement]:
    """Every statement in ``sql``, as PostgreSQL's parser splits it; a syntax error raises."""
    from pglast import parser  # at first use, not at start-up: it costs every command ~25 ms

    raw = checked_text(sql).encode("utf-8")
    try:
        tree = json.loads(parser.parse_sql_json(sql))
    except parser.ParseError as exc:
        message, position = (*exc.args, None)[:2]
        where = f" (character {position + 1})" if isinstance(position, int) else ""
        raise QueryError(f"{message}{where}") from None
    statements = []
    for raw_stmt in tree.get("stmts", []):
        # Byte offsets into the UTF-8 text; a length of 0 means "to the end".
        start = raw_stmt.get("stmt_location", 0)
        length = raw_stmt.get("stmt_len", 0)
        text = raw[start : start + length if length else len(raw)].decode("utf-8")
        statements.append(_classify(raw_stmt["stmt"], text))
    return statements


def _classify(node: dict[str, Any], text: str) -> PgStatement:
    (kind,) = node
    if kind != "SelectStmt":
        return PgStatement(text=text, command=_first_keyword(text), is_query=False)
    refusal = next(_refusals(node), None)
    wrappable = refusal is None or refusal == LOCKING
    return PgStatement(
        text=text, command=refusal or "SELECT", is_query=refusal is None, wrappable=wrappable
    )


INTO = "SELECT ... INTO (it creates a table)"
LOCKING = "SELECT ... FOR UPDATE/SHARE (it locks rows)"


def _refusals(value: Any) -> Iterator[str]:
    """Why a SELECT tree is not a plain query: every statement node in it, at any depth.

    A statement can only nest in a SELECT as a WITH query (``WITH d AS (DELETE ...)``), but
    every key is walked, so a subquery's own WITH and forms added by later grammars count.
    """
    if isinstance(value, list):
        for item in value:
            yield from _refusals(item)
        return
    if not isinstance(value, dict):
        return
    for key, inner in value.items():
        if key.endswith("Stmt") and key != "SelectStmt":
            yield f"{key.removesuffix('Stmt').upper()} inside WITH"
        elif key == "SelectStmt":
            if "intoClause" in inner:
                yield INTO
            if "lockingClause" in inner:
                yield LOCKING
        yield from _refusals(inner)


def _first_keyword(text: str) -> str:
    """The statement's first word as the lexer reads it (comments skipped), upper case."""
    from pglast import parser  # at first use, not at start-up (see ``parse``)

    for token in parser.scan(text):
        if token.name not in ("C_COMMENT", "SQL_COMMENT"):
            return text[token.start : token.end + 1].upper()  # offsets in characters
    return "an empty statement"
