"""What the spreadsheet writers (``xlsx_writer``, ``ods_writer``) share: typed cells from
canonical text, the sheet row limit and continuation sheets, column widths, warnings.

Both formats are a zip of small XML parts plus sheet XML that grows with the result, so
both write that XML batch by batch straight into a deflate stream, and memory stays flat:

- each column of a batch of rows is converted in one list comprehension, and a cheap check
  over the whole column (one regex over the joined text) decides whether the fast path is
  safe; cells that need care (escaping, values the format cannot hold) take a slow path
  that also counts them, so every change is reported, never silent;
- a result longer than a sheet continues on new sheets, the header repeated on each.

A format supplies only its markup (``CellWriter``'s class attributes and abstract methods);
which value becomes which cell, and what is said about it, is decided here once.
"""

from __future__ import annotations

import abc
import datetime as dt
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import BinaryIO, ClassVar

from dancecat_core.columns import Column, ColumnType
from dancecat_core.csvcodec import TextRow

#: Rows per sheet, header included: Excel's limit, and LibreOffice Calc's (which loads no
#: more of a longer sheet). Read at call time, so tests can lower it.
# The OpenDocument spreadsheet's media type: the ODS exporter answers with it and the ODS
# writer puts it in the file (here, so the exporter need not load the writer to name it).
ODS_MEDIA_TYPE = "application/vnd.oasis.opendocument.spreadsheet"

SHEET_ROW_LIMIT = 1_048_576
#: Rows converted and written per step: big enough that per-batch costs vanish, small
#: enough (a few MB of XML) that memory does not grow with the result.
BATCH_ROWS = 2_000
#: zlib level 1: sheet XML is so repetitive that level 1 already shrinks it about 7x, and
#: compression is most of the export's time. Measured on 300,000 rows of ten columns, the
#: whole XLSX export took 3.0 s for 17.5 MB at level 1, 7.3 s for 13.3 MB at the default 6
#: and 17.4 s for 12.7 MB at 9: a file 30% larger is worth an export 2.4 times as fast.
COMPRESS_LEVEL = 1

RESULT_SHEET = "Result"
NOTES_SHEET = "DanceCat notes"

# openpyxl's ILLEGAL_CHARACTERS_RE, plus the two non-characters XML 1.0 also forbids.
ILLEGAL_CHARACTERS_RE = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]|[\ufffe\uffff]")
# Fast-path guard for numbers: a character no number contains. The canonical text forms
# (csvcodec) spell a number either as spreadsheets read it or as NaN/Infinity/-Infinity;
# this catches those, and stray text, across a whole column of a batch in one scan.
NOT_NUMBER_CHAR = re.compile(r"[^0-9.eE+\-\n]")
NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
#: Both Excel and LibreOffice hold numbers as doubles: 15 significant digits.
NUMBER_DIGITS = 15

#: Column widths (a character of the default font) are estimated from the header and the
#: first batch of rows, within these bounds: one long text must not make a column wider
#: than a screen, and a short one still leaves room to click.
MIN_WIDTH, MAX_WIDTH = 6, 60
#: Room for the header's bold face and the cell margins.
WIDTH_PADDING = 2
#: Date-like columns get a fixed width, or the sheet shows ``#####`` for values that do
#: not fit.
_COLUMN_WIDTHS = {ColumnType.DATE: 11, ColumnType.TIME: 10, ColumnType.DATETIME: 20}

# Warning kinds, counted per cell, reported once each; a format words its own "not_a_date"
# and names itself as ``{app}``.
_WARNINGS = {
    "illegal": "{n} cell(s) held characters XML does not allow; they were removed.",
    "truncated": "{n} cell(s) were longer than {max_chars:,} characters and were cut "
    "to that length.",
    "big_integer": f"{{n}} integer(s) have more than {NUMBER_DIGITS} digits and were written "
    f"as text, because {{app}} keeps only {NUMBER_DIGITS}.",
    "not_a_number": "{n} number(s) {app} cannot hold (NaN, Infinity) were written as text.",
}

ColumnConverter = Callable[[Sequence[str | None]], list[str]]


def header_text(column: Column) -> str:
    """A column's header cell. Spreadsheets have no time zones: the value is UTC, and the
    header says so."""
    return f"{column.name} (UTC)" if column.type is ColumnType.DATETIMETZ else column.name


def fit_widths(columns: Sequence[Column], batch: Sequence[TextRow]) -> list[int]:
    """Each column's width: its header's or its longest line in ``batch``, whichever is
    longer, or the fixed width of a date-like type (which is shown formatted)."""
    widths = []
    for index, column in enumerate(columns):
        kind = ColumnType.DATETIME if column.type is ColumnType.DATETIMETZ else column.type
        if kind in _COLUMN_WIDTHS:
            longest = _COLUMN_WIDTHS[kind]
        else:
            values = (row[index] for row in batch if row[index])
            longest = max((len(line) for v in values for line in v.split("\n")), default=0)
        wanted = max(longest, len(header_text(column))) + WIDTH_PADDING
        widths.append(min(MAX_WIDTH, max(MIN_WIDTH, wanted)))
    return widths


def split_sheets(
    rows: Iterable[TextRow], n_columns: int, sheet_row_limit: int
) -> Iterator[Iterator[list[TextRow]]]:
    """The sheets of a result, each as its batches of rows (``BATCH_ROWS`` at most, and
    ``sheet_row_limit - 1`` in all, for the header). Always one sheet, even for no rows;
    a sheet's batches must be read to the end before the next sheet is asked for."""
    if sheet_row_limit < 2:
        raise ValueError("a sheet needs room for the header and at least one row")
    it = iter(rows)
    if n_columns == 1:
        # A lone NULL is a blank CSV line, which csv.reader returns as [].
        it = (row or [None] for row in it)
    while True:
        yield _batches(it, sheet_row_limit - 1)
        first = next(it, None)
        if first is None:
            return
        it = chain([first], it)


def _batches(rows: Iterator[TextRow], room: int) -> Iterator[list[TextRow]]:
    while room > 0:
        batch = list(islice(rows, min(BATCH_ROWS, room)))
        if not batch:
            return
        room -= len(batch)
        yield batch


def sheet_names(count: int) -> list[str]:
    """``Result``, ``Result (2)``, ... for ``count`` result sheets."""
    return [RESULT_SHEET if n == 1 else f"{RESULT_SHEET} ({n})" for n in range(1, count + 1)]


class CountingSink:
    """For sinks that cannot seek: counts bytes, and gives zipfile the ``tell`` it needs."""

    def __init__(self, sink: BinaryIO):
        self._sink = sink
        self.written = 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()


def zip_target(sink: BinaryIO) -> tuple[BinaryIO | CountingSink, int]:
    """What to hand zipfile, and where the file starts in it. A seekable ``sink`` gets
    plain zip entries; any other (a store's ``BlobWriter``) gets entries followed by data
    descriptors, as Java's and .NET's zip writers stream them."""
    seekable = getattr(sink, "seekable", None)
    if seekable is not None and seekable():
        return sink, sink.tell()
    return CountingSink(sink), 0


def parse_time(text: str) -> dt.time:
    """A canonical time (its offset, if any, is dropped: a sheet's time has none)."""
    return dt.time.fromisoformat(text)


class CellWriter(abc.ABC):
    """Converts a batch of canonical text rows into one format's cell markup, column by
    column, counting every value it had to write otherwise (``warnings``)."""

    #: The format's name in warnings ("because Excel keeps only 15").
    app: ClassVar[str]
    #: The longest cell text the format holds (None: no limit).
    max_cell_chars: ClassVar[int | None]
    #: What "not_a_date" means in this format (``{n}``: how many).
    not_a_date_warning: ClassVar[str]
    #: NULL: a cell with no value keeps the following cells in place.
    empty: ClassVar[str]
    #: A number cell is ``number_open + text + number_close``.
    number_open: ClassVar[str]
    number_close: ClassVar[str]
    #: A text cell is ``text_open + escaped text + text_close``.
    text_open: ClassVar[str]
    text_close: ClassVar[str]
    #: Stored booleans (``true``/``false``, and ``t``/``f`` in older results) as cells.
    booleans: ClassVar[dict[str | None, str]]

    def __init__(self, columns: Sequence[Column]):
        self.columns = list(columns)
        self.counts: Counter[str] = Counter()
        self._date_cells: dict[str | None, str] = {None: self.empty, "": self.empty}
        self._time_cells: dict[str | None, str] = {None: self.empty, "": self.empty}
        self._converters = [self._converter(c.type or ColumnType.TEXT) for c in self.columns]

    # -- what a format provides ----------------------------------------------------------

    @abc.abstractmethod
    def text_is_plain(self, present: list[str], joined: str) -> bool:
        """True when every text in ``present`` (``joined`` by newlines) can be written as
        it is, with no escaping and nothing removed."""

    @abc.abstractmethod
    def escape(self, text: str) -> str:
        """``text`` (legal characters only) as the format's cell content."""

    @abc.abstractmethod
    def date_cell(self, text: str) -> str | None:
        """A canonical date as a cell, or None when the format cannot hold it."""

    @abc.abstractmethod
    def time_cell(self, text: str) -> str | None:
        """A canonical time as a cell, or None when the format cannot hold it."""

    @abc.abstractmethod
    def datetime_cells(self, col: Sequence[str | None], aware: bool) -> list[str] | None:
        """A column of timestamps the fast way, or None when one needs care
        (``datetime_cell`` then writes each)."""

    @abc.abstractmethod
    def datetime_cell(self, text: str) -> str | None:
        """A canonical timestamp as a cell, or None when the format cannot hold it."""

    # -- rows ----------------------------------------------------------------------------

    def cells_by_column(self, batch: list[TextRow]) -> list[list[str]]:
        """One batch of rows as cell markup, a list per column."""
        return [
            convert(col)
            for convert, col in zip(self._converters, zip(*batch, strict=True), strict=True)
        ]

    def warnings(self, result_sheets: int, sheet_row_limit: int) -> tuple[str, ...]:
        texts = {**_WARNINGS, "not_a_date": self.not_a_date_warning}
        found = [
            texts[kind].format(n=n, app=self.app, max_chars=self.max_cell_chars)
            for kind, n in self.counts.items()
            if n
        ]
        if result_sheets > 1:
            more = ", ".join(sheet_names(result_sheets)[1:])
            found.append(
                f"The result has more rows than one sheet holds ({sheet_row_limit:,} "
                f"with the header); it continues on sheet(s) {more}, with the header repeated."
            )
        return tuple(found)

    def note_cell(self, line: str) -> str:
        """A line of the notes sheet (never counted as a change to the result)."""
        return self.text_open + self.escape(ILLEGAL_CHARACTERS_RE.sub("", line)) + self.text_close

    # -- cells: one converter per column type, each with a guarded fast path -------------

    def _converter(self, kind: ColumnType) -> ColumnConverter:
        return {
            ColumnType.INTEGER: self._integers,
            ColumnType.DECIMAL: self._numbers,
            ColumnType.FLOAT: self._numbers,
            ColumnType.BOOLEAN: self._booleans,
            ColumnType.DATE: self._dates,
            ColumnType.TIME: self._times,
            ColumnType.DATETIME: self._naive_datetimes,
            ColumnType.DATETIMETZ: self._aware_datetimes,
        }.get(kind, self._texts)  # TEXT, JSON and BYTES (already "\x" hex text)

    def _texts(self, col: Sequence[str | None]) -> list[str]:
        empty, opening, closing = self.empty, self.text_open, self.text_close
        present = list(filter(None, col))
        limit = self.max_cell_chars
        if not self.text_is_plain(present, "\n".join(present)) or (
            limit is not None and present and max(map(len, present)) > limit
        ):
            return [empty if v is None else self.text_cell(v) for v in col]
        return [empty if v is None else opening + v + closing for v in col]

    def text_cell(self, text: str) -> str:
        """One text the slow way: illegal characters removed and an overlong text cut,
        each counted."""
        if ILLEGAL_CHARACTERS_RE.search(text):
            self.counts["illegal"] += 1
            text = ILLEGAL_CHARACTERS_RE.sub("", text)
        limit = self.max_cell_chars
        if limit is not None and len(text) > limit:
            self.counts["truncated"] += 1
            text = text[:limit]
        return self.text_open + self.escape(text) + self.text_close

    def _integers(self, col: Sequence[str | None]) -> list[str]:
        empty, opening, closing = self.empty, self.number_open, self.number_close
        present = list(filter(None, col))
        # 15 characters hold any 15-digit integer and any negative 14-digit one.
        if NOT_NUMBER_CHAR.search("\n".join(present)) or (
            present and max(map(len, present)) > NUMBER_DIGITS
        ):
            return [self._number_cell(v, integer=True) if v else empty for v in col]
        return [opening + v + closing if v else empty for v in col]

    def _numbers(self, col: Sequence[str | None]) -> list[str]:
        empty, opening, closing = self.empty, self.number_open, self.number_close
        if NOT_NUMBER_CHAR.search("\n".join(filter(None, col))):
            return [self._number_cell(v) if v else empty for v in col]
        return [opening + v + closing if v else empty for v in col]

    def _number_cell(self, text: str, integer: bool = False) -> str:
        if not NUMBER.fullmatch(text):
            self.counts["not_a_number"] += 1
            return self.text_cell(text)
        if integer and len(text.lstrip("-")) > NUMBER_DIGITS:
            self.counts["big_integer"] += 1
            return self.text_cell(text)
        return self.number_open + text + self.number_close

    def _booleans(self, col: Sequence[str | None]) -> list[str]:
        get = self.booleans.get
        return [get(v) or self.text_cell(v) for v in col]  # type: ignore[arg-type]

    def _dates(self, col: Sequence[str | None]) -> list[str]:
        return self._cached(col, self._date_cells, self.date_cell)

    def _times(self, col: Sequence[str | None]) -> list[str]:
        return self._cached(col, self._time_cells, self.time_cell)

    def _cached(
        self,
        col: Sequence[str | None],
        cells: dict[str | None, str],
        make: Callable[[str], str | None],
    ) -> list[str]:
        """Dates and times repeat, so each distinct text is converted once (per 64k)."""
        if len(cells) > 65_536:
            cells.clear()
            cells[None] = cells[""] = self.empty

        def convert(text: str) -> str:
            cell = _cell_or_none(make, text)
            if cell is None:  # not cached: each one is counted
                return self._not_a_date(text)
            cells[text] = cell
            return cell

        get = cells.get
        return [get(v) or convert(v) for v in col]  # type: ignore[arg-type]

    def _naive_datetimes(self, col: Sequence[str | None]) -> list[str]:
        return self._datetimes(col, aware=False)

    def _aware_datetimes(self, col: Sequence[str | None]) -> list[str]:
        return self._datetimes(col, aware=True)

    def _datetimes(self, col: Sequence[str | None], aware: bool) -> list[str]:
        try:
            fast = self.datetime_cells(col, aware)
        except (ValueError, TypeError, OverflowError):
            fast = None
        if fast is not None:
            return fast
        empty = self.empty
        return [self._datetime_cell(v) if v else empty for v in col]

    def _datetime_cell(self, text: str) -> str:
        cell = _cell_or_none(self.datetime_cell, text)
        return self._not_a_date(text) if cell is None else cell

    def _not_a_date(self, text: str) -> str:
        self.counts["not_a_date"] += 1
        return self.text_cell(text)


def _cell_or_none(make: Callable[[str], str | None], text: str) -> str | None:
    try:
        return make(text)
    except (ValueError, TypeError, OverflowError):
        return None
