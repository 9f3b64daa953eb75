"""A minimal streaming ODS writer: canonical text rows in, an OpenDocument spreadsheet out.

ODS is what LibreOffice opens natively. Like the XLSX writer (and through the same
``sheets`` module: typed cells, guarded fast paths, continuation sheets, widths), it writes
the sheet XML itself, batch by batch, straight into the zip entry, so memory stays flat
at any size. The difference is the package: every sheet lives in one ``content.xml``,
whose automatic styles (column widths, date formats) come first, so the first batch of
rows is read before anything is written.

Cells: numbers as ``float``, booleans as ``boolean``, dates and timestamps as ``date``
(ISO 8601 values, shown with a date style), times as ``time`` (``PT12H30M00S``). Text goes
in ``<text:p>`` as LibreOffice writes it: a line break starts a new paragraph, a run of
spaces and a leading space are ``<text:s/>`` (ODF collapses plain ones), CR is a
character reference; a tab stays a tab character, because LibreOffice's and calamine's
readers keep it while both drop ``<text:tab/>``. Text is never a formula: a cell that
starts with ``=`` is a string cell, not ``table:formula``.

What the format cannot hold becomes text and is said, as in the XLSX writer, in
``ExportSummary.warnings`` and on a "DanceCat notes" sheet. ODS holds dates back to year 1,
but LibreOffice shows dates before 15 October 1582 in the Julian calendar (a day the
database did not say), so those stay text; there is no cell length limit to cut at.

``write_ods`` needs no ``StoredResult``: the benchmarks call it.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

from dancecat_core.columns import Column
from dancecat_core.csvcodec import BOOLEAN_TEXTS, TextRow
from dancecat_core.exporters import ExportSummary
from dancecat_plugins import sheets
from dancecat_plugins.sheets import (
    NOTES_SHEET,
    ODS_MEDIA_TYPE,
    CellWriter,
    fit_widths,
    header_text,
    parse_time,
    sheet_names,
    split_sheets,
    zip_target,
)

#: The first day LibreOffice shows in the Gregorian calendar (before it: Julian).
GREGORIAN_START = dt.date(1582, 10, 15)
_GREGORIAN_START_TIME = dt.datetime.combine(GREGORIAN_START, dt.time())
_GREGORIAN_START_TEXT = GREGORIAN_START.isoformat()

# Anything that sends a text cell down the slow path: markup, CR, a line break (a new
# paragraph), a run of spaces or a leading space (``<text:s/>``), an illegal character.
# ``joined`` has the column's texts separated by newlines: a value's own newline shows as
# an extra one (counted), a value's leading space as "\n " or "^ ".
_TEXT_NEEDS_CARE = re.compile(r"[&<>\r\000-\010\013\014\016-\037\ufffe\uffff]|  |^ |\n ")
_SPACES = re.compile(r"^ +| {2,}")

#: Bounds on content.xml per input, to tell whether it could pass zip's 4 GiB entry limit:
#: escaping makes a character at most 17 bytes (a line break: "</text:p><text:p>"); the
#: markup around a cell is at most 130 bytes and around a row at most 40.
_XML_BYTES_PER_TEXT_BYTE, _XML_BYTES_PER_CELL, _XML_BYTES_PER_ROW = 17, 130, 40
#: Centimetres per character of width (LibreOffice's default font, 10 pt).
_CM_PER_CHAR = 0.2
_NOTES_WIDTH = 120

_CELL = "<table:table-cell "
_EMPTY = "<table:table-cell/>"
_STR_OPEN = '<table:table-cell office:value-type="string"><text:p>'
_STR_CLOSE = "</text:p></table:table-cell>"
_NUM_OPEN = '<table:table-cell office:value-type="float" office:value="'
_NUM_CLOSE = '"/>'
_BOOLEANS: dict[str | None, str] = {
    text: f'{_CELL}office:value-type="boolean" office:boolean-value="{str(value).lower()}"/>'
    for text, value in BOOLEAN_TEXTS.items()
}
_BOOLEANS[None] = _EMPTY
# Cell styles (automatic styles in content.xml).
_HEADER, _DATE, _TIME, _DATETIME = "ceH", "ceD", "ceT", "ceDT"
_DATE_OPEN = f'{_CELL}table:style-name="{_DATE}" office:value-type="date" office:date-value="'
_DATETIME_OPEN = (
    f'{_CELL}table:style-name="{_DATETIME}" office:value-type="date" office:date-value="'
)
_TIME_OPEN = f'{_CELL}table:style-name="{_TIME}" office:value-type="time" office:time-value="'
_UTC = dt.UTC


def write_ods(
    sink: BinaryIO,
    columns: Sequence[Column],
    rows: Iterable[TextRow],
    notes: Sequence[str] = (),
    *,
    sheet_row_limit: int | None = None,
    row_count_hint: int | None = None,
    text_bytes_hint: int | None = None,
) -> ExportSummary:
    """Write ``rows`` (canonical text, ``None`` for NULL) as a spreadsheet to ``sink``.

    As ``xlsx_writer.write_xlsx``: ``notes`` go on the notes sheet with the writer's own
    warnings; ``sheet_row_limit`` defaults to ``sheets.SHEET_ROW_LIMIT``; with both hints
    (rows, bytes of CSV text) a ``content.xml`` that cannot reach 4 GiB has no Zip64
    headers; a sink that cannot seek gets entries followed by data descriptors.
    """
    limit = sheets.SHEET_ROW_LIMIT if sheet_row_limit is None else sheet_row_limit
    if limit < 2:
        raise ValueError("a sheet needs room for the header and at least one row")
    return _OdsWriter(columns, limit).write(
        sink, rows, notes, zip64=_may_pass_zip_limit(columns, row_count_hint, text_bytes_hint)
    )


def _may_pass_zip_limit(
    columns: Sequence[Column], rows: int | None, text_bytes: int | None
) -> bool:
    if rows is None or text_bytes is None:
        return True
    header = sum(len(c.name.encode()) for c in columns) * _XML_BYTES_PER_TEXT_BYTE
    bound = (
        len(_CONTENT_START)
        + 4096
        + 200 * len(columns)  # styles, columns, notes
        + header
        + _XML_BYTES_PER_TEXT_BYTE * text_bytes
        + _XML_BYTES_PER_CELL * (rows + 1) * len(columns)
        + _XML_BYTES_PER_ROW * (rows + 1)
    )
    return bound >= zipfile.ZIP64_LIMIT


class OdsCells(CellWriter):
    """OpenDocument table cells (see the module docstring for each type)."""

    app = "LibreOffice"
    max_cell_chars = None
    not_a_date_warning = (
        "{n} date or time value(s) a spreadsheet would show otherwise (before 15 October "
        "1582, where LibreOffice switches to the Julian calendar, or not a calendar value) "
        "were written as text."
    )
    empty = _EMPTY
    number_open, number_close = _NUM_OPEN, _NUM_CLOSE
    text_open, text_close = _STR_OPEN, _STR_CLOSE
    booleans = _BOOLEANS

    def text_is_plain(self, present: list[str], joined: str) -> bool:
        return not _TEXT_NEEDS_CARE.search(joined) and joined.count("\n") == max(
            len(present) - 1, 0
        )

    def escape(self, text: str) -> str:
        escaped = escape(text, {"\r": "&#13;"})
        return "</text:p><text:p>".join(_SPACES.sub(_spaces, line) for line in escaped.split("\n"))

    def date_cell(self, text: str) -> str | None:
        if len(text) != 10 or dt.date.fromisoformat(text) < GREGORIAN_START:
            return None  # "infinity", "0044-03-15 BC" are not dates either
        return _DATE_OPEN + text + _NUM_CLOSE

    def time_cell(self, text: str) -> str:
        t = parse_time(text)
        fraction = f".{t.microsecond:06d}".rstrip("0") if t.microsecond else ""
        return f"{_TIME_OPEN}PT{t.hour:02d}H{t.minute:02d}M{t.second:02d}{fraction}S{_NUM_CLOSE}"

    def datetime_cells(self, col: Sequence[str | None], aware: bool) -> list[str] | None:
        # Parse every value in one comprehension (which also checks it is a real day);
        # anything unusual (not ISO, before the Gregorian start) raises or is refused:
        # cell by cell instead. The canonical text is already ISO 8601 (in UTC with
        # ``+00:00`` for an instant), so it is written as it is, without that suffix.
        cut = -6 if aware else None
        present = [v for v in col if v]
        if not all(_canonical(v, aware) for v in present):
            return None
        # ISO texts of four-digit years in one zone sort as their instants do.
        if present and min(present) < _GREGORIAN_START_TEXT:
            return None
        list(map(dt.datetime.fromisoformat, present))  # raises unless each is a real day
        return [_DATETIME_OPEN + v[:cut] + _NUM_CLOSE if v else _EMPTY for v in col]

    def datetime_cell(self, text: str) -> str | None:
        value = dt.datetime.fromisoformat(text)
        if value.tzinfo is not None:
            value = value.astimezone(_UTC).replace(tzinfo=None)
        if value < _GREGORIAN_START_TIME:
            return None
        return _DATETIME_OPEN + value.isoformat() + _NUM_CLOSE


def _canonical(text: str, aware: bool) -> bool:
    """The form an ODS date-value takes as it is (a ``T``, and ``+00:00`` if aware)."""
    if text[10:11] != "T" or text[:1] == "-":
        return False
    return text.endswith("+00:00") if aware else "+" not in text and text.count("-") == 2


def _spaces(match: re.Match[str]) -> str:
    """A leading run of spaces, or the second and later spaces of a run, as ``text:s``."""
    n = len(match.group())
    if match.start() == 0:
        return _space_element(n)
    return " " + _space_element(n - 1)


def _space_element(n: int) -> str:
    return "<text:s/>" if n == 1 else f'<text:s text:c="{n}"/>'


class _OdsWriter:
    def __init__(self, columns: Sequence[Column], sheet_row_limit: int):
        self.columns = list(columns)
        self.sheet_row_limit = sheet_row_limit
        self.cells = OdsCells(self.columns)

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
            # First and uncompressed, so the file's type shows at a fixed offset.
            zf.writestr("mimetype", ODS_MEDIA_TYPE, compress_type=zipfile.ZIP_STORED)
            with zf.open("content.xml", "w", force_zip64=zip64) as f:
                widths: list[int] | None = None
                for count, batches in enumerate(
                    split_sheets(rows, len(self.columns), self.sheet_row_limit), 1
                ):
                    first = next(batches, [])
                    if widths is None:
                        widths = fit_widths(self.columns, first)
                        f.write(_content_start(widths).encode())
                    f.write(self._table_start(sheet_names(count)[-1], widths).encode())
                    if first:
                        total += self._write_rows(f, first)
                    for batch in batches:
                        total += self._write_rows(f, batch)
                    f.write(b"</table:table>")
                warnings = self.cells.warnings(count, self.sheet_row_limit)
                names = sheet_names(count)
                lines = [*notes, *warnings]
                if lines:
                    names.append(NOTES_SHEET)
                    f.write(self._notes_table(lines).encode())
                f.write(b"</office:spreadsheet></office:body></office:document-content>")
            for part, xml in _package_parts(names).items():
                zf.writestr(part, xml)
        return ExportSummary(rows=total, bytes_written=target.tell() - start, warnings=warnings)

    def _write_rows(self, f: BinaryIO, batch: list[TextRow]) -> int:
        by_column = self.cells.cells_by_column(batch)
        xml = "</table:table-row>".join(
            map("".join, zip(repeat("<table:table-row>", len(batch)), *by_column, strict=True))
        )
        f.write((xml + "</table:table-row>").encode())
        return len(batch)

    def _table_start(self, name: str, widths: Sequence[int]) -> str:
        columns = "".join(f'<table:table-column table:style-name="co{w}"/>' for w in widths)
        header = "".join(
            f'{_CELL}table:style-name="{_HEADER}" office:value-type="string"><text:p>'
            f"{self.cells.escape(header_text(c))}</text:p></table:table-cell>"
            for c in self.columns
        )
        return (
            f"<table:table table:name={quoteattr(name)}>{columns}"
            f"<table:table-row>{header}</table:table-row>"
        )

    def _notes_table(self, lines: Sequence[str]) -> str:
        rows = "".join(
            f"<table:table-row>{self.cells.note_cell(line)}</table:table-row>" for line in lines
        )
        return (
            f"<table:table table:name={quoteattr(NOTES_SHEET)}>"
            f'<table:table-column table:style-name="co{_NOTES_WIDTH}"/>{rows}</table:table>'
        )


# -- the package's fixed parts --------------------------------------------------------------

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "fo": "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0",
    "number": "urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "config": "urn:oasis:names:tc:opendocument:xmlns:config:1.0",
    "manifest": "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0",
}
_VERSION = "1.2"


def _root(element: str, *prefixes: str) -> str:
    names = " ".join(f'xmlns:{p}="{_NS[p]}"' for p in ("office", *prefixes))
    return f'<office:{element} {names} office:version="{_VERSION}">'


def _two(part: str) -> str:
    return f'<number:{part} number:style="long"/>'


_SEP = "<number:text>{}</number:text>"
_DATE_PARTS = _two("year") + _SEP.format("-") + _two("month") + _SEP.format("-") + _two("day")
_TIME_PARTS = (
    _two("hours") + _SEP.format(":") + _two("minutes") + _SEP.format(":") + _two("seconds")
)
_STYLES = (
    f'<number:date-style style:name="N1">{_DATE_PARTS}</number:date-style>'
    # LibreOffice ignores a time style without truncate-on-overflow (and shows AM/PM).
    '<number:time-style style:name="N2" number:truncate-on-overflow="false">'
    f"{_TIME_PARTS}</number:time-style>"
    f'<number:date-style style:name="N3">{_DATE_PARTS}{_SEP.format(" ")}{_TIME_PARTS}'
    "</number:date-style>"
    f'<style:style style:name="{_HEADER}" style:family="table-cell">'
    '<style:text-properties fo:font-weight="bold"/></style:style>'
    f'<style:style style:name="{_DATE}" style:family="table-cell" style:data-style-name="N1"/>'
    f'<style:style style:name="{_TIME}" style:family="table-cell" style:data-style-name="N2"/>'
    f'<style:style style:name="{_DATETIME}" style:family="table-cell" '
    'style:data-style-name="N3"/>'
)
_CONTENT_START = (
    _XML_DECLARATION
    + _root("document-content", "style", "text", "table", "fo", "number")
    + "<office:automatic-styles>"
)


def _content_start(widths: Sequence[int]) -> str:
    """content.xml up to the first table: styles, one column style per width used."""
    column_styles = "".join(
        f'<style:style style:name="co{w}" style:family="table-column">'
        f'<style:table-column-properties style:column-width="{w * _CM_PER_CHAR:.2f}cm"/>'
        "</style:style>"
        for w in sorted({*widths, _NOTES_WIDTH})
    )
    return (
        _CONTENT_START
        + _STYLES
        + column_styles
        + "</office:automatic-styles><office:body><office:spreadsheet>"
    )


def _settings(names: Sequence[str]) -> str:
    """Each sheet's header row frozen: it stays visible while scrolling."""

    def item(name: str, kind: str, value: object) -> str:
        return (
            f'<config:config-item config:name="{name}" config:type="{kind}">'
            f"{value}</config:config-item>"
        )

    tables = "".join(
        f"<config:config-item-map-entry config:name={quoteattr(name)}>"
        + item("VerticalSplitMode", "short", 2)
        + item("VerticalSplitPosition", "int", 1)
        + item("ActiveSplitRange", "short", 2)
        + item("PositionTop", "int", 0)
        + item("PositionBottom", "int", 1)
        + "</config:config-item-map-entry>"
        for name in names
    )
    return (
        _XML_DECLARATION
        + _root("document-settings", "config")
        + '<office:settings><config:config-item-set config:name="ooo:view-settings">'
        '<config:config-item-map-indexed config:name="Views"><config:config-item-map-entry>'
        + item("ViewId", "string", "view1")
        + f'<config:config-item-map-named config:name="Tables">{tables}'
        "</config:config-item-map-named></config:config-item-map-entry>"
        "</config:config-item-map-indexed></config:config-item-set></office:settings>"
        "</office:document-settings>"
    )


def _package_parts(names: Sequence[str]) -> dict[str, str]:
    """Every part but mimetype and content.xml, written once the sheets are known."""
    parts = {
        "styles.xml": _XML_DECLARATION
        + _root("document-styles", "style")
        + "<office:styles/></office:document-styles>",
        "meta.xml": _XML_DECLARATION
        + _root("document-meta", "meta")
        + "<office:meta><meta:generator>DanceCat</meta:generator></office:meta>"
        "</office:document-meta>",
        "settings.xml": _settings(names),
    }
    entries = "".join(
        f'<manifest:file-entry manifest:full-path="{path}" manifest:media-type="text/xml"/>'
        for path in ("content.xml", *parts)
    )
    manifest = (
        _XML_DECLARATION
        + f'<manifest:manifest xmlns:manifest="{_NS["manifest"]}" manifest:version="{_VERSION}">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{ODS_MEDIA_TYPE}"/>'
        f"{entries}</manifest:manifest>"
    )
    return {**parts, "META-INF/manifest.xml": manifest}
