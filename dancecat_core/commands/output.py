"""How list commands print: a header row and one tab-separated row per item, or, with
``--json``, one JSON array of objects (the same keys as the header).

Cells are made one line each (a tab, newline or backslash in a job's name would otherwise
split a row), so ``cut -f`` and ``awk -F'\\t'`` read every row whole.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print a JSON array of objects instead of a table"
    )


def timestamp(value: dt.datetime | None) -> str | None:
    """A UTC time as ISO 8601 with a Z (the app database stores naive UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="seconds") + "Z"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).translate(_ESCAPES)


def emit(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], as_json: bool) -> None:
    """Print ``rows`` (each a mapping with every key of ``columns``) to stdout."""
    out = sys.stdout
    if as_json:
        json.dump([{key: row[key] for key in columns} for row in rows], out, ensure_ascii=False)
        out.write("\n")
        return
    out.write("\t".join(columns) + "\n")
    for row in rows:
        out.write("\t".join(_cell(row[key]) for key in columns) + "\n")
