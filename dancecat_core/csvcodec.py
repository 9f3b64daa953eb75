"""The canonical result form: CSV in PostgreSQL COPY's dialect, plus column types.

Why CSV: it is the download people ask for most, and PostgreSQL writes it natively
(``COPY ... TO STDOUT CSV``), so the common case stores the database's own bytes and serves
them without re-encoding. The dialect is fixed so the text can be read back exactly:

- UTF-8, comma-separated, ``"`` quoting with ``""`` escapes, LF line ends, one header line;
- NULL is an *unquoted* empty field, the empty string is ``""``;
- values in one text form per type, whatever the database (docs/RESULTS.md has the table):
  booleans ``true``/``false``, floats in PostgreSQL's float8 spelling (``_float_text``),
  timestamps ISO 8601 ``YYYY-MM-DDTHH:MM:SS[.f]`` with ``+00:00`` when zoned, a time's own
  offset as ``+HH:MM[:SS]``, fractions without trailing zeros, bytes ``\\x`` hex; typed by
  the result's metadata.

Python 3.11's ``csv`` module cannot tell ``""`` from an unquoted empty field, so
``read_text_rows`` re-reads only the records that contain an empty field.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO

import attrs

from dancecat_core.columns import Column, ColumnType

TextRow = list[str | None]

_NEEDS_QUOTES = re.compile(r'[",\r\n]')
# One field at a time: quoted (group 1) or not (group 2), then its separator.
_FIELD = re.compile(r'(?:"((?:[^"]|"")*)"|([^,"\r\n]*))(,|\r?\n|$)', re.DOTALL)

# A cell may be as long as the database sends (a text column of megabytes); the csv
# module refuses fields over 128 KiB by default, which made such results unreadable.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def quote(text: str) -> str:
    """A text value as a canonical CSV field ("" for the empty string)."""
    if text == "" or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


# PostgreSQL's float8 output (and the canonical form) is positional below this magnitude;
# Python's repr stays positional up to 1e16.
_POSITIONAL_BELOW = 1e15


def _float_text(value: float) -> str:
    """The shortest digits that read back as ``value``, spelled as PostgreSQL spells a
    float8: positional for 1e-4 <= |x| < 1e15 without a trailing ``.0`` ("3", "0.1",
    "-0"), else ``d[.ddd]e±XX`` with at least two exponent digits ("1e+15", "1.5e-05");
    ``NaN``, ``Infinity``, ``-Infinity``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)  # the shortest digits; an exponent below 1e-4 and from 1e16 on
    if "e" in text:
        return text
    if abs(value) >= _POSITIONAL_BELOW:  # 1e15 <= |x| < 1e16: the exponent is 15
        sign = "-" if value < 0 else ""
        digits = text.lstrip("-").replace(".", "").rstrip("0")
        return f"{sign}{digits[0]}{'.' if digits[1:] else ''}{digits[1:]}e+15"
    return text[:-2] if text.endswith(".0") else text


def float_string(text: str) -> str:
    """A float the database gave as text (MySQL's ``1e15``, ``0.00001``) in the canonical
    spelling; text that is no number is returned as it is."""
    try:
        return _float_text(float(text))
    except ValueError:
        return text


def _decimal_text(value: decimal.Decimal) -> str:
    return format(value, "f") if value.is_finite() else str(value)


def _fraction(text: str) -> str:
    """``HH:MM:SS.fff000`` without the fraction's trailing zeros (and its dot if all are)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def _time_text(value: dt.time) -> str:
    """``HH:MM:SS[.f]``, as PostgreSQL writes it; a zoned time keeps its own offset."""
    if value.tzinfo is None:
        return _fraction(value.isoformat())
    naive = value.replace(tzinfo=None).isoformat()
    return _fraction(naive) + value.isoformat()[len(naive) :]


UTC_OFFSET = "+00:00"  # how a timestamp with a zone ends: every one is stored in UTC


def _datetime_text(value: dt.datetime) -> str:
    """ISO 8601 with ``T``; an aware value in UTC with ``+00:00`` (RFC 3339)."""
    if value.tzinfo is not None:
        return _fraction(value.astimezone(dt.UTC).replace(tzinfo=None).isoformat()) + UTC_OFFSET
    return _fraction(value.isoformat())


def datetime_string(text: str) -> str:
    """A timestamp the database gave as text (a value Python cannot hold: MySQL's zero date,
    SQLite's text) in the canonical spelling: ``T`` between date and time, no trailing
    zeros in the fraction. Text of any other shape is returned as it is.
    """
    if len(text) > 10 and text[10] == " " and text[4] == "-":
        text = text[:10] + "T" + text[11:]
    if len(text) > 20 and text[19] == "." and text[20:].isdigit():
        text = _fraction(text)
    return text


def time_string(text: str) -> str:
    """A time the database gave as text (MySQL's durations past 24 h) without trailing
    zeros in its fraction."""
    _, dot, digits = text.partition(".")
    return _fraction(text) if dot and digits.isdigit() else text


def _bytes_text(value: bytes | bytearray | memoryview) -> str:
    return "\\x" + bytes(value).hex()


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _bool_text(value: Any) -> str:
    """``true``/``false``; a value that is neither (a MySQL ``TINYINT(1)`` holding 2) keeps
    its own text rather than becoming ``true``."""
    if value in (0, 1):  # True == 1 and False == 0
        return "true" if value else "false"
    return _text(value)


_FORMATTERS: dict[ColumnType, Callable[[Any], str]] = {
    ColumnType.INTEGER: lambda v: str(int(v)),
    ColumnType.DECIMAL: lambda v: _decimal_text(v) if isinstance(v, decimal.Decimal) else str(v),
    ColumnType.FLOAT: lambda v: _float_text(float(v)),
    ColumnType.BOOLEAN: _bool_text,
    ColumnType.DATE: lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v),
    ColumnType.TIME: lambda v: _time_text(v) if isinstance(v, dt.time) else time_string(str(v)),
    ColumnType.DATETIME: lambda v: (
        _datetime_text(v) if isinstance(v, dt.datetime) else datetime_string(str(v))
    ),
    ColumnType.DATETIMETZ: lambda v: (
        _datetime_text(v) if isinstance(v, dt.datetime) else datetime_string(str(v))
    ),
    ColumnType.BYTES: lambda v: _bytes_text(v) if not isinstance(v, str) else v,
    ColumnType.JSON: _json_text,
    ColumnType.TEXT: _text,
}

# Types whose canonical text never needs quoting: skip the regex on the hot path.
_NEVER_QUOTED = {
    ColumnType.INTEGER,
    ColumnType.DECIMAL,
    ColumnType.FLOAT,
    ColumnType.BOOLEAN,
    ColumnType.DATE,
    ColumnType.TIME,
    ColumnType.DATETIME,
    ColumnType.DATETIMETZ,
    ColumnType.BYTES,
}


# SQLite keeps dates as text; a column whose every value has one of these shapes is typed
# as dates so that XLSX gets real dates. Anything else in the column makes it text again.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?")


def _infer(value: Any) -> ColumnType:
    """The column type a Python value belongs to (for databases that do not declare types)."""
    if isinstance(value, str):
        if len(value) == 10 and _ISO_DATE.fullmatch(value):
            return ColumnType.DATE
        if 19 <= len(value) <= 26 and _ISO_DATETIME.fullmatch(value):
            return ColumnType.DATETIME
        return ColumnType.TEXT
    if isinstance(value, bool):
        return ColumnType.BOOLEAN
    if isinstance(value, int):
        return ColumnType.INTEGER
    if isinstance(value, float):
        return ColumnType.FLOAT
    if isinstance(value, decimal.Decimal):
        return ColumnType.DECIMAL
    if isinstance(value, dt.datetime):
        return ColumnType.DATETIMETZ if value.tzinfo else ColumnType.DATETIME
    if isinstance(value, dt.date):
        return ColumnType.DATE
    if isinstance(value, dt.time):
        return ColumnType.TIME
    if isinstance(value, bytes | bytearray | memoryview):
        return ColumnType.BYTES
    if isinstance(value, dict | list):
        return ColumnType.JSON
    return ColumnType.TEXT


def _merge(seen: ColumnType | None, new: ColumnType) -> ColumnType:
    if seen is None or seen == new:
        return new
    if {seen, new} <= {ColumnType.INTEGER, ColumnType.FLOAT, ColumnType.DECIMAL}:
        return ColumnType.FLOAT if ColumnType.FLOAT in {seen, new} else ColumnType.DECIMAL
    return ColumnType.TEXT


class RowFormatter:
    """Turns Python rows into canonical CSV lines, one formatter per column.

    Columns without a declared type are formatted by the value's own type and their
    final type is the narrowest one that holds every value seen (``resolved_columns``).
    """

    def __init__(self, columns: Sequence[Column]):
        self.columns = list(columns)
        self._seen: list[ColumnType | None] = [c.type for c in self.columns]
        self._fns = [self._make(i, c) for i, c in enumerate(self.columns)]

    def _make(self, index: int, column: Column) -> Callable[[Any], str]:
        if column.type is None:
            seen = self._seen

            def dynamic(value: Any) -> str:
                if value is None:
                    return ""
                kind = _infer(value)
                seen[index] = _merge(seen[index], kind)
                text = _FORMATTERS[kind](value)
                return quote(text) if kind not in _NEVER_QUOTED else text

            return dynamic
        fmt = _FORMATTERS[column.type]
        if column.type in _NEVER_QUOTED:
            return lambda value: "" if value is None else fmt(value)
        return lambda value: "" if value is None else quote(fmt(value))

    def lines(self, rows: Iterable[Sequence[Any]]) -> str:
        fns = self._fns
        return "".join(
            ",".join([fn(value) for fn, value in zip(fns, row, strict=True)]) + "\n" for row in rows
        )

    def resolved_columns(self) -> list[Column]:
        return [
            attrs.evolve(c, type=seen or ColumnType.TEXT)
            for c, seen in zip(self.columns, self._seen, strict=True)
        ]


def header_line(names: Sequence[str]) -> bytes:
    return (",".join(quote(name) for name in names) + "\n").encode("utf-8")


class _RecordingLines:
    """Feeds lines to ``csv.reader`` and remembers those that made the current record."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self.record: list[str] = []

    def __iter__(self) -> _RecordingLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.record.append(line)
        return line


def _quoted_flags(record: str) -> list[bool]:
    flags = []
    for match in _FIELD.finditer(record):
        flags.append(match.group(1) is not None)
        if match.group(3) != ",":
            break
    return flags


def read_text_rows(raw: BinaryIO, *, skip_header: bool = True) -> Iterator[TextRow]:
    """Yield each record as a list of strings, ``None`` for NULL."""
    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    lines = _RecordingLines(iter(text))
    reader = csv.reader(lines, strict=True)
    first = True
    blank: TextRow = [None]  # a one-column NULL is a blank line; zero columns too
    for row in reader:
        record, lines.record = lines.record, []
        if first and skip_header:
            first = False
            blank = [None] if row else []
            continue
        first = False
        if not row:
            yield list(blank)
        elif "" in row:
            flags = _quoted_flags("".join(record))
            yield [
                (value if value or (i < len(flags) and flags[i]) else None)
                for i, value in enumerate(row)
            ]
        else:
            yield row  # type: ignore[misc]


# Booleans as stored: ``true``/``false``, and ``t``/``f`` in results stored before that.
BOOLEAN_TEXTS = {"true": True, "false": False, "t": True, "f": False}


def _parse_bool(text: str) -> bool:
    """A stored boolean; other text (a MySQL ``TINYINT(1)`` holding 2) is no boolean."""
    try:
        return BOOLEAN_TEXTS[text]
    except KeyError:
        raise ValueError(f"not a boolean: {text!r}") from None


def _parse_bytes(text: str) -> bytes | str:
    return bytes.fromhex(text[2:]) if text.startswith("\\x") else text


PARSERS: dict[ColumnType, Callable[[str], Any]] = {
    ColumnType.INTEGER: int,
    ColumnType.DECIMAL: decimal.Decimal,
    ColumnType.FLOAT: float,
    ColumnType.BOOLEAN: _parse_bool,
    ColumnType.DATE: dt.date.fromisoformat,
    ColumnType.TIME: dt.time.fromisoformat,
    # ``T`` or a space, ``+00:00`` or the ``+00`` of results stored before: Python 3.11
    # reads all of them.
    ColumnType.DATETIME: dt.datetime.fromisoformat,
    ColumnType.DATETIMETZ: dt.datetime.fromisoformat,
    ColumnType.BYTES: _parse_bytes,
    ColumnType.JSON: json.loads,
    ColumnType.TEXT: str,
}


def value_parsers(columns: Sequence[Column]) -> list[Callable[[str], Any]]:
    """One text-to-value function per column; a value that does not parse stays text.

    (PostgreSQL can return ``infinity`` for a date, say: it is kept as the text it was.)
    """

    def safe(parse: Callable[[str], Any]) -> Callable[[str], Any]:
        def convert(text: str) -> Any:
            try:
                return parse(text)
            except (ValueError, ArithmeticError, TypeError):
                return text

        return convert

    return [safe(PARSERS[c.type or ColumnType.TEXT]) for c in columns]


def read_typed_rows(raw: BinaryIO, columns: Sequence[Column]) -> Iterator[list[Any]]:
    """Yield each record with its values turned back into Python objects."""
    parsers = value_parsers(columns)
    for row in read_text_rows(raw):
        yield [None if v is None else p(v) for p, v in zip(parsers, row, strict=True)]
