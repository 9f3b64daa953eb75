"""A connection's catalogue as last read: its tables and views, and the columns of those
whose columns were asked for (``dancecat_core.services.catalogues``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dancecat_core.models.meta import Base, UTCDateTime, utcnow

# Longer names (SQLite allows them) are left out of the cache and counted in ``left_out``.
NAME_LENGTH = 255


class Catalogue(Base):
    """When a connection's catalogue was read, how long it took, and what was left out."""

    __tablename__ = "catalogues"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), primary_key=True)
    read_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_ms: Mapped[int] = mapped_column(Integer, default=0)
    left_out: Mapped[int] = mapped_column(Integer, default=0)


class CatalogueTable(Base):
    """One table or view; ``columns_json`` stays empty until its columns are first asked for,
    so a catalogue of 10,000 tables is read in one query and each table's columns in one
    more, when the schema browser opens it or the editor completes its name."""

    __tablename__ = "catalogue_tables"
    __table_args__ = (Index("ix_catalogue_tables_lookup", "connection_id", "schema_name", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    schema_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    searchable: Mapped[bool] = mapped_column(Boolean, default=False)
    columns_json: Mapped[str | None] = mapped_column(Text)
