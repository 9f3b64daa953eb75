"""A result store in the app database, for several machines that share no disk.

Blobs are split into 1 MiB chunks (``result_chunks`` rows). Chunks are written under a
temporary key and renamed to the real key in one transaction on commit, so a reader sees
all chunks or none. Every transaction here waits out an app-database restart
(``db.with_app_db``) and is safe to repeat, so a run or a download in progress carries on
across one instead of failing half-way.
"""

from __future__ import annotations

import io
import uuid
from typing import BinaryIO

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dancecat_core.db import session_scope, with_app_db
from dancecat_core.errors import StoreError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.models import ResultChunk
from dancecat_core.resultstore import BlobWriter, Limited, ResultStore

CHUNK_BYTES = 1 << 20


class _ChunkWriter(BlobWriter):
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


class DatabaseResultStore(ResultStore):
    name = "database"

    def create(self, key: str) -> BlobWriter:
        return _ChunkWriter(self, key)

    def _chunk_count(self, key: str) -> int:
        def attempt() -> int:
            with session_scope(self.session_factory) as session:
                return _count(session, key)

        return with_app_db(f"result {key}: size", attempt)

    def open(self, key: str) -> BinaryIO:
        chunks = self._chunk_count(key)
        if not chunks:
            raise StoreError(f"result {key} is not in the store")
        return io.BufferedReader(_ChunkReader(self, key, chunks), buffer_size=CHUNK_BYTES)

    def open_range(self, key: str, start: int, length: int) -> BinaryIO:
        chunks = self._chunk_count(key)
        if not chunks:
            raise StoreError(f"result {key} is not in the store")
        reader = _ChunkReader(self, key, chunks, start)
        return io.BufferedReader(Limited(reader, length), buffer_size=CHUNK_BYTES)  # type: ignore[arg-type]

    def exists(self, key: str) -> bool:
        return self._chunk_count(key) > 0

    def size(self, key: str) -> int | None:
        with session_scope(self.session_factory) as session:
            total = session.scalar(
                select(func.sum(func.length(ResultChunk.data))).where(ResultChunk.key == key)
            )
        return int(total) if total is not None else None

    def delete(self, key: str) -> None:
        with session_scope(self.session_factory) as session:
            session.execute(delete(ResultChunk).where(ResultChunk.key == key))


def _count(session: Session, key: str) -> int:
    return (
        session.scalar(select(func.count()).select_from(ResultChunk).where(ResultChunk.key == key))
        or 0
    )


@hookimpl
def dancecat_register_result_stores() -> list[type[ResultStore]]:
    return [DatabaseResultStore]
