"""Exactness: each of our outputs holds the floor's values, value for value.

Every file is parsed back into rows and each value is normalised by its column's type
(``11.50`` and ``11.5`` are the same decimal, ``t`` and ``1`` the same boolean, a
timestamp with ``T`` or a space the same instant), then compared row by row. The first
differences are reported with their row and column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

from bench import data
from dancecat_core.csvcodec import read_text_rows

NAMES = [name for name, _ in data.COLUMNS]


@attrs.frozen
class Verdict:
    ok: bool | None  # None: not checked
    detail: str

    def __str__(self) -> str:
        mark = {True: "ok", False: "FAILED", None: "not checked"}[self.ok]
        return f"{mark}: {self.detail}"


def _int(v: Any) -> int:
    return int(v)


def _dec(v: Any) -> decimal.Decimal:
    if isinstance(v, float):
        return decimal.Decimal(repr(v))
    return decimal.Decimal(str(v))


def _text(v: Any) -> str:
    return str(v)


def _ts(v: Any) -> dt.datetime:
    if isinstance(v, dt.datetime):
        return v
    return dt.datetime.fromisoformat(str(v))


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v))


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return bool(v)
    return str(v) in ("t", "true", "1", "TRUE", "True")


def _float(v: Any) -> float:
    return float(v)


NORMALISE: list[Callable[[Any], Any]] = [
    _int,
    _int,
    _dec,
    _text,
    _text,
    _ts,
    _date,
    _bool,
    _text,
    _float,
]


def normalise(row: Iterable[Any]) -> list[Any]:
    return [None if v is None else f(v) for f, v in zip(NORMALISE, row, strict=True)]


def csv_rows(path: Path) -> Iterator[list[Any]]:
    """Canonical / PostgreSQL CSV: NULL is an unquoted empty field, '' is quoted."""
    with open(path, "rb") as raw:
        header = next(read_text_rows(raw, skip_header=False))
        if header != NAMES:
            raise AssertionError(f"{path.name}: header {header} is not {NAMES}")
    with open(path, "rb") as raw:
        for row in read_text_rows(raw):
            yield normalise(row)


_TSV_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "\\": "\\", "Z": "\x1a"}


def _unescape(field: str) -> str | None:
    if field == "NULL":
        return None
    if "\\" not in field:
        return field
    out, chars = [], iter(field)
    for ch in chars:
        out.append(_TSV_ESCAPES.get(next(chars, ""), "") if ch == "\\" else ch)
    return "".join(out)


def tsv_rows(path: Path) -> Iterator[list[Any]]:
    """``mariadb --batch`` output: tab-separated, backslash escapes, NULL as ``NULL``."""
    with open(path, encoding="utf-8", newline="\n") as text:
        header = next(text).rstrip("\n").split("\t")
        if header != NAMES:
            raise AssertionError(f"{path.name}: header {header} is not {NAMES}")
        for line in text:
            yield normalise([_unescape(f) for f in line.rstrip("\n").split("\t")])


def json_rows(path: Path) -> Iterator[list[Any]]:
    """``{"header": [...], "rows": [[...]]}``; numbers keep every digit (Decimal)."""
    with open(path, encoding="utf-8") as handle:
        doc = json.load(handle, parse_float=decimal.Decimal)
    if doc["header"] != NAMES:
        raise AssertionError(f"{path.name}: header {doc['header']} is not {NAMES}")
    for row in doc["rows"]:
        yield normalise(row)


def xlsx_rows(path: Path, limit: int | None) -> Iterator[list[Any]]:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        sheets = [s for s in book.worksheets if s.title != "DanceCat notes"]
        rows = itertools.chain.from_iterable(
            itertools.islice(s.iter_rows(values_only=True), 1, None) for s in sheets
        )
        header = next(sheets[0].iter_rows(values_only=True, max_row=1))
        if list(header) != NAMES:
            raise AssertionError(f"{path.name}: header {header} is not {NAMES}")
        for row in itertools.islice(rows, limit):
            yield list(row)
    finally:
        book.close()


def ods_rows(path: Path, limit: int | None) -> Iterator[list[Any]]:
    """Read back with calamine (python-calamine), a maintained ODS reader. It gives "" for
    an empty cell (NULL) and for an empty string cell alike: both are None here, and
    ``_same_ods`` takes None for either (tests/test_ods.py checks the two cells apart)."""
    from python_calamine import CalamineWorkbook

    book = CalamineWorkbook.from_path(str(path))
    names = [n for n in book.sheet_names if n != "DanceCat notes"]
    sheets = [book.get_sheet_by_name(n).iter_rows() for n in names]
    header = next(sheets[0])
    if list(header) != NAMES:
        raise AssertionError(f"{path.name}: header {header} is not {NAMES}")
    rows = itertools.chain(sheets[0], *(itertools.islice(s, 1, None) for s in sheets[1:]))
    for row in itertools.islice(rows, limit):
        cells = [None if v == "" else v for v in row]
        yield cells + [None] * (len(NAMES) - len(cells))  # calamine drops trailing blanks


def _same_ods(cell: Any, want: Any, column: str) -> bool:
    """An ODS cell holds a value exactly when it reads back as the source value: numbers
    are doubles (as in XLSX), timestamps ISO 8601 to the microsecond, dates dates."""
    if cell is None:
        return want is None or want == ""
    if column == "created_at":
        return cell == want
    if column == "day":
        return isinstance(cell, dt.date) and not isinstance(cell, dt.datetime) and cell == want
    return _same_xlsx(cell, want, column)


def _same_xlsx(cell: Any, want: Any, column: str) -> bool:
    """An XLSX cell holds a value exactly when it reads back as the source value.

    Excel has one number type (a double): a numeric(12,2) must read back as the double
    nearest to it; timestamps are day fractions, exact here to the millisecond.
    """
    if want is None:
        return cell is None
    if column == "amount":
        return isinstance(cell, int | float) and cell == float(want)
    if column == "created_at":
        return isinstance(cell, dt.datetime) and abs(cell - want) < dt.timedelta(microseconds=500)
    if column == "day":
        return isinstance(cell, dt.datetime | dt.date) and _date(cell) == want
    if column == "flag":
        return cell is want
    if column in ("id", "big"):
        return isinstance(cell, int | float) and not isinstance(cell, bool) and cell == want
    if column == "score":
        return isinstance(cell, float | int) and float(cell) == want
    return cell == want


def compare(
    ours: Iterable[list[Any]],
    floor: Iterable[list[Any]],
    what: str,
    cell_equal: Callable[[Any, Any, str], bool] | None = None,
) -> Verdict:
    """Compare row by row; report the row count and the first few differences."""
    clock = time.monotonic()
    differences: list[str] = []
    count = 0
    diff_count = 0
    sentinel = object()
    for ours_row, floor_row in itertools.zip_longest(ours, floor, fillvalue=sentinel):
        if ours_row is sentinel or floor_row is sentinel:
            side = "ours" if ours_row is sentinel else "the floor"
            differences.append(f"{side} ended after {count} rows")
            diff_count += 1
            break
        count += 1
        if cell_equal is None:
            if ours_row == floor_row:
                continue
            pairs = [
                (i, a, b)
                for i, (a, b) in enumerate(zip(ours_row, floor_row, strict=True))
                if a != b
            ]
        else:
            pairs = [
                (i, a, b)
                for i, (a, b) in enumerate(zip(ours_row, floor_row, strict=True))
                if not cell_equal(a, b, NAMES[i])
            ]
            if not pairs:
                continue
        diff_count += 1
        if len(differences) < 5:
            differences.append(
                f"row {count} "
                + "; ".join(f"{NAMES[i]}: ours {a!r} floor {b!r}" for i, a, b in pairs[:3])
            )
    seconds = time.monotonic() - clock
    if diff_count:
        return Verdict(
            False, f"{what}: {diff_count} differing rows of {count}: " + " | ".join(differences)
        )
    return Verdict(True, f"{what}: {count:,} rows equal value for value ({seconds:.0f} s)")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_csv_pg(ours: Path, floor: Path, full: bool) -> Verdict:
    if sha256(ours) == sha256(floor):
        return Verdict(True, f"CSV byte-identical to psql's \\copy ({ours.stat().st_size:,} B)")
    return compare(csv_rows(ours), csv_rows(floor), "CSV vs psql")


def check_same_bytes(ours: Path, other: Path, what: str) -> Verdict:
    if not other.exists():
        return Verdict(None, f"not compared with {what}: {other.name} was not produced")
    if sha256(ours) == sha256(other):
        return Verdict(True, f"CSV byte-identical to {what} ({ours.stat().st_size:,} B)")
    return Verdict(False, f"CSV differs from {what}")


def check_csv_mariadb(ours: Path, floor: Path) -> Verdict:
    return compare(csv_rows(ours), tsv_rows(floor), "CSV vs mariadb --batch")


def check_json(ours: Path, floor: Path) -> Verdict:
    return compare(json_rows(ours), json_rows(floor), "JSON vs stdlib json")


def check_xlsx(ours: Path, floor_csv: Path, sample: int | None) -> Verdict:
    what = "XLSX read back by openpyxl vs psql CSV" + (
        f" (first {sample:,} rows)" if sample else " (every row)"
    )
    source = csv_rows(floor_csv)
    if sample:
        source = itertools.islice(source, sample)
    return compare(xlsx_rows(ours, sample), source, what, cell_equal=_same_xlsx)


def check_ods(ours: Path, floor_csv: Path, sample: int | None) -> Verdict:
    what = "ODS read back by calamine vs psql CSV" + (
        f" (first {sample:,} rows)" if sample else " (every row)"
    )
    source = csv_rows(floor_csv)
    if sample:
        source = itertools.islice(source, sample)
    return compare(ods_rows(ours, sample), source, what, cell_equal=_same_ods)


def check_libreoffice(xlsx: Path, expected_rows: int, timeout: float) -> Verdict:
    """Convert with LibreOffice headless; the first sheet's CSV must have every row."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        return Verdict(None, "LibreOffice (soffice) is not installed")
    with tempfile.TemporaryDirectory(prefix="dc-bench-lo-") as tmp:
        clock = time.monotonic()
        try:
            done = subprocess.run(
                [
                    soffice,
                    f"-env:UserInstallation=file://{tmp}/profile",
                    "--headless",
                    "--convert-to",
                    "csv",
                    "--outdir",
                    tmp,
                    str(xlsx),
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return Verdict(None, f"LibreOffice did not finish within {timeout:.0f} s")
        seconds = time.monotonic() - clock
        out = Path(tmp) / (xlsx.stem + ".csv")
        if done.returncode or not out.exists():
            return Verdict(
                False,
                f"LibreOffice failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-500:]}",
            )
        import csv

        with open(out, encoding="utf-8", errors="replace", newline="") as handle:
            rows = sum(1 for _ in csv.reader(handle)) - 1
    limit = 1_048_575  # one sheet's rows under its header: the CSV export has sheet 1 only
    want = min(expected_rows, limit)
    if rows != want:
        return Verdict(
            False, f"LibreOffice converted it but sheet 1 has {rows:,} rows, expected {want:,}"
        )
    return Verdict(
        True,
        f"LibreOffice headless opened it and wrote sheet 1's {rows:,} rows "
        f"as CSV in {seconds:.0f} s",
    )
