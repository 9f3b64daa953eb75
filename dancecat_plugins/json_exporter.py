"""The JSON download: ``{"header": [...], "rows": [[...], ...]}``, as DanceCat always wrote it.

Values keep their types, with these choices (JSON has no type for some of them):

- integers are JSON numbers;
- decimals are written as JSON numbers with every digit the database gave; parse with
  ``json.loads(..., parse_float=decimal.Decimal)`` to keep them exact;
- floats are JSON numbers, except NaN, Infinity and -Infinity, which JSON cannot express:
  they become ``null`` (as JavaScript's ``JSON.stringify`` does);
- booleans are ``true``/``false``; NULL is ``null``;
- dates and times are ISO 8601 strings; timestamps are ``"YYYY-MM-DDTHH:MM:SS[.ffffff]"``,
  and timestamps with a time zone are in UTC with ``+00:00`` at the end;
- bytes are the hex string PostgreSQL writes, ``"\\x0a1b..."``;
- JSON columns are embedded as JSON values (one that does not parse is written as a string);
- text is a JSON string, UTF-8 encoded, not ``\\u``-escaped.

Why it is built this way: a million-row download must stay close to what the stdlib's
``json`` module costs for the same rows. The canonical CSV text is already valid JSON for
most types (integers, decimals, floats), so nothing is parsed into Python values. Rows come
in batches; each column of a batch is converted by one list comprehension chosen by the
column's type (a cheap check over the whole column first rules out the rare values that
need care), and the batch is assembled and written as one UTF-8 chunk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from json.encoder import encode_basestring  # the C string encoder, ensure_ascii=False
from typing import BinaryIO

from dancecat_core.columns import Column, ColumnType
from dancecat_core.csvcodec import BOOLEAN_TEXTS, TextRow
from dancecat_core.exporters import Exporter, ExportSummary
from dancecat_core.hookspecs import hookimpl
from dancecat_core.resultstore import StoredResult

#: Rows per written chunk (a few hundred kB of JSON).
BATCH_ROWS = 2_000

# A JSON number, exactly as the grammar allows.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# Fast-path guard: a character no number contains. The canonical text forms (csvcodec) only
# ever spell a number as a valid JSON number or as NaN/Infinity/-Infinity; this catches
# those, and stray text, across a whole column of a batch in one scan.
_NOT_NUMBER_CHAR = re.compile(r"[^0-9.eE+\-\n]")
# Stored booleans (``t``/``f`` in results stored before ``true``/``false``) as JSON.
_BOOLEANS = {text: "true" if value else "false" for text, value in BOOLEAN_TEXTS.items()}
_BOOLEANS[None] = "null"

ColumnConverter = Callable[[Sequence[str | None]], list[str]]


def _numbers(col: Sequence[str | None]) -> list[str]:
    """Integers, decimals and floats: the canonical text already is a JSON number."""
    if _NOT_NUMBER_CHAR.search("\n".join(filter(None, col))):
        return [_number(v) if v else "null" for v in col]
    return [v or "null" for v in col]


def _number(text: str) -> str:
    if _JSON_NUMBER.fullmatch(text):
        return text
    if text.lstrip("+-").lower() in ("nan", "snan", "infinity", "inf"):
        return "null"
    return encode_basestring(text)  # not a number at all: keep the text


def _booleans(col: Sequence[str | None]) -> list[str]:
    get = _BOOLEANS.get
    return [get(v) or encode_basestring(v) for v in col]  # type: ignore[arg-type]


def _strings(col: Sequence[str | None]) -> list[str]:
    """Text, dates, times and bytes: a JSON string of the canonical text."""
    return ["null" if v is None else encode_basestring(v) for v in col]


def _datetimes(col: Sequence[str | None]) -> list[str]:
    # Stored with "T"; results stored before have a space: "2024-05-01 12:30:00" ->
    # "2024-05-01T12:30:00". "infinity" stays as it is.
    return ["null" if v is None else encode_basestring(v.replace(" ", "T", 1)) for v in col]


def _datetimetzs(col: Sequence[str | None]) -> list[str]:
    # Stored in UTC as "...+00:00"; results stored before may end in "+00": written as
    # "+00:00" either way.
    return [
        "null"
        if v is None
        else encode_basestring(v.replace(" ", "T", 1) + (":00" if v.endswith("+00") else ""))
        for v in col
    ]


def _json_values(col: Sequence[str | None]) -> list[str]:
    return ["null" if v is None else _json_value(v) for v in col]


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _json_value(text: str) -> str:
    try:
        json.loads(text, parse_constant=_reject_constant)
    except ValueError:  # JSONDecodeError is a ValueError
        return encode_basestring(text)
    return text


_CONVERTERS: dict[ColumnType, ColumnConverter] = {
    ColumnType.INTEGER: _numbers,
    ColumnType.DECIMAL: _numbers,
    ColumnType.FLOAT: _numbers,
    ColumnType.BOOLEAN: _booleans,
    ColumnType.DATE: _strings,
    ColumnType.TIME: _strings,
    ColumnType.DATETIME: _datetimes,
    ColumnType.DATETIMETZ: _datetimetzs,
    ColumnType.BYTES: _strings,
    ColumnType.JSON: _json_values,
    ColumnType.TEXT: _strings,
}


def write_json(sink: BinaryIO, columns: Sequence[Column], rows: Iterable[TextRow]) -> ExportSummary:
    """Write the document for canonical text ``rows`` (``None`` for NULL) to ``sink``."""
    converters = [_CONVERTERS[c.type or ColumnType.TEXT] for c in columns]
    header = json.dumps([c.name for c in columns], ensure_ascii=False)
    start = f'{{"header": {header}, "rows": ['.encode()
    sink.write(start)
    written = len(start)
    it = iter(rows)
    if len(converters) == 1:
        # A lone NULL is a blank CSV line, which csv.reader returns as [] (not [None]).
        it = (row or [None] for row in it)
    count = 0
    while batch := list(islice(it, BATCH_ROWS)):
        if converters:
            # Transpose the batch, convert each column, transpose back and join: the
            # per-cell work is one comprehension step; the rest runs in C.
            by_column = [
                convert(col)
                for convert, col in zip(converters, zip(*batch, strict=True), strict=True)
            ]
            body = "],\n[".join(map(",".join, zip(*by_column, strict=True)))
        else:  # a result with no columns still has rows: []
            body = "],\n[".join("" for _ in batch)
        chunk = ((",\n[" if count else "\n[") + body + "]").encode()
        sink.write(chunk)
        written += len(chunk)
        count += len(batch)
    end = b"\n]}\n"
    sink.write(end)
    return ExportSummary(rows=count, bytes_written=written + len(end))


class JsonExporter(Exporter):
    """Cacheable: rendering a big result takes seconds; the cached copy serves repeats."""

    format = "json"
    label = "JSON"
    media_type = "application/json"
    extension = "json"
    cacheable = True

    def export(self, result: StoredResult, sink: BinaryIO) -> ExportSummary:
        return write_json(sink, result.columns, result.text_rows())


@hookimpl
def dancecat_register_exporters() -> list[type[Exporter]]:
    return [JsonExporter]
