"""Keeping secrets out of every output: columns removed, values masked, messages cleaned.

Three layers, all fed by plugins (``dancecat_scrub_columns``, ``dancecat_value_patterns``):

1. Columns whose name, or source table column, looks like a credential are never read
   into the result at all (``ScrubPlan``).
2. Values that *are* credentials, whatever their column is called (password hashes, PEM
   private keys, JWTs, well-known API key shapes) are masked in the byte stream on its way
   into the result store (``ValueMasker``), so every export, download and email inherits it.
3. Error messages lose quoted values, the connection's password and credential shapes
   before they are stored or shown (``dancecat_core.error_text.clean_error``).
"""

from __future__ import annotations

import bisect
import functools
import io
import re
import re._parser as sre_parse  # the stdlib's regex parser: how far a pattern can look
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, BinaryIO

import attrs

from dancecat_core.bytesearch import contains
from dancecat_core.columns import Column
from dancecat_core.errors import PluginError

MASK = "[masked]"
# A pattern that can look further than this is refused: the masker holds this much back.
LONGEST_REACH = 256 * 1024


@attrs.frozen
class ColumnRemoval:
    """A scrubber's verdict on one column: remove it, and why (shown to the user)."""

    index: int
    reason: str


@attrs.frozen
class Reach:
    """How far around a match's start a pattern may read: ``behind`` bytes before it
    (look-behind, ``\\b``) and ``ahead`` bytes from it (the match, look-ahead, ``\\b``)."""

    behind: int
    ahead: int


def _assertions(items: Any) -> list[tuple[int, int]]:
    """Every look-around in a parsed pattern: (direction, widest text it reads)."""
    found: list[tuple[int, int]] = []
    for op, av in items:
        if op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            direction, inner = av
            found.append((direction, inner.getwidth()[1]))
            found.extend(_assertions(inner))
        elif op is sre_parse.BRANCH:
            for branch in av[1]:
                found.extend(_assertions(branch))
        elif op is sre_parse.SUBPATTERN:
            found.extend(_assertions(av[-1]))
        elif op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
            found.extend(_assertions(av[2]))
        elif op is sre_parse.GROUPREF_EXISTS:
            found.extend(_assertions(av[1]))
            if av[2] is not None:
                found.extend(_assertions(av[2]))
    return found


def pattern_reach(name: str, pattern: re.Pattern[bytes]) -> Reach:
    """The text a match of ``pattern`` can depend on, from the regex itself.

    A streaming masker is only exact if every match is decided by a bounded window around
    its start; a pattern that can read unboundedly far (``+``, ``*``, ``{n,}``) cannot be
    streamed and is refused with a ``PluginError`` naming it.
    """
    parsed = sre_parse.parse(pattern.pattern.decode("latin-1"), pattern.flags)
    longest = parsed.getwidth()[1]
    looks = _assertions(parsed)
    behind = 1 + max((width for direction, width in looks if direction < 0), default=0)
    ahead = 1 + longest + max((width for direction, width in looks if direction > 0), default=0)
    if ahead + behind > LONGEST_REACH:
        raise PluginError(
            f"value pattern {name!r} can match unboundedly long text; "
            f"give every repeat an upper bound (at most {LONGEST_REACH} bytes in all)"
        )
    return Reach(behind=behind, ahead=ahead)


@functools.lru_cache(maxsize=4096)
def _is_name(name: re.Pattern[bytes], reversed_name: bytes) -> bool:
    """Whether a name read backwards is one ``name`` accepts. Rows repeat their field
    names, so the verdict is cached (bounded: a table of random keys cannot grow it)."""
    return name.fullmatch(reversed_name[::-1]) is not None


@attrs.frozen
class NameBefore:
    """The name a value is written under (``password`` in ``password=...``), checked when
    the value has matched.

    ``backwards`` reads the text before the value backwards (so it needs no search: a
    ``match`` at the value's start) and captures the name, reversed, as group 1; the name
    must fully match ``name``. A value pattern can then start at its ``=`` or ``:``, which
    the regex engine finds fast, instead of trying a name at every byte of the text.

    ``words`` are lower-case literals one of which every accepted name holds, in any
    letter case (``pass``, ``token``); a value with none of them in the ``lookback`` bytes
    before it cannot be under a credential's name, so the masker skips the text between
    them without a Python call per field.
    """

    backwards: re.Pattern[bytes]
    name: re.Pattern[bytes]
    words: tuple[bytes, ...]
    lookback: int = attrs.field(init=False)

    @lookback.default
    def _lookback(self) -> int:
        return pattern_reach("name before", self.backwards).ahead

    def matches(self, text: bytes, at: int) -> bool:
        found = self.backwards.match(text[max(0, at - self.lookback) : at][::-1])
        return found is not None and _is_name(self.name, found.group(1))

    def next_possible(self, word_starts: list[int], at: int) -> int | None:
        """The first offset from ``at`` on where a value may follow a credential's name
        (``word_starts``: where ``words`` are, in order), or None if there is none."""
        index = bisect.bisect_left(word_starts, at - self.lookback)
        if index == len(word_starts):
            return None
        return max(at, word_starts[index] + 1)


@attrs.frozen
class ValuePattern:
    """A credential shape to mask wherever it appears.

    ``triggers`` are literal byte strings one of which every match, with the text it reads
    around it, contains; a chunk with none of them skips the regex entirely (``bytes in``
    runs at memory speed, the regex does not). The pattern must not match ``"``, ``,`` or
    line ends outside what the shape itself contains, so a mask can never break the CSV
    around it. A pattern with a named group ``secret`` masks only that group. Every repeat
    needs an upper bound (``reach``). With ``named``, a match counts only if the name
    before it is a credential's (``NameBefore``).
    """

    name: str
    pattern: re.Pattern[bytes]
    triggers: tuple[bytes, ...]
    named: NameBefore | None = None
    reach: Reach = attrs.field(init=False)

    @reach.default
    def _reach(self) -> Reach:
        reach = pattern_reach(self.name, self.pattern)
        if self.named is None:
            return reach
        return Reach(behind=max(reach.behind, self.named.lookback + 1), ahead=reach.ahead)


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

    @property
    def untraced(self) -> list[str]:
        """Kept columns whose provenance could not be followed (a user-defined function):
        only the value masks stand between them and a secret, and the note says so."""
        return [c.name for c in self.kept_columns if not c.traced]

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


@functools.cache
def _rarest_first(trigger: bytes) -> tuple[bytes, ...]:
    # Cached: every masker made (one per error text a page shows) asks for the same few
    # dozen triggers; sorting them each time was most of a Jobs screen's masking.
    return tuple(bytes([b]) for b in sorted(set(trigger), key=lambda b: (_rarity(b), b)))


_Prepared = tuple[ValuePattern, int | str, list[tuple[bytes, tuple[bytes, ...]]]]


class _Triggers:
    """Which triggers a piece of text holds, each byte and word looked for at most once."""

    def __init__(self, text: bytes):
        self._text = text
        self._bytes: dict[bytes, bool] = {}
        self._words: dict[bytes, bool] = {}
        self._lower: bytes | None = None
        self._starts: dict[tuple[bytes, ...], list[int]] = {}

    def starts(self, words: tuple[bytes, ...]) -> list[int]:
        """Where any of ``words`` starts in the text, in any letter case, in order (one
        search per feed for all the patterns that share them)."""
        found = self._starts.get(words)
        if found is None:
            if self._lower is None:
                self._lower = self._text.lower()
            found = []
            for word in words:
                at = self._lower.find(word)
                while at >= 0:
                    found.append(at)
                    at = self._lower.find(word, at + 1)
            found.sort()
            self._starts[words] = found
        return found

    def any_of(self, triggers: list[tuple[bytes, tuple[bytes, ...]]]) -> bool:
        return any(self._possible(needed) and self._has(trigger) for trigger, needed in triggers)

    def _has(self, trigger: bytes) -> bool:
        seen = self._words.get(trigger)
        if seen is None:
            seen = self._words[trigger] = contains(self._text, trigger)
        return seen

    def _possible(self, needed: tuple[bytes, ...]) -> bool:
        # One-byte searches are memchr (many GB/s) and stop at the first hit; test a
        # trigger's bytes rarest first before searching for the whole trigger.
        for byte in needed:
            seen = self._bytes.get(byte)
            if seen is None:
                seen = self._bytes[byte] = byte in self._text
            if not seen:
                return False
        return True


class _Stream:
    """One masking pass over a byte stream, fed in pieces; its output equals masking the
    whole text at once.

    Masking the whole text means: every pattern's ``finditer`` matches (each pattern scans
    on from where its last match ended), all sorted by where their masked part starts,
    and each masked unless it starts inside one masked before it. Fed in pieces, a match
    is taken only once its start lies ``ahead`` bytes before the end of what arrived, so
    the regex saw everything it could read (``Reach``); each pattern resumes where it
    stopped, with ``behind`` bytes kept before that for look-behinds; text is released up
    to that point, or past the end of a mask reaching further; masks found for text not yet
    released wait in ``pending``.
    """

    def __init__(self, prepared: list[_Prepared], ahead: int, behind: int, counts: Counter[str]):
        self._prepared = prepared
        self._ahead = ahead
        self._behind = behind
        self._counts = counts
        self._held = b""  # the text from absolute offset ``_base`` on
        self._base = 0
        self._released = 0  # absolute offset up to which output was produced
        self._covered = 0  # absolute end of the last mask
        self._resume = [0] * len(prepared)
        self._pending: list[tuple[int, int, str]] = []

    def feed(self, data: bytes, final: bool) -> bytes:
        """Take ``data``; return the masked text that is now decided (all of it if final)."""
        held = self._held + data if self._held else data
        base = self._base
        end = base + len(held)
        cut = end if final else end - self._ahead
        if cut <= self._released:
            self._held = held
            return b""
        found = _Triggers(held)
        for index, (pattern, part, triggers) in enumerate(self._prepared):
            resume = self._resume[index]
            if resume >= cut:
                continue
            last = resume
            # Every match starting before ``cut`` lies whole in ``held``, so a trigger
            # missing from ``held`` means no match starts there.
            if found.any_of(triggers):
                named = pattern.named
                search = pattern.pattern.search
                at = resume - base
                words = found.starts(named.words) if named is not None else []
                while (match := search(held, at)) and match.start() + base < cut:
                    if named is not None:
                        # A match with no credential word before it is passed over, and
                        # so is the text up to the next word, without reading its name;
                        # one whose name is not a credential's gives way at its first
                        # byte: the next ``=`` may be inside what it spanned.
                        begin = match.start()
                        possible = named.next_possible(words, begin)
                        if possible is None:
                            at = cut - base
                            break
                        if possible > begin or not named.matches(held, begin):
                            at = max(possible, begin + 1)
                            continue
                    at = max(match.end(), match.start() + 1)
                    start, stop = match.start(part) + base, match.end(part) + base
                    if start < stop:
                        self._pending.append((start, stop, pattern.name))
                last = at + base
            self._resume[index] = max(last, cut)
        pieces = []
        position = self._released
        waiting = []
        # At one start the longest mask wins.
        for start, stop, name in sorted(self._pending, key=lambda s: (s[0], -s[1], s[2])):
            if start < self._covered:
                continue  # inside an earlier mask
            if start >= cut:
                waiting.append((start, stop, name))
                continue
            pieces.append(held[position - base : start - base])
            pieces.append(MASK.encode())
            self._counts[name] += 1
            self._covered = position = stop
        self._pending = waiting
        release = max(cut, position)
        pieces.append(held[position - base : release - base])
        self._released = release
        keep = max(base, cut - self._behind)
        self._held = held[keep - base :]
        self._base = keep
        return b"".join(pieces)


# Prepared patterns by the tuple they came from (a runtime's, for its whole life): every
# run builds a masker, and preparing 40 patterns again was ~0.1 ms of a trivial run. A
# tuple of frozen patterns cannot change, so an entry (which holds its tuple, whose id
# therefore stays its own) cannot go stale; any other sequence is prepared every time.
_PREPARED_KEPT = 8
_Ready = tuple[list[_Prepared], int, int]
_prepared_by_tuple: dict[int, tuple[tuple[ValuePattern, ...], _Ready]] = {}


def _prepare(patterns: Sequence[ValuePattern]) -> _Ready:
    """The patterns as ``_Stream`` reads them (never changed by it), and the furthest any
    reads ahead and behind (``Reach``)."""
    kept = isinstance(patterns, tuple)
    if kept:
        entry = _prepared_by_tuple.get(id(patterns))
        if entry is not None and entry[0] is patterns:
            return entry[1]
    prepared: list[_Prepared] = [
        (
            pattern,
            # A pattern with a ``secret`` group masks only that part (a JSON field's
            # value, not its name); others mask the whole match.
            "secret" if "secret" in pattern.pattern.groupindex else 0,
            [(trigger, _rarest_first(trigger)) for trigger in pattern.triggers],
        )
        for pattern in patterns
    ]
    answer = (
        prepared,
        max((p.reach.ahead for p in patterns), default=0),
        max((p.reach.behind for p in patterns), default=0),
    )
    if kept:
        if len(_prepared_by_tuple) >= _PREPARED_KEPT:
            _prepared_by_tuple.clear()
        _prepared_by_tuple[id(patterns)] = (patterns, answer)
    return answer


class ValueMasker:
    """A byte-stream filter that masks credential-shaped values on their way to ``sink``.

    Its output is exactly that of masking the whole stream at once, wherever the stream is
    cut into writes or blocks (``_Stream``): it holds back ``window`` bytes, the furthest
    any pattern can read (``Reach``), until more arrive or the stream ends. ``counts`` says
    how many values of each kind were masked.
    """

    def __init__(self, sink: BinaryIO, patterns: Sequence[ValuePattern], block: int = 1 << 20):
        self._sink = sink
        self._prepared, self.window, self._behind = _prepare(patterns)
        self._block = block
        self._chunks: list[bytes] = []
        self._size = 0
        self.counts: Counter[str] = Counter()
        self._stream = self._new_stream()
        # Drivers may write one row at a time (psycopg2's COPY does: a million calls for a
        # million rows). A C-level buffer in front takes those at C speed; only whole
        # blocks reach Python (``_accept``).
        self._buffer = _DroppingBuffer(_Raw(self._accept), buffer_size=block)
        self.write = self._buffer.write  # type: ignore[method-assign]

    def _new_stream(self) -> _Stream:
        return _Stream(self._prepared, self.window, self._behind, self.counts)

    def write(self, data: bytes) -> int:
        """Accept bytes; they reach the sink in blocks of about ``block`` bytes."""
        return self._buffer.write(data)  # replaced by the buffer's own write in __init__

    def _accept(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._size += len(data)
        if self._size >= self._block + self.window:
            if self._prepared:
                out = self._stream.feed(b"".join(self._chunks), final=False)
            else:
                out = b"".join(self._chunks)
            self._sink.write(out)
            self._chunks, self._size = [], 0
        return len(data)

    def flush_all(self) -> None:
        """Mask and write everything held back; call once at the end of the stream."""
        self._buffer.flush()
        self._sink.write(self._stream.feed(b"".join(self._chunks), final=True))
        self._chunks, self._size = [], 0

    def mask_bytes(self, data: bytes) -> bytes:
        """Mask one whole text, apart from the stream (counts are shared)."""
        return self._new_stream().feed(data, final=True)

    def mask_text(self, text: str) -> str:
        """Mask one value (previews and messages, which never pass through the stream)."""
        return self.mask_bytes(text.encode("utf-8")).decode("utf-8")


def mask_value(value: Any, masker: ValueMasker) -> Any:
    return masker.mask_text(value) if isinstance(value, str) else value
