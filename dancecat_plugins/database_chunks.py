"""The database result store's SQL (``dancecat_plugins.database_store``): chunks written
under a temporary key and renamed on commit, read back one at a time. A module of its own
so that registering the store imports neither SQLAlchemy nor the models; they load when a
result is first written or read here.
"""

from __future__ import annotations

import io
import uuid
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dancecat_core.db import session_scope, with_app_db
from dancecat_core.errors import StoreError
from dancecat_core.models import ResultChunk
from dancecat_core.resultstore import BlobWriter, Limited

if TYPE_CHECKING:
    from dancecat_plugins.database_store import DatabaseResultStore

CHUNK_BYTES = 1 << 20


class ChunkWriter(BlobWriter):
    def __init__(self, store: DatabaseResultStore, key: str):
        self._store = store
        self._key = key
        self._temp = f".partial-{uuid.uuid4().hex}"
        self._buffer = bytearray()
        self._seq = 0
        self._size = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= CHUNK_BYTES:
            self._flush(bytes(self._buffer[:CHUNK_BYTES]))
            del self._buffer[:CHUNK_BYTES]
        return len(data)

    def _flush(self, chunk: bytes) -> None:
        seq = self._seq

        def attempt() -> None:
            with session_scope(self._store.session_factory) as session:
                # A repeat whose earlier attempt committed (the answer was lost) replaces it.
                session.execute(
                    delete(ResultChunk).where(ResultChunk.key == self._temp, ResultChunk.seq == seq)
                )
                session.add(ResultChunk(key=self._temp, seq=seq, data=chunk))

        with_app_db(f"result {self._key}: chunk {seq}", attempt)
        self._seq += 1
        self._size += len(chunk)

    def commit(self) -> int:
        if self._buffer or self._seq == 0:
            self._flush(bytes(self._buffer))
            self._buffer.clear()

        def publish() -> None:
            with session_scope(self._store.session_factory) as session:
                if not _count(session, self._temp):
                    return  # an earlier attempt moved them; its answer was lost
                session.execute(delete(ResultChunk).where(ResultChunk.key == self._key))
                session.execute(
                    update(ResultChunk).where(ResultChunk.key == self._temp).values(key=self._key)
                )

        with_app_db(f"result {self._key}: commit", publish)
        return self._size

    def abort(self) -> None:
        self._buffer.clear()
        with session_scope(self._store.session_factory) as session:
            session.execute(delete(ResultChunk).where(ResultChunk.key == self._temp))


class _ChunkReader(io.RawIOBase):
    """Reads a blob chunk by chunk: one chunk in memory at a time."""

    def __init__(self, store: DatabaseResultStore, key: str, chunks: int, start: int = 0):
        self._store = store
        self._key = key
        self._chunks = chunks
        # Every chunk but the last holds CHUNK_BYTES: a range starts at its own chunk.
        self._seq, self._skip = divmod(start, CHUNK_BYTES)
        self._current = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def _chunk(self) -> bytes:
        with session_scope(self._store.session_factory) as session:
            return (
                session.scalar(
                    select(ResultChunk.data).where(
                        ResultChunk.key == self._key, ResultChunk.seq == self._seq
                    )
                )
                or b""
            )

    def readinto(self, target) -> int:
        while self._offset >= len(self._current):
            if self._seq >= self._chunks:
                return 0
            self._current = with_app_db(f"result {self._key}: chunk {self._seq}", self._chunk)
            self._seq += 1
            self._offset, self._skip = self._skip, 0
        count = min(len(target), len(self._current) - self._offset)
        target[:count] = self._current[self._offset : self._offset + count]
        self._offset += count
        return count


def chunk_count(store: DatabaseResultStore, key: str) -> int:
    def attempt() -> int:
        with session_scope(store.session_factory) as session:
            return _count(session, key)

    return with_app_db(f"result {key}: size", attempt)


def open_blob(store: DatabaseResultStore, key: str) -> BinaryIO:
    chunks = chunk_count(store, key)
    if not chunks:
        raise StoreError(f"result {key} is not in the store")
    return io.BufferedReader(_ChunkReader(store, key, chunks), buffer_size=CHUNK_BYTES)


def open_range(store: DatabaseResultStore, key: str, start: int, length: int) -> BinaryIO:
    chunks = chunk_count(store, key)
    if not chunks:
        raise StoreError(f"result {key} is not in the store")
    reader = _ChunkReader(store, key, chunks, start)
    return io.BufferedReader(Limited(reader, length), buffer_size=CHUNK_BYTES)  # type: ignore[arg-type]


def size(store: DatabaseResultStore, key: str) -> int | None:
    with session_scope(store.session_factory) as session:
        total = session.scalar(
            select(func.sum(func.length(ResultChunk.data))).where(ResultChunk.key == key)
        )
    return int(total) if total is not None else None


def delete_blob(store: DatabaseResultStore, key: str) -> None:
    with session_scope(store.session_factory) as session:
        session.execute(delete(ResultChunk).where(ResultChunk.key == key))


def _count(session: Session, key: str) -> int:
    return (
        session.scalar(select(func.count()).select_from(ResultChunk).where(ResultChunk.key == key))
        or 0
    )
