"""``dancecat job run``: now, with progress on a terminal, or ``--background`` on the queue.

Its own module because it alone needs the runner and the queue. A run in the foreground
goes through the same lifecycle as a worker's (``runner.execute_tracker``), notifications
included: they are sent from this process (``tasks.deliver_now``), unless ``--no-notify``.
The queue (``tasks``: huey and its Redis client, ~0.15 s to import) is loaded only when
something goes on it: a run in the background, a chained run, a notification to send.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from dancecat_core import alerts, notify
from dancecat_core.chains import downstream_runs
from dancecat_core.commands import progress, references
from dancecat_core.commands.context import runtime_for
from dancecat_core.console import one_line
from dancecat_core.db import session_scope
from dancecat_core.inputs.console import from_args
from dancecat_core.inputs.run import RunInput
from dancecat_core.models import TrackerStatus
from dancecat_core.runner import execute_tracker
from dancecat_core.runtime import Runtime
from dancecat_core.services import jobs, trackers


def _queue(runtime: Runtime) -> ModuleType:
    """The queue's module, configured for this runtime: what is put on it (a notification
    that cannot be sent now, a chained run) goes to this runtime's queue for a worker."""
    from dancecat_core import tasks

    tasks.configure(runtime=runtime)
    return tasks


def _values(args: argparse.Namespace) -> RunInput:
    """The ``--param NAME=VALUE`` flags as the run's input."""
    run = from_args(RunInput, args)
    assert isinstance(run, RunInput)
    return run


def run_command(args: argparse.Namespace) -> int:
    if args.background:
        return _run_in_background(args)
    runtime = runtime_for(args)
    with session_scope(runtime.session_factory) as session:
        job = references.job(session, args.job)
        tracker_id = jobs.queue_run(session, None, job.id, _values(args)).id
    counter = progress.CsvCounter()
    if progress.wanted():
        store = runtime.store
        runtime.stores[store.name] = progress.CountingStore(store, counter)
    with progress.ProgressLine(f"run {tracker_id}", counter):
        outcome = execute_tracker(runtime, tracker_id)
    # ``tasks.enqueue_chained``, with the queue loaded only when there are followers.
    followers = downstream_runs(runtime, tracker_id)
    for follower in followers:
        _queue(runtime).enqueue_run(follower)
    print(
        f"run {tracker_id}: {outcome.status.value}"
        + (f", {outcome.row_count} rows" if outcome.row_count is not None else "")
    )
    if alerts.ended(outcome):
        alerts.after_finish(runtime, tracker_id)  # told by a worker's next pass
    send = not args.no_notify and outcome.claimed and notify.wanted(runtime, outcome.recipients)
    retried = _queue(runtime).deliver_now(runtime, outcome) if send else []
    if retried:
        print(
            f"warning: run {tracker_id}: {len(retried)} notification(s) could not be sent now;"
            " a worker will retry them",
            file=sys.stderr,
        )
    for follower in followers:
        print(f"run {follower} queued (chained after run {tracker_id})")
    if outcome.status != TrackerStatus.SUCCESS:
        message = one_line(outcome.error or "")
        print(f"error: run {tracker_id} {outcome.status.value}: {message}", file=sys.stderr)
        return 1
    with session_scope(runtime.session_factory) as session:
        note = trackers.stored_result(runtime, trackers.get(session, None, tracker_id)).meta
        if note.scrub_note:
            print(note.scrub_note)
    return 0


def _run_in_background(args: argparse.Namespace) -> int:
    runtime = runtime_for(args)
    queue = _queue(runtime)
    with session_scope(runtime.session_factory) as session:
        job = references.job(session, args.job)
        tracker_id = jobs.queue_run(session, None, job.id, _values(args)).id
    queue.enqueue_run(tracker_id)
    print(f"run {tracker_id} queued")
    return 0
