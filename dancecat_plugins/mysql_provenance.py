"""What the provenance tracer needs from a MySQL / MariaDB catalog (information_schema).

A view's definition is ``information_schema.VIEWS.VIEW_DEFINITION``, which the server shows
only to users allowed to see it (SHOW VIEW, or its definer); a view whose definition is
hidden is traced as far as its text goes, which is nowhere, so its columns are untraced.
Stored functions (``information_schema.ROUTINES``) are user-defined, their bodies shown
on the same terms as views'; everything else is built in. The look-ups name a LIMIT or
return one row, so a preview's ``sql_select_limit`` cannot cut them short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dancecat_core.provenance import Function, Relation

if TYPE_CHECKING:  # only named in annotations
    import pymysql

_COLUMNS = """
    SELECT c.TABLE_NAME, c.COLUMN_NAME, v.TABLE_NAME IS NOT NULL, v.VIEW_DEFINITION
    FROM information_schema.COLUMNS AS c
    LEFT JOIN information_schema.VIEWS AS v
      ON v.TABLE_SCHEMA = c.TABLE_SCHEMA AND v.TABLE_NAME = c.TABLE_NAME
    WHERE c.TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND c.TABLE_NAME = %s
    ORDER BY c.ORDINAL_POSITION
    LIMIT 100000
"""

_FUNCTION = """
    SELECT COALESCE(GROUP_CONCAT(ROUTINE_DEFINITION SEPARATOR '\n'), '')
    FROM information_schema.ROUTINES
    WHERE ROUTINE_TYPE = 'FUNCTION' AND ROUTINE_NAME = %s
    HAVING COUNT(*) > 0
"""


class MysqlCatalog:
    """Catalog look-ups on the query's connection, made before the query itself is sent."""

    dialect = "mysql"

    def __init__(self, connection: pymysql.Connection):
        self._connection = connection

    def relation(self, schema: str | None, name: str) -> Relation | None:
        with self._connection.cursor() as cursor:
            cursor.execute(_COLUMNS, (schema, name))
            rows = cursor.fetchall()
        if not rows:
            return None
        table, _, is_view, definition = rows[0]
        columns = tuple(row[1] for row in rows)
        return Relation(table, columns, (definition or "") if is_view else None)

    def function(self, name: str) -> Function | None:
        with self._connection.cursor() as cursor:
            cursor.execute(_FUNCTION, (name,))
            row = cursor.fetchone()
        return Function(user_defined=True, body=row[0]) if row else None
