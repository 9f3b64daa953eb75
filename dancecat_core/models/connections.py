"""Connections to the databases that jobs query."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dancecat_core.models.accounts import User
from dancecat_core.models.meta import Base, UTCDateTime, utcnow


class Connection(Base):
    """A queried database. The password is only ever stored Fernet-encrypted.

    Deleting is logical (``deleted_at``) so that jobs using it keep their pages and old
    results and show "connection deleted" instead of crashing.
    """

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    driver: Mapped[str] = mapped_column(String(50))
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    database: Mapped[str] = mapped_column(String(1024))
    user_name: Mapped[str | None] = mapped_column(String(255))
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    read_only: Mapped[bool] = mapped_column(Boolean, default=True)
    options_json: Mapped[str] = mapped_column(Text, default="{}")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    owner: Mapped[User | None] = relationship()

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.options_json or "{}")

    @options.setter
    def options(self, value: dict[str, Any]) -> None:
        self.options_json = json.dumps(value or {}, sort_keys=True)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.name} {self.driver}>"
