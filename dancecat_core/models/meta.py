"""The declarative base, a naming convention for constraints, the UTC datetime type and
the long binary type.

MySQL's types are imported when a MySQL engine first asks for them, not here: the dialect
module costs every console command ~15 ms of start-up, and most never see MySQL.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, LargeBinary, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Alembic needs stable constraint names to alter them later on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


MYSQL_DIALECTS = frozenset({"mysql", "mariadb"})


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database.

    SQLite and MySQL have no time zone type; storing naive UTC everywhere keeps the three
    app databases identical and comparisons index-friendly.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in MYSQL_DIALECTS:
            from sqlalchemy.dialects import mysql  # at first use (see the module docstring)

            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: dt.datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


class LongBlob(TypeDecorator[bytes]):
    """Bytes of any size: ``LONGBLOB`` on MySQL (whose ``BLOB`` stops at 64 KiB), the
    plain binary type elsewhere."""

    impl = LargeBinary()
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in MYSQL_DIALECTS:
            from sqlalchemy.dialects import mysql  # at first use (see the module docstring)

            return dialect.type_descriptor(mysql.LONGBLOB())
        return dialect.type_descriptor(LargeBinary())


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
