"""The ODS exporter, read back with real ODS readers: calamine (python-calamine) always, and
LibreOffice itself (headless, converting to CSV) where it is installed.

Unit cases build results in memory as ``test_exporters`` does; the last cases run the same
table on PostgreSQL, MariaDB and SQLite through the real runner and read each download.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import gc
import io
import json
import math
import os
import shutil
import sqlite3
import subprocess
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook
from test_canonical_csv import ROWS as SAMPLE_ROWS
from test_canonical_csv import SELECT_COMMON, add_job, mysql_sample, pg_sample  # noqa: F401
from test_exporters import (  # noqa: F401 - million_rows: a fixture
    BIG,
    COLUMNS,
    ROWS,
    _Discard,
    _peak_rss_bytes,
    _peak_rss_reset,
    _rss_bytes,
    export,
    local_header,
    make_result,
    million_rows,
    raw_result,
)
from test_pipeline import download, run

from dancecat_core.columns import Column, ColumnType
from dancecat_core.models import TrackerStatus
from dancecat_core.plugins import collect, get_plugin_manager
from dancecat_plugins import ods_exporter, ods_writer
from dancecat_plugins import sheets as shared_sheets
from dancecat_plugins.ods_exporter import OdsExporter

T = ColumnType
UTC = dt.UTC
OFFICE = shutil.which("soffice") or shutil.which("libreoffice")
needs_office = pytest.mark.skipif(OFFICE is None, reason="LibreOffice is not installed")


def load_ods(data: bytes) -> dict[str, list[list[Any]]]:
    """Every sheet as calamine reads it (an empty cell is "")."""
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


def office_csv(data: bytes, folder: Path, name: str = "result") -> list[list[str]]:
    """The first sheet as LibreOffice shows it, through its own CSV export (UTF-8)."""
    source = folder / f"{name}.ods"
    source.write_bytes(data)
    assert OFFICE is not None
    subprocess.run(
        [
            OFFICE,
            f"-env:UserInstallation=file://{folder}/office-profile",
            "--headless",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1",
            "--outdir",
            str(folder),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=180,
        env={**os.environ, "HOME": str(folder)},
    )
    with (folder / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


NS = {
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
}


def office_text(text: str) -> str:
    """``text`` as LibreOffice holds it: in a cell of several lines, a CR is a line break
    too (its edit engine splits paragraphs there); alone in one line, it is kept."""
    return text.replace("\r", "\n") if "\n" in text else text


def content_xml(data: bytes) -> str:
    return zipfile.ZipFile(io.BytesIO(data)).read("content.xml").decode()


def ods_expected(column: Column, value: Any) -> Any:
    """What calamine gives back for ``value`` in ``column``."""
    if value is None:
        return ""
    match column.type:
        case T.INTEGER:
            return float(value) if len(str(abs(value))) <= 15 else str(value)
        case T.DECIMAL:
            return pytest.approx(float(value))
        case T.DATETIMETZ:
            return value.astimezone(UTC).replace(tzinfo=None)
        case T.BYTES:
            return "\\x" + value.hex()
        case T.JSON:
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        case _:
            return value


# -- registration and package -----------------------------------------------------------------


def test_the_module_registers_the_ods_format():
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(ods_exporter)
    registered = collect(pm.hook.dancecat_register_exporters(), "format", "exporter")
    assert registered == {"ods": OdsExporter}
    assert OdsExporter.media_type == "application/vnd.oasis.opendocument.spreadsheet"
    assert OdsExporter.extension == "ods" and OdsExporter.cacheable
    # ... and the installed package loads it by its entry point, like every built-in.
    assert "ods_exporter" in dict(get_plugin_manager().list_name_plugin())


def test_mimetype_first_and_stored_and_the_parts_are_well_formed():
    data, summary = export(OdsExporter(), make_result(COLUMNS, ROWS))
    assert summary.bytes_written == len(data)
    assert data[30:38] == b"mimetype" and data[38:84] == ods_writer.ODS_MEDIA_TYPE.encode()
    package = zipfile.ZipFile(io.BytesIO(data))
    first = package.infolist()[0]
    assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
    for name in package.namelist():
        if name.endswith(".xml"):
            ElementTree.fromstring(package.read(name))  # raises if not well-formed
    manifest = package.read("META-INF/manifest.xml").decode()
    assert all(f'full-path="{n}"' in manifest for n in package.namelist() if n != "mimetype"
               and not n.startswith("META-INF"))  # fmt: skip
    assert local_header(data, "content.xml") == (20, 0, 0)  # no Zip64, no descriptor


# -- values -----------------------------------------------------------------------------------


def test_every_type_reads_back():
    result = make_result(COLUMNS, ROWS)
    data, summary = export(OdsExporter(), result)
    book = load_ods(data)
    assert list(book) == ["Result", "DanceCat notes"]
    rows = book["Result"]
    names = [c.name for c in COLUMNS]
    names[7] = "tstz (UTC)"
    assert rows[0] == names
    for want_row, got in zip(ROWS, rows[1:], strict=True):
        for column, value, cell in zip(COLUMNS, want_row, got, strict=True):
            want = ods_expected(column, value)
            assert cell == want, (column, cell, want)
            if column.type not in (T.DECIMAL, T.JSON) and value is not None:
                assert type(cell) is type(want), column
    assert rows[4][8].endswith("second line\r\nthird")  # CR kept, as a character reference
    assert summary.warnings == (
        "1 integer(s) have more than 15 digits and were written as text, "
        "because LibreOffice keeps only 15.",
    )
    assert str(BIG) in rows[4]
    assert book["DanceCat notes"] == [[w] for w in summary.warnings]


def test_values_a_spreadsheet_cannot_hold_become_text_and_are_reported():
    columns = [Column("f", T.FLOAT), Column("day", T.DATE), Column("ts", T.DATETIME)]
    rows = [
        [math.nan, dt.date(1582, 10, 14), dt.datetime(1582, 10, 14, 23, 59)],
        [math.inf, dt.date(1582, 10, 15), dt.datetime(1582, 10, 15)],
        [-math.inf, dt.date(1899, 12, 31), dt.datetime(1000, 1, 1)],  # before 1900 is fine
        [0.5, dt.date(1, 1, 1), None],
    ]
    data, summary = export(OdsExporter(), make_result(columns, rows))
    assert load_ods(data)["Result"][1:] == [
        ["NaN", "1582-10-14", "1582-10-14T23:59:00"],
        ["Infinity", dt.date(1582, 10, 15), dt.datetime(1582, 10, 15)],
        ["-Infinity", dt.date(1899, 12, 31), "1000-01-01T00:00:00"],
        [0.5, "0001-01-01", ""],
    ]
    assert summary.warnings == (
        "3 number(s) LibreOffice cannot hold (NaN, Infinity) were written as text.",
        "4 date or time value(s) a spreadsheet would show otherwise (before 15 October 1582, "
        "where LibreOffice switches to the Julian calendar, or not a calendar value) were "
        "written as text.",
    )


def test_postgresql_spellings():
    """Infinity, BC dates and results stored in the older forms (``t``, a space, ``+00``)."""
    data, summary = export(OdsExporter(), raw_result(*_pg_spellings()))
    assert load_ods(data)["Result"][1:] == [
        [
            dt.date(2024, 1, 31),
            dt.datetime(2024, 1, 31, 10, 0, 0, 500000),
            dt.datetime(2024, 1, 31, 9),
            "NaN",
            True,
        ],
        ["infinity", "-infinity", "infinity", "-Infinity", False],
        [
            "0044-03-15 BC",
            dt.datetime(2024, 1, 31, 10),
            dt.datetime(2024, 1, 31, 9, 0, 0, 250000),
            1.5,
            "",
        ],
    ]
    assert len(summary.warnings) == 2


def _pg_spellings() -> tuple[list[Column], str]:
    from test_exporters import PG_COLUMNS, PG_TEXT

    return PG_COLUMNS, PG_TEXT


def test_a_zone_other_than_utc_is_converted():
    text = "at\n2024-01-01T05:30:00+05:30\n2024-06-30T23:00:00-02:00\n"
    data, _ = export(OdsExporter(), raw_result([Column("at", T.DATETIMETZ)], text))
    assert load_ods(data)["Result"] == [
        ["at (UTC)"],
        [dt.datetime(2024, 1, 1)],
        [dt.datetime(2024, 7, 1, 1)],
    ]


# Texts an attacker (or an unlucky database) puts in a cell: markup, CDATA ends, formula-like
# text a spreadsheet might run, characters XML forbids, whitespace ODF would collapse.
ATTACKS = [
    '</text:p></table:table-cell><table:table-cell office:value-type="float" '
    'office:value="666"/><table:table-cell><text:p>',
    "<script>alert(1)</script> &amp; &lt; &#13; & < >",
    "]]> <![CDATA[ x ]]>",
    "=cmd|' /C calc'!A0",
    "=1+1",
    "+SUM(1;2)",
    "-2+3",
    "@SUM(A1)",
    "'quoted' \"double\"",
    "tab\there\t",
    "  two leading, two  inner,  trailing  ",
    " ",
    "a\r\nb\rc\n\nd\n",
    "\n",
    "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>&e;",
    "long " * 20_000,
]
CONTROL = "nul\x00 bell\x07 esc\x1b vt\x0b ff\x0c \ufffe end"


def test_escaping_attacks_stay_text(tmp_path):
    columns = [Column('<b>&"x"</b>', T.TEXT), Column("n", T.INTEGER)]
    rows = [[text, i] for i, text in enumerate([*ATTACKS, CONTROL])]
    data, summary = export(OdsExporter(), make_result(columns, rows))
    # Structurally: two cells a row, no formula, no value but the row numbers.
    table = ElementTree.fromstring(content_xml(data)).find(".//table:table", NS)
    assert table is not None
    for row in table.findall("table:table-row", NS):
        cells = row.findall("table:table-cell", NS)
        assert len(cells) == 2
        assert not any(key.endswith("}formula") for cell in cells for key in cell.attrib)
        assert cells[0].get(f"{{{NS['office']}}}value-type") == "string"
    cleaned = "nul bell esc vt ff  end"
    expected = [[text, float(i)] for i, text in enumerate([*ATTACKS, cleaned])]
    sheet = load_ods(data)["Result"]
    assert sheet[0] == ['<b>&"x"</b>', "n"]
    assert sheet[1:] == expected
    assert summary.warnings == ("1 cell(s) held characters XML does not allow; they were removed.",)
    if OFFICE is not None:  # LibreOffice shows the same texts, none of them computed
        shown = office_csv(data, tmp_path)
        assert shown[0] == ['<b>&"x"</b>', "n"]
        assert shown[1:] == [
            [office_text(text), str(i)] for i, text in enumerate([*ATTACKS, cleaned])
        ]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=6))
def test_any_text_round_trips(texts):
    columns = [Column("s", T.TEXT), Column("n", T.INTEGER)]
    rows = [[t, i] for i, t in enumerate(texts)]
    data, summary = export(OdsExporter(), make_result(columns, rows))
    cleaned = ["" if t is None else shared_sheets.ILLEGAL_CHARACTERS_RE.sub("", t) for t in texts]
    assert [row[0] for row in load_ods(data)["Result"][1:]] == cleaned
    assert bool(summary.warnings) == any(
        t is not None and shared_sheets.ILLEGAL_CHARACTERS_RE.search(t) for t in texts
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers()), st.one_of(st.none(), st.floats())),
        min_size=1,
        max_size=5,
    )
)
def test_any_number_round_trips(pairs):
    columns = [Column("i", T.INTEGER), Column("f", T.FLOAT)]
    data, _ = export(OdsExporter(), make_result(columns, [list(p) for p in pairs]))

    def want(i: int | None, f: float | None) -> list[Any]:
        whole = "" if i is None else (float(i) if len(str(abs(i))) <= 15 else str(i))
        if f is None:
            return [whole, ""]
        if math.isfinite(f):
            return [whole, f]
        return [whole, "NaN" if math.isnan(f) else ("Infinity" if f > 0 else "-Infinity")]

    expected = [want(i, f) for i, f in pairs]
    while expected and expected[-1] == ["", ""]:  # calamine ends a sheet at its last value
        expected.pop()
    assert load_ods(data)["Result"][1:] == expected


def test_decimals_keep_their_value():
    columns = [Column("d", T.DECIMAL)]
    values = ["0.1", "-12.5000", "123456789.123456", "1e-05"]
    rows = [[decimal.Decimal(v)] for v in values]
    data, _ = export(OdsExporter(), make_result(columns, rows))
    assert [r[0] for r in load_ods(data)["Result"][1:]] == [float(v) for v in values]


# -- sheets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_rows, n_sheets", [(6, 2), (7, 3), (3, 1), (0, 1)])
def test_rolls_over_to_new_sheets(monkeypatch, n_rows, n_sheets):
    monkeypatch.setattr(shared_sheets, "SHEET_ROW_LIMIT", 4)  # header + 3 rows per sheet
    monkeypatch.setattr(shared_sheets, "BATCH_ROWS", 2)
    columns = [Column("n", T.INTEGER), Column("s", T.TEXT)]
    rows = [[i, f"row {i}"] for i in range(n_rows)]
    data, summary = export(OdsExporter(), make_result(columns, rows))
    assert summary.rows == n_rows
    book = load_ods(data)
    names = ["Result", *(f"Result ({k})" for k in range(2, n_sheets + 1))]
    assert list(book) == ([*names, "DanceCat notes"] if n_sheets > 1 else names)
    back = []
    for name in names:
        assert book[name][0] == ["n", "s"]
        assert len(book[name]) <= 4
        back.extend(book[name][1:])
    assert back == [[float(i), s] for i, s in rows]
    if n_sheets > 1:
        assert summary.warnings[-1] == (
            "The result has more rows than one sheet holds (4 with the header); it continues "
            f"on sheet(s) {', '.join(names[1:])}, with the header repeated."
        )
    settings_xml = zipfile.ZipFile(io.BytesIO(data)).read("settings.xml").decode()
    assert all(f'config:name="{name}"' in settings_xml for name in names)  # frozen header


def test_streams_to_a_sink_that_cannot_seek(tmp_path):
    result = make_result(COLUMNS, ROWS)
    writer = result.store.create("r1.ods")
    summary = OdsExporter().export(result, writer)  # type: ignore[arg-type]
    assert summary.bytes_written == writer.commit()
    data = result.store.blobs["r1.ods"]
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    assert data[30:38] == b"mimetype"
    _, flags, _ = local_header(data, "content.xml")
    assert flags & 0x08  # sizes follow the data, in a data descriptor
    assert load_ods(data)["Result"][1][0] == 42
    if OFFICE is not None:
        assert office_csv(data, tmp_path)[1][:2] == ["42", "12345.6789012346"]


def test_write_ods_needs_no_stored_result():
    sink = io.BytesIO()
    summary = ods_writer.write_ods(
        sink, [Column("a", T.INTEGER)], iter([["1"], [None], ["3"]]), ["a note"]
    )
    assert summary.rows == 3
    assert load_ods(sink.getvalue()) == {
        "Result": [["a"], [1.0], [""], [3.0]],
        "DanceCat notes": [["a note"]],
    }
    # without size hints the writer cannot rule out a 4 GiB content.xml, so it uses Zip64
    version, _, extra = local_header(sink.getvalue(), "content.xml")
    assert version == 45 and extra > 0


def test_null_and_the_empty_string_are_different_cells():
    """calamine reads both as "", so the markup itself is checked: NULL is a cell with no
    value, the empty string a string cell."""
    columns = [Column("s", T.TEXT), Column("n", T.INTEGER)]
    data, _ = export(OdsExporter(), make_result(columns, [["", 0], [None, None]]))
    content = content_xml(data)
    assert (
        '<table:table-row><table:table-cell office:value-type="string"><text:p></text:p>'
        "</table:table-cell>" in content
    )
    assert "<table:table-row><table:table-cell/><table:table-cell/></table:table-row>" in content


def test_zero_columns_and_a_two_megabyte_cell():
    """``SELECT FROM t`` has rows of nothing; a long text is kept whole (ODS has no limit)."""
    sink = io.BytesIO()
    assert ods_writer.write_ods(sink, [], iter([[], []])).rows == 2
    assert load_ods(sink.getvalue()) == {"Result": []}
    long_text = "é" * 2_000_000
    data, summary = export(OdsExporter(), make_result([Column("t", T.TEXT)], [[long_text]]))
    assert load_ods(data)["Result"][1] == [long_text] and summary.warnings == ()


@needs_office
def test_libreoffice_shows_typed_values_with_their_formats(tmp_path):
    data, _ = export(OdsExporter(), make_result(COLUMNS, ROWS))
    shown = office_csv(data, tmp_path)
    assert shown[0] == ["i", "d", "f", "b", "day", "t", "ts", "tstz (UTC)", "txt", "raw", "doc"]
    assert shown[1][:8] == [
        "42",
        "12345.6789012346",
        "1.5",
        "TRUE",
        "2024-02-29",
        "12:34:57",  # shown to the second, as the XLSX time format does
        "2024-05-01 12:30:00",
        "2024-05-01 10:30:00",
    ]
    assert shown[2][5] == "00:00:00" and shown[3] == [""] * len(COLUMNS)


# -- a million rows -----------------------------------------------------------------------------


def test_a_million_rows_in_flat_memory(request):
    result = request.getfixturevalue("million_rows")
    sink = _Discard()
    gc.collect()
    can_reset = _peak_rss_reset()
    rss_before = _rss_bytes()
    if not can_reset:
        tracemalloc.start()
    started = time.perf_counter()
    summary = OdsExporter().export(result, sink)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    if not can_reset:
        growth = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        growth = _peak_rss_bytes() - rss_before
    print(
        f"\nods: 1,000,000 rows x 10 columns in {elapsed:.1f} s, "
        f"{sink.size / 1e6:.0f} MB written, peak memory growth {growth / 1e6:.1f} MB"
    )
    assert summary.rows == 1_000_000 and summary.bytes_written == sink.size
    assert summary.warnings == ()
    assert growth < 100e6


# -- the same table on every database -----------------------------------------------------------

# What calamine reads from every database's download of SELECT_COMMON (test_canonical_csv).
COMMON_BACK = [
    ["id", "amount", "ratio", "label", "flag", "day", "at", "stamp"],
    [1.0, 12.5, 0.1, "plain", True, dt.date(2024, 2, 29), dt.time(12, 30),
     dt.datetime(2024, 2, 29, 23, 59, 58)],
    [2.0, -0.0001, -2.25, 'say "hi", then, go', False, dt.date(1999, 12, 31),
     dt.time(23, 59, 58, 500000), dt.datetime(2024, 3, 1, 0, 0, 0, 250000)],
    [3.0, 0.0, 1.5, "two\nlines", "", "0001-01-01", dt.time(0, 0, 0, 1),
     dt.datetime(1999, 12, 31, 23, 59, 59, 999999)],
    [4.0, "", "", "", True, "", "", ""],
    [5.0, 7.0, 3.0, "", False, dt.date(2000, 1, 1), dt.time(1, 2, 3, 100000),
     dt.datetime(2000, 1, 1, 0, 0, 0, 100000)],
]  # fmt: skip


@pytest.fixture
def sqlite_numeric_sample(tmp_path: Path) -> Path:
    """``test_canonical_csv``'s sample, with ``amount`` a number: SQLite has no decimal
    type, so that sample keeps it as text with its scale (a text cell here)."""
    path = tmp_path / "numeric.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE sample (id INTEGER, amount REAL, ratio REAL, label TEXT,"
            " flag BOOLEAN, day DATE, at TIME, stamp TIMESTAMP)"
        )
        db.execute(
            "INSERT INTO sample VALUES " + ", ".join(r.rsplit(",", 1)[0] + ")" for r in SAMPLE_ROWS)
        )
    db.close()
    return path


def test_same_table_same_spreadsheet_on_every_database(runtime, request, tmp_path):
    downloads = {}
    for kind, fixture in (
        ("postgresql", "pg_sample"),
        ("mysql", "mysql_sample"),
        ("sqlite", "sqlite_numeric_sample"),
    ):
        facts = request.getfixturevalue(fixture)
        tracker = run(runtime, add_job(runtime, kind, facts, SELECT_COMMON))
        assert tracker.status == TrackerStatus.SUCCESS, tracker.error
        downloads[kind] = download(runtime, tracker, "ods")
    for kind, data in downloads.items():
        book = load_ods(data)
        assert book["Result"] == COMMON_BACK, kind
        assert book["DanceCat notes"][-1][0].startswith("1 date or time value(s)"), kind
    if OFFICE is None:
        return
    shown = {kind: office_csv(data, tmp_path, kind) for kind, data in downloads.items()}
    assert shown["mysql"] == shown["postgresql"] and shown["sqlite"] == shown["postgresql"]
    assert shown["postgresql"][1] == [
        "1", "12.5", "0.1", "plain", "TRUE", "2024-02-29", "12:30:00", "2024-02-29 23:59:58",
    ]  # fmt: skip
    assert shown["postgresql"][3][3:6] == ["two\nlines", "", "0001-01-01"]
