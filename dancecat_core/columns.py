"""Column descriptions and the canonical text form of every value type.

A result is stored once, as CSV in one fixed dialect (see ``csvcodec``). Each column carries
a ``ColumnType`` so readers can turn the text back into the value it was: the CSV download
needs no re-encoding, and XLSX/JSON get numbers, dates and booleans back.
"""

from __future__ import annotations

import enum

import attrs


class ColumnType(enum.StrEnum):
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"  # without time zone
    DATETIMETZ = "datetimetz"  # with time zone, stored in UTC
    TEXT = "text"
    BYTES = "bytes"
    JSON = "json"


@attrs.frozen
class Column:
    """One result column as a driver reports it.

    ``type`` is ``None`` when the database does not say (SQLite); the pipeline then infers
    it from the values it writes.
    """

    name: str
    type: ColumnType | None = None
    db_type: str = ""
    # The table column the value comes from, when the database says ("users.password");
    # scrubbing looks at it too, so ``SELECT password AS p`` is still caught.
    source: str = ""
    # Every table column ("users.password") the value is computed from, through derived
    # tables, CTEs, views, expressions and whole-row references (``provenance``), and
    # whether that could be followed all the way (not through a user-defined function).
    derived_from: tuple[str, ...] = ()
    traced: bool = True

    def to_dict(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "type": self.type.value if self.type else None,
            "db_type": self.db_type,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Column:
        return cls(
            name=data["name"],
            type=ColumnType(data["type"]) if data.get("type") else None,
            db_type=data.get("db_type", ""),
        )
