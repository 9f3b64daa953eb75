"""Where results live: the store interface and the reader exporters work from.

A store keeps named blobs. A run writes its canonical CSV under the tracker's result key;
exporters may cache what they render (``<key>.xlsx``) beside it. Writes are atomic: a blob
is visible only after ``commit()``, so a crash or a full disk never leaves half a result
that could be served. Metadata (columns, types, what was scrubbed) lives on the tracker
row in the app database, not in the store.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, ClassVar

import attrs
from sqlalchemy.orm import Session, sessionmaker

from dancecat_core.columns import Column
from dancecat_core.csvcodec import TextRow, read_text_rows, read_typed_rows
from dancecat_core.settings import Settings


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

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def size(self, key: str) -> int | None: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the blob if it exists (idempotent)."""


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
