"""Where in a query its database's error points, as a line and column the editor can mark.

Each database says it its own way, in the message DanceCat shows: PostgreSQL by character
(``... (character 16)``: the server's error position, or pglast's for a syntax error the
driver found first), MariaDB by line and the text from the error on (``... near 'FROMM x'
at line 2``; the quoted text may have been hidden as ``[value]`` by ``clean_error``, and
then the line alone is known). SQLite names the token (``near "FROMM": syntax error``),
which places the error only when the token occurs once in the query.
"""

from __future__ import annotations

import re

import attrs

_CHARACTER = re.compile(r"\(character (\d+)\)$")
_AT_LINE = re.compile(r"near '(.*)' at line (\d+)$", re.DOTALL)
_NEAR_TOKEN = re.compile(r'^near "([^"]+)": syntax error$')


@attrs.frozen
class Position:
    """1-based, as editors number lines and columns."""

    line: int
    column: int

    def after(self, lead: str) -> Position:
        """This position in a text that had ``lead`` before it (what cleaning stripped)."""
        lines = lead.split("\n")
        if len(lines) == 1:
            return Position(self.line, self.column + len(lead) if self.line == 1 else self.column)
        column = self.column + len(lines[-1]) if self.line == 1 else self.column
        return Position(self.line + len(lines) - 1, column)


def _at_offset(sql: str, offset: int) -> Position | None:
    if not 0 <= offset <= len(sql):
        return None
    before = sql[:offset]
    return Position(line=before.count("\n") + 1, column=offset - (before.rfind("\n") + 1) + 1)


def in_editor(message: str, typed: str, sent: str) -> Position | None:
    """Where ``message`` points, in the editor's text ``typed``, when the database was sent
    ``sent``: ``typed`` with one kind of line end and without its surrounding blanks
    (``validation.text``)."""
    lines = typed.replace("\r\n", "\n").replace("\r", "\n")
    found = error_position(message, sent)
    return found.after(lines[: len(lines) - len(lines.lstrip())]) if found else None


def error_position(message: str, sql: str) -> Position | None:
    """The place ``message`` points at in ``sql``, or None when it names none."""
    if match := _CHARACTER.search(message):
        return _at_offset(sql, int(match.group(1)) - 1)
    if match := _AT_LINE.search(message):
        near, number = match.group(1), int(match.group(2))
        lines = sql.split("\n")
        if not 1 <= number <= len(lines):
            return None
        line = lines[number - 1]
        first = near.split("\n")[0].rstrip()
        column = line.rfind(first) if first else -1
        return Position(line=number, column=column + 1 if column >= 0 else 1)
    if match := _NEAR_TOKEN.search(message):
        token = match.group(1)
        found = [m.start() for m in re.finditer(re.escape(token), sql)]
        return _at_offset(sql, found[0]) if len(found) == 1 else None
    return None
