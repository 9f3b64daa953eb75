"""Folder destinations: ``file:///path/`` gets each run's result file, written atomically.

Only folders inside ``DELIVERY_ALLOWED_DIRS`` (set by an admin) are accepted, never one of
DanceCat's own (``DANCECAT_HOME``, ``RESULT_DIR``, the queue's and the app database's
folders). The path is decoded once (``%2e%2e`` is ``..``) and every symbolic link and
``..`` resolved before it is compared; at delivery the folder is opened and the path of
the opened folder (``/proc/self/fd``) is checked again, so a link swapped in after the
check cannot send the file elsewhere.

The file is named by the job's file name template (default ``<job>_<due date>_run<id>``,
``destination_files.file_name``) plus the format's extension, in the format of the URL's
``?format=`` (default csv; any registered format). It is written under a temporary name in
the same folder, flushed to disk, then renamed into place (mode 0640: the folder's group
may read it): readers never see half a file, and a resend replaces the file rather than
adding one. A failed run writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from dancecat_core.errors import DancecatError, ValidationError
from dancecat_core.hookspecs import hookimpl
from dancecat_core.local_files import LocalFileRules
from dancecat_core.notifiers import (
    Attachment,
    Destination,
    Export,
    Notifier,
    RunNotice,
    check_format,
)
from dancecat_core.settings import LIST, SettingSpec
from dancecat_plugins.destination_files import FileNotice, prepare_file

DEFAULT_FORMAT = "csv"
FILE_MODE = 0o640


class FolderNotifier(Notifier):
    name = "folder"
    schemes = ("file",)

    def _rules(self) -> tuple[tuple[Path, ...], LocalFileRules]:
        allowed = tuple(Path(os.path.realpath(d)) for d in self.settings.delivery_allowed_dirs)
        return allowed, LocalFileRules.from_settings(self.settings)

    def check_folder(self, path: str) -> Path:
        """The real folder behind ``path``, or ``ValidationError`` saying why not."""
        real = Path(os.path.realpath(path))
        allowed, rules = self._rules()
        if rules.protects(real):
            raise ValidationError(
                f"{real} is one of DanceCat's own folders (DANCECAT_HOME, RESULT_DIR, the "
                "queue's or the app database's)"
            )
        if not any(real == folder or folder in real.parents for folder in allowed):
            shown = ", ".join(str(folder) for folder in allowed) or "none"
            raise ValidationError(f"{real} is outside DELIVERY_ALLOWED_DIRS (allowed: {shown})")
        if not real.is_dir():
            raise ValidationError(f"{real} is not a folder")
        return real

    def parse(self, url: str) -> Destination:
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.fragment:
            raise ValidationError("a folder is written file:///absolute/path/ (no host)")
        path = urllib.parse.unquote(parts.path)
        if "\x00" in path or not path.startswith("/"):
            raise ValidationError("a folder is written file:///absolute/path/")
        fmt = self._format(parts.query)
        real = self.check_folder(path)
        query = "" if fmt == DEFAULT_FORMAT else f"?format={fmt}"
        return Destination(f"file://{urllib.parse.quote(str(real))}/{query}")

    def _format(self, query: str) -> str:
        try:
            pairs = urllib.parse.parse_qsl(query, strict_parsing=bool(query))
        except ValueError:
            raise ValidationError("a folder URL takes only ?format=FORMAT") from None
        options = dict(pairs)
        if set(options) - {"format"} or len(pairs) != len(options):
            raise ValidationError("a folder URL takes only ?format=FORMAT")
        return check_format(options.get("format", DEFAULT_FORMAT), self.formats)

    def prepare(
        self, notice: RunNotice, export: Export | None
    ) -> tuple[FileNotice, Attachment | None]:
        """The result opened for streaming, not read: ``deliver`` streams it."""
        return prepare_file(
            notice, export, self._format(urllib.parse.urlsplit(notice.url).query)
        ), None

    def deliver(self, notice: FileNotice, attachment: Attachment | None) -> None:  # type: ignore[override]
        if notice.result is None:
            return  # a failed run: no result to write
        folder = urllib.parse.unquote(urllib.parse.urlsplit(notice.url).path)
        chunks = notice.result.chunks
        try:
            self._write(folder, notice.file_name, chunks, key=notice.delivery_key or "test")
        finally:
            chunks.close()  # type: ignore[attr-defined]

    def _write(self, folder: str, name: str, chunks: Iterable[bytes], *, key: str) -> None:
        try:
            real = self.check_folder(folder)
        except ValidationError as error:
            raise DancecatError(str(error)) from None
        directory = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            with contextlib.suppress(OSError):  # no /proc: the realpath check above stands
                opened = os.readlink(f"/proc/self/fd/{directory}")
                try:
                    self.check_folder(opened)
                except ValidationError as error:
                    raise DancecatError(f"the folder changed while opened: {error}") from None
            temp = f".{name}.{key}.part"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=directory)  # left by a try whose worker died
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(temp, flags, FILE_MODE, dir_fd=directory)
            try:
                os.fchmod(fd, FILE_MODE)
                with os.fdopen(fd, "wb", closefd=False) as out:
                    for chunk in chunks:
                        out.write(chunk)
                    out.flush()
                    os.fsync(fd)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=directory)
                raise
            os.close(fd)
            os.replace(temp, name, src_dir_fd=directory, dst_dir_fd=directory)
            os.fsync(directory)
        finally:
            os.close(directory)


@hookimpl
def dancecat_register_notifiers() -> list[type[Notifier]]:
    return [FolderNotifier]


@hookimpl
def dancecat_register_settings() -> list[SettingSpec]:
    return [
        SettingSpec(
            "DELIVERY_ALLOWED_DIRS",
            LIST,
            (),
            "folders (comma-separated) that `file:///…` destinations may write results "
            "into; empty: none. DanceCat's own folders are refused even inside them",
        )
    ]
