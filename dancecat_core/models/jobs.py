"""Jobs (saved queries) and the destinations their results go to."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dancecat_core.models.accounts import User
from dancecat_core.models.connections import Connection
from dancecat_core.models.meta import Base, UTCDateTime, utcnow


class RunAfter(enum.StrEnum):
    """Which ending of an upstream job's run starts a chained job (``Job.after_on``)."""

    SUCCESS = "success"
    FAILURE = "failure"


class Job(Base):
    __tablename__ = "jobs"
    # The Jobs screen's order, newest update first (migration 0002).
    __table_args__ = (Index("ix_jobs_updated_at_id", "updated_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    annotation: Mapped[str] = mapped_column(Text, default="")
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    query: Mapped[str] = mapped_column(Text)
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Last edited, set by ``services.jobs.update``: a run does not change it (so the
    # screens' "Updated on" means what it says); ``last_run_at`` is when the newest run
    # was queued, set wherever ``run_count`` grows (migration 0008).
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    # Chains: run after each run of ``after_job_id`` that ends as ``after_on`` says
    # (``dancecat_core.chains``).
    after_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    after_on: Mapped[str | None] = mapped_column(String(8))
    # Message templates (``dancecat_core.messages``); empty: the default text.
    subject_template: Mapped[str | None] = mapped_column(Text)
    body_template: Mapped[str | None] = mapped_column(Text)
    filename_template: Mapped[str | None] = mapped_column(Text)
    body_rows: Mapped[int] = mapped_column(Integer, default=0)
    # The owner is alerted after this many failed runs in a row; 0: never (migration 0005).
    alert_after_failures: Mapped[int] = mapped_column(Integer, default=1)
    # Declared parameters as JSON (``dancecat_core.parameters``); None: none.
    parameters_json: Mapped[str | None] = mapped_column(Text)

    connection: Mapped[Connection] = relationship()
    after_job: Mapped[Job | None] = relationship(remote_side=[id])
    owner: Mapped[User | None] = relationship()
    recipients: Mapped[list[JobRecipient]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobRecipient.destination"
    )

    # Not stored: set by ``services.jobs.create``/``update`` to the one-time lines showing
    # secrets generated for new destinations.
    announcements: tuple[str, ...] = ()

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.name}>"


class JobRecipient(Base):
    """One destination of a job's results (``dancecat_core.destinations``).

    ``destination`` is the destination as shown: a bare email address or a URL with its
    secrets masked (called ``email`` before migration 0008); ``secrets_encrypted`` holds
    those secrets (a JSON object, Fernet-encrypted like connection passwords), None when
    it has none.
    """

    __tablename__ = "job_recipients"
    __table_args__ = (UniqueConstraint("job_id", "destination"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    destination: Mapped[str] = mapped_column(String(600))
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    # When this destination gets the result (``dancecat_core.delivery_rules``): always,
    # rows, changed, failed; and an optional condition on the result, as its text.
    send_when: Mapped[str] = mapped_column(String(10), default="always")
    condition: Mapped[str | None] = mapped_column(String(500))

    job: Mapped[Job] = relationship(back_populates="recipients")
