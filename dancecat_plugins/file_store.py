"""The default result store: one file per blob under ``RESULT_DIR``.

A blob is written to a temporary file in the same directory and renamed into place on
commit; ``os.replace`` is atomic on POSIX, so readers see the whole blob or none of it,
even if the disk fills up or the process dies halfway. Results are private like every
DanceCat file: ``mkstemp`` creates them 0600, in a folder created 0700.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from dancecat_core.errors import StoreError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.private_files import make_private_dir
from dancecat_core.resultstore import BlobWriter, ResultStore
from dancecat_core.settings import Settings

_SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
# A blob being written: ``mkstemp``'s name, renamed to its key on commit.
_PARTIAL_PREFIX, _PARTIAL_SUFFIX = ".partial-", ".tmp"


class _FileWriter(BlobWriter):
    def __init__(self, directory: Path, target: Path):
        self._target = target
        fd, name = tempfile.mkstemp(dir=directory, prefix=_PARTIAL_PREFIX, suffix=_PARTIAL_SUFFIX)
        self._temp = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)

    def write(self, data: bytes) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            raise StoreError(f"cannot write the result: {exc.strerror}") from None

    def commit(self) -> int:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self._target)
        except OSError as exc:
            self.abort()
            raise StoreError(f"cannot save the result: {exc.strerror}") from None
        return self._target.stat().st_size

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._temp.unlink(missing_ok=True)


def _blob_path(directory: Path, key: str) -> Path:
    if not _SAFE_KEY.match(key):
        raise StoreError(f"invalid result key {key!r}")
    return directory / key


class FileResultStore(ResultStore):
    name = "file"

    @property
    def directory(self) -> Path:
        return self.settings.result_dir

    def _path(self, key: str) -> Path:
        return _blob_path(self.directory, key)

    def create(self, key: str) -> BlobWriter:
        path = self._path(key)
        try:
            try:
                return _FileWriter(self.directory, path)
            except FileNotFoundError:
                # The folder is made when first missing, not looked over on every write
                # (a stat of each parent: a noticeable part of a trivial run's result).
                make_private_dir(self.directory)
                return _FileWriter(self.directory, path)
        except OSError as exc:
            raise StoreError(f"cannot create the result file: {exc.strerror}") from None

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise StoreError(f"result {key} is not in the store") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def drop_abandoned(self, before: dt.datetime) -> int:
        """Delete the partial files last written before ``before``: a writer that is alive
        writes on (its file's modification time moves) or is past its run's timeout."""
        limit = before.timestamp()
        dropped = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StoreError(f"cannot list the result folder: {exc.strerror}") from None
        for entry in entries:
            name = entry.name
            if not (name.startswith(_PARTIAL_PREFIX) and name.endswith(_PARTIAL_SUFFIX)):
                continue
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                    os.unlink(entry.path)
                    dropped += 1
            except FileNotFoundError:
                continue  # committed or aborted meanwhile
        return dropped

    @classmethod
    def local_path(cls, settings: Settings, key: str) -> Path | None:
        path = _blob_path(settings.result_dir, key)
        return path if path.is_file() else None


@hookimpl
def dancecat_register_result_stores() -> list[type[ResultStore]]:
    return [FileResultStore]
