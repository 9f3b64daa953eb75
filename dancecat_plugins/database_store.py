"""A result store in the app database, for several machines that share no disk.

Blobs are split into 1 MiB chunks (``result_chunks`` rows). Chunks are written under a
temporary key and renamed to the real key in one transaction on commit, so a reader sees
all chunks or none. Every transaction here waits out an app-database restart
(``db.with_app_db``) and is safe to repeat, so a run or a download in progress carries on
across one instead of failing half-way.
"""

from __future__ import annotations

from types import ModuleType
from typing import BinaryIO

from dancecat_core.hookspecs import hookimpl
from dancecat_core.resultstore import BlobWriter, ResultStore


def _chunks() -> ModuleType:
    """The store's SQL (``database_chunks``), imported on first use: registering the store
    must not import SQLAlchemy's ORM and the models (~0.3 s) into every process."""
    from dancecat_plugins import database_chunks

    return database_chunks


class DatabaseResultStore(ResultStore):
    name = "database"

    def create(self, key: str) -> BlobWriter:
        return _chunks().ChunkWriter(self, key)

    def open(self, key: str) -> BinaryIO:
        return _chunks().open_blob(self, key)

    def open_range(self, key: str, start: int, length: int) -> BinaryIO:
        return _chunks().open_range(self, key, start, length)

    def exists(self, key: str) -> bool:
        return _chunks().chunk_count(self, key) > 0

    def size(self, key: str) -> int | None:
        return _chunks().size(self, key)

    def delete(self, key: str) -> None:
        _chunks().delete_blob(self, key)


@hookimpl
def dancecat_register_result_stores() -> list[type[ResultStore]]:
    return [DatabaseResultStore]
