"""MySQL / MariaDB driver: what the registry and the screens know of it.

Its sessions and cursors (PyMySQL) are in ``mysql_session``, imported at the first
connection: every console command loads every plugin, and most never connect to MySQL.
"""

from __future__ import annotations

from dancecat_core.drivers import CatalogueSql, ConnectionParams, Driver, DriverSession
from dancecat_core.hookspecs import hookimpl

# information_schema lists only the tables the user holds some privilege on; the server's
# own schemas are left out.
CATALOGUE = CatalogueSql(
    tables="""
        SELECT table_schema, table_name,
               CASE WHEN table_type = 'VIEW' THEN 'view' ELSE 'table' END,
               CASE WHEN table_schema = DATABASE() THEN 1 ELSE 0 END
        FROM information_schema.tables
        WHERE table_schema NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')
        ORDER BY 1, 2
    """,
    columns=(
        """
        SELECT column_name, column_type
        FROM information_schema.columns
        WHERE table_schema = """,
        " AND table_name = ",
        " ORDER BY ordinal_position",
    ),
)


class MysqlDriver(Driver):
    name = "mysql"
    label = "MySQL / MariaDB"
    default_port = 3306
    catalogue = CATALOGUE

    def connect(self, params: ConnectionParams, *, timeout: float) -> DriverSession:
        from dancecat_plugins import mysql_session  # PyMySQL, at the first connection

        return mysql_session.connect(params, timeout=timeout, default_port=self.default_port)


@hookimpl
def dancecat_register_drivers() -> list[type[Driver]]:
    return [MysqlDriver]
