"""A MySQL/MariaDB lexer: enough to split the user's text and say what its statement is.

The proof that one statement runs is the protocol: the driver connects without
``CLIENT.MULTI_STATEMENTS``, so the server refuses a second statement as a syntax error.
This lexer gives the friendly "one statement per job" before that, and decides what a
read-only connection may send: a query, and no ``INTO`` (``SELECT ... INTO OUTFILE``
writes a file on the server, ``INTO @var`` sets variables, and no transaction mode stops
either). It reads text as the server does: ``'``/``"`` strings with backslash escapes unless
``NO_BACKSLASH_ESCAPES``, ``"`` as an identifier under ``ANSI_QUOTES``, backticks, ``#`` and
``-- `` comments, and executable comments (``/*! ... */``, ``/*M! ... */``) as code, whatever
their version number: ``/*!50000 DELETE FROM t */`` is a DELETE.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs

from dancecat_core.statements import Statement, checked_text

WORD, QUOTED, SEMICOLON, OTHER = "word", "quoted", ";", "other"
QUERY_WORDS = {"SELECT", "VALUES", "TABLE"}
# Letters, digits, ``_``, ``$`` and any non-ASCII character, written as the ASCII it is
# not: the class with the range ``\u0080-\U0010ffff`` took ~9 ms to compile.
_WORD = re.compile(r"[^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]+")
_SPACE = re.compile(r"\s+")
# "-- " starts a comment only before whitespace or a control character (or at the end).
_DASHES = re.compile(r"--(?:[\x00-\x20]|$)")
_EXECUTABLE = re.compile(r"/\*M?!\d*")


@attrs.frozen
class SqlMode:
    """The parts of the session's ``sql_mode`` that change how text is read."""

    ansi_quotes: bool = False
    backslash_escapes: bool = True

    @classmethod
    def parse(cls, sql_mode: str) -> SqlMode:
        flags = {flag.strip().upper() for flag in sql_mode.split(",")}
        return cls(
            ansi_quotes="ANSI_QUOTES" in flags,
            backslash_escapes="NO_BACKSLASH_ESCAPES" not in flags,
        )


@attrs.frozen
class Token:
    kind: str
    text: str  # upper case for words
    start: int


def tokens(sql: str, mode: SqlMode) -> Iterator[Token]:
    """The tokens the server reads, comments dropped, executable comments' content kept."""
    i, n = 0, len(sql)
    executable = False  # inside /*! ... */: its closing */ is dropped, not a comment's end
    while i < n:
        char = sql[i]
        if space := _SPACE.match(sql, i):
            i = space.end()
        elif executable and sql.startswith("*/", i):
            executable = False
            i += 2
        elif match := _EXECUTABLE.match(sql, i):
            executable = True
            i = match.end()
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif char == "#" or _DASHES.match(sql, i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif char in "'\"`":
            escapes = mode.backslash_escapes and (char == "'" or not mode.ansi_quotes)
            end = _quoted_end(sql, i, escapes)
            yield Token(QUOTED, sql[i:end], i)
            i = end
        elif word := _WORD.match(sql, i):
            yield Token(WORD, word.group().upper(), i)
            i = word.end()
        else:
            yield Token(SEMICOLON if char == ";" else OTHER, char, i)
            i += 1


def _quoted_end(sql: str, start: int, escapes: bool) -> int:
    """Where the quoted token opened at ``start`` ends (the end of text if it never does)."""
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        char = sql[i]
        if escapes and char == "\\":
            i += 2
        elif char == quote:
            if sql.startswith(quote, i + 1):  # a doubled quote stands for one
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(sql)


def parse(sql: str, mode: SqlMode) -> list[Statement]:
    """The statements in ``sql``: the text between two ``;``, empty ones left out."""
    segments: list[tuple[int, int, list[Token]]] = []
    start, found = 0, []
    for token in tokens(checked_text(sql), mode):
        if token.kind == SEMICOLON:
            segments.append((start, token.start, found))
            start, found = token.start + 1, []
        else:
            found.append(token)
    segments.append((start, len(sql), found))
    return [
        Statement(text=sql[start:end], command=command, is_query=is_query)
        for start, end, found in segments
        if found
        for command, is_query in [_classify(found)]
    ]


def _classify(statement: list[Token]) -> tuple[str, bool]:
    """(what the statement is, whether it is a query)."""
    command = _main_word(statement)
    if command == "WITH":
        command = _main_word(_after_with(statement))
        if command not in QUERY_WORDS:
            return f"WITH ... {command}", False
    if command not in QUERY_WORDS:
        return command, False
    if any(t.kind == WORD and t.text == "INTO" for t in statement):
        return "SELECT ... INTO (it writes a file or variables)", False
    return command, True


def _main_word(statement: list[Token]) -> str:
    """The first token past any opening brackets: ``(SELECT 1) UNION (SELECT 2)``."""
    for token in statement:
        if token.text != "(":
            return token.text
    return "an unfinished statement"


def _after_with(statement: list[Token]) -> list[Token]:
    """The tokens after a WITH clause's named queries (``WITH a AS (...), b AS (...)``)."""
    depth = 0
    closed = False  # a named query's body just ended at depth 0
    for i, token in enumerate(statement[1:], start=1):
        if token.text == ")" and token.kind == OTHER:
            depth -= 1
            closed = depth == 0
        elif depth == 0 and closed and token.text != "," and token.text != "AS":
            return statement[i:]
        elif token.text == "(" and token.kind == OTHER:
            depth += 1
        elif depth == 0 and token.text == ",":
            closed = False
    return []
