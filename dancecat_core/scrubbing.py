"""Keeping secrets out of every output: columns removed, values masked, messages cleaned.

Three layers, all fed by plugins (``dancecat_scrub_columns``, ``dancecat_value_patterns``):

1. Columns whose name, or source table column, looks like a credential are never read
   into the result at all (``ScrubPlan``).
2. Values that *are* credentials, whatever their column is called (password hashes, PEM
   private keys, JWTs, well-known API key shapes) are masked in the byte stream on its way
   into the result store (``ValueMasker``), so every export, download and email inherits it.
3. Error messages lose the connection's password and any ``user:password@`` in URLs
   before they are stored or shown (``scrub_message``).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, BinaryIO

import attrs

from dancecat_core.columns import Column

MASK = "[masked]"


@attrs.frozen
class ColumnRemoval:
    """A scrubber's verdict on one column: remove it, and why (shown to the user)."""

    index: int
    reason: str


@attrs.frozen
class ValuePattern:
    """A credential shape to mask wherever it appears.

    ``triggers`` are literal byte strings one of which every match contains; a chunk with
    none of them skips the regex entirely (``bytes in`` runs at memory speed, the regex
    does not). The pattern must not match ``"``, ``,`` or line ends outside what the shape
    itself contains, so a mask can never break the CSV around it. A pattern with a named
    group ``secret`` masks only that group.
    """

    name: str
    pattern: re.Pattern[bytes]
    triggers: tuple[bytes, ...]


@attrs.frozen
class ScrubPlan:
    """Which columns a result keeps, and which it lost and why."""

    columns: tuple[Column, ...]
    removed: tuple[tuple[int, str], ...]  # (column index, reason)

    @property
    def keep(self) -> list[int]:
        gone = {index for index, _ in self.removed}
        return [i for i in range(len(self.columns)) if i not in gone]

    @property
    def kept_columns(self) -> list[Column]:
        return [self.columns[i] for i in self.keep]

    def describe(self) -> list[dict[str, str]]:
        """The removed columns as shown to users and kept in the result's metadata."""
        return [{"column": self.columns[i].name, "reason": reason} for i, reason in self.removed]

    @classmethod
    def build(cls, columns: Sequence[Column], removals: Iterable[ColumnRemoval]) -> ScrubPlan:
        reasons: dict[int, str] = {}
        for removal in removals:
            reasons.setdefault(removal.index, removal.reason)
        return cls(columns=tuple(columns), removed=tuple(sorted(reasons.items())))


class _Raw(io.RawIOBase):
    """The raw end of ``ValueMasker``'s buffer: hands each full buffer to the masker."""

    def __init__(self, accept: Callable[[bytes], int]):
        self._accept = accept

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._accept(data)


class _DroppingBuffer(io.BufferedWriter):
    """A buffer that, if abandoned (a failed run), is dropped rather than flushed on GC."""

    def __del__(self) -> None:
        pass


def _rarity(byte: int) -> int:
    """How common a byte is in result text, roughly: 0 rare (``$ _ / |``), 2 common."""
    char = chr(byte)
    if char.islower() or char.isdigit() or char in ' ,.-:"\n':
        return 2
    return 1 if char.isupper() else 0


def _rarest_first(trigger: bytes) -> tuple[bytes, ...]:
    return tuple(bytes([b]) for b in sorted(set(trigger), key=lambda b: (_rarity(b), b)))


class ValueMasker:
    """A byte-stream filter that masks credential-shaped values on their way to ``sink``.

    Matches may straddle two writes, so the last ``overlap`` bytes are held back until more
    arrive or the stream closes; a match longer than that (a PEM key over 64 KiB) is not
    masked. ``counts`` says how many values of each kind were masked.
    """

    def __init__(
        self,
        sink: BinaryIO,
        patterns: Sequence[ValuePattern],
        overlap: int = 65536,
        block: int = 1 << 20,
    ):
        self._sink = sink
        self._patterns = list(patterns)
        self._prepared = [
            (pattern, [(trigger, _rarest_first(trigger)) for trigger in pattern.triggers])
            for pattern in self._patterns
        ]
        self._overlap = overlap
        self._block = block
        self._chunks: list[bytes] = []
        self._size = 0
        self.counts: Counter[str] = Counter()
        # Drivers may write one row at a time (psycopg2's COPY does: a million calls for a
        # million rows). A C-level buffer in front takes those at C speed; only whole
        # blocks reach Python (``_accept``).
        self._buffer = _DroppingBuffer(_Raw(self._accept), buffer_size=block)
        self.write = self._buffer.write  # type: ignore[method-assign]

    def write(self, data: bytes) -> int:
        """Accept bytes; they reach the sink in blocks of about ``block`` bytes."""
        return self._buffer.write(data)  # replaced by the buffer's own write in __init__

    def _accept(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._size += len(data)
        if self._size >= self._block + self._overlap:
            buffer = b"".join(self._chunks)
            if self._patterns:
                out, rest = self._mask(buffer, len(buffer) - self._overlap)
            else:
                out, rest = buffer, b""
            self._sink.write(out)
            self._chunks = [rest] if rest else []
            self._size = len(rest)
        return len(data)

    def _mask(self, buffer: bytes, cut: int) -> tuple[bytes, bytes]:
        """Mask ``buffer`` up to ``cut`` (moved past any match that straddles it)."""
        spans: list[tuple[int, int, str]] = []
        # A trigger can only be in the buffer if each of its bytes is. One-byte searches are
        # memchr (many GB/s) and stop at the first hit; multi-byte ones run at a fraction of
        # that. So test a trigger's bytes rarest first, remember the answers for the block,
        # and search for the whole trigger only when every byte of it occurs.
        present: dict[bytes, bool] = {}

        def possible(needed: tuple[bytes, ...]) -> bool:
            for byte in needed:
                seen = present.get(byte)
                if seen is None:
                    seen = present[byte] = byte in buffer
                if not seen:
                    return False
            return True

        for pattern, triggers in self._prepared:
            if not any(possible(needed) and trigger in buffer for trigger, needed in triggers):
                continue
            # A pattern with a ``secret`` group masks only that part (a JSON field's value,
            # not its name); others mask the whole match.
            part = "secret" if "secret" in pattern.pattern.groupindex else 0
            for match in pattern.pattern.finditer(buffer):
                if match.start(part) < match.end(part):
                    spans.append((match.start(part), match.end(part), pattern.name))
        if not spans:
            return buffer[:cut], buffer[cut:]
        spans.sort()
        pieces = []
        position = 0
        for start, end, name in spans:
            if start < position:
                continue  # overlapped by an earlier match
            if start >= cut:
                break
            pieces.append(buffer[position:start])
            pieces.append(MASK.encode())
            self.counts[name] += 1
            position = end
        cut = max(cut, position)
        pieces.append(buffer[position:cut])
        return b"".join(pieces), buffer[cut:]

    def flush_all(self) -> None:
        """Mask and write everything held back; call once at the end of the stream."""
        self._buffer.flush()
        if self._chunks:
            buffer = b"".join(self._chunks)
            out, rest = self._mask(buffer, len(buffer))
            self._sink.write(out + rest)
            self._chunks, self._size = [], 0

    def mask_text(self, text: str) -> str:
        """Mask one value (previews, which never pass through the byte stream)."""
        data = text.encode("utf-8")
        out, rest = self._mask(data, len(data))
        return (out + rest).decode("utf-8")


def mask_value(value: Any, masker: ValueMasker) -> Any:
    return masker.mask_text(value) if isinstance(value, str) else value


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]*@")
_PASSWORD_ASSIGNMENT = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token)\b(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)"
)


def scrub_message(message: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets, URL credentials and ``password=...`` pairs from a message."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        message = message.replace(secret, "*****")
    message = _URL_CREDENTIALS.sub(r"\g<scheme>*****:*****@", message)
    return _PASSWORD_ASSIGNMENT.sub(r"\1\2*****", message)
