"""URLs that act on one job without a session: pull URLs (read its latest result) and
trigger URLs (queue a run), and the log of every pull.

Like API tokens, only the SHA-256 of a URL's token is stored: the database can find a URL
by an indexed equality on the hash (no comparison of secrets that could leak timing) and a
copy of the database gives nobody a working URL. A URL acts with its job's owner's rights,
checked again at every use.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dancecat_core.models.jobs import Job
from dancecat_core.models.meta import Base, UTCDateTime, utcnow


class PullUrl(Base):
    """``GET /pull/<token>.csv|.json``: the job's newest valid result.

    ``window_started_at`` and ``window_pulls`` are the rate limit's fixed window, counted
    by compare-and-set updates so that every web process shares one count.
    """

    __tablename__ = "pull_urls"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    window_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    window_pulls: Mapped[int] = mapped_column(Integer, default=0)

    job: Mapped[Job] = relationship()


class PullUse(Base):
    """One pull through a known URL: when, how it was answered, which run it served.

    Pulls refused by the rate limit are not rows (a flood would fill the table); they are
    logged as warnings instead.
    """

    __tablename__ = "pull_uses"

    id: Mapped[int] = mapped_column(primary_key=True)
    pull_url_id: Mapped[int] = mapped_column(ForeignKey("pull_urls.id"), index=True)
    used_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String(8))
    format: Mapped[str] = mapped_column(String(8))
    status: Mapped[int] = mapped_column(SmallInteger)
    tracker_id: Mapped[int | None] = mapped_column(Integer)


class Trigger(Base):
    """``POST /trigger/<token>``: queue a run of the job.

    ``secret_encrypted`` (optional, Fernet like connection passwords: it must be read back
    to check a signature) is the HMAC key a caller signs its body with.
    """

    __tablename__ = "triggers"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    job: Mapped[Job] = relationship()
