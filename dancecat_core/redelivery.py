"""Putting Queued runs that the queue lost back on it: the "at least once" half of delivery.

A run is a Queued tracker row (the truth) plus a message on the huey queue (the
reminder). The reminder can go missing: Redis restarted without persistence, an enqueue
failed after the tracker was committed (the queue was down), a worker died between taking
the message and claiming the tracker, or a shutting-down worker could not enqueue the run
it handed back. Every sweep therefore compares the Queued trackers that have waited longer
than ``WORKER_STALE_SECONDS`` with the run messages actually on the queue (pending and
scheduled) and enqueues the missing ones again.

A message may so be delivered twice (the check races with workers taking messages); that
is safe, because the Queued -> Running claim (``lifecycle.claim``) is a compare-and-set:
the second delivery finds the tracker taken and does nothing. At least once on the queue, at most
once in the runner: exactly once in effect.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from dancecat_core.models import Tracker, TrackerStatus, utcnow
from dancecat_core.runtime import Runtime

log = logging.getLogger(__name__)


def _tracker_ids_on_queue(huey: Any, task_name: str) -> set[int]:
    ids: set[int] = set()
    for task in [*huey.pending(), *huey.scheduled()]:
        if getattr(task, "name", None) == task_name and task.args:
            ids.add(int(task.args[0]))
    return ids


def requeue_lost(
    runtime: Runtime,
    huey: Any,
    task_name: str,
    enqueue: Callable[[int], None],
    now: dt.datetime | None = None,
) -> list[int]:
    """Enqueue again every Queued tracker, waiting past WORKER_STALE_SECONDS, that has no
    message on the queue. Returns their ids."""
    now = now or utcnow()
    waited_since = now - dt.timedelta(seconds=runtime.settings.worker_stale_seconds)
    with runtime.session_factory() as session:
        rows = session.execute(
            select(Tracker.id, Tracker.due_at).where(
                Tracker.status == TrackerStatus.QUEUED.value,
                Tracker.queued_at < waited_since,
            )
        ).all()
    candidates = [tid for tid, due in rows if due is None or due < waited_since]
    if not candidates:
        return []
    on_queue = _tracker_ids_on_queue(huey, task_name)
    lost = [tid for tid in candidates if tid not in on_queue]
    for tracker_id in lost:
        log.warning("tracker %s: Queued but not on the queue; enqueuing it again", tracker_id)
        try:
            enqueue(tracker_id)
        except Exception:
            log.exception("tracker %s: could not be enqueued again; next sweep", tracker_id)
    return lost
