"""A queried database's catalogue, read as the connection's own user and shaped for the
job form's schema browser and the editor's autocomplete.

The SQL is the driver's (``Driver.catalogue``); it runs through ``DriverSession.open_query``
like a job does, with the connection's credentials, read-only rules and the query timeout
(``DB_TIMEOUT``), so the browser shows what the database lets that user see and a slow
catalogue is stopped by the server. Columns that scrubbing would remove from a result are
marked with the reason the scrubber plugins give (``Runtime.scrub_plan``), so the editor
says before a run what the run will drop.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import attrs

from dancecat_core.columns import Column
from dancecat_core.drivers import BoundQuery, CatalogueSql, ConnectionParams, Driver
from dancecat_core.errors import Conflict, QueryError
from dancecat_core.runner import database_error_text
from dancecat_core.runtime import Runtime

# How many tables and views one read keeps; a catalogue larger still says how many it left out.
MAX_TABLES = 100_000
# Extra seconds before the session is cancelled from here, when the server's own timeout
# did not answer (the same grace a preview gives).
CANCEL_GRACE = 5


@attrs.frozen
class CatalogueTable:
    """A table or view: ``searchable`` when its name works without the schema."""

    schema: str
    name: str
    kind: str
    searchable: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "name": self.name,
            "kind": self.kind,
            "searchable": self.searchable,
        }


@attrs.frozen
class CatalogueColumn:
    """A column and its declared type; ``scrubbed`` is why a run would remove it, or None."""

    name: str
    type: str
    scrubbed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "scrubbed": self.scrubbed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CatalogueColumn:
        return cls(name=data["name"], type=data["type"], scrubbed=data.get("scrubbed"))


def catalogue_sql(driver: Driver) -> CatalogueSql:
    if driver.catalogue is None:
        raise Conflict(f"{driver.label} connections have no schema browser")
    return driver.catalogue


def _rows(
    runtime: Runtime, params: ConnectionParams, query: str | BoundQuery, limit: int
) -> list[Sequence[Any]]:
    """Up to ``limit`` + 1 rows of ``query``, run as a preview runs a job's query."""
    driver = runtime.driver(params.driver)
    timeout = runtime.settings.db_timeout
    rows: list[Sequence[Any]] = []
    try:
        with driver.connect(params, timeout=runtime.settings.connect_timeout) as session:
            timer = threading.Timer(timeout + CANCEL_GRACE, session.cancel)
            timer.start()
            try:
                cursor = session.open_query(query, timeout=timeout, limit=limit + 1)
                for batch in cursor.batches():
                    rows.extend(batch)
                    if len(rows) > limit:
                        break
                cursor.close()
            finally:
                timer.cancel()
    except QueryError as exc:
        raise type(exc)(
            "the catalogue could not be read: " + database_error_text(runtime, exc, params, "")
        ) from None
    return rows


def read_tables(runtime: Runtime, params: ConnectionParams) -> tuple[list[CatalogueTable], int]:
    """Every table and view the connection's user may see, and how many were left out."""
    sql = catalogue_sql(runtime.driver(params.driver))
    rows = _rows(runtime, params, sql.tables, MAX_TABLES)
    tables = [
        CatalogueTable(schema=str(schema), name=str(name), kind=str(kind), searchable=bool(flag))
        for schema, name, kind, flag in rows[:MAX_TABLES]
    ]
    return tables, max(0, len(rows) - MAX_TABLES)


def read_columns(
    runtime: Runtime, params: ConnectionParams, schema: str, table: str
) -> list[CatalogueColumn]:
    """One table's columns in order, each marked when scrubbing would remove it."""
    sql = catalogue_sql(runtime.driver(params.driver))
    rows = _rows(runtime, params, sql.columns_of(schema, table), MAX_TABLES)
    return mark_scrubbed(runtime, table, [(str(name), str(kind or "")) for name, kind in rows])


def mark_scrubbed(
    runtime: Runtime, table: str, columns: Sequence[tuple[str, str]]
) -> list[CatalogueColumn]:
    """The columns with the scrubbers' verdicts, asked as a run asks them: each column
    named as itself and coming from ``table.column``."""
    plan = runtime.scrub_plan([Column(name=name, source=f"{table}.{name}") for name, _ in columns])
    reasons = dict(plan.removed)
    return [
        CatalogueColumn(name=name, type=kind, scrubbed=reasons.get(index))
        for index, (name, kind) in enumerate(columns)
    ]
