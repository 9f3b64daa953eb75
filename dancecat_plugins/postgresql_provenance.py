"""What the provenance tracer needs from a PostgreSQL catalog.

Relations are resolved as the server would (``to_regclass`` under the session's
search_path); a view's or materialised view's definition is ``pg_get_viewdef``'s text. A
function counts as user-defined when it lives outside ``pg_catalog`` and
``information_schema`` and belongs to no extension; its body is ``prosrc`` (every overload's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dancecat_core.provenance import Function, Relation

if TYPE_CHECKING:  # only named in annotations: psycopg2 loads at the first connection
    import psycopg2.extensions

_RELATION = """
    SELECT c.relname, c.relkind IN ('v', 'm'),
           CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
           ARRAY(SELECT a.attname::text FROM pg_attribute AS a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum)
    FROM pg_class AS c
    WHERE c.oid = %s
"""

_FUNCTION = """
    SELECT bool_or(n.nspname NOT IN ('pg_catalog', 'information_schema')
                   AND NOT EXISTS (SELECT 1 FROM pg_depend AS d
                                   WHERE d.classid = 'pg_proc'::regclass
                                     AND d.objid = p.oid AND d.deptype = 'e')),
           min(t.typrelid) FILTER (WHERE t.typrelid <> 0),
           string_agg(p.prosrc, E'\n')
    FROM pg_proc AS p
    JOIN pg_namespace AS n ON n.oid = p.pronamespace
    JOIN pg_type AS t ON t.oid = p.prorettype
    WHERE p.proname IN (%s, lower(%s))  -- as written (quoted), or folded
"""


class PostgresCatalog:
    """Catalog look-ups on the query's own connection, inside its transaction."""

    dialect = "postgres"

    def __init__(self, connection: psycopg2.extensions.connection):
        self._connection = connection

    def _one(self, sql: str, args: Sequence[object]) -> tuple | None:
        with self._connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchone()

    def relation(self, schema: str | None, name: str) -> Relation | None:
        # Unquoted names fold to lower case; quoted ones do not: try the name as written,
        # then folded (a false match only adds columns to check).
        for spelled in dict.fromkeys((name, name.lower())):
            found = self._one(
                "SELECT to_regclass(CASE WHEN %s::text IS NULL THEN format('%%I', %s::text)"
                " ELSE format('%%I.%%I', %s::text, %s::text) END)::oid",
                (schema, spelled, schema, spelled),
            )
            if found and found[0]:
                row = self._one(_RELATION, (found[0],))
                if row:
                    relname, is_view, definition, columns = row
                    return Relation(relname, tuple(columns), definition if is_view else None)
        return None

    def function(self, name: str) -> Function | None:
        row = self._one(_FUNCTION, (name, name))
        if not row or row[0] is None:
            return None
        user_defined, returns_oid, body = row
        returns = None
        if returns_oid:
            found = self._one(_RELATION, (returns_oid,))
            if found:
                returns = Relation(found[0], tuple(found[3]))
        return Function(bool(user_defined), returns, body or "")
