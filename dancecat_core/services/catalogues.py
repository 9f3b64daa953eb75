"""Each connection's catalogue, cached in the app database for the job form's schema browser.

The first look at a connection's schema reads its tables and views (one query); a table's
columns are read the first time they are asked for (one query each) and kept with it. The
cache is shared by everyone who may use the connection, which is right: the catalogue is
read with the connection's own credentials, so it is the same for all of them. It is read
again on Refresh, and when the connection was changed after the read (another host or
user sees another catalogue). Scrubbing marks are not cached: they follow the scrubbers'
settings of the moment.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import attrs
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from dancecat_core import catalogue
from dancecat_core.catalogue import CatalogueColumn, CatalogueTable
from dancecat_core.errors import NotFound
from dancecat_core.models import Catalogue, Connection, User, utcnow
from dancecat_core.models import CatalogueTable as TableRow
from dancecat_core.models.catalogues import NAME_LENGTH
from dancecat_core.runtime import Runtime
from dancecat_core.services import connections


@attrs.frozen
class CachedCatalogue:
    """A connection's catalogue as cached: the columns of the tables read so far, by
    (schema, table)."""

    connection: Connection
    read_at: dt.datetime
    read_ms: int
    left_out: int
    tables: list[CatalogueTable]
    columns: dict[tuple[str, str], list[CatalogueColumn]]


def _is_fresh(found: Catalogue | None, connection: Connection) -> bool:
    return found is not None and found.read_at >= connection.updated_at


def get(
    runtime: Runtime, session: Session, actor: User | None, connection_id: int
) -> CachedCatalogue:
    """The cached catalogue, read first if there is none or the connection changed since."""
    connection = connections.get(session, actor, connection_id)
    if not _is_fresh(session.get(Catalogue, connection.id), connection):
        return refresh(runtime, session, actor, connection_id)
    return _cached(runtime, session, connection)


def refresh(
    runtime: Runtime, session: Session, actor: User | None, connection_id: int
) -> CachedCatalogue:
    """Read the connection's tables and views again; columns are read again when asked for."""
    connection = connections.get(session, actor, connection_id)
    clock = time.monotonic()
    tables, left_out = catalogue.read_tables(runtime, runtime.connection_params(connection))
    kept = [t for t in tables if len(t.schema) <= NAME_LENGTH and len(t.name) <= NAME_LENGTH]
    read_ms = int((time.monotonic() - clock) * 1000)
    found = session.get(Catalogue, connection.id, with_for_update=True)
    if found is None:
        found = Catalogue(connection_id=connection.id)
        session.add(found)
    found.read_at, found.read_ms = utcnow(), read_ms
    found.left_out = left_out + len(tables) - len(kept)
    session.execute(delete(TableRow).where(TableRow.connection_id == connection.id))
    if kept:
        session.execute(
            insert(TableRow),
            [
                {
                    "connection_id": connection.id,
                    "schema_name": table.schema,
                    "name": table.name,
                    "kind": table.kind,
                    "searchable": table.searchable,
                }
                for table in kept
            ],
        )
    session.flush()
    return _cached(runtime, session, connection)


def _cached(runtime: Runtime, session: Session, connection: Connection) -> CachedCatalogue:
    found = session.get(Catalogue, connection.id)
    assert found is not None  # get() and refresh() made sure of it
    rows = session.execute(
        select(
            TableRow.schema_name,
            TableRow.name,
            TableRow.kind,
            TableRow.searchable,
            TableRow.columns_json,
        )
        .where(TableRow.connection_id == connection.id)
        .order_by(TableRow.id)
    ).all()
    tables = [
        CatalogueTable(schema, name, kind, bool(flag)) for schema, name, kind, flag, _ in rows
    ]
    columns = {
        (schema, name): _marked(runtime, name, text)
        for schema, name, _, _, text in rows
        if text is not None
    }
    return CachedCatalogue(
        connection=connection,
        read_at=found.read_at,
        read_ms=found.read_ms,
        left_out=found.left_out,
        tables=tables,
        columns=columns,
    )


def _marked(runtime: Runtime, table: str, text: str) -> list[CatalogueColumn]:
    return catalogue.mark_scrubbed(runtime, table, [tuple(pair) for pair in json.loads(text)])


def columns(
    runtime: Runtime,
    session: Session,
    actor: User | None,
    connection_id: int,
    schema: str,
    table: str,
) -> list[CatalogueColumn]:
    """One table's columns, read from the database the first time they are asked for."""
    connection = connections.get(session, actor, connection_id)
    if not _is_fresh(session.get(Catalogue, connection.id), connection):
        refresh(runtime, session, actor, connection_id)
    # Compared here too: a case-insensitive app database would match "Users" for "users".
    row = next(
        (
            found
            for found in session.scalars(
                select(TableRow).where(
                    TableRow.connection_id == connection.id,
                    TableRow.schema_name == schema,
                    TableRow.name == table,
                )
            )
            if found.schema_name == schema and found.name == table
        ),
        None,
    )
    if row is None:
        raise NotFound(f"table {schema}.{table} is not in the connection's catalogue")
    if row.columns_json is None:
        read = catalogue.read_columns(runtime, runtime.connection_params(connection), schema, table)
        row.columns_json = json.dumps([[column.name, column.type] for column in read])
        session.flush()
        return read
    return _marked(runtime, table, row.columns_json)
