"""Each connection's catalogue, cached in the app database for the job form's schema browser.

The first look at a connection's schema reads its tables and views (one query, kept as one
value); a table's columns are read the first time they are asked for (one query each) and
kept beside it. The
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
import zlib

import attrs
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dancecat_core import catalogue
from dancecat_core.catalogue import CatalogueColumn, CatalogueTable
from dancecat_core.errors import NotFound
from dancecat_core.models import Catalogue, Connection, User, utcnow
from dancecat_core.models import CatalogueTable as ColumnsRow
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


def _packed(tables: list[CatalogueTable]) -> bytes:
    rows = [[t.schema, t.name, t.kind, int(t.searchable)] for t in tables]
    return zlib.compress(json.dumps(rows, separators=(",", ":")).encode("utf-8"), 1)


def _unpacked(blob: bytes) -> list[CatalogueTable]:
    rows = json.loads(zlib.decompress(blob))
    return [CatalogueTable(schema, name, kind, bool(flag)) for schema, name, kind, flag in rows]


def get(
    runtime: Runtime, session: Session, actor: User | None, connection_id: int
) -> CachedCatalogue:
    """The cached catalogue, read first if there is none or the connection changed since."""
    connection = connections.get(session, actor, connection_id)
    found = session.get(Catalogue, connection.id)
    if found is None or not _is_fresh(found, connection):
        return refresh(runtime, session, actor, connection_id)
    return _cached(runtime, session, connection, found)


def refresh(
    runtime: Runtime, session: Session, actor: User | None, connection_id: int
) -> CachedCatalogue:
    """Read the connection's tables and views again; columns are read again when asked for."""
    connection = connections.get(session, actor, connection_id)
    clock = time.monotonic()
    tables, left_out = catalogue.read_tables(runtime, runtime.connection_params(connection))
    read_ms = int((time.monotonic() - clock) * 1000)
    found = session.get(Catalogue, connection.id, with_for_update=True)
    if found is None:
        found = Catalogue(connection_id=connection.id)
        session.add(found)
    found.read_at, found.read_ms, found.left_out = utcnow(), read_ms, left_out
    found.tables = _packed(tables)
    session.execute(delete(ColumnsRow).where(ColumnsRow.connection_id == connection.id))
    session.flush()
    return CachedCatalogue(connection, found.read_at, read_ms, left_out, tables, {})


def _cached(
    runtime: Runtime, session: Session, connection: Connection, found: Catalogue
) -> CachedCatalogue:
    read = session.execute(
        select(ColumnsRow.schema_name, ColumnsRow.name, ColumnsRow.columns_json).where(
            ColumnsRow.connection_id == connection.id
        )
    ).all()
    columns = {(schema, name): _marked(runtime, name, text) for schema, name, text in read}
    return CachedCatalogue(
        connection=connection,
        read_at=found.read_at,
        read_ms=found.read_ms,
        left_out=found.left_out,
        tables=_unpacked(found.tables),
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
    found = session.get(Catalogue, connection.id)
    if found is None or not _is_fresh(found, connection):
        refresh(runtime, session, actor, connection_id)
        found = session.get(Catalogue, connection.id)
    # Compared here too: a case-insensitive app database would match "Users" for "users".
    kept = next(
        (
            row.columns_json
            for row in session.scalars(
                select(ColumnsRow).where(
                    ColumnsRow.connection_id == connection.id,
                    ColumnsRow.schema_name == schema,
                    ColumnsRow.name == table,
                )
            )
            if row.schema_name == schema and row.name == table
        ),
        None,
    )
    if kept is not None:
        return _marked(runtime, table, kept)
    assert found is not None  # refresh() stored it
    if not any(t.schema == schema and t.name == table for t in _unpacked(found.tables)):
        raise NotFound(f"table {schema}.{table} is not in the connection's catalogue")
    read = catalogue.read_columns(runtime, runtime.connection_params(connection), schema, table)
    if len(schema) <= NAME_LENGTH and len(table) <= NAME_LENGTH:
        session.add(
            ColumnsRow(
                connection_id=connection.id,
                schema_name=schema,
                name=table,
                columns_json=json.dumps([[column.name, column.type] for column in read]),
            )
        )
        session.flush()
    return read
