"""What the provenance tracer needs from a SQLite catalog.

SQLite reports no source column for a result column at all, so every bit of provenance on
SQLite is the tracer's. A relation's columns are those of ``SELECT * ... LIMIT 0`` on it
(which reads no row and works for tables, views and virtual tables alike); a view's
definition is its ``CREATE VIEW`` text in ``sqlite_schema``. SQL cannot define functions in
SQLite, and DanceCat registers none, so every function is built in.
"""

from __future__ import annotations

import sqlite3

from dancecat_core.provenance import Function, Relation

SCHEMAS = {"main": "sqlite_master", "temp": "sqlite_temp_master"}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteCatalog:
    """Catalog look-ups on the query's own connection."""

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection):
        self._connection = connection

    def relation(self, schema: str | None, name: str) -> Relation | None:
        for where in [schema.lower()] if schema else ["temp", "main"]:
            if where not in SCHEMAS:
                return None
            found = self._connection.execute(
                f"SELECT name, type, sql FROM {where}.{SCHEMAS[where]}"
                " WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE",
                (name,),
            ).fetchone()
            if found is None:
                continue
            table, kind, definition = found
            try:
                cursor = self._connection.execute(f"SELECT * FROM {where}.{_quoted(table)} LIMIT 0")
            except sqlite3.DatabaseError:
                return None  # a broken view: the query fails on it too, if it reads it
            columns = tuple(d[0] for d in cursor.description or ())
            cursor.close()
            return Relation(table, columns, definition if kind == "view" else None)
        return None

    def function(self, name: str) -> Function | None:
        return None
