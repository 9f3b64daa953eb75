"""The CSV, JSON and XLSX exporters, read back with the readers people will use.

Results are built in a tiny in-memory ``ResultStore`` (a real subclass of the ABC), from
Python values written with the real canonical codec, so these tests need no database.
"""

from __future__ import annotations

import datetime as dt
import decimal
import gc
import io
import json
import math
import mmap
import os
import re
import shutil
import struct
import subprocess
import time
import tracemalloc
import zipfile
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dancecat_core.columns import Column, ColumnType
from dancecat_core.csvcodec import RowFormatter, header_line, read_typed_rows
from dancecat_core.errors import StoreError
from dancecat_core.exporters import Exporter, ExportSummary
from dancecat_core.plugins import collect, get_plugin_manager
from dancecat_core.resultstore import BlobWriter, ResultMeta, ResultStore, StoredResult
from dancecat_plugins import csv_exporter, json_exporter, xlsx_exporter, xlsx_writer
from dancecat_plugins import sheets as shared_sheets
from dancecat_plugins.csv_exporter import CsvExporter
from dancecat_plugins.json_exporter import JsonExporter
from dancecat_plugins.xlsx_exporter import XlsxExporter

T = ColumnType
UTC = dt.UTC

# -- an in-memory result store --------------------------------------------------------------


def header_text(formatter: RowFormatter) -> str:
    """The CSV header line of ``formatter``'s columns."""
    return header_line([c.name for c in formatter.columns]).decode()


class MemoryBlobWriter(BlobWriter):
    def __init__(self, store: MemoryStore, key: str):
        self.store, self.key, self.buffer = store, key, io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)

    def commit(self) -> int:
        self.store.blobs[self.key] = self.buffer.getvalue()
        return len(self.store.blobs[self.key])

    def abort(self) -> None:
        self.buffer = io.BytesIO()


class MemoryStore(ResultStore):
    """Blobs in a dict; enough for exporters, which only ``open`` what a run stored."""

    name = "memory"

    def __init__(self) -> None:
        super().__init__(settings=None, session_factory=None)  # type: ignore[arg-type]
        self.blobs: dict[str, bytes] = {}

    def create(self, key: str) -> BlobWriter:
        return MemoryBlobWriter(self, key)

    def open(self, key: str) -> BinaryIO:
        try:
            return io.BytesIO(self.blobs[key])
        except KeyError:
            raise StoreError(f"no blob {key!r}") from None

    def exists(self, key: str) -> bool:
        return key in self.blobs

    def size(self, key: str) -> int | None:
        blob = self.blobs.get(key)
        return None if blob is None else len(blob)

    def delete(self, key: str) -> None:
        self.blobs.pop(key, None)


def make_result(
    columns: Sequence[Column], rows: Sequence[Sequence[Any]], meta: dict | None = None
) -> StoredResult:
    """Store ``rows`` (Python values) as canonical CSV, as a run would."""
    store = MemoryStore()
    formatter = RowFormatter(columns)
    writer = store.create("r1")
    writer.write(header_text(formatter).encode())
    writer.write(formatter.lines(rows).encode())
    writer.commit()
    return StoredResult(
        store, "r1", ResultMeta(tuple(columns), len(rows), **(meta or {})), tracker_id=1
    )


def export(exporter: Exporter, result: StoredResult) -> tuple[bytes, ExportSummary]:
    sink = io.BytesIO()
    summary = exporter.export(result, sink)
    return sink.getvalue(), summary


def load_xlsx(data: bytes, read_only: bool = False) -> dict[str, list[tuple]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=read_only)
    try:
        return {ws.title: list(ws.iter_rows(values_only=True)) for ws in book.worksheets}
    finally:
        book.close()


# -- one value of every type, and what each format gives back ---------------------------------

BIG = 12345678901234567890
COLUMNS = [
    Column("i", T.INTEGER),
    Column("d", T.DECIMAL),
    Column("f", T.FLOAT),
    Column("b", T.BOOLEAN),
    Column("day", T.DATE),
    Column("t", T.TIME),
    Column("ts", T.DATETIME),
    Column("tstz", T.DATETIMETZ),
    Column("txt", T.TEXT),
    Column("raw", T.BYTES),
    Column("doc", T.JSON),
]
ROWS: list[list[Any]] = [
    [
        42,
        decimal.Decimal("12345.678901234567890123"),
        1.5,
        True,
        dt.date(2024, 2, 29),
        dt.time(12, 34, 56, 789000),
        dt.datetime(2024, 5, 1, 12, 30, 0, 250000),
        dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        'comma, "quote" <tag> & more',
        b"\x00\xff\x10",
        {"a": [1, 2, None], "b": "ü", "n": 1.25},
    ],
    [
        -(10**14),
        decimal.Decimal("-0.001"),
        -2.5e-10,
        False,
        dt.date(1900, 3, 1),
        dt.time(0, 0),
        dt.datetime(1900, 1, 1, 6, 0),
        dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        "",  # the empty string, not NULL
        b"",
        [1, "two", {"three": 3}],
    ],
    [None] * len(COLUMNS),
    [
        BIG,
        decimal.Decimal("0"),
        1e300,
        True,
        dt.date(9999, 12, 31),
        dt.time(23, 59, 59),
        dt.datetime(2000, 2, 29, 0, 0, 0, 1000),
        dt.datetime(2020, 1, 1, tzinfo=UTC),
        "你好世界 🐱💃 مرحبا بالعالم שלום\nsecond line\r\nthird",
        b"DanceCat",
        "just a string",
    ],
]


def iso_trimmed(value: dt.time | dt.datetime) -> str:
    """isoformat() without the fraction's trailing zeros, as the canonical text has it."""
    text = value.isoformat()
    if value.microsecond:
        whole, _, rest = text.partition(".")
        text = f"{whole}.{rest[:6].rstrip('0')}{rest[6:]}"
    return text


def json_expected(column: Column, value: Any) -> Any:
    if value is None:
        return None
    match column.type:
        case T.DATE:
            return value.isoformat()
        case T.TIME | T.DATETIME:
            return iso_trimmed(value)
        case T.DATETIMETZ:
            return iso_trimmed(value.astimezone(UTC))
        case T.BYTES:
            return "\\x" + value.hex()
        case _:
            return value


def xlsx_expected(column: Column, value: Any) -> Any:
    if value is None:
        return None
    match column.type:
        case T.INTEGER:
            return value if len(str(abs(value))) <= 15 else str(value)
        case T.DECIMAL:
            return pytest.approx(float(value))
        case T.DATE:
            return dt.datetime.combine(value, dt.time())
        case T.DATETIMETZ:
            return value.astimezone(UTC).replace(tzinfo=None)
        case T.BYTES:
            return "\\x" + value.hex()
        case T.JSON:
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        case _:
            return value


# -- registration -------------------------------------------------------------------------------


def test_each_module_registers_its_exporter():
    pm = get_plugin_manager(load_entry_points=False)
    for module in (csv_exporter, json_exporter, xlsx_exporter):
        pm.register(module)
    registered = collect(pm.hook.dancecat_register_exporters(), "format", "exporter")
    assert registered == {"csv": CsvExporter, "json": JsonExporter, "xlsx": XlsxExporter}
    assert (CsvExporter.media_type, CsvExporter.extension) == ("text/csv; charset=utf-8", "csv")
    assert not CsvExporter.cacheable and JsonExporter.cacheable and XlsxExporter.cacheable
    assert JsonExporter.media_type == "application/json"
    assert XlsxExporter.media_type.endswith("spreadsheetml.sheet")


# -- CSV ----------------------------------------------------------------------------------------


def test_csv_is_the_stored_bytes_and_reads_back_typed():
    result = make_result(COLUMNS, ROWS)
    data, summary = export(CsvExporter(), result)
    assert data == result.store.blobs["r1"]
    assert summary == ExportSummary(rows=len(ROWS), bytes_written=len(data))
    # Typed values come back equal: aware datetimes as the same instant in UTC, and the JSON
    # column's bare string (stored as its text, which is not JSON) as that text.
    assert list(read_typed_rows(io.BytesIO(data), COLUMNS)) == ROWS


def test_csv_copies_in_chunks(monkeypatch):
    monkeypatch.setattr(csv_exporter, "CHUNK_BYTES", 7)
    result = make_result([Column("n", T.INTEGER)], [[i] for i in range(100)])
    data, summary = export(CsvExporter(), result)
    assert data == result.store.blobs["r1"] and summary.bytes_written == len(data)


# -- JSON ---------------------------------------------------------------------------------------


def test_json_every_type_reads_back():
    result = make_result(COLUMNS, ROWS)
    data, summary = export(JsonExporter(), result)
    assert summary.rows == len(ROWS) and summary.bytes_written == len(data)
    doc = json.loads(data)  # floats as float
    exact = json.loads(data, parse_float=decimal.Decimal)  # decimals exact
    assert doc["header"] == [c.name for c in COLUMNS]
    for row, got, got_exact in zip(ROWS, doc["rows"], exact["rows"], strict=True):
        for i, (column, value) in enumerate(zip(COLUMNS, row, strict=True)):
            want = json_expected(column, value)
            if column.type is T.DECIMAL:
                assert got_exact[i] == want, column
            else:
                assert got[i] == want, (column, got[i], want)
                assert type(got[i]) is type(want), column
    assert b"\\u" not in data  # UTF-8, not escaped
    assert "你好世界 🐱💃 مرحبا بالعالم שלום".encode() in data


def test_json_values_json_cannot_express():
    columns = [Column("f", T.FLOAT), Column("d", T.DECIMAL), Column("doc", T.JSON)]
    rows = [
        [math.nan, decimal.Decimal("NaN"), "not json {"],
        [math.inf, decimal.Decimal("Infinity"), "NaN"],
        [-math.inf, decimal.Decimal("-Infinity"), '{"ok": true}'],
        [0.1, decimal.Decimal("1.10"), "[1, 2"],
    ]
    data, _ = export(JsonExporter(), make_result(columns, rows))
    doc = json.loads(data, parse_constant=pytest.fail, parse_float=decimal.Decimal)
    assert doc["rows"] == [
        [None, None, "not json {"],
        [None, None, "NaN"],
        [None, None, {"ok": True}],
        [decimal.Decimal("0.1"), decimal.Decimal("1.10"), "[1, 2"],
    ]


def test_json_null_and_empty_string_and_zero_rows():
    columns = [Column("s", T.TEXT), Column("n", T.INTEGER)]
    data, _ = export(JsonExporter(), make_result(columns, [["", 0], [None, None]]))
    assert json.loads(data)["rows"] == [["", 0], [None, None]]
    data, summary = export(JsonExporter(), make_result(columns, []))
    assert json.loads(data) == {"header": ["s", "n"], "rows": []} and summary.rows == 0


def test_json_batches_join_up(monkeypatch):
    monkeypatch.setattr(json_exporter, "BATCH_ROWS", 3)
    rows = [[i, f"r{i}"] for i in range(10)]
    columns = [Column("n", T.INTEGER), Column("s", T.TEXT)]
    data, summary = export(JsonExporter(), make_result(columns, rows))
    assert json.loads(data)["rows"] == rows and summary.rows == 10


def test_one_column_of_nulls_in_every_format():
    """A lone NULL is a blank CSV line; csv.reader yields it as [], not [None]."""
    rows = [["a"], [None], [""], [None]]
    result = make_result([Column("x")], rows)  # no declared type: text
    data, _ = export(CsvExporter(), result)
    assert data == b'x\na\n\n""\n\n'
    data, _ = export(JsonExporter(), result)
    assert json.loads(data)["rows"] == rows
    data, _ = export(XlsxExporter(), result)
    for read_only in (False, True):
        assert load_xlsx(data, read_only)["Result"] == [("x",), ("a",), (None,), ("",), (None,)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=5))
def test_any_text_round_trips_through_json_and_xlsx(texts):
    columns = [Column("s", T.TEXT), Column("n", T.INTEGER)]
    rows = [[t, i] for i, t in enumerate(texts)]
    result = make_result(columns, rows)
    data, _ = export(JsonExporter(), result)
    assert json.loads(data)["rows"] == rows
    data, summary = export(XlsxExporter(), result)
    cleaned = [
        (None if t is None else shared_sheets.ILLEGAL_CHARACTERS_RE.sub("", t), i) for t, i in rows
    ]
    assert load_xlsx(data)["Result"][1:] == cleaned
    assert bool(summary.warnings) == (cleaned != [tuple(r) for r in rows])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers()), st.one_of(st.none(), st.floats())),
        min_size=1,
        max_size=5,
    )
)
def test_any_number_round_trips_through_json_and_xlsx(pairs):
    columns = [Column("i", T.INTEGER), Column("f", T.FLOAT)]
    result = make_result(columns, [list(p) for p in pairs])
    finite = [(i, f if f is None or math.isfinite(f) else None) for i, f in pairs]
    data, _ = export(JsonExporter(), result)
    assert [tuple(r) for r in json.loads(data)["rows"]] == finite
    data, _ = export(XlsxExporter(), result)
    assert load_xlsx(data)["Result"][1:] == [
        (
            i if i is None or len(str(abs(i))) <= 15 else str(i),
            f if f is None or math.isfinite(f) else xlsx_writer_text(f),
        )
        for i, f in pairs
    ]


def xlsx_writer_text(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


# -- XLSX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("read_only", [False, True])
def test_xlsx_every_type_reads_back(read_only):
    result = make_result(COLUMNS, ROWS)
    data, summary = export(XlsxExporter(), result)
    assert summary.rows == len(ROWS) and summary.bytes_written == len(data)
    sheets = load_xlsx(data, read_only)
    rows = sheets["Result"]
    names = [c.name for c in COLUMNS]
    names[7] = "tstz (UTC)"  # Excel has no time zones: the header says what they are
    assert rows[0] == tuple(names)
    for want_row, got in zip(ROWS, rows[1:], strict=True):
        for column, value, cell in zip(COLUMNS, want_row, got, strict=True):
            want = xlsx_expected(column, value)
            assert cell == want, (column, cell, want)
            if column.type not in (T.DECIMAL, T.JSON) and value is not None:
                assert type(cell) is type(want), column
    # "\r\n" survives (written as a character reference, which XML does not normalise)
    assert rows[4][8].endswith("second line\r\nthird")
    assert summary.warnings == (
        "1 integer(s) have more than 15 digits and were written as text, "
        "because Excel keeps only 15.",
    )
    assert sheets["DanceCat notes"] == [(w,) for w in summary.warnings]


def test_xlsx_styles_header_freeze_and_date_formats():
    data, _ = export(XlsxExporter(), make_result(COLUMNS, ROWS))
    book = openpyxl.load_workbook(io.BytesIO(data))
    ws = book["Result"]
    assert ws.freeze_panes == "A2"
    assert all(cell.font.b for cell in ws[1])
    assert ws["E2"].number_format == "yyyy-mm-dd" and ws["E2"].is_date
    assert ws["F2"].number_format == "hh:mm:ss"
    assert ws["G2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert ws["B2"].data_type == "n" and ws["D2"].data_type == "b"


def test_xlsx_values_excel_cannot_hold_become_text_and_are_reported():
    columns = [Column("f", T.FLOAT), Column("d", T.DECIMAL), Column("day", T.DATE)]
    rows = [
        [math.nan, decimal.Decimal("NaN"), dt.date(1899, 12, 31)],
        [math.inf, decimal.Decimal("1.5"), dt.date(1900, 1, 1)],
        [-math.inf, decimal.Decimal("-Infinity"), dt.date(1900, 2, 28)],
        [0.5, decimal.Decimal("2"), dt.date(1899, 12, 31)],  # counted again, not cached
    ]
    data, summary = export(XlsxExporter(), make_result(columns, rows))
    got = load_xlsx(data)["Result"][1:]
    assert got == [
        ("NaN", "NaN", "1899-12-31"),
        ("Infinity", 1.5, dt.datetime(1900, 1, 1)),
        ("-Infinity", "-Infinity", dt.datetime(1900, 2, 28)),
        (0.5, 2, "1899-12-31"),
    ]
    assert summary.warnings == (
        "5 number(s) Excel cannot hold (NaN, Infinity) were written as text.",
        "2 date or time value(s) outside Excel's range (before 1900, or not a calendar "
        "value) were written as text.",
    )


def raw_result(columns: Sequence[Column], text: str) -> StoredResult:
    """A result from canonical CSV text as PostgreSQL's COPY writes it."""
    store = MemoryStore()
    store.blobs["pg"] = text.encode()
    rows = text.count("\n") - 1
    return StoredResult(store, "pg", ResultMeta(tuple(columns), rows), tracker_id=1)


PG_COLUMNS = [
    Column("day", T.DATE),
    Column("ts", T.DATETIME),
    Column("tstz", T.DATETIMETZ),
    Column("n", T.DECIMAL),
    Column("ok", T.BOOLEAN),
]
PG_TEXT = (
    "day,ts,tstz,n,ok\n"
    "2024-01-31,2024-01-31 10:00:00.5,2024-01-31 09:00:00+00,NaN,t\n"
    "infinity,-infinity,infinity,-Infinity,f\n"
    "0044-03-15 BC,2024-01-31 10:00:00,2024-01-31 09:00:00.25+00,1.50,\n"
)


def test_postgresql_spellings_to_json():
    data, _ = export(JsonExporter(), raw_result(PG_COLUMNS, PG_TEXT))
    assert json.loads(data, parse_float=decimal.Decimal)["rows"] == [
        ["2024-01-31", "2024-01-31T10:00:00.5", "2024-01-31T09:00:00+00:00", None, True],
        ["infinity", "-infinity", "infinity", None, False],
        [
            "0044-03-15 BC",
            "2024-01-31T10:00:00",
            "2024-01-31T09:00:00.25+00:00",
            decimal.Decimal("1.50"),
            None,
        ],
    ]


def test_postgresql_spellings_to_xlsx():
    data, summary = export(XlsxExporter(), raw_result(PG_COLUMNS, PG_TEXT))
    assert load_xlsx(data)["Result"][1:] == [
        (
            dt.datetime(2024, 1, 31),
            dt.datetime(2024, 1, 31, 10, 0, 0, 500000),
            dt.datetime(2024, 1, 31, 9),
            "NaN",
            True,
        ),
        ("infinity", "-infinity", "infinity", "-Infinity", False),
        (
            "0044-03-15 BC",
            dt.datetime(2024, 1, 31, 10),
            dt.datetime(2024, 1, 31, 9, 0, 0, 250000),
            1.5,
            None,
        ),
    ]
    assert summary.warnings == (
        "4 date or time value(s) outside Excel's range (before 1900, or not a calendar "
        "value) were written as text.",
        "2 number(s) Excel cannot hold (NaN, Infinity) were written as text.",
    )


def test_xlsx_forbidden_characters_and_overlong_cells(tmp_path):
    columns = [Column("txt", T.TEXT), Column("n", T.INTEGER)]
    long_text = "é" * (xlsx_writer.MAX_CELL_CHARS + 10)
    rows = [
        ["bell\x07 and nul\x00 and esc\x1b end", 1],
        [long_text, 2],
        ["fine <b>&amp;</b>", 3],
        [None, None],
    ]
    note = {"removed": ({"column": "password", "reason": "name"},), "masked": {"JWT": 2}}
    result = make_result(columns, rows, note)
    data, summary = export(XlsxExporter(), result)
    assert summary.warnings == (
        "1 cell(s) held characters XML does not allow; they were removed.",
        "1 cell(s) were longer than 32,767 characters and were cut to that length.",
    )
    for read_only in (False, True):
        sheets = load_xlsx(data, read_only)
        assert list(sheets) == ["Result", "DanceCat notes"]
        assert sheets["Result"][1:] == [
            ("bell and nul and esc end", 1),
            ("é" * xlsx_writer.MAX_CELL_CHARS, 2),
            ("fine <b>&amp;</b>", 3),
            (None, None),
        ]
        notes = [row[0] for row in sheets["DanceCat notes"]]
        assert notes == [result.meta.scrub_note, *summary.warnings]
        assert "password" in notes[0]


def test_xlsx_null_empty_string_non_ascii_and_zero_rows():
    columns = [Column("名前", T.TEXT), Column("n", T.INTEGER)]
    rows = [["", 0], [None, None], ["🐱 مرحبا 你好", -1], ["  padded  ", 7]]
    data, summary = export(XlsxExporter(), make_result(columns, rows))
    for read_only in (False, True):
        assert load_xlsx(data, read_only)["Result"] == [
            ("名前", "n"),
            ("", 0),  # the empty string is a string cell ...
            (None, None),  # ... and NULL a cell with no value
            ("🐱 مرحبا 你好", -1),
            ("  padded  ", 7),
        ]
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert '<row r="2"><c t="inlineStr"><is><t xml:space="preserve"></t></is></c>' in sheet
    assert '<row r="3"><c/><c/></row>' in sheet
    assert summary.warnings == ()

    data, summary = export(XlsxExporter(), make_result(columns, []))
    assert load_xlsx(data) == {"Result": [("名前", "n")]} and summary.rows == 0
    assert load_xlsx(data, read_only=True) == {"Result": [("名前", "n")]}


@pytest.mark.parametrize("n_rows, n_sheets", [(6, 2), (7, 3), (3, 1)])
def test_xlsx_rolls_over_to_new_sheets(monkeypatch, n_rows, n_sheets):
    monkeypatch.setattr(shared_sheets, "SHEET_ROW_LIMIT", 4)  # header + 3 rows per sheet
    monkeypatch.setattr(shared_sheets, "BATCH_ROWS", 2)
    columns = [Column("n", T.INTEGER), Column("s", T.TEXT)]
    rows = [[i, f"row {i}"] for i in range(n_rows)]
    data, summary = export(XlsxExporter(), make_result(columns, rows))
    assert summary.rows == n_rows
    sheets = load_xlsx(data)
    names = ["Result", *(f"Result ({k})" for k in range(2, n_sheets + 1))]
    assert list(sheets) == ([*names, "DanceCat notes"] if n_sheets > 1 else names)
    back = []
    for name in names:
        assert sheets[name][0] == ("n", "s")
        assert len(sheets[name]) <= 4
        back.extend(sheets[name][1:])
    assert back == [tuple(r) for r in rows]
    if n_sheets > 1:
        assert summary.warnings[-1] == (
            "The result has more rows than one sheet holds (4 with the header); it continues "
            f"on sheet(s) {', '.join(names[1:])}, with the header repeated."
        )
        assert sheets["DanceCat notes"] == [(summary.warnings[-1],)]


def local_header(data: bytes, name: str) -> tuple[int, int, int]:
    """(version needed, flags, extra length) from an entry's local header, not the directory."""
    offset = zipfile.ZipFile(io.BytesIO(data)).getinfo(name).header_offset
    signature, version, flags, *_, extra_length = struct.unpack_from("<4sHHHHHIIIHH", data, offset)
    assert signature == b"PK\x03\x04"
    return version, flags, extra_length


def test_xlsx_streams_to_a_sink_that_cannot_seek():
    """A store's ``BlobWriter`` has only ``write``: caching a rendered export uses one."""
    result = make_result(COLUMNS, ROWS)
    writer = result.store.create("r1.xlsx")
    summary = XlsxExporter().export(result, writer)  # type: ignore[arg-type]
    size = writer.commit()
    assert summary.bytes_written == size
    data = result.store.blobs["r1.xlsx"]
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    assert load_xlsx(data)["Result"][1][0] == 42
    _, flags, _ = local_header(data, "xl/worksheets/sheet1.xml")
    assert flags & 0x08  # sizes follow the data, in a data descriptor


def test_xlsx_to_a_seekable_sink_has_plain_zip_headers():
    result = make_result(COLUMNS, ROWS)
    data, summary = export(XlsxExporter(), result)
    assert summary.bytes_written == len(data)
    assert local_header(data, "xl/worksheets/sheet1.xml") == (20, 0, 0)  # no Zip64, no descriptor


def test_write_xlsx_needs_no_stored_result():
    sink = io.BytesIO()
    summary = xlsx_writer.write_xlsx(
        sink, [Column("a", T.INTEGER)], iter([["1"], [None]]), ["a note"]
    )
    assert summary.rows == 2
    assert load_xlsx(sink.getvalue()) == {
        "Result": [("a",), (1,), (None,)],
        "DanceCat notes": [("a note",)],
    }
    # without size hints the writer cannot rule out a 4 GiB sheet, so it uses Zip64
    version, _, extra = local_header(sink.getvalue(), "xl/worksheets/sheet1.xml")
    assert version == 45 and extra > 0


# -- a million rows -------------------------------------------------------------------------


def _peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_bytes() -> int:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert match
    return int(match.group(1)) * 1024


def _rss_bytes() -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert match
    return int(match.group(1)) * 1024


class _Discard(io.RawIOBase):
    """Counts bytes and drops them, so the sink itself holds no memory."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.size += len(data)
        return len(data)


def _canonical_lines(n: int) -> Iterator[str]:
    """A million canonical CSV rows of ten typed columns, quickly (no RowFormatter)."""
    for i in range(n):
        s = i % 86400
        yield (
            f"{i},{i * 7 % 100000}.{i % 100:02d},{i / 7!r},{'tf'[i % 2]},"
            f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d},"
            f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d},"
            f"2024-03-{i % 28 + 1:02d} 12:{s // 60 % 60:02d}:{s % 60:02d}.{i % 1000:03d},"
            f"2024-03-{i % 28 + 1:02d} 08:00:{s % 60:02d}+00,"
            f'"customer {i}, 名前",{"" if i % 5 == 0 else f"note {i}"}\n'
        )


BIG_COLUMNS = [
    Column("id", T.INTEGER),
    Column("amount", T.DECIMAL),
    Column("score", T.FLOAT),
    Column("active", T.BOOLEAN),
    Column("day", T.DATE),
    Column("at", T.TIME),
    Column("created", T.DATETIME),
    Column("updated", T.DATETIMETZ),
    Column("name", T.TEXT),
    Column("note", T.TEXT),
]


@pytest.fixture(scope="module")
def million_rows() -> StoredResult:
    n = 1_000_000
    store = MemoryStore()
    # Built in small pieces, so no large freed memory is left for the export to reuse
    # unseen by the RSS measurement.
    blob = io.BytesIO()
    blob.write((",".join(c.name for c in BIG_COLUMNS) + "\n").encode())
    lines = _canonical_lines(n)
    while chunk := list(islice(lines, 10_000)):
        blob.write("".join(chunk).encode())
    store.blobs["big"] = blob.getvalue()
    return StoredResult(store, "big", ResultMeta(tuple(BIG_COLUMNS), n), tracker_id=1)


@pytest.mark.parametrize("exporter", [XlsxExporter(), JsonExporter()], ids=["xlsx", "json"])
def test_a_million_rows_in_flat_memory(million_rows, exporter):
    sink = _Discard()
    gc.collect()
    can_reset = _peak_rss_reset()
    rss_before = _rss_bytes()
    tracemalloc_needed = not can_reset
    if tracemalloc_needed:  # portable, but makes the export ~10x slower
        tracemalloc.start()
    started = time.perf_counter()
    summary = exporter.export(million_rows, sink)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    if tracemalloc_needed:
        growth = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        growth = _peak_rss_bytes() - rss_before
    print(
        f"\n{exporter.format}: 1,000,000 rows x 10 columns in {elapsed:.1f} s, "
        f"{sink.size / 1e6:.0f} MB written, peak memory growth {growth / 1e6:.1f} MB"
    )
    assert summary.rows == 1_000_000 and summary.bytes_written == sink.size
    assert summary.warnings == ()
    assert growth < 100e6


def test_a_million_rows_xlsx_is_a_valid_workbook(million_rows, tmp_path):
    """Read back the ends of the big sheet (Zip64 headers and all)."""
    target = tmp_path / "big.xlsx"
    with target.open("wb") as sink:
        XlsxExporter().export(million_rows, sink)
    with zipfile.ZipFile(target) as zf:
        info = zf.getinfo("xl/worksheets/sheet1.xml")
        assert info.file_size > 100e6 and info.compress_size < info.file_size / 5
    with target.open("rb") as f:
        f.seek(info.header_offset)
        _, _, _, *_, extra = struct.unpack("<4sHHHHHIIIHH", f.read(30))
    assert extra == 0  # far from 4 GiB, so no Zip64 headers for Excel to stumble on
    book = openpyxl.load_workbook(target, read_only=True)
    try:
        rows = book["Result"].iter_rows(values_only=True)
        assert next(rows)[0] == "id"
        first = next(rows)
        assert first[:4] == (0, 0, 0.0, True)
        assert first[6] == dt.datetime(2024, 3, 1, 12, 0, 0)
    finally:
        book.close()


# -- LibreOffice, when installed ------------------------------------------------------------


def test_libreoffice_converts_the_workbook(tmp_path):
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:
        pytest.skip("LibreOffice is not installed")
    source = tmp_path / "result.xlsx"
    source.write_bytes(export(XlsxExporter(), make_result(COLUMNS, ROWS))[0])
    subprocess.run(
        [office, "--headless", "--convert-to", "csv", "--outdir", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    text = (tmp_path / "result.csv").read_text(encoding="utf-8", errors="replace")
    assert text.splitlines()[0].startswith("i,d,f,b,day")
    assert "2024-02-29" in text and "42" in text


def test_peak_rss_helpers_work_here():
    """The memory test is only meaningful if it measured something."""
    if not _peak_rss_reset():
        pytest.skip("no /proc/self/clear_refs: the memory test uses tracemalloc")
    before = _peak_rss_bytes()
    # Fresh anonymous pages: a bytearray could reuse heap memory earlier tests freed (still
    # resident), and then the peak would rightly not move.
    block = mmap.mmap(-1, 64 * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    assert _peak_rss_bytes() - before > 50e6
    block.close()
