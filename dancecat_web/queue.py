"""The run queue as the web app sees it: ``registry["dancecat.enqueue_run"]``.

Views call the function in the registry rather than importing ``enqueue_run`` so tests can
watch what is enqueued and when. The queue itself (``dancecat_core.tasks``) is pointed at
this process's runtime, so the web app and its embedded consumer share one configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pyramid.config import Configurator
from pyramid.request import Request

from dancecat_core import tasks

log = logging.getLogger(__name__)


def includeme(config: Configurator) -> None:
    runtime = config.registry["dancecat.runtime"]
    if "dancecat.enqueue_run" not in config.registry:
        tasks.configure(runtime=runtime)
        config.registry["dancecat.enqueue_run"] = tasks.enqueue_run


def enqueue_after_commit(request: Request, tracker_id: int) -> None:
    """Hand the run to the queue once the request's transaction commits, never before:
    a worker must never look for a tracker that is not committed yet."""
    enqueue = request.registry["dancecat.enqueue_run"]
    request.tm.get().addAfterCommitHook(_enqueue, args=(enqueue, tracker_id))


def enqueue_committed(request: Request, tracker_id: int) -> None:
    """Hand the run to the queue now: its tracker was committed by a transaction of its
    own (a trigger's), not the request's."""
    _enqueue(True, request.registry["dancecat.enqueue_run"], tracker_id)


def _enqueue(committed: bool, enqueue: Callable[[int], object], tracker_id: int) -> None:
    if not committed:
        return
    try:
        enqueue(tracker_id)
    except Exception:
        # The tracker stays Queued; the sweeper declares it Died in Queue in time.
        log.exception("tracker %s: could not be enqueued", tracker_id)
