"""A connection's catalogue as last read: its tables and views, and the columns of those
whose columns were asked for (``dancecat_core.services.catalogues``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dancecat_core.models.meta import Base, LongBlob, UTCDateTime, utcnow

# Longer names (SQLite allows them) get no columns cache: they are read each time.
NAME_LENGTH = 255


class Catalogue(Base):
    """When a connection's catalogue was read, how long it took, what was left out, and
    its tables and views: one compressed JSON list of ``[schema, name, kind, searchable]``.
    One value, not a row per table: 10,000 tables are written and read in one statement
    (rows cost a first read of 10,000 tables 1.4 s of inserts; bench/schema_case.py)."""

    __tablename__ = "catalogues"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), primary_key=True)
    read_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_ms: Mapped[int] = mapped_column(Integer, default=0)
    left_out: Mapped[int] = mapped_column(Integer, default=0)
    tables: Mapped[bytes] = mapped_column(LongBlob)


class CatalogueTable(Base):
    """The columns of one table or view, kept once they were first asked for (when the
    schema browser opens it or the editor completes its name)."""

    __tablename__ = "catalogue_tables"
    __table_args__ = (Index("ix_catalogue_tables_lookup", "connection_id", "schema_name", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    schema_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    columns_json: Mapped[str] = mapped_column(Text)
