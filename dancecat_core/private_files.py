"""DanceCat's own files are private to the user it runs as: new folders 0700, files 0600.

Explicit modes rather than a process umask, so a file a user asks for elsewhere (an export
written with ``-o``) keeps the usual permissions. A database server on the same machine runs
as another user, so ``LOAD_FILE`` or ``pg_read_binary_file`` can read none of these files.
Folders that already exist keep their mode (``DANCECAT_HOME`` may be a folder the operator
made on purpose); the files DanceCat names itself are tightened whenever they are opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; an existing folder is kept."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    for created in missing:
        # mkdir's mode passes through the umask; chmod does not.
        os.chmod(created, PRIVATE_DIR_MODE)


def tighten_file(path: Path) -> None:
    """Drop group and other permissions from a file DanceCat owns (no-op if missing)."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISREG(info.st_mode) and mode & ~PRIVATE_FILE_MODE and info.st_uid == os.geteuid():
        os.chmod(path, mode & PRIVATE_FILE_MODE)


def make_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing, else tighten it.

    SQLite gives a database's ``-wal``, ``-shm`` and ``-journal`` files the mode of the
    database file itself, so creating the database file first covers them too.
    """
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    except FileExistsError:
        tighten_file(path)
        return
    os.close(fd)
