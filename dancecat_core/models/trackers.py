"""Trackers (one per run), their notifications, and result bytes kept in the app database."""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dancecat_core.errors import IllegalTransition
from dancecat_core.models.jobs import Job
from dancecat_core.models.meta import Base, LongBlob, UTCDateTime, utcnow
from dancecat_core.models.schedules import Schedule
from dancecat_core.run_status import TrackerStatus, current_status

# The only legal moves. A run that never started may still fail (its job or connection
# was deleted while it waited). Running goes back to Queued only when the worker running
# it shuts down before it ends and hands it back (``runner.interrupt_active_runs``);
# nothing finished ever moves again except Success to Result Expired.
TRANSITIONS: dict[TrackerStatus, frozenset[TrackerStatus]] = {
    TrackerStatus.QUEUED: frozenset(
        {TrackerStatus.RUNNING, TrackerStatus.DIED_IN_QUEUE, TrackerStatus.FAILED}
    ),
    TrackerStatus.RUNNING: frozenset(
        {TrackerStatus.SUCCESS, TrackerStatus.FAILED, TrackerStatus.QUEUED}
    ),
    TrackerStatus.SUCCESS: frozenset({TrackerStatus.RESULT_EXPIRED}),
    TrackerStatus.FAILED: frozenset(),
    TrackerStatus.RESULT_EXPIRED: frozenset(),
    TrackerStatus.DIED_IN_QUEUE: frozenset(),
}

FINISHED = frozenset(
    {
        TrackerStatus.SUCCESS,
        TrackerStatus.FAILED,
        TrackerStatus.RESULT_EXPIRED,
        TrackerStatus.DIED_IN_QUEUE,
    }
)


def check_transition(current: str, target: str) -> None:
    """Raise ``IllegalTransition`` unless ``current -> target`` is in ``TRANSITIONS``."""
    if TrackerStatus(target) not in TRANSITIONS[TrackerStatus(current)]:
        raise IllegalTransition(f"a tracker cannot go from {current} to {target}")


class Tracker(Base):
    __tablename__ = "trackers"
    # One tracker per schedule occurrence: the database refuses a second claim; likewise
    # one downstream run per upstream run and job (chains), one run per trigger delivery.
    # (job_id, id): a job's runs newest first, and its latest successful run (migration 0002);
    # (job_id, result_expires_at): its newest result still valid (migration 0012).
    __table_args__ = (
        UniqueConstraint("schedule_id", "due_at"),
        UniqueConstraint("upstream_tracker_id", "job_id"),
        UniqueConstraint("trigger_id", "idempotency_key"),
        Index("ix_trackers_job_id_id", "job_id", "id"),
        Index("ix_trackers_job_id_result_expires_at", "job_id", "result_expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"))
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    triggered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    upstream_tracker_id: Mapped[int | None] = mapped_column(ForeignKey("trackers.id"))
    trigger_id: Mapped[int | None] = mapped_column(ForeignKey("triggers.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=TrackerStatus.QUEUED.value, index=True)
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(255))
    # The process running it (``worker_processes.WorkerProcess.to_text``): on its own
    # machine, a dead worker is known at once instead of after WORKER_STALE_SECONDS.
    worker_process: Mapped[str | None] = mapped_column(String(300))
    # How many times it was started; a read-only run whose worker died runs again
    # (RUN_RETRIES), and ``note`` says why it ran more than once.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    note: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    result_store: Mapped[str | None] = mapped_column(String(50))
    result_key: Mapped[str | None] = mapped_column(String(255))
    result_bytes: Mapped[int | None] = mapped_column(BigInteger)
    result_meta_json: Mapped[str | None] = mapped_column(Text)
    result_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # What delivery rules read, computed while the result streamed (``delivery_rules``):
    # SHA-256 of the scrubbed result, and each recipient condition's verdict.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    delivery_facts_json: Mapped[str | None] = mapped_column(Text)
    # The parameter values given for the run, then every value it used, as JSON.
    parameter_values_json: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship()
    schedule: Mapped[Schedule | None] = relationship()
    notifications: Mapped[list[Notification]] = relationship(
        back_populates="tracker", order_by="Notification.id"
    )

    @property
    def result_meta(self) -> dict[str, Any] | None:
        return json.loads(self.result_meta_json) if self.result_meta_json else None

    @property
    def current_status(self) -> str:
        """The status as of now: a Success past its expiry reads as Result Expired at once.

        The sweep deletes expired results once a minute; until it does the stored status
        still says Success, but nothing may show or serve that result any more.
        """
        return current_status(self.status, self.result_expires_at)

    def result_expired(self, now: dt.datetime | None = None) -> bool:
        """Whether this run's result is past its expiry time (whatever the stored status)."""
        return self.result_expires_at is not None and self.result_expires_at <= (now or utcnow())

    @property
    def result_available(self) -> bool:
        """Whether this run has a result that can be downloaded right now."""
        return self.current_status == TrackerStatus.SUCCESS.value

    def move_to(self, target: TrackerStatus) -> None:
        """Change status in memory, refusing illegal moves (used for non-racing updates)."""
        check_transition(self.status, target)
        self.status = target.value

    def __repr__(self) -> str:
        return f"<Tracker {self.id} job={self.job_id} {self.status}>"


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # the recipient's rule or condition said no; ``note`` says why


class Notification(Base):
    """One message to one recipient about one run; its own status, apart from the run's."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("tracker_id", "notifier", "recipient"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tracker_id: Mapped[int] = mapped_column(ForeignKey("trackers.id"), index=True)
    notifier: Mapped[str] = mapped_column(String(50))
    recipient: Mapped[str] = mapped_column(String(600))
    status: Mapped[str] = mapped_column(String(10), default=NotificationStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Sent with every try, so the receiver can drop a duplicate (``notify``).
    delivery_key: Mapped[str | None] = mapped_column(String(64))
    # When the try in progress began; None between tries (``DELIVERY_LEASE_SECONDS``).
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Why it was skipped, or what went wrong but did not stop it (a template fell back).
    note: Mapped[str | None] = mapped_column(Text)

    tracker: Mapped[Tracker] = relationship(back_populates="notifications")


class AlertKind(enum.StrEnum):
    FAILING = "failing"  # failed N runs in a row, died in the queue, or was swept as dead
    STALE = "stale"  # scheduled, but no success for its interval plus the grace period


class Alert(Base):
    """One streak of trouble with a job, told to its owner once when it opens and once
    when it ends. ``open_key`` ("job:kind") is unique while open and NULL once closed,
    so two processes can never open the same streak twice."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    open_key: Mapped[str | None] = mapped_column(String(40), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    tracker_id: Mapped[int | None] = mapped_column(ForeignKey("trackers.id"))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_by_tracker_id: Mapped[int | None] = mapped_column(ForeignKey("trackers.id"))
    opened_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # a sender's claim
    last_error: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship()


class ResultChunk(Base):
    """Result bytes kept in the app database by the ``database`` result store."""

    __tablename__ = "result_chunks"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LongBlob())
