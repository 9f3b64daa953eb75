"""Where results live: the store interface and the reader exporters work from.

A store keeps named blobs. A run writes its canonical CSV under the tracker's result key;
exporters may cache what they render (``<key>.xlsx``) beside it. Writes are atomic: a blob
is visible only after ``commit()``, so a crash or a full disk never leaves half a result
that could be served. Metadata (columns, types, what was scrubbed) lives on the tracker
row in the app database, not in the store.
"""

from __future__ import annotations

import abc
import datetime as dt
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import attrs

from dancecat_core.columns import Column
from dancecat_core.csvcodec import TextRow, read_text_rows, read_typed_rows
from dancecat_core.settings import Settings

if TYPE_CHECKING:  # the ORM is not imported by a command that only copies a stored file
    from sqlalchemy.orm import Session, sessionmaker


class BlobWriter(abc.ABC):
    """A blob being written; invisible to readers until ``commit``."""

    @abc.abstractmethod
    def write(self, data: bytes) -> int: ...

    @abc.abstractmethod
    def commit(self) -> int:
        """Make the blob visible; return its size in bytes."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Throw the partial blob away. Safe to call after a failed write."""


class ResultStore(abc.ABC):
    """A place for result blobs; registered by ``dancecat_register_result_stores``."""

    name: ClassVar[str]

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]):
        self.settings = settings
        self.session_factory = session_factory

    @abc.abstractmethod
    def create(self, key: str) -> BlobWriter: ...

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable binary stream; raises ``StoreError`` if the blob does not exist."""

    def open_range(self, key: str, start: int, length: int) -> BinaryIO:
        """``length`` bytes of the blob from byte ``start`` (a download's HTTP Range);
        the caller has checked both against ``size``. This default seeks, or reads past
        the first bytes when the stream cannot; a store that fetches a range itself
        overrides it."""
        handle = self.open(key)
        try:
            if handle.seekable():
                handle.seek(start)
            else:
                skip(handle, start)
        except BaseException:
            handle.close()
            raise
        return io.BufferedReader(Limited(handle, length))  # type: ignore[arg-type]

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def size(self, key: str) -> int | None: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the blob if it exists (idempotent)."""

    def drop_abandoned(self, before: dt.datetime) -> int:
        """Throw away partial blobs begun before ``before`` whose writer died without
        ``abort`` (a killed worker); return how many. Called by the expiry sweep. This
        default has none to drop."""
        return 0

    @classmethod
    def local_path(cls, settings: Settings, key: str) -> Path | None:
        """The blob as a file on this machine, found from the settings alone (no store
        built, no app database opened), for a kernel copy (``dancecat export -o``); None
        when the store keeps no local files (the default) or the blob is not there."""
        return None


def skip(handle: BinaryIO, count: int) -> None:
    """Read past ``count`` bytes of ``handle``, a bounded piece at a time."""
    while count > 0:
        piece = handle.read(min(count, 1 << 20))
        if not piece:
            return
        count -= len(piece)


class Limited(io.RawIOBase):
    """The next ``length`` bytes of a stream, then its end; closing closes the stream."""

    def __init__(self, inner: BinaryIO, length: int):
        self._inner = inner
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if self._left <= 0:
            return 0
        data = self._inner.read(min(len(target), self._left))
        target[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


@attrs.frozen
class ByteRange:
    """One byte range as a client asked for it (HTTP ``Range: bytes=…``): ``first-last``,
    ``first-`` (``last`` None) or the final ``last`` bytes (``first`` None)."""

    first: int | None
    last: int | None

    def within(self, size: int) -> tuple[int, int] | None:
        """``(start, length)`` of this range in a blob of ``size`` bytes, or None when
        none of it is there (HTTP 416)."""
        if self.first is None:
            length = min(self.last or 0, size)
            return (size - length, length) if length else None
        if self.first >= size:
            return None
        stop = size if self.last is None else min(self.last + 1, size)
        return self.first, stop - self.first


@attrs.frozen
class ResultMeta:
    """What is known about a stored result; kept as JSON on its tracker."""

    columns: tuple[Column, ...]
    row_count: int
    removed: tuple[dict[str, str], ...] = ()
    masked: dict[str, int] = attrs.field(factory=dict)
    untraced: tuple[str, ...] = ()  # kept columns whose source could not be followed

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "row_count": self.row_count,
            "removed": list(self.removed),
            "masked": dict(self.masked),
            "untraced": list(self.untraced),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultMeta:
        return cls(
            columns=tuple(Column.from_dict(c) for c in data["columns"]),
            row_count=data["row_count"],
            removed=tuple(data.get("removed", ())),
            masked=dict(data.get("masked", {})),
            untraced=tuple(data.get("untraced", ())),
        )

    @property
    def scrub_note(self) -> str:
        """One sentence for users on what scrubbing took out, or '' if nothing."""
        parts = []
        if self.removed:
            names = ", ".join(r["column"] for r in self.removed)
            parts.append(f"removed column(s) {names} (they look like credentials)")
        if self.masked:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.masked.items()))
            parts.append(f"masked {kinds} value(s)")
        note = ("DanceCat " + " and ".join(parts) + ".") if parts else ""
        return " ".join(filter(None, [note, untraced_note(self.untraced)]))


def untraced_note(columns: Sequence[str]) -> str:
    """The sentence for kept columns whose source tables could not be followed."""
    if not columns:
        return ""
    return (
        f"DanceCat could not trace which table columns {', '.join(columns)} come from"
        " (a user-defined function, a table the catalog does not list, or text it could not"
        " parse); their values were masked only by the credential shapes."
    )


@attrs.frozen
class StoredResult:
    """A finished run's result: its store, key and metadata. Exporters read from this."""

    store: ResultStore
    key: str
    meta: ResultMeta
    tracker_id: int

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.meta.columns

    def open_raw(self) -> BinaryIO:
        """The canonical CSV bytes, header included."""
        return self.store.open(self.key)

    def text_rows(self) -> Iterator[TextRow]:
        with self.open_raw() as raw:
            yield from read_text_rows(raw)

    def typed_rows(self) -> Iterator[list[Any]]:
        with self.open_raw() as raw:
            yield from read_typed_rows(raw, self.meta.columns)
