"""Which files on this machine a file-based driver (SQLite) may open.

Two lists decide: ``SQLITE_ALLOWED_DIRS``, the only folders a connection may name, and
DanceCat's own places (``DANCECAT_HOME``, ``RESULT_DIR``, the queue file's folder, the app
database's folder), which are refused even when an allowed folder contains them. Paths are
compared after every symbolic link is resolved, and the file itself is compared by device
and inode with DanceCat's own files, so a hard link to the app database placed in an
allowed folder is refused too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs

from dancecat_core.errors import ValidationError
from dancecat_core.settings import Settings

OWN_FILES = (
    "database names one of DanceCat's own files (DANCECAT_HOME, RESULT_DIR, the queue "
    "file's folder or the app database), which cannot be queried"
)
# Files beside a SQLite database that hold its data too.
_SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    """``path == folder or folder in path.parents``, as a comparison of their parts:
    the same answer without building every parent (checked on every SQLite connect)."""
    return path.parts[: len(folder.parts)] == folder.parts


def _refuse_if_others_can_change(folder: Path) -> None:
    """Refuse a folder another user could rename or replace with a link.

    SQLite walks the path again when it opens the file; whoever can change a folder on the
    way can point that walk elsewhere after it was checked. As OpenSSH's StrictModes does,
    every folder must belong to root or to DanceCat's user and be writable by no one else
    (a sticky folder such as /tmp is fine: others cannot rename what is not theirs).
    """
    try:
        info = os.stat(folder)
    except OSError:
        return  # a missing folder: the file is missing too, and is refused when opened
    shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX
    if info.st_uid not in (0, os.geteuid()) or shared:
        raise ValidationError(
            f"database: other users can change the folder {folder}; SQLite files must be in "
            "folders only DanceCat's user or root can change",
            "database",
        )


@attrs.frozen
class LocalFileRules:
    """The folders a connection may open files in, and DanceCat's own ones it may not."""

    allowed_dirs: tuple[Path, ...]
    protected_dirs: tuple[Path, ...]
    protected_files: tuple[Path, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalFileRules:
        # Imported here: ``db`` loads SQLAlchemy, which the plugins that import this
        # module (at registration) should not make every command pay for.
        from dancecat_core.db import sqlite_app_file

        app_db = sqlite_app_file(settings.database_url)
        dirs = [settings.home, settings.result_dir, settings.huey_file.parent]
        files = [
            Path(f"{base}{suffix}")
            for base in (settings.huey_file, *([app_db] if app_db else []))
            for suffix in _SQLITE_SIDECARS
        ]
        if app_db is not None:
            dirs.append(app_db.parent)
        files += [settings.home / "secret_key", settings.home / "encryption_keys"]
        return cls(
            allowed_dirs=tuple(_real(d) for d in settings.sqlite_allowed_dirs),
            protected_dirs=tuple(dict.fromkeys(_real(d) for d in dirs)),
            protected_files=tuple(files),
        )

    def protects(self, path: Path) -> bool:
        """True when the real ``path`` is one of DanceCat's own folders or inside one."""
        return any(_inside(path, folder) for folder in self.protected_dirs)

    def check(self, path: str, *, exists: bool = True) -> tuple[Path, os.stat_result | None]:
        """The real file behind the absolute ``path`` and its status, or ``ValidationError``.

        With ``exists=False`` (a connection being saved) a missing file is accepted, with
        status None; it is checked in full when it is opened.

        ``os.path.realpath`` walks the path the way SQLite's unix VFS does: one name at a
        time, following symbolic links (``/proc/self/fd/N`` included), and removing the
        previous name for ``..`` even when that name does not exist.
        """
        try:
            real = _real(path)
        except OSError as exc:  # a link removed while it was being read
            raise ValidationError(f"database {path}: {exc.strerror}", "database") from None
        if self.protects(real):
            raise ValidationError(OWN_FILES, "database")
        if not any(_inside(real, folder) for folder in self.allowed_dirs):
            allowed = ", ".join(str(d) for d in self.allowed_dirs) or "none"
            raise ValidationError(
                f"database {real} is outside SQLITE_ALLOWED_DIRS (allowed: {allowed})",
                "database",
            )
        for folder in real.parents:
            _refuse_if_others_can_change(folder)
        try:
            info = os.stat(real, follow_symlinks=False)
        except FileNotFoundError:
            if not exists:
                return real, None
            raise ValidationError(f"database {real}: no such file", "database") from None
        except OSError as exc:
            raise ValidationError(f"database {real}: {exc.strerror}", "database") from None
        if not stat.S_ISREG(info.st_mode):
            raise ValidationError(f"database {real} is not a regular file", "database")
        if (info.st_dev, info.st_ino) in self._protected_inodes(every=info.st_nlink > 1):
            raise ValidationError(OWN_FILES, "database")
        return real, info

    def _protected_inodes(self, *, every: bool) -> set[tuple[int, int]]:
        """The (device, inode) of DanceCat's own files; with ``every``, of every file
        directly in its folders too (looked up only for a file with several hard links)."""
        paths = list(self.protected_files)
        if every:
            for folder in self.protected_dirs:
                try:
                    with os.scandir(folder) as entries:
                        paths += [Path(entry.path) for entry in entries]
                except OSError:
                    continue
        inodes = set()
        for path in paths:
            try:
                info = os.stat(path)
            except OSError:
                continue
            inodes.add((info.st_dev, info.st_ino))
        return inodes
