"""The huey queue: one instance built from the settings, its tasks, and its consumer.

Modelled on ``huey.contrib.djhuey``: the module exposes a ready ``huey`` object, so
``huey_consumer dancecat_core.tasks.huey`` works, but nothing is read from the settings at
import time. The storage is built on first use from ``configure()``'s settings (or
``load_settings()``, i.e. ``DANCECAT_CONFIG`` / ``DANCECAT_*``):

* ``REDIS_URL`` unset: ``SqliteStorage`` in ``HUEY_FILE`` (embedded; survives restarts);
* ``REDIS_URL`` set: ``RedisStorage`` — any number of consumers on any number of machines.

Periodic work runs on threads of each consumer (``_Every``), not as huey crontab tasks,
because huey's periodic tasks tick once a minute and the schedule check must run every
``FREQUENCY_INTERVAL_SECONDS``; on threads of their own, a queue full of long runs never
delays them, and they never delay huey's scheduler moving due runs onto the queue. Every
consumer runs its own checker; claims are atomic (see ``dancecat_core.scheduler``) so
several checkers never double an occurrence.
Result expiry is an ordinary huey periodic task (once a minute is plenty).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
from huey import Huey, crontab
from huey.consumer import Consumer, Scheduler
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

from dancecat_core import alerts, lifecycle, notify
from dancecat_core.lifecycle import RunOutcome
from dancecat_core.private_files import make_private_file
from dancecat_core.queue_serializer import JsonSerializer
from dancecat_core.redelivery import requeue_lost
from dancecat_core.runner import execute_tracker, interrupt_active_runs
from dancecat_core.runtime import Runtime, build_runtime
from dancecat_core.scheduler import check_due
from dancecat_core.services import trackers
from dancecat_core.settings import Settings, load_settings

log = logging.getLogger(__name__)

# A Sqlite queue has no blocking read: workers poll it, backing off up to this many
# seconds when idle. huey's default (10 s) would make scheduled runs start that late.
MAX_POLL_DELAY = 0.5
SWEEP_EVERY_SECONDS = 15
# huey's scheduler tick: how late at most a run with an eta reaches the queue.
SCHEDULER_TICK_SECONDS = 0.1
# How often Running trackers are checked for a worker that died on this machine.
DEAD_CHECK_SECONDS = 2.0
# Freshness of scheduled jobs and unsent owner alerts: a matter of minutes, not seconds.
ALERT_CHECK_SECONDS = 30


def sweep_interval(settings: Settings) -> float:
    """Sweep often enough to notice a dead worker soon after WORKER_STALE_SECONDS."""
    return max(1.0, min(SWEEP_EVERY_SECONDS, settings.worker_stale_seconds / 3))


_lock = threading.RLock()
_settings: Settings | None = None
_runtime: Runtime | None = None


def configure(settings: Settings | None = None, runtime: Runtime | None = None) -> None:
    """Use these settings (and runtime) for the queue and tasks in this process.

    Call before the first enqueue; calling again (tests, ``dancecat serve``) drops the old
    queue connection so the next use builds one from the new settings.
    """
    global _settings, _runtime
    with _lock:
        if runtime is not None:
            settings = runtime.settings
        _settings = settings
        _runtime = runtime
        huey.reset_storage()


def get_settings() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def get_runtime() -> Runtime:
    """The process's runtime, built once from the settings on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = build_runtime(get_settings())
        return _runtime


class DancecatHuey(Huey):
    """A huey whose storage (and name) come from the settings, lazily; its messages are
    JSON of plain values, never pickles (``dancecat_core.queue_serializer``)."""

    def __init__(self) -> None:
        self._storage: Any = None
        super().__init__(name="dancecat", results=False, utc=True, serializer=JsonSerializer())

    def create_storage(self) -> Any:
        return None  # built on first use, see ``storage``

    @property
    def storage(self) -> Any:
        if self._storage is None:
            with _lock:
                if self._storage is None:
                    self._storage = self._build_storage()
        return self._storage

    @storage.setter
    def storage(self, value: Any) -> None:
        self._storage = value

    def _build_storage(self) -> Any:
        settings = get_settings()
        self.name = settings.huey_name
        if self._immediate and self.immediate_use_memory:
            return MemoryStorage(self.name)
        if settings.redis_url:
            return RedisStorage(self.name, url=settings.redis_url)
        make_private_file(settings.huey_file)
        return SqliteStorage(self.name, filename=str(settings.huey_file))

    def reset_storage(self) -> None:
        with _lock:
            old, self._storage = self._storage, None
        if old is not None:
            try:
                old.close()
            except Exception:  # closing a dead connection is not worth failing over
                log.debug("closing the old queue storage failed", exc_info=True)

    # DanceCat stops a run through its tracker's status (compare-and-set), never by revoking
    # its queue message; so no message is looked up for a revocation before it runs, nor
    # its revocation flag deleted after: two Redis round trips a task (a tenth of a trivial
    # run's time in a consumer).
    def revoke(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("DanceCat does not revoke queue messages")

    revoke_all = revoke_by_id = revoke

    def is_revoked(self, task: Any, timestamp: Any = None, peek: bool = True) -> bool:
        return False

    def delete(self, key: str) -> Any:
        if key.startswith("r:"):  # a message's revocation flag (``Task.revoke_id``): none
            return False
        return super().delete(key)

    def create_consumer(self, **options: Any) -> DancecatConsumer:
        options["max_delay"] = min(float(options.get("max_delay", MAX_POLL_DELAY)), MAX_POLL_DELAY)
        return DancecatConsumer(self, **options)


huey = DancecatHuey()


class _DancecatScheduler(Scheduler):
    """huey's scheduler (moving runs whose eta has come onto the queue) at a short tick;
    DanceCat's own periodic work runs on threads of its own (``_Every``), so a slow check
    or sweep never holds back a run that is due. On Redis the due messages go back onto
    the queue as they came, in one round trip: huey decoded each into a task, encoded it
    again and pushed it alone (1,000 runs due at once: 1,000 round trips by the consumer
    that got them, while the others were already taking them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # huey allows 1..60 s; a tick of 1 s made every scheduled run up to 1 s late.
        self.interval = SCHEDULER_TICK_SECONDS

    def loop(self, now: dt.datetime | None = None) -> None:
        storage = self.huey.storage
        if not isinstance(storage, RedisStorage):
            super().loop(now)
            return
        current = self._next_loop
        self._next_loop += self.interval
        if self._next_loop < time.monotonic():
            self._next_loop = time.monotonic()  # a stall: skip, as huey does
            return
        try:
            # huey's script: the due messages, in eta order, taken off the schedule at once.
            due = storage.read_schedule(now or self.huey._get_timestamp())
        except Exception:
            self._logger.exception("Error reading schedule.")
            due = []
        ready = []
        for message in due:
            try:
                self.huey.deserialize_task(message)  # only messages it would run go on
            except Exception:
                self._logger.exception("Unable to deserialize task.")
                continue
            ready.append(message)
        if ready:
            try:
                storage.conn.lpush(storage.queue_key, *ready)
            except Exception:
                # Their trackers stay Queued: the sweep's redelivery enqueues them again.
                self._logger.exception("Error enqueueing %s due tasks.", len(ready))
        if self.periodic and self._next_periodic <= time.monotonic():
            while self._next_periodic <= time.monotonic():
                self._next_periodic += self.periodic_task_seconds
            self.enqueue_periodic_tasks(now)
        self.sleep_for_interval(current, self.interval)


@attrs.frozen
class _Periodic:
    """A piece of periodic work: ``every()`` seconds (read each time, settings may be
    reconfigured), first at once or after one interval."""

    what: str
    every: Callable[[], float]
    run: Callable[[], Any]
    at_once: bool = False


class _Every(threading.Thread):
    """One thread doing some periodic work, each piece at its own interval, until the
    consumer's stop flag is set."""

    def __init__(self, name: str, stop_flag: Any, work: list[_Periodic]):
        super().__init__(name=name, daemon=True)
        self.stop_flag = stop_flag
        self.work = work

    def run(self) -> None:
        clock = time.monotonic()
        next_at = [clock if piece.at_once else clock + piece.every() for piece in self.work]
        while not self.stop_flag.is_set():
            for i, piece in enumerate(self.work):
                clock = time.monotonic()
                if clock >= next_at[i]:
                    next_at[i] = clock + piece.every()
                    _safely(piece.what, piece.run)
            self.stop_flag.wait(max(0.05, min(next_at) - time.monotonic()))


def _periodic_threads(stop_flag: Any) -> list[_Every]:
    """The schedule check on a thread of its own (claims never wait for a sweep); dead
    workers, the sweep and alerts on another."""
    return [
        _Every(
            "dancecat-schedules",
            stop_flag,
            [
                _Periodic(
                    "schedule check",
                    lambda: get_settings().frequency_interval_seconds,
                    check_schedules.call_local,
                    at_once=True,
                )
            ],
        ),
        _Every(
            "dancecat-sweeper",
            stop_flag,
            [
                _Periodic(
                    "dead worker check", lambda: DEAD_CHECK_SECONDS, check_dead_workers.call_local
                ),
                _Periodic("sweep", lambda: sweep_interval(get_settings()), sweep.call_local),
                _Periodic(
                    "alerts",
                    lambda: ALERT_CHECK_SECONDS,
                    _once_per_queue("alerts", ALERT_CHECK_SECONDS, check_alerts.call_local),
                ),
            ],
        ),
    ]


def _once_per_queue(what: str, seconds: float, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn``, but on a Redis queue only by the first consumer to ask in each ``seconds``
    (a key set if absent, expiring a little before the next round). The freshness check
    reads every active schedule: four consumers each doing it every 30 s put 100,000
    schedules through the ORM eight times a minute, in the middle of whatever runs were
    due (bench: half of a consumer's samples during 1,000 due runs). Other queues (the
    embedded SQLite one: one consumer) run it every time, as before."""

    def run() -> Any:
        storage = huey.storage
        if isinstance(storage, RedisStorage):
            key = f"huey.dancecat.{storage.name}.{what}"
            if not storage.conn.set(key, lifecycle.worker_name(), nx=True, px=int(seconds * 900)):
                return None
        return fn()

    return run


class DancecatConsumer(Consumer):
    """huey's consumer that sweeps dead runs on start and runs the schedule checker."""

    scheduler_class = _DancecatScheduler
    # After the graceful wait, how long interrupted runs get to hand themselves back.
    hand_back_seconds = 10

    def stop(self, graceful: bool = False) -> None:
        """Stop; with ``graceful``, running tasks get ``shutdown_timeout`` to finish.

        Runs still going after that (or at once, when not graceful) are cancelled and
        handed back to the queue (Queued again, for another consumer) instead of being
        left Running until the sweeper declares them dead.
        """
        self.stop_flag.set()
        if graceful and self._join_workers():
            super().stop(graceful=True)
            return
        handed = interrupt_active_runs()
        if handed:
            log.warning("shutting down: handing back runs %s", handed)
        timeout, self.shutdown_timeout = self.shutdown_timeout, self.hand_back_seconds
        try:
            super().stop(graceful=True)
        finally:
            self.shutdown_timeout = timeout

    def _start_periodic(self) -> None:
        # What a first run would import (the column tracer, sqlglot: ~0.5 s of CPU) is
        # imported now, not at the moment a thousand runs fall due.
        import dancecat_core.provenance  # noqa: F401

        _safely("preparing the run statements", lambda: lifecycle.make_ready(get_runtime()))
        # First: runs whose worker died on this machine are known at once (a restart).
        _safely("startup sweep", sweep.call_local)
        for thread in _periodic_threads(self.stop_flag):
            thread.start()

    def start(self) -> None:
        self._start_periodic()
        super().start()

    def start_embedded(self) -> None:
        """Start the threads without taking over the process's signals (web server mode)."""
        self._start_periodic()
        self.scheduler.start()
        for _, worker in self.worker_threads:
            worker.start()


def _safely(what: str, fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        log.exception("%s failed; will try again", what)


def enqueue_run(tracker_id: int, eta: dt.datetime | None = None) -> None:
    """Put a Queued tracker on the queue; ``eta`` (aware) makes it start no earlier.

    Call only after the transaction that created the tracker has committed, or a fast
    worker may look for a tracker that does not exist yet.
    """
    if eta is None:
        run_job(tracker_id)
    else:
        run_job.schedule(args=(tracker_id,), eta=eta)
    log.info("tracker %s: enqueued%s", tracker_id, f" for {eta.isoformat()}" if eta else "")


@huey.task()
def run_job(tracker_id: int) -> str:
    """Run one tracker. Safe to deliver twice: the Queued->Running claim is a
    compare-and-set, so a second delivery finds the tracker taken and does nothing."""
    runtime = get_runtime()
    # wait_for_due: never early, even if a queue or a clock misbehaved.
    return follow_up(runtime, execute_tracker(runtime, tracker_id, wait_for_due=True))


def follow_up(runtime: Runtime, outcome: RunOutcome) -> str:
    """Do what a run's outcome asks: deliver it again at its due time, enqueue a run
    handed back by a shutting-down worker, or create the notifications of a run this
    attempt ended and queue their delivery. Returns what was done."""
    tracker_id = outcome.tracker_id
    if outcome.not_before is not None:
        run_job.schedule(args=(tracker_id,), eta=outcome.not_before)
        log.info("tracker %s: delivered before its due time, rescheduled", tracker_id)
        return "rescheduled"
    if outcome.handed_back:
        try:
            enqueue_run(tracker_id)
        except Exception:
            # Still Queued: the sweep's redelivery puts it back on the queue later.
            log.exception("tracker %s: could not be enqueued again", tracker_id)
    elif outcome.claimed:
        if notify.wanted(runtime, outcome.recipients):
            _queue_notifications(notify.after_run(runtime, tracker_id))
        if outcome.followers is not False:
            enqueue_chained(runtime, tracker_id)
    if alerts.ended(outcome) and outcome.alerting is not False:
        alerts.after_finish(runtime, tracker_id)
    return outcome.status.value


def deliver_now(runtime: Runtime, outcome: RunOutcome) -> list[int]:
    """A foreground run's notifications (``dancecat job run``), sent from this process now
    rather than by a worker. One that fails is put on the queue for the worker's retries;
    returns those ids."""
    if not (outcome.claimed and notify.wanted(runtime, outcome.recipients)):
        return []
    retried = []
    for notification_id in notify.after_run(runtime, outcome.tracker_id):
        try:
            notify.deliver(runtime, notification_id, final=False)
        except Exception:
            retried.append(notification_id)
    _queue_notifications(retried)
    return retried


def _queue_notifications(ids: list[int]) -> None:
    for notification_id in ids:
        try:
            enqueue_notification(notification_id)
        except Exception:
            log.exception("notification %s: could not be queued", notification_id)


def enqueue_chained(runtime: Runtime, tracker_id: int) -> list[int]:
    """Enqueue the runs chained after the finished run ``tracker_id``
    (``chains.downstream_runs`` claims them, exactly once); return their ids."""
    from dancecat_core.chains import downstream_runs

    followers = downstream_runs(runtime, tracker_id)
    for follower in followers:
        enqueue_run(follower)
    return followers


@huey.task(context=True)
def deliver_notification(notification_id: int, task: Any = None) -> str:
    """Send one notification; raising makes huey retry it with backoff."""
    final = task is None or not task.retries
    return notify.deliver(get_runtime(), notification_id, final=final)


def enqueue_notification(notification_id: int) -> None:
    settings = get_settings()
    deliver_notification.schedule(
        args=(notification_id,),
        delay=0,
        retries=settings.notify_retries,
        retry_delay=settings.notify_retry_delay,
        retry_backoff=2,
    )


@huey.task()
def check_alerts() -> int:
    """Open streaks for scheduled jobs with no success for too long, and send the owner
    alerts not sent yet (``dancecat_core.alerts``)."""
    runtime = get_runtime()
    alerts.check_freshness(runtime)
    return alerts.deliver_pending(runtime)


@huey.task()
def check_schedules() -> int:
    """Claim the occurrences due before the next check, enqueue them, advance schedules."""
    return len(check_due(get_runtime(), enqueue=enqueue_run))


@huey.task()
def sweep() -> int:
    """Fail runs whose worker died (stale heartbeat), notify about them and start the
    runs chained after their failure; expire never-run Queued trackers; enqueue again
    Queued runs the queue lost (``dancecat_core.redelivery``) and deliveries whose worker
    died mid-try."""
    runtime = get_runtime()
    swept = lifecycle.sweep_dead(runtime)
    _follow_sweep(runtime, swept)
    for tracker_id in swept.died_in_queue:
        alerts.after_finish(runtime, tracker_id)
    requeue_lost(runtime, huey, run_job.task_class.__name__, enqueue_run)
    stalled = notify.stalled(runtime)
    if stalled:
        log.warning("notifications %s: their worker died mid-delivery; sending again", stalled)
        _queue_notifications(stalled)
    return swept.changed


@huey.task()
def check_dead_workers() -> int:
    """Settle Running runs whose worker died (``lifecycle.sweep_running``): on this
    machine as soon as the process is gone, elsewhere once the heartbeat is stale."""
    runtime = get_runtime()
    swept = lifecycle.sweep_running(runtime)
    _follow_sweep(runtime, swept)
    return swept.changed


def _follow_sweep(runtime: Runtime, swept: lifecycle.Sweep) -> None:
    """Enqueue the runs to be run again; announce the ones failed and start the runs
    chained after their failure."""
    for tracker_id in swept.retried:
        try:
            enqueue_run(tracker_id)
        except Exception:
            # Still Queued: the sweep's redelivery puts it back on the queue later.
            log.exception("tracker %s: could not be enqueued again", tracker_id)
    for tracker_id in swept.failed:
        _queue_notifications(notify.after_run(runtime, tracker_id))
        try:
            enqueue_chained(runtime, tracker_id)
        except Exception:
            # Claimed runs stay Queued: the redelivery below (or the next sweep's) sends them.
            log.exception("tracker %s: could not start the runs chained after it", tracker_id)
        alerts.after_finish(runtime, tracker_id, swept=True)


@huey.periodic_task(crontab(minute="*"))
def expire_results() -> int:
    """Delete results past JOB_RESULT_VALID_SECONDS; their trackers become Result Expired."""
    count = trackers.expire_results(get_runtime())
    if count:
        log.info("expired %s results", count)
    return count


def start_embedded_consumer(workers: int | None = None) -> Callable[[], None]:
    """Run a consumer on threads inside this process (``dancecat serve``, embedded mode).

    Returns a function that stops it, waiting up to 10 s for running tasks.
    """
    count = workers or get_settings().workers
    consumer = huey.create_consumer(workers=count, worker_type="thread", shutdown_timeout=10)
    consumer.start_embedded()
    log.info("embedded consumer started with %s workers", count)

    def stop() -> None:
        consumer.stop(graceful=True)
        log.info("embedded consumer stopped")

    return stop
