"""MySQL / MariaDB results straight from the row packets to canonical CSV (the fast path).

In the text protocol a row is one packet of length-encoded strings: a length byte (< 251),
or 0xFC/0xFD/0xFE and a 2/3/8-byte length, then the value's text; 0xFB alone is NULL. The
server already writes most numbers, dates and times in the canonical text, and text columns
in the connection's utf8mb4, so CSV is mostly those bytes with the length bytes turned into
commas. ``copy_rows`` does exactly that, in place: each block read off the socket is copied
into a bytearray, every packet header and length byte is overwritten by a marker byte that
valid UTF-8 never holds (0xF8-0xFF), and one ``translate`` per block turns markers into
commas and line ends (or deletes them). Python touches each field once, for one index and
one store; everything else (finding values that need quotes, UTF-8 checks) runs over whole
blocks at C speed. Results with kept binary columns (hex is longer than the bytes) and rows
larger than 16 MiB take a slower per-field path (``_line``).

Some types need their text rewritten to the canonical form, in place where the length
stays: a TINYINT(1)'s ``0``/``1`` becomes a marker (TRUE/FALSE) replaced by
``false``/``true`` after the translate; a timestamp's space becomes ``T``; the zeros MySQL
pads a fraction with to the column's precision (and the dot, if all are zeros) become FILL.
A float the server spells otherwise than the canonical form (``1e15``, ``0.00001``) and a
TIMESTAMP (``+00:00`` added) change length: such a row is written through the per-field
path, and results with a TIMESTAMP take that path throughout.

Why it exists: it is what keeps MariaDB -> CSV within a small factor of the ``mariadb``
client (bench/README.md records both this path's ratio and the row path's). Why it is
fenced: it reads PyMySQL's private connection state (the socket file, the packet sequence
number, the unbuffered result). Every internal it relies on is checked when this module is
imported (``disabled``); if one is missing or has changed, the fast path is off, the reason
is logged once, and ``copy_csv`` returns None so that rows go through the plain row path
(``batches()`` and ``RowFormatter``), which gives the same bytes. ``DANCECAT_MYSQL_FAST_CSV=off``
turns it off by hand (to compare the paths, or to step around a PyMySQL upgrade).
"""

from __future__ import annotations

import inspect
import io
import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

import pymysql
import pymysql.connections
import pymysql.err
import pymysql.protocol
from pymysql.constants import CR

from dancecat_core.columns import Column, ColumnType
from dancecat_core.csvcodec import UTC_OFFSET, float_string

log = logging.getLogger(__name__)

# --- what the fast path relies on in PyMySQL, checked once at import ----------------------

# Connection attributes _RowCopier reads or writes: PyMySQL's own packet reader
# (``_read_packet``) must still use each one, so that reading in its place stays in step.
CONNECTION_STATE = (
    "_rfile",  # the socket file packets are read from
    "_sock",  # for the read timeout
    "_read_timeout",
    "_current_timeout",
    "_next_seq_id",  # the packet sequence number
    "_result",  # the unbuffered result being read
    "encoding",
)
# Methods called, with the parameters they are called with.
METHODS: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (pymysql.connections.Connection, "_force_close", ("self",)),
    (pymysql.connections.Connection, "_read_packet", ("self", "packet_type")),
    (pymysql.connections.MySQLResult, "_check_packet_is_eof", ("self", "packet")),
    (pymysql.protocol.MysqlPacket, "__init__", ("self", "data", "encoding")),
    (pymysql.protocol.MysqlPacket, "raise_for_error", ("self",)),
)
# MySQLResult attributes set when a result ends, as PyMySQL's own EOF handling does.
RESULT_STATE = ("unbuffered_active", "connection", "rows")


def _code_names(cls: type) -> set[str]:
    """Every attribute name the functions of ``cls`` mention."""
    names: set[str] = set()
    for value in vars(cls).values():
        if inspect.isfunction(value):
            names |= set(value.__code__.co_names)
    return names


def check_internals() -> str | None:
    """Why the fast path cannot run on the installed PyMySQL; None when it can."""
    version = getattr(pymysql, "__version__", "?")
    for cls, name, params in METHODS:
        method = getattr(cls, name, None)
        if not callable(method):
            return f"PyMySQL {version} has no {cls.__name__}.{name}"
        try:
            found = tuple(inspect.signature(method).parameters)
        except (TypeError, ValueError):
            return f"PyMySQL {version}: cannot read {cls.__name__}.{name}'s signature"
        if found[: len(params)] != params:
            return f"PyMySQL {version} changed {cls.__name__}.{name}{found}"
    reader = set(pymysql.connections.Connection._read_packet.__code__.co_names)
    reader |= set(pymysql.connections.Connection._read_bytes.__code__.co_names)
    missing = [name for name in CONNECTION_STATE if name not in reader]
    if missing:
        return f"PyMySQL {version}'s packet reader no longer uses {', '.join(missing)}"
    missing = [
        name for name in RESULT_STATE if name not in _code_names(pymysql.connections.MySQLResult)
    ]
    if missing:
        return f"PyMySQL {version}'s MySQLResult no longer has {', '.join(missing)}"
    return None


SWITCH = "DANCECAT_MYSQL_FAST_CSV"


def _disabled_at_import() -> str | None:
    if os.environ.get(SWITCH, "").strip().lower() in ("0", "off", "false", "no"):
        return f"{SWITCH}={os.environ[SWITCH]}"
    return check_internals()


#: Why the fast path is off (None: it is on). Tests set it to force the row path.
disabled: str | None = _disabled_at_import()
_said: set[str] = set()


def usable(connection: Any) -> bool:
    """Whether ``connection`` can be read by the fast path; says why not, once per reason."""
    reason = disabled
    if reason is None:
        missing = [name for name in CONNECTION_STATE if not hasattr(connection, name)]
        if not missing:
            return True
        reason = f"the connection has no {', '.join(missing)}"
    if reason not in _said:
        _said.add(reason)
        log.warning("MySQL fast CSV path off (%s): rows go through the row path", reason)
    return False


# --- the copy -------------------------------------------------------------------------------

# What happens to a column's values; every kind from BOOL on may rewrite the server's text.
SKIP, RAW, TEXT, HEX, BOOL, STAMP, STAMP_FRACTION, TIME_FRACTION, STAMP_UTC, FLOAT = range(10)
RAW_TYPES = {
    ColumnType.INTEGER,
    ColumnType.DECIMAL,
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
# A float the server may spell otherwise than the canonical text: positional below 1e-4
# (MariaDB writes ``0.00001``, the canonical text ``1e-05``). Exponents (``1e15``) and
# positional values of 16 digits and more are caught by ``_FLOAT_SUSPECT`` too; a value it
# lets through is positional between 1e-4 and 1e15, where the server's text is canonical.
_TINY_FLOAT = re.compile(rb"-?0\.0000")


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
        elif column.type == ColumnType.FLOAT:
            kinds.append(FLOAT)
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


def _float_bytes(value: bytes) -> bytes:
    """A float's text as the server sent it, in the canonical spelling (``csvcodec``)."""
    return float_string(value.decode("ascii", errors="replace")).encode()


def _float_suspect(buf: bytes, v: int, size: int) -> bool:
    """Whether the float at ``buf[v : v + size]`` may need another spelling (see
    ``_TINY_FLOAT``); ``_fast_loop`` inlines the same test."""
    return (
        buf.find(b"e", v, v + size) >= 0
        or (size >= 16 and buf.find(b".", v, v + 16) < 0)
        or _TINY_FLOAT.match(buf, v, v + size) is not None
    )


def _canonical_value(value: bytes, kind: int) -> bytes:
    """A value of a kind from BOOL on in the canonical text (the per-field path)."""
    if kind == FLOAT:
        return _float_bytes(value)
    if kind == BOOL:
        return {b"0": b"false", b"1": b"true"}.get(value, value)
    if kind in (STAMP, STAMP_FRACTION, STAMP_UTC) and value[10:11] == b" ":
        value = value[:10] + b"T" + value[11:]
    if kind in (STAMP_FRACTION, TIME_FRACTION, STAMP_UTC) and b"." in value:
        value = value.rstrip(b"0").rstrip(b".")
    return value + _UTC_OFFSET if kind == STAMP_UTC else value


def _mark_value(buf: bytes, o: bytearray, v: int, size: int, kind: int) -> int:
    """Rewrite one value at ``buf[v : v + size]`` in ``o`` as ``_canonical_value`` does;
    return how many markers it wrote, or -1 for a float whose canonical text has another
    length (the row then takes the per-field path). ``_fast_loop`` inlines the same steps.
    """
    marks = 0
    if kind == FLOAT:
        value = buf[v : v + size]
        return 0 if _float_bytes(value) == value else -1
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
    """Mark one row in place, any length encoding; return how many markers it wrote, or -1
    when a value cannot be rewritten in place (the row takes the per-field path)."""
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
                marked = _mark_value(buf, o, p + head, size, kind)
                if marked < 0:
                    return -1
                marks += marked
            marks += head
            first = False
        p = q
    if p != end:
        raise pymysql.err.InternalError("a row packet with too many columns")
    return marks


def _fast_loop(kinds: Sequence[int]) -> Callable[..., tuple[int, int, int, int, bool]]:
    """A loop marking rows whose lengths are all one byte, unrolled for these columns.

    Returns (pos, rows, extra markers, seq, odd): it stops at the first incomplete packet,
    or (odd) at a packet it cannot mark: a long value, a float that may need another
    spelling, an EOF or error packet.
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
    namespace: dict[str, Any] = {
        "ROW_START": bytes([ROW, FILL, FILL, FILL, FILL]),
        "tiny": _TINY_FLOAT.match,
    }
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
    FLOAT: [  # _float_suspect: leave the row to _mark_row, which decides
        "                if (",
        "                    buf.find(b'e', p + 1, p + 1 + size) >= 0",
        "                    or (size >= 16 and buf.find(b'.', p + 1, p + 17) < 0)",
        "                    or ((buf[p + 1] == 0x30 or buf[p + 1] == 0x2D)",
        "                        and tiny(buf, p + 1, p + 1 + size) is not None)",
        "                ):",
        "                    return pos, rows, extra, seq, True",
    ],
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

    def _block(self, rest: bytes) -> bytes | None:
        """The next block of row packets, after ``rest``; None once the result has ended
        (and ``_finish`` is done). A row sent as several packets (over 16 MiB) is written
        here, field by field, as both paths would."""
        while True:
            buf, payload = self._refill(rest)
            if payload is None:
                return buf
            if self._special(payload):
                self._finish(buf)
                return None
            self.sink.write(_line(payload, 0, len(payload), self.kinds) + b"\n")
            self.rows += 1
            rest = buf

    def copy(self) -> int:
        if HEX in self.kinds or STAMP_UTC in self.kinds:
            return self._copy_lines()
        return self._copy_marked()

    # The per-field path: binary columns or timestamps with a zone kept.
    def _copy_lines(self) -> int:
        kinds = self.kinds
        buf = b""
        pos = 0
        while True:
            block = self._block(buf[pos:])
            if block is None:
                return self.rows
            buf, pos, n = block, 0, len(block)
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
            block = self._block(buf[pos:])
            if block is None:
                return self.rows
            buf, pos, n = block, 0, len(block)
            o = bytearray(buf)
            start = rows = marks = 0  # the rows marked in o[start:pos], not written yet
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
                    self._flush_marked(buf, o, start, pos, rows, marks)
                    if self._special(buf[pos + 4 : end]):
                        return self._finish(buf[end:])
                    start, rows, marks = pos, 0, 0  # a row that only looked like an EOF
                marked = _mark_row(buf, o, pos, end, kinds)
                if marked < 0:  # a value changes length: this row field by field
                    self._flush_marked(buf, o, start, pos, rows, marks)
                    sink.write(_utf8(_line(buf, pos + 4, end, kinds)) + b"\n")
                    self.rows += 1
                    start, rows, marks = end, 0, 0
                else:
                    marks += marked
                    rows += 1
                pos = end
            self._flush_marked(buf, o, start, pos, rows, marks)

    def _flush_marked(
        self, buf: bytes, o: bytearray, start: int, pos: int, rows: int, marks: int
    ) -> None:
        """Write the ``rows`` rows marked in ``o[start:pos]`` as CSV."""
        if not rows:
            return
        region = o[start:pos] if start or pos < len(o) else o
        if len(region) - len(region.translate(None, MARKERS)) != marks:
            # A value held bytes that valid UTF-8 never does: take the per-field path.
            data = self._lines_of(buf, start, pos)
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

    def _lines_of(self, buf: bytes, pos: int, stop: int) -> bytes:
        lines = []
        while pos < stop:
            end = pos + 4 + (buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16)
            lines.append(_line(buf, pos + 4, end, self.kinds))
            pos = end
        return _utf8(b"\n".join(lines) + b"\n")


def copy_rows(
    connection: pymysql.Connection,
    columns: Sequence[Column],
    keep: Sequence[int],
    fractional: Sequence[bool],
    sink: BinaryIO,
) -> int:
    """Write the rest of ``connection``'s unbuffered result as canonical CSV to ``sink``:
    the ``keep`` columns, in order; ``fractional``: each column's ``decimals`` is not 0.
    Returns the rows written. Callers first ask ``usable(connection)``."""
    return _RowCopier(connection, _csv_kinds(columns, keep, fractional), sink).copy()
