"""One tracker's stored result, read from the app database through its DB-API driver
alone, for ``dancecat export -o``: SQLAlchemy and the models cost ~0.3 s of CPU to import,
the read itself a millisecond.

Only plain URLs are read here (``sqlite:///FILE``, ``postgresql[+psycopg2]://``,
``mysql+pymysql://``, no query options); for any other URL, any error, or a run that is
not a valid success, ``stored_result`` answers None and the caller takes the ordinary
path (SQLAlchemy, the services), which gives the same answers and the proper errors.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

import attrs

from dancecat_core.run_status import TrackerStatus, current_status

QUERY = (
    "SELECT status, result_expires_at, result_store, result_key, result_meta_json IS NOT NULL"
    " FROM trackers WHERE id = {mark}"
)


@attrs.frozen
class StoredResult:
    """Where a successful run's result is: its store's name and its key there."""

    store: str
    key: str


def _connect(database_url: str) -> tuple[Any, str] | None:
    """A DB-API connection for the URL and its parameter mark, or None for a URL this
    module does not read."""
    url = urllib.parse.urlsplit(database_url)
    if url.query or url.fragment or "%" in url.path:
        return None
    if url.scheme == "sqlite":
        path = url.path[1:]
        if url.netloc or path in ("", ":memory:"):
            return None
        import sqlite3

        # Read-only: a missing file is an error here, not a new empty database.
        uri = f"file:{urllib.parse.quote(path)}?mode=ro"
        return sqlite3.connect(uri, uri=True), "?"
    options = {
        "host": url.hostname,
        "port": url.port,
        "user": urllib.parse.unquote(url.username) if url.username else None,
        "password": urllib.parse.unquote(url.password) if url.password else None,
    }
    options = {k: v for k, v in options.items() if v is not None}
    database = url.path[1:]
    if url.scheme in ("postgresql", "postgresql+psycopg2"):
        import psycopg2

        return psycopg2.connect(dbname=database, **options), "%s"
    if url.scheme == "mysql+pymysql":
        import pymysql

        return pymysql.connect(database=database, charset="utf8mb4", **options), "%s"
    return None


def _aware(value: Any) -> dt.datetime | None:
    """A stored naive-UTC time as an aware one (SQLite gives it as text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC)


def stored_result(database_url: str, tracker_id: int) -> StoredResult | None:
    """Where run ``tracker_id``'s result is, if it is a success whose result has not
    expired; None for anything else (see the module docstring)."""
    try:
        opened = _connect(database_url)
        if opened is None:
            return None
        connection, mark = opened
        try:
            cursor = connection.cursor()
            cursor.execute(QUERY.format(mark=mark), (tracker_id,))
            row = cursor.fetchone()
        finally:
            connection.close()
    except Exception:  # the ordinary path reports it properly
        return None
    if row is None:
        return None
    status, expires_at, store, key, has_meta = row
    valid = current_status(status, _aware(expires_at)) == TrackerStatus.SUCCESS.value
    if not (valid and store and key and has_meta):
        return None
    return StoredResult(store=store, key=key)
