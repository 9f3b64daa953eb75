"""A minimal streaming XLSX writer: canonical text rows in, an Excel workbook out.

Why not openpyxl: its write-only mode builds a Python object per cell and an lxml element
per row, which takes about 84 s for a million rows of ten columns. A workbook is only a zip
of a few small XML parts plus one big XML part per sheet, so we write that XML ourselves,
row batch by row batch, straight into the zip entry, and memory stays flat whatever the
size (``sheets`` holds what this shares with the ODS writer: typed cells, fast paths,
continuation sheets). Strings are written inline (``t="inlineStr"``), so there is no
shared-strings table.

Everything Excel cannot hold is said twice: in ``ExportSummary.warnings`` and on a final
"DanceCat notes" sheet in the workbook itself, because a spreadsheet travels without us.

``write_xlsx`` needs no ``StoredResult``: the email notifier and the benchmarks call it.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO
from xml.sax.saxutils import escape

from dancecat_core.columns import Column
from dancecat_core.csvcodec import BOOLEAN_TEXTS, TextRow
from dancecat_core.exporters import ExportSummary
from dancecat_plugins import sheets
from dancecat_plugins.sheets import (
    NOTES_SHEET,
    CellWriter,
    fit_widths,
    header_text,
    parse_time,
    sheet_names,
    split_sheets,
    zip_target,
)

#: Excel's longest cell text.
MAX_CELL_CHARS = 32_767
#: Bounds on sheet XML per input, used to tell whether a sheet could pass zip's 4 GiB entry
#: limit: escaping makes a character at most 5 bytes ("&amp;"); the markup around a cell is
#: at most 60 bytes and around a row at most 30.
_XML_BYTES_PER_TEXT_BYTE, _XML_BYTES_PER_CELL, _XML_BYTES_PER_ROW = 5, 60, 30

# Anything that sends a text cell down the slow path: markup, CR (XML would turn CRLF into
# LF, so it is written as a character reference), or an illegal character.
_TEXT_NEEDS_CARE = re.compile(r"[&<>\r\000-\010\013\014\016-\037\ufffe\uffff]")

# Styles (indexes into cellXfs in styles.xml).
_HEADER, _DATE, _TIME, _DATETIME = 1, 2, 3, 4
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
_EXCEL_EPOCH_UTC = _EXCEL_EPOCH.replace(tzinfo=dt.UTC)
_DAY = dt.timedelta(days=1)
_EXCEL_EPOCH_ORDINAL = _EXCEL_EPOCH.toordinal()
#: The longest ``<col .../>`` element, for the zip-limit bound before widths are known.
_XML_BYTES_PER_COL = 70

_EMPTY = "<c/>"
_STR_OPEN = '<c t="inlineStr"><is><t xml:space="preserve">'
_STR_CLOSE = "</t></is></c>"
_BOOLEANS: dict[str | None, str] = {
    text: f'<c t="b"><v>{int(value)}</v></c>' for text, value in BOOLEAN_TEXTS.items()
}
_BOOLEANS[None] = _EMPTY


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
    ``sheet_row_limit`` defaults to ``sheets.SHEET_ROW_LIMIT`` (read at call time, so
    tests can lower it).

    Pass ``row_count_hint`` and ``text_bytes_hint`` (the rows, and the bytes of their CSV
    text) when known: a sheet that cannot reach zip's 4 GiB entry limit is then written
    without Zip64 headers, which some Excel versions refuse when they are not needed.
    Without the hints Zip64 is used, which is always correct.

    A seekable ``sink`` gets plain zip entries; any other (a store's ``BlobWriter``) gets
    entries followed by data descriptors.
    """
    limit = sheets.SHEET_ROW_LIMIT if sheet_row_limit is None else sheet_row_limit
    writer = _XlsxWriter(columns, limit)
    zip64 = writer.sheet_may_pass_zip_limit(row_count_hint, text_bytes_hint)
    return writer.write(sink, rows, notes, zip64=zip64)


class XlsxCells(CellWriter):
    """SpreadsheetML cells: inline strings, numbers, booleans, and dates as Excel's serial
    days with a date style."""

    app = "Excel"
    max_cell_chars = MAX_CELL_CHARS
    not_a_date_warning = (
        "{n} date or time value(s) outside Excel's range (before 1900, or not a calendar "
        "value) were written as text."
    )
    empty = _EMPTY
    number_open, number_close = "<c><v>", "</v></c>"
    text_open, text_close = _STR_OPEN, _STR_CLOSE
    booleans = _BOOLEANS

    def text_is_plain(self, present: list[str], joined: str) -> bool:
        return not _TEXT_NEEDS_CARE.search(joined)

    def escape(self, text: str) -> str:
        return _escape(text)

    def date_cell(self, text: str) -> str | None:
        if len(text) != 10:  # "infinity", "0044-03-15 BC": not a date Excel knows
            return None
        serial = _excel_day(dt.date.fromisoformat(text).toordinal() - _EXCEL_EPOCH_ORDINAL)
        return None if serial is None else f'<c s="{_DATE}"><v>{serial!r}</v></c>'

    def time_cell(self, text: str) -> str:
        t = parse_time(text)
        serial = (t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6) / 86400
        return f'<c s="{_TIME}"><v>{serial!r}</v></c>'

    def datetime_cells(self, col: Sequence[str | None], aware: bool) -> list[str] | None:
        # Parse and subtract in one comprehension. Anything unusual (no offset where one is
        # expected, before 1900-03-01, not ISO) raises or is refused: cell by cell instead.
        parse, null = dt.datetime.fromisoformat, 1e9
        epoch = _EXCEL_EPOCH_UTC if aware else _EXCEL_EPOCH
        days = [(parse(v) - epoch) / _DAY if v else null for v in col]
        if min(days, default=null) < 61:
            return None
        return [
            f'<c s="{_DATETIME}"><v>{d!r}</v></c>' if v else _EMPTY
            for v, d in zip(col, days, strict=True)
        ]

    def datetime_cell(self, text: str) -> str | None:
        value = dt.datetime.fromisoformat(text)
        epoch = _EXCEL_EPOCH if value.tzinfo is None else _EXCEL_EPOCH_UTC
        serial = _excel_day((value - epoch) / _DAY)
        return None if serial is None else f'<c s="{_DATETIME}"><v>{serial!r}</v></c>'


class _XlsxWriter:
    def __init__(self, columns: Sequence[Column], sheet_row_limit: int):
        if sheet_row_limit < 2:
            raise ValueError("a sheet needs room for the header and at least one row")
        self.columns = list(columns)
        self.sheet_row_limit = sheet_row_limit
        self.cells = XlsxCells(self.columns)
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
        target, start = zip_target(sink)
        count = total = 0
        with zipfile.ZipFile(
            target,  # type: ignore[arg-type]
            "w",
            compression=zipfile.ZIP_DEFLATED,
            compresslevel=sheets.COMPRESS_LEVEL,
        ) as zf:
            for count, batches in enumerate(
                split_sheets(rows, len(self.columns), self.sheet_row_limit), 1
            ):
                with zf.open(f"xl/worksheets/sheet{count}.xml", "w", force_zip64=zip64) as f:
                    total += self._write_sheet(f, batches)
            warnings = self.cells.warnings(count, self.sheet_row_limit)
            names = sheet_names(count)
            lines = [*notes, *warnings]
            if lines:
                names.append(NOTES_SHEET)
                with zf.open(f"xl/worksheets/sheet{len(names)}.xml", "w") as f:
                    f.write(self._notes_sheet_xml(lines).encode())
            for part, xml in _package_parts(names).items():
                zf.writestr(part, xml)
        return ExportSummary(rows=total, bytes_written=target.tell() - start, warnings=warnings)

    def _write_sheet(self, f: BinaryIO, batches: Iterator[list[TextRow]]) -> int:
        """Write one sheet: header, then its batches of rows."""
        written, next_r = 0, 2
        first = next(batches, [])
        if self._widths is None:
            self._widths = fit_widths(self.columns, first)
        f.write(self._sheet_start().encode())
        for batch in _nonempty(first, batches):
            f.write(self._rows_xml(batch, next_r).encode())
            written += len(batch)
            next_r += len(batch)
        f.write(b"</sheetData></worksheet>")
        return written

    def _sheet_start(self) -> str:
        cols = "".join(
            f'<col min="{i}" max="{i}" width="{width}" customWidth="1"/>'
            for i, width in enumerate(self._widths or (), 1)
        )
        header = "".join(
            f'<c s="{_HEADER}" t="inlineStr"><is><t xml:space="preserve">'
            f"{_escape(header_text(c))}</t></is></c>"
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

    def _rows_xml(self, batch: list[TextRow], first_r: int) -> str:
        """One batch of rows as XML, converted a column at a time (``sheets``)."""
        by_column = self.cells.cells_by_column(batch)
        opens = map('<row r="{}">'.format, range(first_r, first_r + len(batch)))
        return "</row>".join(map("".join, zip(opens, *by_column, strict=True))) + "</row>"

    def _notes_sheet_xml(self, lines: Sequence[str]) -> str:
        rows = "".join(
            f'<row r="{r}">{self.cells.note_cell(line)}</row>' for r, line in enumerate(lines, 1)
        )
        return (
            _XML_DECLARATION + f'<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}">'
            f'<cols><col min="1" max="1" width="120" customWidth="1"/></cols>'
            f"<sheetData>{rows}</sheetData></worksheet>"
        )


def _nonempty(first: list[TextRow], rest: Iterator[list[TextRow]]) -> Iterator[list[TextRow]]:
    if first:
        yield first
        yield from rest


def _escape(text: str) -> str:
    return escape(text, {"\r": "&#13;"})


def _excel_day(days: float) -> float | None:
    """Excel's serial day: it counts a 29 February 1900 that never was, and starts at 1900."""
    if days < 2:  # before 1900-01-01
        return None
    return days - 1 if days < 61 else days


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
