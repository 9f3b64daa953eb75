"""The canonical CSV: every type written and read back exactly, NULL apart from ''."""

from __future__ import annotations

import datetime as dt
import decimal
import io

from hypothesis import given
from hypothesis import strategies as st

from dancecat_core.columns import Column, ColumnType
from dancecat_core.csvcodec import RowFormatter, header_line, read_text_rows, read_typed_rows

COLUMNS = [
    Column("i", ColumnType.INTEGER),
    Column("d", ColumnType.DECIMAL),
    Column("f", ColumnType.FLOAT),
    Column("b", ColumnType.BOOLEAN),
    Column("day", ColumnType.DATE),
    Column("t", ColumnType.TIME),
    Column("ts", ColumnType.DATETIME),
    Column("tz", ColumnType.DATETIMETZ),
    Column("bin", ColumnType.BYTES),
    Column("j", ColumnType.JSON),
    Column("s", ColumnType.TEXT),
]

ROW = [
    -(2**63),
    decimal.Decimal("12345678901234567890.0100"),
    1.1,
    True,
    dt.date(1999, 12, 31),
    dt.time(23, 59, 58, 123456),
    dt.datetime(2024, 2, 29, 1, 2, 3, 4),
    dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    b"\x00\xffbytes",
    {"a": [1, "ü"]},
    'comma, "quote"\nnew line — 中文 🐈',
]


def header_text(formatter: RowFormatter) -> str:
    """The CSV header line of ``formatter``'s columns."""
    return header_line([c.name for c in formatter.columns]).decode()


def roundtrip(columns, rows):
    formatter = RowFormatter(columns)
    raw = (header_text(formatter) + formatter.lines(rows)).encode("utf-8")
    return formatter, raw, list(read_typed_rows(io.BytesIO(raw), formatter.resolved_columns()))


def test_every_type_round_trips():
    _, _, back = roundtrip(COLUMNS, [ROW, [None] * len(COLUMNS)])
    expected = list(ROW)
    expected[7] = ROW[7].astimezone(dt.UTC)
    assert back[0] == expected
    assert back[1] == [None] * len(COLUMNS)


def test_null_and_empty_string_stay_apart():
    columns = [Column("a", ColumnType.TEXT), Column("b", ColumnType.TEXT)]
    _, raw, _ = roundtrip(columns, [])
    formatter = RowFormatter(columns)
    raw = (header_text(formatter) + formatter.lines([["", None], [None, ""], ["x", "y"]])).encode()
    assert raw == b'a,b\n"",\n,""\nx,y\n'
    assert list(read_text_rows(io.BytesIO(raw))) == [["", None], [None, ""], ["x", "y"]]


def test_postgres_copy_output_reads_back():
    # Exactly what COPY ... TO STDOUT (FORMAT csv) prints for these values.
    raw = b'a,b,c\n1,"",\n2,,"x\ny"\n3,"say ""hi""",t\n'
    assert list(read_text_rows(io.BytesIO(raw))) == [
        ["1", "", None],
        ["2", None, "x\ny"],
        ["3", 'say "hi"', "t"],
    ]


def test_untyped_columns_take_the_type_of_their_values():
    columns = [Column("n"), Column("mixed"), Column("blank")]
    formatter, _, back = roundtrip(columns, [[1, 1, None], [2, "two", None]])
    types = [c.type for c in formatter.resolved_columns()]
    assert types == [ColumnType.INTEGER, ColumnType.TEXT, ColumnType.TEXT]
    assert back == [[1, "1", None], [2, "two", None]]


@given(st.lists(st.lists(st.one_of(st.none(), st.text()), min_size=3, max_size=3), max_size=20))
def test_any_text_round_trips(rows):
    columns = [Column(n, ColumnType.TEXT) for n in "abc"]
    formatter = RowFormatter(columns)
    raw = (header_text(formatter) + formatter.lines(rows)).encode("utf-8", "surrogatepass")
    assert list(read_text_rows(io.BytesIO(raw))) == rows


def test_iso_text_in_untyped_columns_becomes_dates():
    columns = [Column("day"), Column("at"), Column("mixed")]
    rows = [["2024-01-31", "2024-01-31 10:00:00", "2024-01-31"],
            [None, "2024-02-01 11:30:00.5", "soon"]]
    formatter, _, back = roundtrip(columns, rows)
    types = [c.type for c in formatter.resolved_columns()]
    assert types == [ColumnType.DATE, ColumnType.DATETIME, ColumnType.TEXT]
    assert back[0][:2] == [dt.date(2024, 1, 31), dt.datetime(2024, 1, 31, 10)]
    assert back[1][2] == "soon"


def test_one_column_null_is_a_blank_line_and_reads_back():
    formatter = RowFormatter([Column("only", ColumnType.TEXT)])
    raw = (header_text(formatter) + formatter.lines([[None], [""], ["x"]])).encode()
    assert raw == b'only\n\n""\nx\n'
    assert list(read_text_rows(io.BytesIO(raw))) == [[None], [""], ["x"]]
