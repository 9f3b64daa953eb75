"""DanceCat's own files are private: a co-located database server cannot read them.

A real ``dancecat init``, a connection, a run and a queued run create the app database,
its WAL files, the queue file, a result and both key files. They must be 0600 in a 0700
home. Then the PostgreSQL superuser (``pg_read_binary_file``) and MariaDB's root
(``LOAD_FILE``), whose servers run as other users, try to read them: first a 0644 control
file beside the home proves they can read what the modes allow, then every DanceCat file is
refused, also with the home opened to 0755 so that only each file's own mode protects it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pymysql
import pytest
from cryptography.fernet import Fernet

from dancecat_core import tasks
from dancecat_core.runtime import build_runtime
from dancecat_core.settings import load_settings

CHINOOK = Path(__file__).resolve().parent.parent / "examples" / "chinook.sqlite"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A 0755 folder under /tmp that the database servers' users can traverse."""
    base = Path(tempfile.mkdtemp(prefix="dancecat-modes-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


@pytest.fixture
def installed(open_parent: Path) -> Path:
    home = open_parent / "home"
    env = {**os.environ, "DANCECAT_HOME": str(home), "DANCECAT_HUEY_NAME": "modes"}
    env.pop("DANCECAT_SQLITE_ALLOWED_DIRS", None)
    sql = open_parent / "q.sql"
    sql.write_text("SELECT Name FROM Artist LIMIT 3")
    sql.chmod(0o644)
    for args in [
        ["init"],
        ["connection", "add", "c", "--driver", "sqlite", "--database", str(CHINOOK)],
        ["job", "add", "j", "--connection", "c", "--sql-file", str(sql)],
        ["job", "run", "j"],
        ["job", "run", "j", "--background"],
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "dancecat_core.console", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    return home


def own_files(home: Path) -> list[Path]:
    files = [p for p in home.iterdir() if p.is_file()]
    files += list((home / "results").iterdir())
    return files


def test_home_is_0700_and_every_file_in_it_0600(installed: Path):
    home = installed
    names = {p.name for p in own_files(home)}
    assert {"dancecat.sqlite", "huey.sqlite", "secret_key", "encryption_keys"} <= names
    assert any(p.parent.name == "results" for p in own_files(home))
    assert mode(home) == 0o700
    assert mode(home / "results") == 0o700
    reader = sqlite3.connect(home / "dancecat.sqlite")
    try:
        # SQLite makes -wal and -shm while a connection reads; they take the file's mode.
        reader.execute("SELECT count(*) FROM users").fetchall()
        names = {p.name for p in own_files(home)}
        assert {"dancecat.sqlite-wal", "dancecat.sqlite-shm"} <= names
        assert {p.name: mode(p) for p in own_files(home)} == dict.fromkeys(names, 0o600)
    finally:
        reader.close()


def pg_read(path: Path, server: dict) -> bytes | str:
    """What ``pg_read_binary_file`` returns as the superuser, or the server's error."""
    connection = psycopg2.connect(
        host=server["host"], port=server["port"], user=server["user"], dbname="postgres"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_read_binary_file(%s)", (str(path),))
            return bytes(cursor.fetchone()[0])
    except psycopg2.Error as exc:
        return exc.pgerror or str(exc)
    finally:
        connection.close()


def mariadb_read(path: Path, server: dict) -> bytes | None:
    """What ``LOAD_FILE`` returns as root: the bytes, or NULL when it cannot read them."""
    connection = pymysql.connect(host=server["host"], port=server["port"], user=server["user"])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT LOAD_FILE(%s)", (str(path),))
            return cursor.fetchone()[0]
    finally:
        connection.close()


def test_colocated_servers_cannot_read_them(installed: Path, pg_server, mysql_server):
    home = installed
    control = home.parent / "control.txt"
    control.write_bytes(b"readable")
    control.chmod(0o644)
    assert pg_read(control, pg_server) == b"readable"
    assert mariadb_read(control, mysql_server) == b"readable"
    targets = own_files(home)
    for home_mode in (0o700, 0o755):  # then only each file's own mode protects it
        home.chmod(home_mode)
        for path in targets:
            assert "Permission denied" in pg_read(path, pg_server), path
            assert mariadb_read(path, mysql_server) is None, path
    home.chmod(0o700)


def test_files_left_open_by_an_older_version_are_tightened(tmp_path: Path):
    """A home made before these modes: its files become 0600 once DanceCat starts."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret_key").write_text("an old secret key of enough length\n")
    (home / "encryption_keys").write_text(Fernet.generate_key().decode() + "\n")
    for name in ("dancecat.sqlite", "huey.sqlite"):
        sqlite3.connect(home / name).close()
    for path in home.iterdir():
        path.chmod(0o644)
    runtime = build_runtime(load_settings(environ={"DANCECAT_HOME": str(home)}))
    tasks.configure(runtime=runtime)
    try:
        tasks.huey.storage  # noqa: B018 - opens the queue file
        assert {p.name: mode(p) for p in home.iterdir()} == {
            name: 0o600
            for name in ("secret_key", "encryption_keys", "dancecat.sqlite", "huey.sqlite")
        }
    finally:
        tasks.configure()
        runtime.engine.dispose()
