"""Named locks in the app database (``dancecat_core.app_locks``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dancecat_core.models.meta import Base, UTCDateTime


class AppLock(Base):
    """One named lock: its row is updated by whoever takes it (``app_locks.hold``), which
    makes a second taker wait for the first's commit on every backend. ``taken_at`` is
    when it was last taken, for whoever wonders."""

    __tablename__ = "app_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    taken_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
