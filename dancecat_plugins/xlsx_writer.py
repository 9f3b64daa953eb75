"""A minimal streaming XLSX writer: canonical text rows in, an Excel workbook out.

Why not openpyxl: its write-only mode builds a Python object per cell and an lxml element
per row, which takes about 84 s for a million rows of ten columns. A workbook is only a zip
of a few small XML parts plus one big XML part per sheet, so we write that XML ourselves,
row batch by row batch, straight into the zip entry. Memory stays flat whatever the size:

- strings are written inline (``t="inlineStr"``), so there is no shared-strings table;
- each column of a batch of rows is converted in one list comprehension, and a cheap check
  over the whole column (one regex over the joined text) decides whether the fast path is
  safe; cells that need care (escaping, truncation, values Excel cannot hold) take a slow
  path that also counts them, so every change is reported, never silent.

Everything Excel cannot hold is said twice: in ``ExportSummary.warnings`` and on a final
"DanceCat notes" sheet in the workbook itself, because a spreadsheet travels without us.

``write_xlsx`` needs no ``StoredResult``: the email notifier and the benchmarks call it.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import chain, islice
from typing import BinaryIO
from xml.sax.saxutils import escape

from dancecat_core.columns import Column, ColumnType
from dancecat_core.csvcodec import BOOLEAN_TEXTS, TextRow
from dancecat_core.exporters import ExportSummary

#: Excel's rows per sheet, header included (tests lower it, or pass ``sheet_row_limit``).
SHEET_ROW_LIMIT = 1_048_576
#: Excel's longest cell text.
MAX_CELL_CHARS = 32_767
#: Rows converted and written per step: big enough that per-batch costs vanish, small
#: enough (a few MB of XML) that memory does not grow with the result.
BATCH_ROWS = 2_000
#: zlib level 1: sheet XML is so repetitive that level 1 already shrinks it about 7x, and
#: compression is most of the export's time. Measured on 300,000 rows of ten columns, the
#: whole export took 3.0 s for 17.5 MB at level 1, 7.3 s for 13.3 MB at the default 6 and
#: 17.4 s for 12.7 MB at 9: a file 30% larger is worth an export 2.4 times as fast.
COMPRESS_LEVEL = 1
#: Bounds on sheet XML per input, used to tell whether a sheet could pass zip's 4 GiB entry
#: limit: escaping makes a character at most 5 bytes ("&amp;"); the markup around a cell is
#: at most 60 bytes and around a row at most 30.
_XML_BYTES_PER_TEXT_BYTE, _XML_BYTES_PER_CELL, _XML_BYTES_PER_ROW = 5, 60, 30

RESULT_SHEET = "Result"
NOTES_SHEET = "DanceCat notes"

# openpyxl's ILLEGAL_CHARACTERS_RE, plus the two non-characters XML 1.0 also forbids.
ILLEGAL_CHARACTERS_RE = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]|[\ufffe\uffff]")
# Anything that sends a text cell down the slow path: markup, CR (XML would turn CRLF into
# LF, so it is written as a character reference), or an illegal character.
_TEXT_NEEDS_CARE = re.compile(r"[&<>\r\000-\010\013\014\016-\037\ufffe\uffff]")
# Fast-path guard for numbers: a character no number contains. The canonical text forms
# (csvcodec) spell a number either as Excel reads it or as NaN/Infinity/-Infinity; this
# catches those, and stray text, across a whole column of a batch in one scan.
_NOT_NUMBER_CHAR = re.compile(r"[^0-9.eE+\-\n]")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

# Styles (indexes into cellXfs in styles.xml).
_HEADER, _DATE, _TIME, _DATETIME = 1, 2, 3, 4
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_EXCEL_EPOCH_UTC = _EXCEL_EPOCH.replace(tzinfo=dt.UTC)
_DAY = dt.timedelta(days=1)
_EXCEL_EPOCH_ORDINAL = _EXCEL_EPOCH.toordinal()
_COLUMN_WIDTHS = {ColumnType.DATE: 11, ColumnType.TIME: 10, ColumnType.DATETIME: 20}
#: Column widths (Excel's unit: a character of the default font) are estimated from the
#: header and the first batch of rows, within these bounds: one long text must not make a
#: column wider than a screen, and a short one still leaves room to click.
MIN_WIDTH, MAX_WIDTH = 6, 60
#: Room for the header's bold face and the cell margins.
_WIDTH_PADDING = 2
#: The longest ``<col .../>`` element, for the zip-limit bound before widths are known.
_XML_BYTES_PER_COL = 70

_EMPTY = "<c/>"  # NULL: a cell with no value keeps the following cells in place
_STR_OPEN = '<c t="inlineStr"><is><t xml:space="preserve">'
_STR_CLOSE = "</t></is></c>"
# Stored booleans (``t``/``f`` in results stored before ``true``/``false``) as cells.
_BOOLEANS = {text: f'<c t="b"><v>{int(value)}</v></c>' for text, value in BOOLEAN_TEXTS.items()}
_BOOLEANS[None] = _EMPTY

# Warning kinds, counted per cell, reported once each.
_WARNINGS = {
    "illegal": "{n} cell(s) held characters XML does not allow; they were removed.",
    "truncated": f"{{n}} cell(s) were longer than {MAX_CELL_CHARS:,} characters and were cut "
    "to that length.",
    "big_integer": "{n} integer(s) have more than 15 digits and were written as text, "
    "because Excel keeps only 15.",
    "not_a_number": "{n} number(s) Excel cannot hold (NaN, Infinity) were written as text.",
    "not_a_date": "{n} date or time value(s) outside Excel's range (before 1900, or not a "
    "calendar value) were written as text.",
}

ColumnConverter = Callable[[Sequence[str | None]], list[str]]


def write_xlsx(
    sink: BinaryIO,
    columns: Sequence[Column],
    rows: Iterable[TextRow],
    notes: Sequence[str] = (),
    *,
    sheet_row_limit: int | None = None,
    row_count_hint: int | None = None,
    text_bytes_hint: int | None = None,
) -> ExportSummary:
    """Write ``rows`` (canonical text, ``None`` for NULL) as a workbook to ``sink``.

    ``notes`` (a scrub note, say) go on the notes sheet with the writer's own warnings.
    ``sheet_row_limit`` defaults to ``SHEET_ROW_LIMIT`` (read at call time, so tests can
    lower it).

    Pass ``row_count_hint`` and ``text_bytes_hint`` (the rows, and the bytes of their CSV
    text) when known: a sheet that cannot reach zip's 4 GiB entry limit is then written
    without Zip64 headers, which some Excel versions refuse when they are not needed.
    Without the hints Zip64 is used, which is always correct.

    A seekable ``sink`` gets plain zip entries; any other (a store's ``BlobWriter``) gets
    entries followed by data descriptors, as Java's and .NET's zip writers stream them.
    """
    limit = SHEET_ROW_LIMIT if sheet_row_limit is None else sheet_row_limit
    writer = _XlsxWriter(columns, limit)
    zip64 = writer.sheet_may_pass_zip_limit(row_count_hint, text_bytes_hint)
    return writer.write(sink, rows, notes, zip64=zip64)


class _CountingSink:
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


class _XlsxWriter:
    def __init__(self, columns: Sequence[Column], sheet_row_limit: int):
        if sheet_row_limit < 2:
            raise ValueError("a sheet needs room for the header and at least one row")
        self.columns = list(columns)
        self.sheet_row_limit = sheet_row_limit
        self.counts: Counter[str] = Counter()
        self._date_cells: dict[str | None, str] = {None: _EMPTY, "": _EMPTY}
        self._time_cells: dict[str | None, str] = {None: _EMPTY, "": _EMPTY}
        self._converters = [self._converter(c.type or ColumnType.TEXT) for c in self.columns]
        self._widths: list[int] | None = None  # set from the first rows, kept for every sheet

    # -- the workbook -------------------------------------------------------------------

    def sheet_may_pass_zip_limit(self, rows: int | None, text_bytes: int | None) -> bool:
        if rows is None or text_bytes is None:
            return True
        rows = min(rows, self.sheet_row_limit)
        bound = (
            len(self._sheet_start().encode())
            + _XML_BYTES_PER_COL * len(self.columns)
            + _XML_BYTES_PER_TEXT_BYTE * text_bytes
            + _XML_BYTES_PER_CELL * rows * len(self.columns)
            + _XML_BYTES_PER_ROW * rows
        )
        return bound >= zipfile.ZIP64_LIMIT

    def write(
        self, sink: BinaryIO, rows: Iterable[TextRow], notes: Sequence[str], *, zip64: bool
    ) -> ExportSummary:
        seekable = getattr(sink, "seekable", None)
        if seekable is not None and seekable():
            target: BinaryIO | _CountingSink = sink
            start = sink.tell()
        else:
            target = _CountingSink(sink)
            start = 0
        sheets: list[str] = []
        total = 0
        with zipfile.ZipFile(
            target,  # type: ignore[arg-type]
            "w",
            compression=zipfile.ZIP_DEFLATED,
            compresslevel=COMPRESS_LEVEL,
        ) as zf:
            it = iter(rows)
            if len(self.columns) == 1:
                # A lone NULL is a blank CSV line, which csv.reader returns as [].
                it = (row or [None] for row in it)
            while True:
                name = RESULT_SHEET if not sheets else f"{RESULT_SHEET} ({len(sheets) + 1})"
                sheets.append(name)
                with zf.open(f"xl/worksheets/sheet{len(sheets)}.xml", "w", force_zip64=zip64) as f:
                    total += self._write_sheet(f, it)
                first = next(it, None)
                if first is None:
                    break
                it = chain([first], it)
            warnings = self.warnings(len(sheets))
            lines = [*notes, *warnings]
            if lines:
                sheets.append(NOTES_SHEET)
                with zf.open(f"xl/worksheets/sheet{len(sheets)}.xml", "w") as f:
                    f.write(_notes_sheet_xml(lines).encode())
            for part, xml in _package_parts(sheets).items():
                zf.writestr(part, xml)
        return ExportSummary(rows=total, bytes_written=target.tell() - start, warnings=warnings)

    def warnings(self, result_sheets: int) -> tuple[str, ...]:
        found = [_WARNINGS[kind].format(n=n) for kind, n in self.counts.items() if n]
        if result_sheets > 1:
            more = ", ".join(f"{RESULT_SHEET} ({n})" for n in range(2, result_sheets + 1))
            found.append(
                f"The result has more rows than one sheet holds ({self.sheet_row_limit:,} "
                f"with the header); it continues on sheet(s) {more}, with the header repeated."
            )
        return tuple(found)

    def _write_sheet(self, f: BinaryIO, rows: Iterator[TextRow]) -> int:
        """Write one sheet: header, then up to ``sheet_row_limit - 1`` rows from ``rows``."""
        written, room, next_r = 0, self.sheet_row_limit - 1, 2
        batch = list(islice(rows, min(BATCH_ROWS, room)))
        if self._widths is None:
            self._widths = self._fit_widths(batch)
        f.write(self._sheet_start().encode())
        while room > 0:
            if written:
                batch = list(islice(rows, min(BATCH_ROWS, room)))
            if not batch:
                break
            f.write(self._rows_xml(batch, next_r).encode())
            written += len(batch)
            room -= len(batch)
            next_r += len(batch)
        f.write(b"</sheetData></worksheet>")
        return written

    def _fit_widths(self, batch: Sequence[TextRow]) -> list[int]:
        """Each column's width: its header's or its longest line in ``batch``, whichever is
        longer, or the fixed width of a date-like type (which Excel shows formatted)."""
        widths = []
        for index, column in enumerate(self.columns):
            kind = _width_kind(column.type)
            if kind is not None:
                longest = _COLUMN_WIDTHS[kind]
            else:
                values = (row[index] for row in batch if row[index])
                longest = max((len(line) for v in values for line in v.split("\n")), default=0)
            wanted = max(longest, len(self._header_text(column))) + _WIDTH_PADDING
            widths.append(min(MAX_WIDTH, max(MIN_WIDTH, wanted)))
        return widths

    def _sheet_start(self) -> str:
        cols = "".join(
            f'<col min="{i}" max="{i}" width="{width}" customWidth="1"/>'
            for i, width in enumerate(self._widths or (), 1)
        )
        header = "".join(
            f'<c s="{_HEADER}" t="inlineStr"><is><t xml:space="preserve">'
            f"{_escape(self._header_text(c))}</t></is></c>"
            for c in self.columns
        )
        return (
            _XML_DECLARATION + f'<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
            # Freeze the header row: it stays visible while scrolling.
            '<sheetViews><sheetView workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft"/></sheetView></sheetViews>'
            '<sheetFormatPr defaultRowHeight="15"/>'
            + (f"<cols>{cols}</cols>" if cols else "")
            + f'<sheetData><row r="1">{header}</row>'
        )

    @staticmethod
    def _header_text(column: Column) -> str:
        # Excel has no time zones: the value is UTC, and the header says so.
        return f"{column.name} (UTC)" if column.type is ColumnType.DATETIMETZ else column.name

    def _rows_xml(self, batch: list[TextRow], first_r: int) -> str:
        """One batch of rows as XML, converted a column at a time (see module docstring)."""
        by_column = [
            convert(col)
            for convert, col in zip(self._converters, zip(*batch, strict=True), strict=True)
        ]
        opens = map('<row r="{}">'.format, range(first_r, first_r + len(batch)))
        return "</row>".join(map("".join, zip(opens, *by_column, strict=True))) + "</row>"

    # -- cells: one converter per column type, each with a guarded fast path -------------

    def _converter(self, kind: ColumnType) -> ColumnConverter:
        return {
            ColumnType.INTEGER: self._integers,
            ColumnType.DECIMAL: self._numbers,
            ColumnType.FLOAT: self._numbers,
            ColumnType.BOOLEAN: self._booleans,
            ColumnType.DATE: self._dates,
            ColumnType.TIME: self._times,
            ColumnType.DATETIME: partial(self._datetimes, epoch=_EXCEL_EPOCH),
            ColumnType.DATETIMETZ: partial(self._datetimes, epoch=_EXCEL_EPOCH_UTC),
        }.get(kind, self._texts)  # TEXT, JSON and BYTES (already "\x" hex text)

    def _texts(self, col: Sequence[str | None]) -> list[str]:
        present = list(filter(None, col))
        if _TEXT_NEEDS_CARE.search("\n".join(present)) or (
            present and max(map(len, present)) > MAX_CELL_CHARS
        ):
            return [_EMPTY if v is None else self._text_cell(v) for v in col]
        return [_EMPTY if v is None else _STR_OPEN + v + _STR_CLOSE for v in col]

    def _text_cell(self, text: str) -> str:
        if ILLEGAL_CHARACTERS_RE.search(text):
            self.counts["illegal"] += 1
            text = ILLEGAL_CHARACTERS_RE.sub("", text)
        if len(text) > MAX_CELL_CHARS:
            self.counts["truncated"] += 1
            text = text[:MAX_CELL_CHARS]
        return _STR_OPEN + _escape(text) + _STR_CLOSE

    def _integers(self, col: Sequence[str | None]) -> list[str]:
        present = list(filter(None, col))
        # 15 characters hold any 15-digit integer and any negative 14-digit one.
        if _NOT_NUMBER_CHAR.search("\n".join(present)) or (present and max(map(len, present)) > 15):
            return [self._number_cell(v, integer=True) if v else _EMPTY for v in col]
        return ["<c><v>" + v + "</v></c>" if v else _EMPTY for v in col]

    def _numbers(self, col: Sequence[str | None]) -> list[str]:
        if _NOT_NUMBER_CHAR.search("\n".join(filter(None, col))):
            return [self._number_cell(v) if v else _EMPTY for v in col]
        return ["<c><v>" + v + "</v></c>" if v else _EMPTY for v in col]

    def _number_cell(self, text: str, integer: bool = False) -> str:
        if not _NUMBER.fullmatch(text):
            self.counts["not_a_number"] += 1
            return self._text_cell(text)
        if integer and len(text.lstrip("-")) > 15:
            self.counts["big_integer"] += 1
            return self._text_cell(text)
        return "<c><v>" + text + "</v></c>"

    def _booleans(self, col: Sequence[str | None]) -> list[str]:
        get = _BOOLEANS.get
        return [get(v) or self._text_cell(v) for v in col]  # type: ignore[arg-type]

    def _dates(self, col: Sequence[str | None]) -> list[str]:
        return self._cached(col, self._date_cells, _date_serial, _DATE)

    def _times(self, col: Sequence[str | None]) -> list[str]:
        return self._cached(col, self._time_cells, _time_serial, _TIME)

    def _cached(
        self,
        col: Sequence[str | None],
        cells: dict[str | None, str],
        serial: Callable[[str], float | None],
        style: int,
    ) -> list[str]:
        """Dates and times repeat, so each distinct text is converted once (per 64k)."""
        if len(cells) > 65_536:
            cells.clear()
            cells[None] = cells[""] = _EMPTY

        def convert(text: str) -> str:
            value = _serial_or_none(serial, text)
            if value is None:  # not cached: each one is counted
                return self._not_a_date(text)
            cells[text] = cell = f'<c s="{style}"><v>{value!r}</v></c>'
            return cell

        get = cells.get
        return [get(v) or convert(v) for v in col]  # type: ignore[arg-type]

    def _datetimes(self, col: Sequence[str | None], epoch: dt.datetime) -> list[str]:
        # Fast path: parse and subtract in one comprehension. Anything unusual (no offset
        # where one is expected, before 1900-03-01, not ISO) redoes the batch cell by cell.
        parse, null = dt.datetime.fromisoformat, 1e9
        try:
            days = [(parse(v) - epoch) / _DAY if v else null for v in col]
        except (ValueError, TypeError):
            days = None
        if days is None or min(days, default=null) < 61:
            return [self._datetime_cell(v) if v else _EMPTY for v in col]
        return [
            f'<c s="{_DATETIME}"><v>{d!r}</v></c>' if v else _EMPTY
            for v, d in zip(col, days, strict=True)
        ]

    def _datetime_cell(self, text: str) -> str:
        value = _serial_or_none(_datetime_serial, text)
        if value is None:
            return self._not_a_date(text)
        return f'<c s="{_DATETIME}"><v>{value!r}</v></c>'

    def _not_a_date(self, text: str) -> str:
        self.counts["not_a_date"] += 1
        return self._text_cell(text)


def _serial_or_none(serial: Callable[[str], float | None], text: str) -> float | None:
    try:
        return serial(text)
    except (ValueError, TypeError):
        return None


def _escape(text: str) -> str:
    return escape(text, {"\r": "&#13;"})


def _width_kind(kind: ColumnType | None) -> ColumnType | None:
    """Date-like columns get a width, or Excel shows ``#####`` for values that do not fit."""
    if kind is ColumnType.DATETIMETZ:
        return ColumnType.DATETIME
    return kind if kind in _COLUMN_WIDTHS else None


def _excel_day(days: float) -> float | None:
    """Excel's serial day: it counts a 29 February 1900 that never was, and starts at 1900."""
    if days < 2:  # before 1900-01-01
        return None
    return days - 1 if days < 61 else days


def _date_serial(text: str) -> float | None:
    if len(text) != 10:  # "infinity", "0044-03-15 BC": not a date Excel knows
        return None
    return _excel_day(dt.date.fromisoformat(text).toordinal() - _EXCEL_EPOCH_ORDINAL)


def _time_serial(text: str) -> float:
    t = dt.time.fromisoformat(text)
    return (t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6) / 86400


def _datetime_serial(text: str) -> float | None:
    value = dt.datetime.fromisoformat(text)
    epoch = _EXCEL_EPOCH if value.tzinfo is None else _EXCEL_EPOCH_UTC
    return _excel_day((value - epoch) / _DAY)


# -- the package's fixed parts --------------------------------------------------------------

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"

_STYLES = (
    _XML_DECLARATION + f'<styleSheet xmlns="{_MAIN_NS}">'
    '<numFmts count="3">'
    '<numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="hh:mm:ss"/>'
    '<numFmt numFmtId="166" formatCode="yyyy-mm-dd hh:mm:ss"/>'
    "</numFmts>"
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def _notes_sheet_xml(lines: Sequence[str]) -> str:
    rows = "".join(
        f'<row r="{r}">{_STR_OPEN}{_escape(ILLEGAL_CHARACTERS_RE.sub("", line))}{_STR_CLOSE}</row>'
        for r, line in enumerate(lines, 1)
    )
    return (
        _XML_DECLARATION + f'<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
        f'<cols><col min="1" max="1" width="120" customWidth="1"/></cols>'
        f"<sheetData>{rows}</sheetData></worksheet>"
    )


def _package_parts(sheets: Sequence[str]) -> dict[str, str]:
    """Every part but the sheets, written once the number of sheets is known."""
    numbers = range(1, len(sheets) + 1)
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_CT}.worksheet+xml"/>'
        for n in numbers
    )
    sheet_rels = "".join(
        f'<Relationship Id="rId{n}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in numbers
    )
    sheet_list = "".join(
        f'<sheet name="{escape(name)}" sheetId="{n}" r:id="rId{n}"/>'
        for n, name in zip(numbers, sheets, strict=True)
    )
    styles_id = len(sheets) + 1
    return {
        "[Content_Types].xml": _XML_DECLARATION
        + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
        f"{overrides}</Types>",
        "_rels/.rels": _XML_DECLARATION + f'<Relationships xmlns="{_PKG_REL_NS}">'
        f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>",
        "xl/workbook.xml": _XML_DECLARATION + f'<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
        f"<bookViews><workbookView/></bookViews><sheets>{sheet_list}</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": _XML_DECLARATION
        + f'<Relationships xmlns="{_PKG_REL_NS}">{sheet_rels}'
        f'<Relationship Id="rId{styles_id}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
        "</Relationships>",
        "xl/styles.xml": _STYLES,
    }
