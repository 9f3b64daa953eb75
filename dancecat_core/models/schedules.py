"""Schedules: when a job runs by itself."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dancecat_core.models.jobs import Job
from dancecat_core.models.meta import Base, UTCDateTime, utcnow
from dancecat_core.schedules import ScheduleType


class CatchUp(enum.StrEnum):
    """What the first check after downtime does with occurrences it missed."""

    ONCE = "once"  # run one catch-up occurrence now, skip the rest
    SKIP = "skip"  # skip them all; wait for the next future occurrence


class Schedule(Base):
    """A schedule's start is kept as wall-clock time in its own IANA zone.

    Occurrences are computed in that zone (so "daily at 02:30" stays 02:30 across DST) and
    ``next_run_at`` is stored in UTC for the checker's indexed lookup.
    """

    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedules_due", "active", "next_run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    start_local: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False))
    timezone: Mapped[str] = mapped_column(String(64))
    cron: Mapped[str | None] = mapped_column(String(200))
    catch_up: Mapped[str] = mapped_column(String(8), default=CatchUp.ONCE.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Parameter values this schedule fixes, as JSON; None: the job's defaults.
    parameter_values_json: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship()

    @property
    def is_done(self) -> bool:
        """A once schedule that fired: it has nothing left to do."""
        return (
            self.type == ScheduleType.ONCE
            and self.next_run_at is None
            and self.last_run_at is not None
        )

    @property
    def status(self) -> str:
        """``done`` (see ``is_done``), ``active`` or ``inactive``, as lists show it."""
        if self.is_done:
            return "done"
        return "active" if self.active else "inactive"

    def __repr__(self) -> str:
        return f"<Schedule {self.id} {self.type} job={self.job_id}>"
