"""A run's status as stored and as read, with no SQLAlchemy: ``dancecat export -o`` reads
a tracker through the DB-API alone (``dancecat_core.appdb_direct``) and must judge it by
the same rule as every screen. ``dancecat_core.models`` re-exports both names.
"""

from __future__ import annotations

import datetime as dt
import enum


class TrackerStatus(enum.StrEnum):
    """A run's six statuses, spelled as the screens, the API and stored rows show them."""

    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILED = "Failed"
    RESULT_EXPIRED = "Result Expired"
    DIED_IN_QUEUE = "Died in Queue"


def current_status(
    status: str, result_expires_at: dt.datetime | None, now: dt.datetime | None = None
) -> str:
    """``Tracker.current_status`` for a run read as plain columns (the runs API's rows)."""
    if (
        status == TrackerStatus.SUCCESS.value
        and result_expires_at is not None
        and result_expires_at <= (now or dt.datetime.now(dt.UTC))
    ):
        return TrackerStatus.RESULT_EXPIRED.value
    return status
