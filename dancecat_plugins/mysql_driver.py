"""MySQL / MariaDB driver, on PyMySQL's unbuffered ``SSCursor``.

The MySQL protocol has no cursor to FETCH from: once a query runs, the server sends every
row and the client either reads them or hangs up. So rows are read as they come (never
buffered whole), previews cap the rows on the server (``sql_select_limit``), and a session
with rows left unread is closed rather than drained. Cancelling needs a second connection
(``KILL QUERY``) because the first one is busy receiving rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO

import attrs
import pymysql
import pymysql.converters
import pymysql.cursors
from pymysql.constants import CR, ER, FIELD_TYPE

from dancecat_core.columns import Column, ColumnType
from dancecat_core.csvcodec import UTC_OFFSET, datetime_string
from dancecat_core.drivers import ConnectionParams, Driver, DriverSession, QueryCursor
from dancecat_core.error_text import HIDDEN_SECRET
from dancecat_core.errors import ConnectionFailed, QueryError, QueryTimeout, ReadOnlyViolation
from dancecat_core.hookspecs import hookimpl
from dancecat_core.provenance import Traced, trace
from dancecat_core.statements import single
from dancecat_plugins.mysql_provenance import MysqlCatalog
from dancecat_plugins.mysql_statements import SqlMode, parse

BINARY_CHARSET = 63  # charsetnr of binary strings: BLOB, BINARY, VARBINARY, BIT
# Server error codes.
TIMED_OUT = {ER.STATEMENT_TIMEOUT, ER.QUERY_TIMEOUT}  # MariaDB 1969, MySQL 3024
READ_ONLY_REFUSED = 1792  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
# Seconds a query's socket may stay silent past the query's own timeout before DanceCat
# gives up on the server (the server's own timeout should have answered long before).
READ_GRACE = 5

TYPES: dict[int, ColumnType] = {
    FIELD_TYPE.TINY: ColumnType.INTEGER,  # but TINYINT(1) is a boolean: see describe()
    FIELD_TYPE.SHORT: ColumnType.INTEGER,
    FIELD_TYPE.INT24: ColumnType.INTEGER,
    FIELD_TYPE.LONG: ColumnType.INTEGER,
    FIELD_TYPE.LONGLONG: ColumnType.INTEGER,
    FIELD_TYPE.YEAR: ColumnType.INTEGER,
    FIELD_TYPE.DECIMAL: ColumnType.DECIMAL,
    FIELD_TYPE.NEWDECIMAL: ColumnType.DECIMAL,
    FIELD_TYPE.FLOAT: ColumnType.FLOAT,
    FIELD_TYPE.DOUBLE: ColumnType.FLOAT,
    FIELD_TYPE.DATE: ColumnType.DATE,
    FIELD_TYPE.NEWDATE: ColumnType.DATE,
    FIELD_TYPE.TIME: ColumnType.TIME,
    FIELD_TYPE.DATETIME: ColumnType.DATETIME,
    # An instant, stored in UTC and shown in the session's time zone, which is UTC.
    FIELD_TYPE.TIMESTAMP: ColumnType.DATETIMETZ,
    FIELD_TYPE.JSON: ColumnType.JSON,  # MySQL; MariaDB's JSON is LONGTEXT, so TEXT
    FIELD_TYPE.BIT: ColumnType.BYTES,
    FIELD_TYPE.GEOMETRY: ColumnType.BYTES,
}
# String types are text or bytes depending on their character set.
STRING_TYPES = {
    FIELD_TYPE.VARCHAR: "varchar",
    FIELD_TYPE.VAR_STRING: "varchar",
    FIELD_TYPE.STRING: "char",
    FIELD_TYPE.ENUM: "enum",
    FIELD_TYPE.SET: "set",
    FIELD_TYPE.TINY_BLOB: "tinytext",
    FIELD_TYPE.MEDIUM_BLOB: "mediumtext",
    FIELD_TYPE.LONG_BLOB: "longtext",
    FIELD_TYPE.BLOB: "text",
}
TYPE_NAMES = {value: name.lower() for name, value in vars(FIELD_TYPE).items() if name.isupper()}
TYPE_NAMES |= {
    FIELD_TYPE.TINY: "tinyint",
    FIELD_TYPE.LONG: "int",
    FIELD_TYPE.LONGLONG: "bigint",
    FIELD_TYPE.NEWDECIMAL: "decimal",
    FIELD_TYPE.NEWDATE: "date",
}


def _time_or_text(text: str) -> dt.time | str:
    """TIME is a duration in MySQL (-838:59:59 to 838:59:59); a time of day when it fits.

    PyMySQL would make every TIME a ``timedelta``, whose text ("3:04:05") is no time at all.
    """
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        return text


def _utc_timestamp(text: str) -> dt.datetime | str:
    """A TIMESTAMP, in UTC because the session says so; a zero date stays text, in UTC."""
    value = pymysql.converters.convert_datetime(text)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC)
    return datetime_string(value) + UTC_OFFSET


CONVERSIONS = {
    **pymysql.converters.conversions,
    FIELD_TYPE.TIME: _time_or_text,
    FIELD_TYPE.TIMESTAMP: _utc_timestamp,
}


def describe(field: Any) -> Column:
    """A result column from PyMySQL's field packet (``org_table``/``org_name`` = source)."""
    binary = field.charsetnr == BINARY_CHARSET
    if field.type_code in STRING_TYPES:
        kind = ColumnType.BYTES if binary else ColumnType.TEXT
        name = STRING_TYPES[field.type_code]
        if binary:
            name = name.replace("text", "blob").replace("char", "binary")
    elif field.type_code == FIELD_TYPE.TINY and field.length == 1:
        # MySQL has no boolean type: BOOLEAN is TINYINT(1), the one type people declare
        # for true/false. Expressions (``a = b``, ``TRUE``) are BIGINT and stay integers.
        kind, name = ColumnType.BOOLEAN, "tinyint(1)"
    else:
        kind = TYPES.get(field.type_code, ColumnType.TEXT)
        name = TYPE_NAMES.get(field.type_code, str(field.type_code))
    source = f"{field.org_table}.{field.org_name}" if field.org_table and field.org_name else ""
    return Column(name=field.name, type=kind, db_type=name, source=source)


# --- the native CSV path: row packets straight to canonical CSV ----------------------------
#
# In the text protocol a row is one packet of length-encoded strings: a length byte (< 251),
# or 0xFC/0xFD/0xFE and a 2/3/8-byte length, then the value's text; 0xFB alone is NULL. The
# server already writes numbers, dates and times in the canonical text, and text columns in
# the connection's utf8mb4, so CSV is mostly those bytes with the length bytes turned into
# commas. ``copy_csv`` does exactly that, in place: each block read off the socket is copied
# into a bytearray, every packet header and length byte is overwritten by a marker byte
# that valid UTF-8 never holds (0xFA-0xFF), and one ``translate`` per block turns markers
# into commas and line ends (or deletes them). Python touches each field once, for one
# index and one store; everything else (finding values that need quotes, UTF-8 checks)
# runs over whole blocks at C speed. Results with kept binary columns (hex is longer than
# the bytes) and rows larger than 16 MiB take a slower per-field path (``_line``).
#
# Three types need their text rewritten to the canonical form, still in place: a
# TINYINT(1)'s ``0``/``1`` becomes a marker (TRUE/FALSE) replaced by ``false``/``true``
# after the translate; a timestamp's space becomes ``T`` (same length); the zeros MySQL pads
# a fraction with to the column's precision (and the dot, if all are zeros) become FILL.
# A TIMESTAMP needs ``+00:00`` added, which no in-place rewrite can do: results with one take
# the per-field path.

SKIP, RAW, TEXT, HEX, BOOL, STAMP, STAMP_FRACTION, TIME_FRACTION, STAMP_UTC = range(9)
RAW_TYPES = {
    ColumnType.INTEGER,
    ColumnType.DECIMAL,
    ColumnType.FLOAT,
    ColumnType.DATE,
    ColumnType.TIME,
}
MAX_PACKET = 0xFFFFFF  # a payload this long continues in the next packet
BLOCK = 1 << 18  # bytes per socket read
FILL = 0xFF  # marker: deleted
SEP = 0xFE  # marker: a comma
ROW = 0xFD  # marker: a line end (before each row; the first one is dropped)
SEP_EMPTY = 0xFC  # marker: a comma and "" (the empty string)
EMPTY = 0xFA  # marker: "" in the row's first column
TRUE = 0xF8  # marker: a boolean's 1, written as "true"
FALSE = 0xF9  # marker: a boolean's 0, written as "false"
MARKERS = bytes(range(0xF8, 0x100))
_TO_CSV = bytes.maketrans(bytes([SEP, ROW]), b",\n")
_FILLS = memoryview(bytes([FILL]) * (1 << 16))
_NEEDS_QUOTES = re.compile(rb'[",\r\n]')  # in one value
_MARKER = re.compile(rb"[\xf8-\xff]")
# Bytes a length byte stands for: itself and the value after it. Longer lengths (and the
# first bytes of EOF/error packets) send p out of range, and the row to the slow path.
_STEP = [n + 1 for n in range(251)] + [1] + [1 << 62] * 5


def _csv_kinds(
    columns: Sequence[Column], keep: Sequence[int], fractional: Sequence[bool]
) -> list[int]:
    """What copy_csv does with each column; ``fractional``: the server says the column's
    values may have a fraction of a second (its ``decimals`` is not 0)."""
    kept = set(keep)
    kinds = []
    for i, column in enumerate(columns):
        if i not in kept:
            kinds.append(SKIP)
        elif column.type == ColumnType.TIME and fractional[i]:
            kinds.append(TIME_FRACTION)
        elif column.type in RAW_TYPES:
            kinds.append(RAW)
        elif column.type == ColumnType.DATETIME:
            kinds.append(STAMP_FRACTION if fractional[i] else STAMP)
        elif column.type == ColumnType.DATETIMETZ:
            kinds.append(STAMP_UTC)
        elif column.type == ColumnType.BOOLEAN:
            kinds.append(BOOL)
        elif column.type == ColumnType.BYTES:
            kinds.append(HEX)
        else:
            kinds.append(TEXT)  # text, JSON, and types DanceCat does not know
    return kinds


_UTC_OFFSET = UTC_OFFSET.encode()


def _canonical_value(value: bytes, kind: int) -> bytes:
    """A BOOL, STAMP or fraction column's value in the canonical text (the per-field path)."""
    if kind == BOOL:
        return {b"0": b"false", b"1": b"true"}.get(value, value)
    if kind in (STAMP, STAMP_FRACTION, STAMP_UTC) and value[10:11] == b" ":
        value = value[:10] + b"T" + value[11:]
    if kind in (STAMP_FRACTION, TIME_FRACTION, STAMP_UTC) and b"." in value:
        value = value.rstrip(b"0").rstrip(b".")
    return value + _UTC_OFFSET if kind == STAMP_UTC else value


def _mark_value(buf: bytes, o: bytearray, v: int, size: int, kind: int) -> int:
    """Rewrite one value at ``buf[v : v + size]`` in ``o`` as ``_canonical_value`` does;
    return how many markers it wrote. (``_fast_loop`` inlines the same steps.)"""
    marks = 0
    if kind == BOOL:
        if size == 1 and buf[v] in b"01":
            o[v] = TRUE if buf[v] == 0x31 else FALSE
            marks = 1
        return marks
    if kind in (STAMP, STAMP_FRACTION) and size > 10 and buf[v + 10] == 0x20:
        o[v + 10] = 0x54
    if kind in (STAMP_FRACTION, TIME_FRACTION) and buf.find(b".", v, v + size) >= 0:
        e = v + size - 1
        while buf[e] == 0x30:
            o[e] = FILL
            e -= 1
            marks += 1
        if buf[e] == 0x2E:
            o[e] = FILL
            marks += 1
    return marks


def _utf8(data: bytes) -> bytes:
    """``data`` when it is UTF-8; else with U+FFFD for each bad byte (as csvcodec does)."""
    if data.isascii():
        return data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace").encode("utf-8")
    return data


def _length(buf: bytes, p: int) -> tuple[int, int]:
    """(header bytes, value length) of the length-encoded string at ``p``; -1 for NULL."""
    first = buf[p]
    if first < 251:
        return 1, first
    if first == 251:
        return 1, -1
    if first == 252:
        return 3, buf[p + 1] | buf[p + 2] << 8
    if first == 253:
        return 4, int.from_bytes(buf[p + 1 : p + 4], "little")
    if first == 254:
        return 9, int.from_bytes(buf[p + 1 : p + 9], "little")
    raise pymysql.err.InternalError(f"bad length byte {first:#x} in a row packet")


def _line(buf: bytes, p: int, end: int, kinds: Sequence[int]) -> bytes:
    """One row packet's payload (``buf[p:end]``) as a CSV line without its line end."""
    fields = []
    for kind in kinds:
        if p >= end:
            raise pymysql.err.InternalError("a row packet with too few columns")
        head, size = _length(buf, p)
        p += head
        if size < 0:
            if kind != SKIP:
                fields.append(b"")
            continue
        value = buf[p : p + size]
        p += size
        if kind == RAW:
            fields.append(value)
        elif kind >= BOOL:
            fields.append(_canonical_value(value, kind))
        elif kind == TEXT:
            if not value or _NEEDS_QUOTES.search(value):
                value = b'"' + value.replace(b'"', b'""') + b'"'
            fields.append(value)
        elif kind == HEX:
            fields.append(b"\\x" + value.hex().encode())
    if p != end:
        raise pymysql.err.InternalError("a row packet with too many columns")
    return b",".join(fields)


def _mark_row(buf: bytes, o: bytearray, pos: int, end: int, kinds: Sequence[int]) -> int:
    """Mark one row in place, any length encoding; return how many markers it wrote."""
    o[pos:end] = buf[pos:end]  # undo what the fast loop may have marked
    o[pos : pos + 4] = bytes([ROW, FILL, FILL, FILL])
    marks = 4
    p = pos + 4
    first = True
    for kind in kinds:
        if p >= end:
            raise pymysql.err.InternalError("a row packet with too few columns")
        head, size = _length(buf, p)
        q = p + head + max(size, 0)
        if kind == SKIP:
            o[p:q] = bytes([FILL]) * (q - p)
            marks += q - p
        else:
            o[p : p + head] = bytes([FILL if first else SEP]) + bytes([FILL]) * (head - 1)
            if size == 0 and kind == TEXT:
                o[p] = EMPTY if first else SEP_EMPTY
            elif size > 0 and kind >= BOOL:
                marks += _mark_value(buf, o, p + head, size, kind)
            marks += head
            first = False
        p = q
    if p != end:
        raise pymysql.err.InternalError("a row packet with too many columns")
    return marks


def _fast_loop(kinds: Sequence[int]) -> Callable[..., tuple[int, int, int, int, bool]]:
    """A loop marking rows whose lengths are all one byte, unrolled for these columns.

    Returns (pos, rows, extra markers, seq, odd): it stops at the first incomplete packet,
    or (odd) at a packet it cannot mark: a long value, an EOF or error packet.
    """
    lines = [
        "def fast(buf, o, pos, n, seq, step, fills):",
        "    rows = extra = 0",
        "    try:",
        "        while pos + 4 <= n:",
        "            end = pos + 4 + (buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16)",
        "            if end > n:",
        "                break",
        "            if buf[pos + 3] != seq:",
        "                return pos, rows, extra, seq, True",
        "            o[pos : pos + 5] = ROW_START",
        "            p = pos + 4",
    ]
    first = True
    for i, kind in enumerate(kinds):
        if kind == SKIP:
            lines += [
                "            q = p + step[buf[p]]",
                "            o[p:q] = fills[: q - p]",
                "            extra += q - p - 1",
                "            p = q",
            ]
            continue
        if i and not first:
            lines.append(f"            o[p] = {SEP}")
        if kind == TEXT:
            lines += [
                "            size = buf[p]",
                "            if size:",
                "                p += step[size]",
                "            else:",
                f"                o[p] = {EMPTY if first else SEP_EMPTY}",
                "                p += 1",
            ]
        elif kind >= BOOL:
            lines += ["            size = buf[p]", "            if 0 < size < 251:"]
            lines += _REWRITES[kind]
            lines.append("            p += step[size]")
        else:
            lines.append("            p += step[buf[p]]")
        first = False
    lines += [
        "            if p != end:",
        "                return pos, rows, extra, seq, True",
        "            seq = (seq + 1) & 255",
        "            rows += 1",
        "            pos = end",
        "    except IndexError:",
        "        return pos, rows, extra, seq, True",
        "    return pos, rows, extra, seq, False",
    ]
    namespace: dict[str, Any] = {"ROW_START": bytes([ROW, FILL, FILL, FILL, FILL])}
    exec("\n".join(lines), namespace)  # our own text, built from the column kinds only
    return namespace["fast"]


# The fast loop's inlined ``_mark_value``, by kind, for a value of ``size`` bytes after
# the length byte at ``p`` (so ``buf[p + 1 : p + 1 + size]``).
_STAMP_T = [
    "                if size > 10 and buf[p + 11] == 0x20:",
    "                    o[p + 11] = 0x54",
]
_TRIM = [
    "                if buf.find(b'.', p + 1, p + 1 + size) >= 0:",
    "                    e = p + size",
    "                    while buf[e] == 0x30:",
    f"                        o[e] = {FILL}",
    "                        e -= 1",
    "                        extra += 1",
    "                    if buf[e] == 0x2E:",
    f"                        o[e] = {FILL}",
    "                        extra += 1",
]
_REWRITES = {
    BOOL: [
        "                if size == 1 and buf[p + 1] in b'01':",
        f"                    o[p + 1] = {TRUE} if buf[p + 1] == 0x31 else {FALSE}",
        "                    extra += 1",
    ],
    STAMP: _STAMP_T,
    STAMP_FRACTION: _STAMP_T + _TRIM,
    TIME_FRACTION: _TRIM,
}


def _quote_fields(region: bytearray) -> bytes:
    """The marked block with each value holding ``"``, ``,``, CR or LF quoted."""
    spans = {}  # value start -> end
    for char in b'",\r\n':  # memchr for each: a regex over the block is 10x slower
        at = region.find(char)
        while at >= 0:
            start = max(region.rfind(SEP, 0, at), region.rfind(FILL, 0, at)) + 1
            after = _MARKER.search(region, at)
            end = after.start() if after else len(region)
            spans[start] = end
            at = region.find(char, end)
    parts = []
    done = 0
    for start in sorted(spans):
        end = spans[start]
        value = bytes(region[start:end])
        parts += [region[done:start], b'"', value.replace(b'"', b'""'), b'"']
        done = end
    parts.append(region[done:])
    return b"".join(parts)


class _PrefixedReader(io.RawIOBase):
    """Bytes read past the end of a result, then the socket file: given back to PyMySQL."""

    def __init__(self, prefix: bytes, rest: Any):
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if self._prefix:
            size = min(len(target), len(self._prefix))
            target[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read1(len(target))
        target[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._rest.close()
        super().close()


class _RowCopier:
    """Reads one unbuffered result's row packets off PyMySQL's socket file, as CSV."""

    def __init__(self, connection: pymysql.Connection, kinds: list[int], sink: BinaryIO):
        self.connection = connection
        self.result = connection._result
        self.kinds = kinds
        self.sink = sink
        self.rows = 0
        self.seq = connection._next_seq_id
        if connection._current_timeout != connection._read_timeout:
            connection._sock.settimeout(connection._read_timeout)
            connection._current_timeout = connection._read_timeout
        self.rfile = connection._rfile

    # Reading. Errors close the connection, as PyMySQL's _read_bytes does.
    def _read(self, size: int, exact: bool) -> bytes:
        try:
            data = self.rfile.read(size) if exact else self.rfile.read1(size)
        except OSError as exc:
            self.connection._force_close()
            raise pymysql.err.OperationalError(
                CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query ({exc})"
            ) from None
        except BaseException:
            self.connection._force_close()
            raise
        if not data or (exact and len(data) < size):
            self.connection._force_close()
            raise pymysql.err.OperationalError(
                CR.CR_SERVER_LOST, "Lost connection to MySQL server during query"
            )
        return data

    def _refill(self, rest: bytes) -> tuple[bytes, bytes | None]:
        """More bytes after ``rest``; or, for a packet over 16 MiB, its whole payload."""
        if len(rest) >= 4:
            size = rest[0] | rest[1] << 8 | rest[2] << 16
            if size == MAX_PACKET:
                return self._long_payload(rest)
            if size + 4 > BLOCK:  # read the rest of a long packet in one go
                return rest + self._read(size + 4 - len(rest), exact=True), None
        return rest + self._read(BLOCK, exact=False), None

    def _long_payload(self, rest: bytes) -> tuple[bytes, bytes]:
        """A payload sent as several packets; returns (bytes after it, payload)."""
        parts = []
        while True:
            if len(rest) < 4:
                rest += self._read(4 - len(rest), exact=True)
            size = rest[0] | rest[1] << 8 | rest[2] << 16
            self._check_seq(rest[3])
            if len(rest) < 4 + size:
                rest += self._read(4 + size - len(rest), exact=True)
            parts.append(rest[4 : 4 + size])
            rest = rest[4 + size :]
            if size < MAX_PACKET:
                return rest, b"".join(parts)

    def _check_seq(self, seq: int) -> None:
        if seq != self.seq:
            self.connection._force_close()
            raise pymysql.err.InternalError(
                f"Packet sequence number wrong - got {seq} expected {self.seq}"
            )
        self.seq = (self.seq + 1) & 255

    def _special(self, payload: bytes) -> bool:
        """Handle an error packet (raise) or the EOF packet (True); False for a row."""
        if payload[:1] == b"\xff":
            self.result.unbuffered_active = False
            pymysql.protocol.MysqlPacket(payload, self.connection.encoding).raise_for_error()
        if payload[:1] == b"\xfe" and len(payload) < 9:
            packet = pymysql.protocol.MysqlPacket(payload, self.connection.encoding)
            self.result._check_packet_is_eof(packet)
            self.result.unbuffered_active = False
            self.result.connection = None
            self.result.rows = None
            return True
        return False

    def _finish(self, leftover: bytes) -> int:
        self.connection._next_seq_id = self.seq
        if leftover:  # more results follow (CALL): PyMySQL reads them, from these bytes on
            self.connection._rfile = io.BufferedReader(_PrefixedReader(leftover, self.rfile))
        return self.rows

    def copy(self) -> int:
        if HEX in self.kinds or STAMP_UTC in self.kinds:
            return self._copy_lines()
        return self._copy_marked()

    # The per-field path: binary columns or timestamps with a zone kept.
    def _copy_lines(self) -> int:
        kinds, sink = self.kinds, self.sink
        buf = b""
        pos = 0
        while True:
            buf, payload = self._refill(buf[pos:])
            pos = 0
            if payload is not None:
                if self._special(payload):
                    return self._finish(buf)
                sink.write(_line(payload, 0, len(payload), kinds) + b"\n")
                self.rows += 1
                continue
            n = len(buf)
            lines = []
            while pos + 4 <= n:
                end = pos + 4 + (buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16)
                if end > n:
                    break
                self._check_seq(buf[pos + 3])
                first = buf[pos + 4] if end > pos + 4 else None
                if first == 0xFF or (first == 0xFE and end - pos < 13):
                    self._flush_lines(lines)
                    if self._special(buf[pos + 4 : end]):
                        return self._finish(buf[end:])
                lines.append(_line(buf, pos + 4, end, kinds))
                pos = end
            self._flush_lines(lines)

    def _flush_lines(self, lines: list[bytes]) -> None:
        if lines:
            self.sink.write(_utf8(b"\n".join(lines) + b"\n"))
            self.rows += len(lines)
            lines.clear()

    # The marking path.
    def _copy_marked(self) -> int:
        kinds, sink = self.kinds, self.sink
        fast = _fast_loop(kinds)
        per_row = 4 + len(kinds)  # markers the fast loop writes per row, besides `extra`
        buf = b""
        pos = 0
        while True:
            buf, payload = self._refill(buf[pos:])
            pos = 0
            if payload is not None:
                if self._special(payload):
                    return self._finish(buf)
                sink.write(_line(payload, 0, len(payload), kinds) + b"\n")
                self.rows += 1
                continue
            n = len(buf)
            o = bytearray(buf)
            rows = marks = 0
            while True:
                pos, fast_rows, extra, self.seq, odd = fast(buf, o, pos, n, self.seq, _STEP, _FILLS)
                rows += fast_rows
                marks += fast_rows * per_row + extra
                if not odd:
                    break
                end = pos + 4 + (buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16)
                self._check_seq(buf[pos + 3])
                first = buf[pos + 4] if end > pos + 4 else None
                if first == 0xFF or (first == 0xFE and end - pos < 13):
                    self._flush_marked(buf, o, pos, rows, marks)
                    if self._special(buf[pos + 4 : end]):
                        return self._finish(buf[end:])
                marks += _mark_row(buf, o, pos, end, kinds)
                rows += 1
                pos = end
            self._flush_marked(buf, o, pos, rows, marks)

    def _flush_marked(self, buf: bytes, o: bytearray, pos: int, rows: int, marks: int) -> None:
        """Write the first ``rows`` rows, marked in ``o[:pos]``, as CSV."""
        if not rows:
            return
        region = o[:pos] if pos < len(o) else o
        if len(region) - len(region.translate(None, MARKERS)) != marks:
            # A value held bytes that valid UTF-8 never does: take the per-field path.
            data = self._lines_of(buf, pos)
        else:
            if (
                region.find(b'"') >= 0
                or region.find(b",") >= 0
                or region.find(b"\n") >= 0
                or region.find(b"\r") >= 0
            ):
                region = _quote_fields(region)
            data = region.translate(_TO_CSV, bytes([FILL]))
            if SEP_EMPTY in data:
                data = data.replace(bytes([SEP_EMPTY]), b',""')
            if EMPTY in data:
                data = data.replace(bytes([EMPTY]), b'""')
            if TRUE in data:
                data = data.replace(bytes([TRUE]), b"true")
            if FALSE in data:
                data = data.replace(bytes([FALSE]), b"false")
            data = _utf8(bytes(memoryview(data)[1:])) + b"\n"
        self.sink.write(data)
        self.rows += rows

    def _lines_of(self, buf: bytes, stop: int) -> bytes:
        lines = []
        pos = 0
        while pos < stop:
            end = pos + 4 + (buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16)
            lines.append(_line(buf, pos + 4, end, self.kinds))
            pos = end
        return _utf8(b"\n".join(lines) + b"\n")


class MysqlCursor(QueryCursor):
    def __init__(
        self,
        session: MysqlSession,
        cursor: pymysql.cursors.SSCursor,
        limit: int | None,
        traced: Traced,
    ):
        self._session = session
        self._cursor = cursor
        self._left = limit
        # The field packets arrived with execute(); PyMySQL keeps org_table/org_name (the
        # column a value comes from) only on the result's fields, not in .description.
        fields = cursor._result.fields if cursor.description else []
        origins = traced.align(len(fields))
        self.columns = [
            attrs.evolve(
                describe(field),
                derived_from=tuple(sorted(origin.columns)),
                traced=origin.traced,
            )
            for field, origin in zip(fields, origins, strict=True)
        ]
        # MySQL pads a fraction of a second to the column's precision (``decimals``).
        self._fractional = [field.scale != 0 for field in fields]

    def batches(self, size: int = 5000) -> Iterator[Sequence[Sequence[Any]]]:
        if not self.columns:
            return
        while self._left is None or self._left > 0:
            want = size if self._left is None else min(size, self._left)
            with self._session.errors():
                rows = self._cursor.fetchmany(want)
            if not rows:
                return
            if self._left is not None:
                self._left -= len(rows)
                if not self._left:
                    # sql_select_limit made the server stop here: read its end-of-rows
                    # packet, so the connection is free again.
                    with self._session.errors():
                        self._cursor.fetchone()
            yield rows

    def copy_csv(self, keep: Sequence[int], sink: BinaryIO) -> int | None:
        """Write the rest of the result as canonical CSV, from the row packets' own bytes.

        Values keep the server's text: numbers as sent, dates and times as the server
        writes them (a zero date stays the text '0000-00-00', as on the batches path),
        binary columns as hex. Text that is not UTF-8 gets U+FFFD, as csvcodec gives it.
        """
        if list(keep) != sorted(set(keep)):
            return None  # columns reordered: the pipeline's own path handles that
        if not all(hasattr(self._session.connection, name) for name in _COPY_INTERNALS):
            return None  # a PyMySQL whose internals moved: the row path still works
        if not self.columns or not self.unread:
            return 0
        kinds = _csv_kinds(self.columns, keep, self._fractional)
        with self._session.errors():
            rows = _RowCopier(self._session.connection, kinds, sink).copy()
        if self._left is not None:
            self._left = max(0, self._left - rows)
        return rows

    @property
    def unread(self) -> bool:
        """Whether the server may still be sending rows nobody read."""
        result = self._cursor._result
        return result is not None and result.unbuffered_active

    def close(self) -> None:
        session = self._session
        if self.unread:
            session.abandon(self._cursor)  # the only way to stop a MySQL result early
            return
        self._cursor.close()
        session.end_transaction()


# The PyMySQL connection internals _RowCopier reads packets through.
_COPY_INTERNALS = frozenset({"_rfile", "_next_seq_id", "_result"})


class MysqlSession(DriverSession):
    def __init__(
        self,
        connection: pymysql.Connection,
        read_only: bool,
        options: dict[str, Any],
        mode: SqlMode,
    ):
        self.connection = connection
        self.read_only = read_only
        self._mode = mode  # how the server reads quotes and backslashes in this session
        self._options = options  # to open the second connection cancel() needs
        self._thread_id = connection.thread_id()
        self._timeout = 0.0
        self._cancelled = threading.Event()
        self._failed = False
        self._timeout_variable = "max_statement_time"  # MariaDB; MySQL: max_execution_time

    def end_transaction(self) -> None:
        """Commit a read-write query's work; a read-only or failed one has none to keep."""
        if not self.connection.open:
            return
        if self.read_only or self._failed or self._cancelled.is_set():
            with contextlib.suppress(pymysql.MySQLError):
                self.connection.rollback()
            return
        try:
            self.connection.commit()
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None

    def ping(self) -> None:
        with self.errors(), self.connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn PyMySQL errors into DanceCat errors; stop once the query is cancelled."""
        if self._cancelled.is_set():
            raise QueryError("the query was cancelled")
        if not self.connection.open:
            raise QueryError("the connection is closed")
        try:
            yield
        except pymysql.MySQLError as exc:
            self._failed = True
            raise self._error(exc) from None

    def _error(self, exc: pymysql.MySQLError) -> QueryError:
        code, message = (*exc.args, 0, "")[:2]
        message = str(message or "the connection to the server was lost")
        if self._cancelled.is_set():
            return QueryError("the query was cancelled")
        if code in TIMED_OUT:
            return QueryTimeout(f"query exceeded its {self._timeout:g} s timeout")
        if code == READ_ONLY_REFUSED:
            return ReadOnlyViolation(f"this connection is read-only: {message}")
        return QueryError(message)

    def _set_limits(self, cursor: pymysql.cursors.Cursor, timeout: float, limit: int | None):
        """Server-side timeout and row cap for the next statement."""
        rows = "DEFAULT" if limit is None else str(int(limit))
        if self._timeout_variable == "max_statement_time":
            try:
                cursor.execute(f"SET max_statement_time = {timeout:f}, sql_select_limit = {rows}")
                return
            except pymysql.MySQLError as exc:
                if exc.args[0] != ER.UNKNOWN_SYSTEM_VARIABLE:
                    raise
                self._timeout_variable = "max_execution_time"  # MySQL, in milliseconds
        millis = max(1, round(timeout * 1000))
        cursor.execute(f"SET max_execution_time = {millis}, sql_select_limit = {rows}")

    def open_query(self, sql: str, *, timeout: float, limit: int | None = None) -> QueryCursor:
        statement = single(parse(sql, self._mode), read_only=self.read_only)
        self._timeout = timeout
        self._failed = False
        with self.errors():
            # The catalog is read first: once the query runs, the connection is busy with it.
            traced = trace(MysqlCatalog(self.connection), statement.text)
            with self.connection.cursor() as setup:
                self._set_limits(setup, timeout, limit)
                setup.execute(
                    "START TRANSACTION READ ONLY" if self.read_only else "START TRANSACTION"
                )
            # The server's own timeout answers first; this one covers a server gone silent.
            self.connection._read_timeout = timeout + READ_GRACE
            # Unbuffered: execute() returns once the column descriptions have arrived;
            # rows are read off the socket as batches() asks for them. Without
            # CLIENT.MULTI_STATEMENTS the server refuses a second statement in the text.
            cursor = self.connection.cursor(pymysql.cursors.SSCursor)
            cursor.execute(statement.text)  # no arguments: PyMySQL leaves the text alone
        return MysqlCursor(self, cursor, limit, traced)

    def cancel(self) -> None:
        self._cancelled.set()
        self._kill_query()

    def _kill_query(self) -> None:
        """KILL QUERY from a second connection: the first is busy receiving rows."""
        with contextlib.suppress(pymysql.MySQLError, OSError):
            killer = pymysql.connect(**self._options)
            try:
                with killer.cursor() as cursor:
                    cursor.execute("KILL QUERY %s", (self._thread_id,))
            finally:
                killer.close()

    def abandon(self, cursor: pymysql.cursors.SSCursor) -> None:
        """Stop a result midway: kill the query and hang up, reading nothing more.

        PyMySQL would otherwise read every remaining row to keep the protocol in step
        (``SSCursor.close()``, and the result's ``__del__``); this connection is discarded
        instead, so tell PyMySQL there is nothing left to read.
        """
        self._kill_query()
        if cursor._result is not None:
            cursor._result.unbuffered_active = False
        cursor.connection = None
        self.close()

    def close(self) -> None:
        if self.connection.open:
            self.connection.close()  # COM_QUIT and close the socket; reads nothing


class MysqlDriver(Driver):
    name = "mysql"
    label = "MySQL / MariaDB"
    default_port = 3306

    def connect(self, params: ConnectionParams, *, timeout: float) -> DriverSession:
        options: dict[str, Any] = {
            "host": params.host,
            "port": params.port or self.default_port,
            "user": params.user,
            "password": params.password or "",
            "database": params.database,
            "charset": "utf8mb4",
            # connect_timeout covers the TCP connect only; the greeting and every later read
            # wait at most read_timeout (a port that accepts and never speaks, Redis's say).
            "connect_timeout": max(1, timeout),
            "read_timeout": max(1, timeout),
            "write_timeout": max(1, timeout),
            "conv": CONVERSIONS,
            # client_flag without CLIENT.MULTI_STATEMENTS: "SELECT 1; DROP ..." is refused
            # by the server as a syntax error.
            "client_flag": 0,
            "autocommit": False,
        }
        try:
            connection = pymysql.connect(**options)
        except UnicodeEncodeError:
            # PyMySQL sends the password as Latin-1 and refuses anything else.
            raise ConnectionFailed(
                "the MySQL client can only send a password of Latin-1 characters"
            ) from None
        except pymysql.MySQLError as exc:
            message = str(exc.args[1] if len(exc.args) > 1 else exc)
            if exc.args[0] == CR.CR_SERVER_LOST:  # no greeting: "Lost ... during query"
                message = (
                    f"{options['host']}:{options['port']} sent no MySQL greeting within "
                    f"{options['read_timeout']:g} s"
                )
            for secret in params.secrets:
                message = message.replace(secret, HIDDEN_SECRET)
            raise ConnectionFailed(" ".join(message.split())) from None
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")
                if params.read_only:
                    # For the session, not just the next transaction: a statement that
                    # commits implicitly (DDL) starts another transaction, read-only too.
                    cursor.execute("SET SESSION TRANSACTION READ ONLY")
                cursor.execute("SELECT @@SESSION.sql_mode")
                (sql_mode,) = cursor.fetchone()
        except pymysql.MySQLError as exc:
            connection.close()
            raise ConnectionFailed(str(exc.args[-1])) from None
        return MysqlSession(connection, params.read_only, options, SqlMode.parse(sql_mode))


@hookimpl
def dancecat_register_drivers() -> list[type[Driver]]:
    return [MysqlDriver]
