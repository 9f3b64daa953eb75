"""Where a job's ``{{ name }}`` placeholders are, read as its database reads the text.

A ``{{ name }}`` inside a string literal, a quoted identifier, a dollar-quoted body or a
comment is text, not a parameter: ``WHERE note = '{{ x }}'`` compares with those characters.
So the text is scanned with its dialect's rules for where those end (``LEXICONS``, chosen by
the driver's name). The scan only decides where DanceCat puts its bind markers; each
driver then proves, with its own lexer or its database's binding, that every marker landed
where a value may stand, so a disagreement here becomes a refusal, never a value read as SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs

from dancecat_core.errors import ValidationError

NAME = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_PLACEHOLDER = re.compile(r"\{\{\s*(" + NAME + r")\s*\}\}")
# A dollar-quote tag: a letter, ``_`` or any non-ASCII character, then digits too. Written
# as what it is not (ASCII only): the class ``[A-Za-z_\u0080-\U0010ffff]`` means the same,
# but compiling its range took ~9 ms of every command's start-up.
_DOLLAR_TAG = re.compile(
    r"\$([^\x00-\x40\x5b-\x5e\x60\x7b-\x7f][^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]*)?\$"
)


@attrs.frozen
class Lexicon:
    """What a dialect's text hides from the placeholder scan."""

    quotes: str = "'\""  # characters that open a quoted run closed by the same character
    backslash_quotes: str = ""  # quotes in which a backslash escapes the next character
    brackets: bool = False  # SQLite's [identifier]
    dollar_quotes: bool = False  # PostgreSQL's $tag$ ... $tag$
    escape_strings: bool = False  # PostgreSQL's E'...' (backslash escapes)
    hash_comments: bool = False  # MySQL's # comment
    dash_needs_space: bool = False  # MySQL: "--" starts a comment only before a space
    nested_comments: bool = False  # PostgreSQL: /* /* */ */
    executable_comments: bool = False  # MySQL's /*! ... */ holds code


LEXICONS = {
    "standard": Lexicon(),
    "postgresql": Lexicon(dollar_quotes=True, escape_strings=True, nested_comments=True),
    "mysql": Lexicon(
        quotes="'\"`",
        backslash_quotes="'\"",
        hash_comments=True,
        dash_needs_space=True,
        executable_comments=True,
    ),
    "sqlite": Lexicon(quotes="'\"`", brackets=True),
}


@attrs.frozen
class Placeholder:
    name: str
    start: int
    end: int


def lexicon(dialect: str) -> Lexicon:
    return LEXICONS.get(dialect, LEXICONS["standard"])


def find(sql: str, dialect: str = "standard") -> list[Placeholder]:
    """Every placeholder in ``sql`` outside strings, quoted names and comments, in order.

    A ``{{`` in code that does not open a well-formed ``{{ name }}`` is refused here, so a
    typo is named on save instead of reaching the database as a syntax error.
    """
    found = []
    for start, end in _code_spans(sql, lexicon(dialect)):
        position = start
        while (opening := sql.find("{{", position, end)) >= 0:
            match = _PLACEHOLDER.match(sql, opening, end)
            if match is None:
                snippet = sql[opening : opening + 30].splitlines()[0]
                raise ValidationError(
                    f"Query: {snippet!r} is not a parameter; write {{{{ name }}}} with a name "
                    "of letters, digits and _",
                    "query",
                )
            found.append(Placeholder(match.group(1), opening, match.end()))
            position = match.end()
    return found


def names(sql: str, dialect: str = "standard") -> list[str]:
    """The names the placeholders use, each once, in order of first use."""
    return list(dict.fromkeys(p.name for p in find(sql, dialect)))


def cut(sql: str, dialect: str = "standard") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``sql`` cut at each placeholder: the texts around them and the names between."""
    parts, used, position = [], [], 0
    for placeholder in find(sql, dialect):
        parts.append(sql[position : placeholder.start])
        used.append(placeholder.name)
        position = placeholder.end
    parts.append(sql[position:])
    return tuple(parts), tuple(used)


def _code_spans(sql: str, lex: Lexicon) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` runs of ``sql`` that are code, not quoted text or comments."""
    i, n, code_start = 0, len(sql), 0
    while i < n:
        char = sql[i]
        skip_to = None
        if char in lex.quotes:
            escaped = char in lex.backslash_quotes or (
                lex.escape_strings
                and char == "'"
                and i > 0
                and sql[i - 1] in "eE"
                and not (i > 1 and (sql[i - 2].isalnum() or sql[i - 2] in "_$"))
            )
            skip_to = _quoted_end(sql, i, char, escaped)
        elif char == "[" and lex.brackets:
            close = sql.find("]", i + 1)
            skip_to = n if close < 0 else close + 1
        elif char == "$" and lex.dollar_quotes and not (i > 0 and _word_char(sql[i - 1])):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                close = sql.find(tag.group(0), tag.end())
                skip_to = n if close < 0 else close + len(tag.group(0))
        elif char == "-" and sql.startswith("--", i):
            if not lex.dash_needs_space or i + 2 >= n or sql[i + 2] <= " ":
                skip_to = _line_end(sql, i)
        elif char == "#" and lex.hash_comments:
            skip_to = _line_end(sql, i)
        elif char == "/" and sql.startswith("/*", i):
            if lex.executable_comments and (sql.startswith("/*!", i) or sql.startswith("/*M!", i)):
                i += 2  # its content is code
                continue
            skip_to = _comment_end(sql, i, lex.nested_comments)
        if skip_to is None:
            i += 1
            continue
        if code_start < i:
            yield code_start, i
        i = code_start = skip_to
    if code_start < n:
        yield code_start, n


def _word_char(char: str) -> bool:
    return char.isalnum() or char in "_$" or char >= "\u0080"


def _quoted_end(sql: str, i: int, quote: str, backslash: bool) -> int:
    """The index after the quoted run opened at ``i`` (doubled quotes stay inside)."""
    j, n = i + 1, len(sql)
    while j < n:
        char = sql[j]
        if backslash and char == "\\":
            j += 2
            continue
        if char == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _line_end(sql: str, i: int) -> int:
    end = sql.find("\n", i)
    return len(sql) if end < 0 else end + 1


def _comment_end(sql: str, i: int, nested: bool) -> int:
    depth, j, n = 1, i + 2, len(sql)
    while j < n:
        if sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        elif nested and sql.startswith("/*", j):
            depth += 1
            j += 2
        else:
            j += 1
    return n
